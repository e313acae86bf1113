"""Helpers of the command-line modules: lists of files given with lists of the same length."""
from __future__ import annotations


def aligned(what: str, **lists: list | None) -> list[tuple]:
    """Zip lists given on the command line that must have one entry each (files and their labels)."""
    lengths = {name: len(values or []) for name, values in lists.items()}
    if len(set(lengths.values())) != 1:
        given = ", ".join(f"{len_} --{name.replace('_', '-')}" for name, len_ in lengths.items())
        raise ValueError(f"{what}: expected one entry each, got {given}")
    if not next(iter(lengths.values())):
        raise ValueError(f"{what}: no files given (--{next(iter(lists)).replace('_', '-')})")
    return list(zip(*(values for values in lists.values())))

"""The generated blocks of the README: text between an HTML-comment marker pair, replaced whole."""
from __future__ import annotations

from pathlib import Path


def replace_block(text: str, block: str, begin: str, end: str, path: Path) -> str:
    """``text`` with what stands between ``begin`` and ``end`` replaced by ``block``; SystemExit naming
    ``path`` when a marker is missing."""
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: no generated-block markers {begin} ... {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"

"""The generated blocks of the docs (docs/results/*.md): text between an HTML-comment marker pair,
replaced whole, with the --write / --check options every block writer takes."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def replace_block(text: str, block: str, begin: str, end: str, path: Path) -> str:
    """``text`` with what stands between ``begin`` and ``end`` replaced by ``block``; SystemExit naming
    ``path`` when a marker is missing."""
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: no generated-block markers {begin} ... {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{block}\n{end}{tail}"


def add_output_options(parser: argparse.ArgumentParser, target: Path) -> None:
    """--write [FILE] (replace the block) or --check [FILE] (exit 1 when it differs), FILE being
    ``target`` (the docs file that holds the block) unless given; neither: print."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, nargs="?", const=target, metavar="FILE",
                       help=f"replace the block between the markers in FILE (default {target})")
    group.add_argument("--check", type=Path, nargs="?", const=target, metavar="FILE",
                       help=f"exit 1 when the block in FILE differs (default {target})")


def emit(args: argparse.Namespace, block: str, begin: str, end: str, source: str) -> int:
    """Write, check or print ``block`` as ``add_output_options`` parsed; ``source`` names what it was
    computed from in the --check message."""
    if args.write:
        args.write.write_text(replace_block(args.write.read_text(), block, begin, end, args.write))
    elif args.check:
        text = args.check.read_text()
        if replace_block(text, block, begin, end, args.check) != text:
            print(f"{args.check}: the block {begin} differs from {source}; rerun with --write", file=sys.stderr)
            return 1
    else:
        print(block)
    return 0

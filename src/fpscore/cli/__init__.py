"""`fpscore <step> ...`: the command-line entry points the workflow rules call.

Each step lives in a module fpscore.cli.<name> exposing ``register(subparsers)``;
options default to the schema defaults (``fpscore.config.schema_defaults``), so
the command run by hand does what the workflow does with config/config.yaml.
"""
from __future__ import annotations

import argparse
import importlib
import sys

STEP_MODULES = ("data", "scores", "learn", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fpscore", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="step", metavar="<step>", required=True)
    for name in STEP_MODULES:
        try:
            module = importlib.import_module(f"fpscore.cli.{name}")
        except ModuleNotFoundError as err:  # a step still being written must not break the others
            if err.name != f"fpscore.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as err:
        print(f"fpscore {args.step}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

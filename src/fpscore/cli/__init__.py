"""`fpscore <step> ...`: the command-line entry points the workflow rules call.

Each step lives in a module fpscore.cli.<name> exposing ``register(subparsers)``;
the options of config keys are generated from the schema (``fpscore.options``), so
the command run by hand does what the workflow does with config/config.yaml. The
step modules import their heavy dependencies (torch, PETSc, pandas, matplotlib)
inside the command that runs, so building the parser stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import resource
import sys

STEP_MODULES = ("data", "scores", "learn", "metrics", "table", "figure", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fpscore", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="step", metavar="<step>", required=True)
    for name in STEP_MODULES:
        importlib.import_module(f"fpscore.cli.{name}").register(subparsers)
    return parser


PEAK_MEMORY = "peak memory"  # the last stderr line of every step: "fpscore <step>: peak memory <N> MB"


def peak_memory_mb() -> float:
    """The process's peak resident memory so far (getrusage; Linux counts kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def main(argv: list[str] | None = None) -> int:
    """Run one step. Every step ends its stderr (a workflow job's log) with its peak memory,
    so that benchmarks and users read each job's footprint from its log."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # only a step that passes its options on (solver-benchmark) takes options it does not declare
        if not isinstance(getattr(args, "passthrough", None), list):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.passthrough = extra
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as err:
        print(f"fpscore {args.step}: error: {err}", file=sys.stderr)
        return 2
    print(f"fpscore {args.step}: {PEAK_MEMORY} {peak_memory_mb():.0f} MB", file=sys.stderr)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

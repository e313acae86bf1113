"""`fpscore solver-benchmark`: every score solver side by side in one process (fpscore.solver_benchmark).

The rule solver_benchmark runs it for table T2's companion, figure F9's rank sweep and figure F8's
dissimilarities; its options are the benchmark's own (`fpscore solver-benchmark --help`), passed
through unparsed here so that the parser stays light (the benchmark imports pandas and PETSc).
"""
from __future__ import annotations


def run(args) -> int:
    from fpscore.solver_benchmark import main

    return main(args.passthrough, prog="fpscore solver-benchmark")


def register(subparsers) -> None:
    p = subparsers.add_parser("solver-benchmark", add_help=False,
                              help="all score solvers side by side (options: fpscore solver-benchmark --help)")
    p.set_defaults(func=run, passthrough=[])

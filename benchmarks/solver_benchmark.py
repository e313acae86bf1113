"""All score solvers side by side in one process: the script form of `fpscore solver-benchmark`
(the code lives in the package, fpscore.solver_benchmark, so that the workflow's rule calls the
package; see its docstring for what it measures and the options).

    python benchmarks/solver_benchmark.py --sets photos faces --sizes 32 64
    python benchmarks/solver_benchmark.py --quick
"""
from __future__ import annotations

import sys

from fpscore.solver_benchmark import *  # noqa: F401,F403  (tests and scripts read its names from here)
from fpscore.solver_benchmark import main

if __name__ == "__main__":
    sys.exit(main())

"""The breakdown probe: a flagged channel solved again with smaller time steps still fails, later
but before a limit, with |m| grown well past its start (a blow-up of the space-discrete equation)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import breakdown_benchmark as bench  # noqa: E402
from test_fp_breakdown import _low_contrast_crop  # noqa: E402

from fpscore.fokker_planck.params import FPParams  # noqa: E402
from fpscore.solvers import make_solver  # noqa: E402


def test_smaller_steps_do_not_cure_the_low_contrast_crop(torch_one_thread):
    solver = make_solver("batched", batched=dict(device="cpu", threads=1))
    coarse, fine = (bench.probe(_low_contrast_crop(), FPParams(), solver, n) for n in (20, 80))
    for row in (coarse, fine):
        assert not row["converged"] and row["fail_level"] is not None
        assert row["last_t"] < row["fail_t"] < 1.0
        assert row["max_abs_m_last"] > 2 * row["max_abs_m0"]  # |m| grows before the failure
    assert coarse["fail_t"] < fine["fail_t"] < coarse["fail_t"] + 0.15
    assert fine["solves"] > coarse["solves"]


def test_first_failing_level():
    log = [{"time_level": n, "converged": n < 5} for n in range(1, 9)]
    assert bench.first_failing_level(log) == 5
    assert bench.first_failing_level(log[:3]) is None

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


def test_summary_counts_the_channels_that_fail_at_every_n():
    import pandas as pd

    rows = [{"image": i, "channel": 0, "n_times": n, "converged": i == 1 and n == 40,
             "fail_t": np.nan if i == 1 and n == 40 else 0.5 + n / 1000 + i / 100,
             "max_abs_m0": 6.0, "max_abs_m_last": n / 2} for i in (0, 1, 2) for n in (20, 40)]
    text = bench.summary(pd.DataFrame(rows))
    assert text.startswith("2 of 3 channels fail at every N (median |m| at t_0 6)")
    lines = {int(line.split()[0]): line.split()[1:] for line in text.splitlines()[3:]}
    assert lines[20] == ["3", "0", "0.53", "10"] and lines[40] == ["3", "1", "0.55", "20"]

"""A channel whose nonlinear iteration breaks down (a linear solve that cannot reach rtol at a
diverging iterate) is a warning and a flag, never the end of a shard job: the other channels
are solved as if it were not there, and a misconfigured solver still stops the job."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from fpscore.data import prepare
from fpscore.fokker_planck.params import FPParams
from fpscore.scores import compute_scores
from fpscore.solvers import SolverError, SystemFailure, make_solver
from fpscore.solvers.direct import SpsolveSolver

SHORT = FPParams(n_times=6)


def _pair():
    """Two real channels (one photo, one face) at 32 x 32."""
    photo, _, _ = prepare("photos", 32, {"names": ["camera"], "channels": 1})
    face, _, _ = prepare("faces", 32, {"count": 1, "indices": []})
    return np.concatenate([photo, face]).astype(np.float64)


def _low_contrast_crop():
    """The CIFAR-sized stand-in image that ended a 50,000-image run: a flipped 32 x 32 crop of the
    'cell' photo at 96 x 96 (23 grey levels, std 0.013), rounded to 8 bits as the archive stores it."""
    cell, _, _ = prepare("photos", 96, {"names": ["cell"], "channels": 3})
    crop = cell[:, :1, 44:76, 19:51][..., ::-1]
    return np.round(crop.astype(np.float64) * 255) / 255


class FailingSpsolve(SpsolveSolver):
    """spsolve that fails numerically at one (image, time level, outer iteration)."""

    def __init__(self, at, error=SystemFailure):
        super().__init__()
        self.at, self.error = at, error

    def solve(self, ctx):
        if (ctx.image, ctx.time_level, ctx.outer_iter) == self.at:
            raise self.error(f"injected failure ({ctx.where()})")
        return super().solve(ctx)


@pytest.mark.parametrize("solver", ["ksp", "spsolve", "batched"])
@pytest.mark.parametrize("nonlinear", ["newton", "picard"])
def test_a_diverging_real_channel_is_flagged_not_fatal(solver, nonlinear, torch_one_thread):
    image = _low_contrast_crop()
    with pytest.warns(RuntimeWarning, match="did not converge|broke down"):
        res = compute_scores(image, FPParams(scheme="centred", boundary="zero"), make_solver(solver), progress=False,
                             nonlinear=nonlinear)
    assert not res.converged.any()
    assert np.isfinite(res.m).all() and np.isfinite(res.scores).all()
    assert res.log and not all(row["converged"] for row in res.log)  # Newton: the levels that failed
    assert all(row["final_residual"] <= 1e-10 * (1 + 1e-6) for row in res.log)


def test_newton_breakdown_keeps_the_last_iterate_and_the_other_channels():
    images = _pair()
    reference = compute_scores(images, SHORT, make_solver("spsolve"), progress=False, nonlinear="newton")
    with pytest.warns(RuntimeWarning, match=r"Newton iteration broke down for image 0, channel 0, time level 3: "
                                            r"injected failure"):
        res = compute_scores(images, SHORT, FailingSpsolve(at=(0, 3, 2)), progress=False, nonlinear="newton")
    assert res.converged.tolist() == [[False], [True]]
    np.testing.assert_array_equal(res.m[0, 0, :3], reference.m[0, 0, :3])  # the levels before it
    np.testing.assert_array_equal(res.m[1], reference.m[1])
    assert np.isfinite(res.m).all()
    rows0 = [r for r in res.log if r["image"] == 0]
    assert {r["time_level"] for r in rows0} == set(range(1, SHORT.n_times))  # the later levels went on
    assert [r["picard_iter"] for r in rows0 if r["time_level"] == 3] == [1]  # the failed solve has no row
    assert not any(r["converged"] for r in rows0 if r["time_level"] == 3)
    assert all(r["converged"] for r in res.log if r["image"] == 1)


def test_picard_breakdown_keeps_the_last_complete_sweep():
    images = _pair()[:1]
    one_sweep = FPParams(n_times=6, picard_max_iter=1, nonlinear="picard")
    with pytest.warns(RuntimeWarning, match="did not converge"):
        first = compute_scores(images, one_sweep, make_solver("spsolve"), progress=False)
    with pytest.warns(RuntimeWarning, match=r"Picard iteration broke down for image 0, channel 0: injected failure"
                                            r".* keeps sweep 1"):
        res = compute_scores(images, SHORT, FailingSpsolve(at=(0, 4, 2)), progress=False, nonlinear="picard")
    assert not res.converged.any()
    np.testing.assert_array_equal(res.m, first.m)
    assert len(res.log) == (SHORT.n_times - 1) + 3 and not any(r["converged"] for r in res.log)


def test_a_misconfigured_solver_still_stops_the_job():
    with pytest.raises(SolverError, match="injected failure"):
        compute_scores(_pair()[:1], SHORT, FailingSpsolve(at=(0, 2, 1), error=SolverError), progress=False,
                       nonlinear="newton")


@pytest.mark.parametrize("nonlinear", ["newton", "picard"])
def test_batched_breakdown_flags_only_its_channel(nonlinear, monkeypatch, torch_one_thread):
    """BiCGStab capped at 1 iteration sends every system to SuperLU; SuperLU fails for image 0 only
    (at its second outer iteration, time level 2)."""
    import fpscore.solvers.direct as direct

    images = _pair()
    reference = compute_scores(images, SHORT, make_solver("spsolve"), progress=False, nonlinear=nonlinear)
    real = direct.direct_solve

    def failing(system, b, rtol, where=""):
        if where.startswith("image 0,") and "iteration 2, time level 2" in where:
            raise SystemFailure(f"injected failure ({where})")
        return real(system, b, rtol, where)

    monkeypatch.setattr(direct, "direct_solve", failing)
    solver = make_solver("batched", batched={"device": "cpu", "threads": 1, "max_it": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = compute_scores(images, SHORT, solver, progress=False, nonlinear=nonlinear)
    flagged = [str(w.message) for w in caught if "flagged" in str(w.message)]  # once, at the end of the set
    assert len(flagged) == 1 and "1 channel(s) flagged as not converged (image 0, channel 0" in flagged[0]
    assert "broke down" in flagged[0]
    assert res.converged.tolist() == [[False], [True]]
    assert np.isfinite(res.m).all()
    assert np.abs(res.m[1] - reference.m[1]).max() < 1e-6
    assert all(r["converged"] for r in res.log if r["image"] == 1)
    failed = [r for r in res.log if r["image"] == 0 and (nonlinear == "picard" or r["time_level"] == 2)]
    assert failed and not any(r["converged"] for r in failed)  # Newton: the level that broke down


def test_newton_diverging_closed_form():
    from fpscore.fokker_planck.newton import newton_diverging

    assert not newton_diverging(1e-2, np.inf)  # the first iteration has nothing to compare with
    assert not newton_diverging(1e-5, 1e-2) and newton_diverging(3e-2, 3e-2) and newton_diverging(1.0, 0.2)
    np.testing.assert_array_equal(newton_diverging(np.array([1e-4, 5e-2, np.nan]), np.array([1e-2, 4e-2, 1e-2])),
                                  [False, True, True])
    with pytest.raises(ValueError, match="newton_monotone: expected true or false, got 'yes'"):
        FPParams(newton_monotone="yes")


def _first_failed_level(log) -> int:
    return min(row["time_level"] for row in log if not row["converged"])


@pytest.mark.parametrize("solver", ["ksp", "spsolve", "batched"])
def test_monotone_stop_ends_diverging_levels_early_and_nothing_else(solver, torch_one_thread):
    """newton_monotone on the real channel that diverges: the same flag in fewer solves, every level
    before the first failing one bit-identical; on healthy channels it changes nothing at all."""
    image = _low_contrast_crop()
    runs = {}
    for monotone in (False, True):  # the paper's discretisation: the one that diverges there (METHOD.md 2b)
        with pytest.warns(RuntimeWarning, match="did not converge|broke down") as caught:
            runs[monotone] = compute_scores(image, FPParams(newton_monotone=monotone, scheme="centred",
                                                            boundary="zero"), make_solver(solver), progress=False)
        if monotone:
            assert any("newton_monotone" in str(w.message) for w in caught)
    off, on = runs[False], runs[True]
    assert not off.converged.any() and not on.converged.any()
    assert on.solves.sum() < off.solves.sum()
    first = _first_failed_level(off.log)
    assert _first_failed_level(on.log) == first > 1
    np.testing.assert_array_equal(on.m[:, :, :first], off.m[:, :, :first])

    pair = _pair()[:, :, ::2, ::2]  # 16 x 16, converges at every level
    healthy = {mono: compute_scores(pair, FPParams(n_times=8, newton_monotone=mono), make_solver(solver),
                                    progress=False) for mono in (False, True)}
    assert healthy[True].converged.all()
    np.testing.assert_array_equal(healthy[True].m, healthy[False].m)
    np.testing.assert_array_equal(healthy[True].solves, healthy[False].solves)

"""Per-level Newton (METHOD.md §5b) against Algorithm 1 (Picard) on real builtin images,
for every solver path: the same m within 1e-6, at most half the linear solves, every
logged system at the true relative residual, non-convergence reported."""
from __future__ import annotations

import numpy as np
import pytest

from fpscore.data import prepare
from fpscore.fokker_planck.newton import solve_channel_newton
from fpscore.fokker_planck.params import FPParams
from fpscore.scores import compute_scores
from fpscore.solvers import make_solver

PARAMS = FPParams(nonlinear="picard")  # Algorithm 1; schema defaults: N = 20, Picard tol 2e-8, rtol 1e-10
FGMRES_SOR = "-ksp_type fgmres -pc_type sor"


def _set(H):
    """One photo and one face (both builtin sets), one channel each."""
    photo, _, _ = prepare("photos", H, {"names": ["camera"], "channels": 1})
    face, _, _ = prepare("faces", H, {"count": 1, "indices": []})
    return np.concatenate([photo, face]).astype(np.float64)


@pytest.fixture(scope="module")
def images32():
    return _set(32)


@pytest.fixture(scope="module")
def picard32(images32):
    return compute_scores(images32, PARAMS, make_solver("spsolve"), progress=False)


def _check(result, reference, rtol=1e-10):
    assert result.converged.all()
    assert np.abs(result.m - reference.m).max() < 1e-6
    assert np.abs(result.scores - reference.scores).max() < 1e-5
    assert all(row["final_residual"] <= rtol for row in result.log)


def test_newton_spsolve_same_m_half_the_solves(images32, picard32):
    newton = compute_scores(images32, PARAMS, make_solver("spsolve"), progress=False, nonlinear="newton")
    _check(newton, picard32)
    assert np.array_equal(newton.solves.sum(axis=1), [len([r for r in newton.log if r["image"] == i])
                                                      for i in range(2)])
    for i in range(2):  # per image: at most half of Picard's solves
        assert newton.solves[i].sum() * 2 <= picard32.solves[i].sum()
    # one row per solve; the iteration column holds the Newton iteration at its level
    rows = [(r["image"], r["time_level"], r["picard_iter"]) for r in newton.log]
    assert len(set(rows)) == len(rows)
    for (image, level, j) in rows:
        assert j == 1 or (image, level, j - 1) in set(rows)


def test_newton_params_field_equals_keyword(images32):
    a = compute_scores(images32[:1], FPParams(nonlinear="newton", n_times=6), make_solver("spsolve"), progress=False)
    b = compute_scores(images32[:1], FPParams(n_times=6, nonlinear="picard"), make_solver("spsolve"), progress=False,
                       nonlinear="newton")
    np.testing.assert_array_equal(a.m, b.m)
    with pytest.raises(ValueError, match="nonlinear: expected one of picard, newton, got 'secant'"):
        FPParams(nonlinear="secant")


def test_newton_ksp_and_projection(images32, picard32):
    pytest.importorskip("petsc4py")
    ksp = compute_scores(images32, PARAMS, make_solver("ksp", ksp_options=FGMRES_SOR, warm_start=True),
                         progress=False, nonlinear="newton")
    _check(ksp, picard32)
    solver = make_solver("projection", ksp_options=FGMRES_SOR, warm_start=True,
                         projection=dict(n_seeds=1, seed_choice="first", rank=4))
    with solver:
        proj = compute_scores(images32, PARAMS, solver, progress=False, nonlinear="newton")
    _check(proj, picard32)
    seed = int(solver._seeds[0])
    # the seed basis per level is built from the seed's Newton iterates (at most ~3 per level)
    assert {key[2] for key in solver._bases} == set(range(1, PARAMS.n_times))
    assert all(1 <= V.shape[1] <= 4 for V in solver._bases.values())
    target = [r for r in proj.log[len(proj.log) - int(proj.solves.sum()):] if r["image"] != seed]
    assert target and all(0 <= r["projection_residual"] <= 1 for r in target)


def test_newton_at_64():
    images = _set(64)[1:]  # the face
    params = FPParams(n_times=8, nonlinear="picard")
    picard = compute_scores(images, params, make_solver("spsolve"), progress=False)
    newton = compute_scores(images, params, make_solver("spsolve"), progress=False, nonlinear="newton")
    _check(newton, picard)
    assert newton.solves.sum() * 2 <= picard.solves.sum()


def test_newton_not_converging_is_a_warning_and_a_flag(images32):
    from fpscore.fokker_planck.kde import initial_log_density

    params = FPParams(n_times=5, nonlinear="picard")
    m0 = initial_log_density(images32[0, 0])
    with pytest.warns(RuntimeWarning, match="Newton iteration did not converge .* time level 1"):
        res = solve_channel_newton(m0, params.times(), params.g(), 1.0, make_solver("spsolve"), tol=1e-10,
                                   max_iter=1, scheme="centred", boundary="zero")
    assert not res.converged and res.solves == params.n_times - 1
    assert not any(row["converged"] for row in res.rows)


def test_newton_done_closed_form():
    from fpscore.fokker_planck.newton import newton_done

    tol = 1e-10
    # change: stop only once the last change is below tol
    assert not newton_done(1e-6, 1e-3, tol, "change") and newton_done(5e-11, 1e-3, tol, "change")
    # predicted: change^3 / previous^2 (quadratic convergence): 1e-6^3 / 1e-3^2 = 1e-12 < tol
    assert newton_done(1e-6, 1e-3, tol, "predicted")
    assert not newton_done(1e-4, 5.7e-2, tol, "predicted")  # 3.1e-10: one more solve
    assert not newton_done(1e-3, np.inf, tol, "predicted")  # the first iteration: the change alone
    np.testing.assert_array_equal(newton_done(np.array([1e-6, 1e-4, 1e-11]), np.array([1e-3, 1e-2, np.inf]), tol,
                                              "predicted"), [True, False, True])
    with pytest.raises(ValueError, match="newton_stop: expected one of change, predicted, got 'never'"):
        newton_done(1e-3, 1e-2, tol, "never")
    with pytest.raises(ValueError, match="newton_stop: expected one of change, predicted, got 'never'"):
        FPParams(newton_stop="never")


@pytest.mark.parametrize("solver", ["spsolve", "ksp", "batched"])
def test_newton_predicted_stop_same_m_fewer_solves(images32, picard32, solver):
    """The predicted test stops one solve earlier per level and reaches the same fixed point."""
    if solver == "ksp":
        pytest.importorskip("petsc4py")
    if solver == "batched":
        pytest.importorskip("torch")
    kwargs = {"batched": {"device": "cpu", "threads": 1}} if solver == "batched" else {}
    change = compute_scores(images32, FPParams(nonlinear="newton", newton_stop="change"),
                            make_solver(solver, **kwargs), progress=False)
    predicted = compute_scores(images32, FPParams(nonlinear="newton", newton_stop="predicted"),
                               make_solver(solver, **kwargs), progress=False)
    _check(predicted, picard32)
    # within newton_tol in the relative 2-norm per level: max-norm <= 1e-10 * sqrt(32 * 32) * max abs(m)
    assert np.abs(predicted.m - change.m).max() < 1e-10 * 32 * np.abs(change.m).max()
    levels = PARAMS.n_times - 1
    assert np.all(predicted.solves <= change.solves - levels // 2)  # at least one solve fewer on most levels
    assert len(predicted.log) == int(predicted.solves.sum())

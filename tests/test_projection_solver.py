"""The ``projection`` solver end to end on small real images: same m as spsolve, bad input."""

import numpy as np
import pytest

pytest.importorskip("petsc4py")

from fpscore.data import prepare  # noqa: E402
from fpscore.fokker_planck.params import FPParams  # noqa: E402
from fpscore.scores import compute_scores, prepare_solver  # noqa: E402
from fpscore.solvers import make_solver  # noqa: E402
from fpscore.solvers.projection import ProjectionSolver  # noqa: E402

PARAMS = FPParams(n_times=6, nonlinear="picard")
KSP = "-ksp_type gmres -pc_type ilu"


@pytest.fixture(scope="module")
def images():
    imgs, _, _ = prepare("photos", 12, {"names": ["camera", "coins", "astronaut"], "channels": 1})
    return imgs.astype(np.float64)


@pytest.fixture(scope="module")
def reference(images):
    return compute_scores(images, PARAMS, make_solver("spsolve"), progress=False).m


def run(images, **projection):
    warm = projection.pop("warm_start", True)
    solver = make_solver("projection", ksp_options=KSP, warm_start=warm, projection=projection)
    with solver:
        result = compute_scores(images, PARAMS, solver, progress=False)
    return result, solver


@pytest.mark.parametrize("settings", [
    dict(variant="guess"),
    dict(variant="pc"),
    dict(variant="both", seed_choice="first", basis="both", rank=4),
    dict(variant="guess", warm_start=False, basis="krylov", guess="galerkin"),
    dict(variant="guess", history=3, lag=100),
    dict(variant="pc", n_seeds=2, lag=2),
])
def test_projection_matches_spsolve(images, reference, settings):
    result, solver = run(images, **settings)
    assert np.abs(result.m - reference).max() < 1e-7
    seeds = set(solver._seeds.tolist())
    per_image = (PARAMS.n_times - 1) * result.picard_iterations.sum(axis=1)
    # one row per solve: the target pass over every image plus the seed solves of prepare
    assert len(result.log) == per_image.sum() + sum(per_image[s] for s in seeds)
    assert all(row["final_residual"] <= 1e-10 for row in result.log)
    if settings["variant"] != "pc":  # every target solve logs its projection residual
        targets = [row for row in result.log if row["image"] not in seeds]
        assert targets and all(0 <= row["projection_residual"] <= 1 for row in targets)


def test_target_equal_to_seed_is_solved_by_projection(images):
    """A target identical to the seed has its solutions in the seed's subspace: the projected
    guess is exact to about 1e-9 and the Krylov solver has at most two iterations left."""
    twin = np.stack([images[0], images[0], images[1]])
    solver = ProjectionSolver(ksp_options=KSP, warm_start=False, n_seeds=1, seed_choice="first", rank=40)
    with solver:
        result = compute_scores(twin, PARAMS, solver, progress=False)
    n_seed = len(result.log) - (PARAMS.n_times - 1) * result.picard_iterations.sum()
    twin_rows = [row for row in result.log[n_seed:] if row["image"] == 1]
    other_rows = [row for row in result.log[n_seed:] if row["image"] == 2]
    # the logged projection residual is computed from Gram data: accurate to about 1e-8
    assert twin_rows and max(row["projection_residual"] for row in twin_rows) < 1e-6
    assert max(row["initial_residual"] for row in twin_rows) < 1e-7  # the guess itself, measured by PETSc
    its = [row["iterations"] for row in twin_rows]
    assert max(its) <= 2 and sum(its) <= len(its) / 2  # (a cold solve takes about 6)
    assert min(row["projection_residual"] for row in other_rows) > 1e-3  # a different image is not in the span
    np.testing.assert_allclose(result.m[1], result.m[0], atol=1e-8)


def test_seed_solves_are_logged_and_reused(images):
    result, solver = run(images, variant="guess", n_seeds=1)
    seed = int(solver._seeds[0])
    seed_rows = [row for row in result.log if row["image"] == seed]
    # each seed system is solved once in prepare and then returned from the cache (0 iterations)
    assert len(seed_rows) % 2 == 0
    half = len(seed_rows) // 2
    key = lambda row: (row["channel"], row["picard_iter"], row["time_level"])  # noqa: E731
    assert [key(r) for r in seed_rows[:half]] == [key(r) for r in seed_rows[half:]]
    assert sum(row["iterations"] for row in seed_rows[:half]) > half  # really solved in prepare
    assert all(row["iterations"] == 0 for row in seed_rows[half:])  # then reused


def test_prepared_state_round_trip(images, reference, tmp_path):
    a = ProjectionSolver(ksp_options=KSP, n_seeds=2, rank=3)
    prepare_solver(images, PARAMS, a)
    a.save_prepared(str(tmp_path / "prepared.npz"))
    b = ProjectionSolver(ksp_options=KSP, n_seeds=2, rank=3)
    b.load_prepared(str(tmp_path / "prepared.npz"))
    assert len(prepare_solver(images, PARAMS, b)) == 0
    assert set(b._bases) == set(a._bases)
    for key in a._bases:
        np.testing.assert_array_equal(a._bases[key], b._bases[key])
    with b:
        m = compute_scores(images[1:], PARAMS, b, progress=False, image_indices=[1, 2]).m
    assert np.abs(m - reference[1:]).max() < 1e-7
    c = ProjectionSolver(ksp_options=KSP, n_seeds=2, rank=4)
    with pytest.raises(ValueError, match="rank"):
        c.load_prepared(str(tmp_path / "prepared.npz"))
    a.close()


def test_seed_count_larger_than_set_names_the_value(images):
    solver = ProjectionSolver(ksp_options=KSP, n_seeds=5)
    with pytest.raises(ValueError, match="n_seeds=5 is larger than the set of 3 images"):
        compute_scores(images, PARAMS, solver, progress=False)


@pytest.mark.parametrize("key,value", [("variant", "deflate"), ("basis", "ritz"), ("seed_choice", "random"),
                                       ("guess", "petrov")])
def test_unknown_choice_names_key_and_value(key, value):
    with pytest.raises(ValueError, match=rf"projection\.{key}: unknown value '{value}'"):
        ProjectionSolver(**{key: value})


@pytest.mark.parametrize("key,value", [("rank", 0), ("n_seeds", 0), ("lag", -1), ("history", 0)])
def test_bad_integers_name_key_and_value(key, value):
    with pytest.raises(ValueError, match=rf"projection\.{key}: expected an integer >= \d, got {value}"):
        ProjectionSolver(**{key: value})


def _one_system(seed=0, k=2):
    from fpscore.fokker_planck.assembly import FPSystem
    from fpscore.solvers.base import SolveContext

    rng = np.random.default_rng(seed)
    system = FPSystem(8, 8)
    system.fill(2.0, 0.05, 3.0 * rng.standard_normal((8, 8)), 1.0, boundary="zero")
    x_true = rng.standard_normal(64)
    b = system.csr @ x_true
    warm = x_true + 1e-6 * rng.standard_normal(64)  # the previous Picard iterate: close
    ctx = SolveContext(nonlinear="picard", image=0, channel=0, outer_iter=k, time_level=1, n_times=3, system=system, b=b,
                       prev_outer=warm, prev_level=rng.standard_normal(64))
    return system, ctx, x_true


def _with_basis(solver, V):
    solver._nearest, solver._bases, solver._prepared = {0: 0}, {(0, 0, 1): V}, True
    return solver


def test_warm_projected_guess_is_never_worse_than_the_warm_start():
    system, ctx, x_true = _one_system()
    V = np.linalg.qr(np.random.default_rng(1).standard_normal((64, 3)))[0]
    warm_res = np.linalg.norm(ctx.b - system.csr @ ctx.prev_outer) / np.linalg.norm(ctx.b)
    with _with_basis(ProjectionSolver(ksp_options=KSP, rank=3, warm_start=True), V) as solver:
        x, stats = solver.solve(ctx)
    assert 0 < stats.initial_residual <= warm_res * (1 + 1e-6)
    assert stats.final_residual <= 1e-10 and np.abs(x - x_true).max() < 1e-8
    # the logged projection residual is the seed subspace's alone: poor for a random V
    assert stats.projection_residual > 0.5
    system.close()


def test_cold_guess_residual_is_the_seed_projection_residual():
    system, ctx, _ = _one_system(seed=2)
    V = np.linalg.qr(np.random.default_rng(3).standard_normal((64, 4)))[0]
    AV = system.csr @ V
    expected = np.linalg.norm(ctx.b - AV @ np.linalg.lstsq(AV, ctx.b, rcond=None)[0]) / np.linalg.norm(ctx.b)
    with _with_basis(ProjectionSolver(ksp_options=KSP, rank=4, warm_start=False), V) as solver:
        _, stats = solver.solve(ctx)
    assert stats.projection_residual == pytest.approx(expected, rel=1e-6)
    assert stats.initial_residual == pytest.approx(expected, rel=1e-6)
    system.close()

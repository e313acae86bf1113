"""The batched engine (METHOD.md §5c): operator and KDE equal to the per-system code,
scores equal to spsolve-Picard, per-system masking, the direct-solve fallback, the log.
The engine's tests run on the CPU and, where torch sees one, on a CUDA device too."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fpscore.data import prepare  # noqa: E402
from fpscore.fokker_planck.assembly import FPSystem  # noqa: E402
from fpscore.fokker_planck.kde import initial_log_density  # noqa: E402
from fpscore.fokker_planck.kde_batched import initial_log_density_batched  # noqa: E402
from fpscore.fokker_planck.scheme import linearised  # noqa: E402
from fpscore.names import BOUNDARIES, SCHEMES  # noqa: E402
from fpscore.fokker_planck.params import FPParams  # noqa: E402
from fpscore.scores import compute_scores  # noqa: E402
from fpscore.solvers import LOG_COLUMNS, make_solver  # noqa: E402
from fpscore.solvers import batched as batched_mod  # noqa: E402
from fpscore.solvers import batched_numba  # noqa: E402
from fpscore.solvers.batched_ops import Stencil, bicgstab, relative_residual  # noqa: E402


@pytest.fixture(scope="module")
def mixed():
    """Two photos (grey) and two faces at 32x32: both builtin sets."""
    photos, _, _ = prepare("photos", 32, {"names": ["coins", "astronaut"], "channels": 1})
    faces, _, _ = prepare("faces", 32, {"count": 2, "indices": []})
    return np.concatenate([photos, faces]).astype(np.float64)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _solver(**kw):
    return make_solver("batched", batched=dict(device="cpu", threads=1) | kw)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("newton", [True, False])
def test_operator_equals_assembled_matrix_with_drift(scheme, boundary, newton):
    """The matrix-free operator (torch) and the assembled CSR matrix (numpy) of the same step agree,
    for every scheme and boundary: both come from ``scheme.linearised``."""
    rng = np.random.default_rng(1)
    H, W, B, h = 7, 9, 3, 0.7
    stencil = Stencil(H, W, torch.device("cpu"))
    x = rng.standard_normal((B, H, W)) * 3  # large scores: nu active on many pixels
    a, dt_f = 0.8, rng.standard_normal((B, H, W))
    fields, _ = linearised(torch.as_tensor(x), a=a, h=h, scheme=scheme, boundary=boundary, newton=newton,
                           dt_f=torch.as_tensor(dt_f))
    coef = stencil.coefficients(fields)
    u = rng.standard_normal((B, H * W))
    got = stencil.apply(coef, torch.as_tensor(u)).numpy()
    system = FPSystem(H, W)
    for i in range(B):
        one, _ = linearised(x[i], a=a, h=h, scheme=scheme, boundary=boundary, newton=newton, dt_f=dt_f[i])
        system.set_fields(one)
        want = system.csr @ u[i]
        assert np.abs(got[i] - want).max() <= 1e-12 * np.abs(want).max()
        system.set_fields(stencil.fields(coef, i))  # the direct-solve fallback's round trip
        np.testing.assert_allclose(system.csr @ u[i], want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("device", DEVICES)
def test_batched_kde_equals_per_channel(mixed, device):
    chans = np.concatenate([mixed[:, 0], np.full((1, 32, 32), 0.4), (mixed[:1, 0] + mixed[:1, 0].transpose(0, 2, 1)) / 2])
    got = initial_log_density_batched(chans, bins=256, device=torch.device(device)).cpu().numpy()
    want = np.stack([initial_log_density(c, bins=256) for c in chans])
    assert np.abs(got - want).max() < 1e-12
    small = initial_log_density_batched(chans[:2], bins=64).numpy()
    assert np.abs(small - np.stack([initial_log_density(c, bins=64) for c in chans[:2]])).max() < 1e-12


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("nonlinear", ["newton", "picard"])
def test_batched_equals_spsolve_picard(mixed, nonlinear, device, torch_one_thread):
    params = FPParams(nonlinear="picard")
    ref = compute_scores(mixed[[0, 2]], params, make_solver("spsolve"), progress=False)
    res = compute_scores(mixed, params, _solver(device=device), progress=False, nonlinear=nonlinear)
    assert res.converged.all()
    assert np.abs(res.m[[0, 2]] - ref.m).max() < 1e-6
    assert np.abs(res.scores[[0, 2]] - ref.scores).max() < 1e-5
    assert all(row["final_residual"] <= 1e-10 for row in res.log)
    assert all(list(row) == list(LOG_COLUMNS) for row in res.log)
    assert len(res.log) == res.solves.sum() and {r["solver"] for r in res.log} == {"batched"}
    if nonlinear == "picard":  # the same sweeps but where a change lands within rounding of picard_tol
        assert np.abs(res.picard_iterations[[0, 2]] - ref.picard_iterations).max() <= 1
    # seconds apportioned per system: positive, summing to about the run's time
    assert all(r["solve_seconds"] > 0 and r["assemble_seconds"] >= 0 for r in res.log)


KERNELS = {"torch": bicgstab, "numba": batched_numba.bicgstab}
KERNEL_DEVICES = [("torch", "cpu"), ("numba", "cpu")] + [("torch", d) for d in DEVICES if d != "cpu"]


def _random_coefficients(stencil, B: int, rng, device="cpu"):
    """B Newton matrices (reflect + minimal: per-pixel diagonals, nu active on some pixels) at random
    iterates, with a = dt g^2 / 2 spread over 0.02..0.4."""
    H = stencil.H
    x = torch.as_tensor(rng.standard_normal((B, H, H)) * 1.5, device=device)
    a = torch.as_tensor(rng.uniform(0.02, 0.4, B), device=device).reshape(B, 1, 1)
    fields, _ = linearised(x, a=a, h=1.0, scheme="minimal", boundary="reflect", newton=True)
    return stencil.coefficients(fields)


def _random_systems(B: int, H: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    stencil = Stencil(H, H, torch.device("cpu"))
    coef = _random_coefficients(stencil, B, rng)
    x_true = torch.as_tensor(rng.standard_normal((B, H * H)))
    return stencil, coef, stencil.apply(coef, x_true), x_true


@pytest.mark.parametrize(("kernel", "device"), KERNEL_DEVICES)
def test_converged_systems_are_masked(kernel, device):
    """A system that starts at its solution stays bit-for-bit fixed (0 iterations) while the
    others of the batch iterate (both kernels; torch's on every device)."""
    bicgstab = KERNELS[kernel]
    rng = np.random.default_rng(0)
    H = 10
    dev = torch.device(device)
    stencil = Stencil(H, H, dev)
    B = 4
    coef = _random_coefficients(stencil, B, rng, dev)
    x_true = torch.as_tensor(rng.standard_normal((B, H * H)), device=dev)
    b = stencil.apply(coef, x_true)
    x = torch.zeros_like(b)
    x[1] = x_true[1]
    before = x[1].clone()
    its, init = bicgstab(stencil, coef, b, x, 1e-12, 200)
    assert its[1] == 0 and init[1] < 1e-14 and torch.equal(x[1], before)
    assert (its[[0, 2, 3]] > 2).all() and len(set(its.tolist())) > 2  # each stops on its own test
    assert (relative_residual(stencil, coef, x, b) <= 1e-12 * 1.01).all()


def test_numba_kernel_equals_torch_kernel():
    """The compiled kernel does the torch kernel's per-system arithmetic: the same iterates up to
    reordered sums, the same iteration counts but for a rounding tie, every system to tol; a
    non-contiguous x is updated in place too."""
    stencil, coef, b, x_true = _random_systems(12, 16, seed=3)
    x0 = torch.as_tensor(np.random.default_rng(4).standard_normal(b.shape))
    x_t, x_n = x0.clone(), x0.clone().T.contiguous().T  # x_n: a column-major (non-contiguous) view
    its_t, init_t = bicgstab(stencil, coef, b, x_t, 1e-11, 300)
    its_n, init_n = batched_numba.bicgstab(stencil, coef, b, x_n, 1e-11, 300)
    assert torch.allclose(init_t, init_n, rtol=1e-12, atol=0)
    assert (its_t - its_n).abs().max() <= 1 and (its_t > 5).all()
    assert torch.allclose(x_t, x_n, rtol=0, atol=1e-9)
    assert (relative_residual(stencil, coef, x_n, b) <= 1e-11 * 1.01).all()
    assert torch.allclose(x_n, x_true, atol=1e-8)


def test_kernel_choice_names_the_key(monkeypatch):
    """auto = numba on the CPU (torch on a GPU); bad names, numba on a GPU and a missing numba
    are errors naming ``kernel``."""
    import importlib.util

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert batched_mod.krylov_kernel("auto", cpu) is batched_numba.bicgstab
    assert batched_mod.krylov_kernel("torch", cpu) is bicgstab
    assert batched_mod.krylov_kernel("auto", cuda) is bicgstab
    with pytest.raises(ValueError, match="kernel: unknown value 'fortran'"):
        _solver(kernel="fortran")
    with pytest.raises(ValueError, match="kernel: 'numba' runs on the CPU only"):
        batched_mod.krylov_kernel("numba", cuda)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    with pytest.raises(ValueError, match="kernel: 'numba' requested but numba is not installed"):
        _solver(kernel="numba")
    assert batched_mod.krylov_kernel("auto", cpu) is bicgstab  # falls back to torch


@pytest.mark.parametrize("device", DEVICES)
def test_failing_systems_fall_back_to_a_direct_solve(mixed, device, monkeypatch):
    """With a BiCGStab cap of one iteration no system can reach rtol: every one is solved by
    SuperLU with a warning, and the scores still equal spsolve's."""
    monkeypatch.setattr(batched_mod, "_ROUNDS", 1)
    params = FPParams(n_times=4, nonlinear="picard")
    solver = _solver(max_it=1, device=device)
    with pytest.warns(RuntimeWarning, match="BiCGStab missed rtol .* solved directly"):
        res = compute_scores(mixed[:2], params, solver, progress=False, nonlinear="newton")
    ref = compute_scores(mixed[:2], params, make_solver("spsolve"), progress=False, nonlinear="newton")
    assert solver.fallbacks > 0
    assert np.abs(res.m - ref.m).max() < 1e-9
    assert all(row["final_residual"] <= 1e-10 for row in res.log)


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="device: unknown value 'tpu'"):
        _solver(device="tpu")
    with pytest.raises(ValueError, match="batch_size: expected a positive integer, got 0"):
        _solver(batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' requested"):
            _solver(device="cuda")


def test_imports_stay_lazy():
    code = ("import sys, fpscore.scores, fpscore.solvers, fpscore.score_store; "
            "print(any(m in sys.modules for m in ('torch', 'petsc4py')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("nonlinear,scheme,boundary", [("newton", "centred", "zero"), ("picard", "centred", "zero"),
                                                       ("newton", "minimal", "reflect"),
                                                       ("picard", "upwind", "reflect")])
def test_batched_with_a_drift_field_equals_the_per_channel_driver(mixed, nonlinear, scheme, boundary):
    """The engine's drift terms (v = f - ..., b = ... - dt D_h f) against the per-channel drivers."""
    from fpscore.fokker_planck.newton import solve_channel_newton
    from fpscore.fokker_planck.picard import solve_channel

    params = FPParams(n_times=6, nonlinear=nonlinear, scheme=scheme, boundary=boundary)
    imgs = mixed[:2, :, 4:20, 4:20]
    i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    drift = np.stack([(1 + t) * 0.3 * np.sin(i / 3.0) * np.cos(j / 5.0) for t in params.times()])
    res = _solver().solve_set(imgs, params, np.arange(2), drift=drift)
    drive, tol, cap = ((solve_channel_newton, params.newton_tol, params.newton_max_iter) if nonlinear == "newton"
                       else (solve_channel, params.picard_tol, params.picard_max_iter))
    for a in range(2):
        ref = drive(initial_log_density(imgs[a, 0]), params.times(), params.g(), 1.0, make_solver("spsolve"),
                    tol=tol, max_iter=cap, scheme=scheme, boundary=boundary, drift=drift)
        assert ref.converged and res.converged[a, 0]
        assert np.abs(res.m[a, 0] - ref.m).max() < 1e-8


def test_the_kernel_load_is_not_timed_as_a_solve(mixed, monkeypatch):
    """solve_set loads the compiled kernel before its first timed solve: a slow load shows in no row."""
    import time as time_mod

    calls = []

    def slow_load():
        calls.append(1)
        time_mod.sleep(0.5)

    monkeypatch.setattr(batched_numba, "load", slow_load)
    res = compute_scores(mixed[:1], FPParams(n_times=3), _solver(), progress=False)
    assert calls == [1]
    assert max(row["solve_seconds"] for row in res.log) < 0.5


# ---- the fused CPU engine ---------------------------------------------------------------------------
def test_compiled_kde_equals_per_channel(mixed):
    """The KDE without torch (pruned row DFTs compiled, scipy's column FFTs) equals the per-channel
    code, a constant and a diagonal-symmetric channel and a coarser grid included."""
    from fpscore.fokker_planck.kde_batched import initial_log_density_compiled

    chans = np.concatenate([mixed[:, 0], np.full((1, 32, 32), 0.4), (mixed[:1, 0] + mixed[:1, 0].transpose(0, 2, 1)) / 2])
    got = initial_log_density_compiled(chans, bins=256)
    want = np.stack([initial_log_density(c, bins=256) for c in chans])
    assert np.abs(got - want).max() < 1e-12
    small = initial_log_density_compiled(chans[:2], bins=64)
    assert np.abs(small - np.stack([initial_log_density(c, bins=64) for c in chans[:2]])).max() < 1e-12


def _engine(engine, **kw):
    from fpscore.solvers.batched import BatchedSolver

    return BatchedSolver(device="cpu", threads=1, engine=engine, **kw)


@pytest.mark.parametrize("scheme,boundary", [("minimal", "reflect"), ("centred", "zero"), ("upwind", "zero")])
def test_fused_engine_equals_the_stepwise_one(mixed, scheme, boundary, torch_one_thread):
    """The fused engine (one compiled loop per channel) and the stepwise one (torch driver, the same
    compiled BiCGStab) give the same m, the same flags and the same solves, level by level; where the
    paper's scheme fails (zero + centred) the channels it hands back are the stepwise engine's exactly."""
    params = FPParams(scheme=scheme, boundary=boundary)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fused = compute_scores(mixed, params, _engine("fused"), progress=False)
        step = compute_scores(mixed, params, _engine("stepwise"), progress=False)
    assert np.array_equal(fused.converged, step.converged) and np.array_equal(fused.within_bound, step.within_bound)
    assert np.abs(fused.m - step.m).max() < 1e-9 and np.abs(fused.scores - step.scores).max() < 1e-8
    np.testing.assert_allclose(fused.nu_active, step.nu_active, atol=1e-3)
    np.testing.assert_array_equal(fused.solves, step.solves)
    np.testing.assert_array_equal(fused.picard_iterations, step.picard_iterations)
    key = ["image", "channel", "time_level", "picard_iter"]
    a, b = fused.log.frame().sort_values(key)[key], step.log.frame().sort_values(key)[key]
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    assert [(f.image, f.channel, f.level) for f in fused.flags] == [(f.image, f.channel, f.level) for f in step.flags]
    assert (fused.log.columns["final_residual"] <= 1e-10 * (1 + 1e-6)).all()


def test_fused_engine_in_parallel_is_the_serial_one(mixed, monkeypatch):
    """threads > 1: the channels in parallel (numba prange), the same numbers to the bit; so in chunks of
    channels (batch_size * _FUSED_CHUNK at a time)."""
    params = FPParams(n_times=6)
    one = compute_scores(mixed, params, _engine("fused"), progress=False)
    monkeypatch.setattr(batched_mod, "_FUSED_CHUNK", 1)
    chunked = compute_scores(mixed, params, _engine("fused", batch_size=3), progress=False)
    np.testing.assert_array_equal(one.m, chunked.m)
    np.testing.assert_array_equal(one.log.columns["iterations"], chunked.log.columns["iterations"])
    np.testing.assert_array_equal(one.log.columns["image"], chunked.log.columns["image"])
    from fpscore.solvers.batched import BatchedSolver

    two = compute_scores(mixed, params, BatchedSolver(device="cpu", threads=2, engine="fused"), progress=False)
    np.testing.assert_array_equal(one.m, two.m)
    np.testing.assert_array_equal(one.solves, two.solves)
    np.testing.assert_array_equal(one.log.columns["iterations"], two.log.columns["iterations"])


def test_fused_engine_where_it_applies():
    """Newton on the CPU with numba: fused; Picard, a drift field, the torch kernel: the stepwise engine
    (``engine='fused'`` then says why it cannot)."""
    solver = _engine("auto")
    assert solver.fused_applies(FPParams()) is None
    assert "per-level Newton" in solver.fused_applies(FPParams(nonlinear="picard"))
    assert "drift" in solver.fused_applies(FPParams(), drift=np.zeros((20, 4, 4)))
    assert "numba" in _engine("auto", kernel="torch").fused_applies(FPParams())
    with pytest.raises(ValueError, match="engine: 'fused' does not apply here: the fused engine runs per-level Newton"):
        _engine("fused").solve_set(np.full((1, 1, 8, 8), 0.5), FPParams(nonlinear="picard"), np.arange(1))
    with pytest.raises(ValueError, match="engine: unknown value 'gpu'"):
        _engine("gpu")


def test_level_log_aggregates_the_solves(mixed):
    """The per-level rows (scores.solve_log: level) are the per-solve rows aggregated: tables.per_level
    on the per-solve frame gives the same numbers."""
    from fpscore import tables

    res = compute_scores(mixed[:2], FPParams(n_times=5), _engine("fused"), progress=False)
    columns, levels = res.log.table("level")
    frame = tables.per_level(res.log.frame())
    assert len(levels["image"]) == len(frame) == 2 * 1 * 4
    for key in ("picard_iter", "solves", "iterations", "max_iterations", "converged"):
        np.testing.assert_array_equal(levels[key], frame[key].to_numpy(), err_msg=key)
    for key in ("final_residual", "assemble_seconds", "solve_seconds", "startup_seconds"):
        np.testing.assert_allclose(levels[key], frame[key].to_numpy(), rtol=1e-12, err_msg=key)
    assert levels["solves"].sum() == res.solves.sum() == len(res.log)

"""The seed-subspace two-level PC (PETSc python context) and the projected initial guess."""

import numpy as np
import pytest
import scipy.sparse as sp

petsc4py = pytest.importorskip("petsc4py")
from petsc4py import PETSc  # noqa: E402

from fpscore.solvers.seed_pc import SeedSubspacePC  # noqa: E402
from fpscore.solvers.subspace import compress_basis, projected_guess  # noqa: E402

DOTTED = "fpscore.solvers.seed_pc.SeedSubspacePC"


def five_point(H, W, seed):
    """Random nonsymmetric 5-point-stencil matrix (diagonally dominant, so ILU(0) exists)."""
    rng = np.random.default_rng(seed)
    n = H * W
    k = np.arange(n)
    i, j = np.divmod(k, W)
    rows, cols, vals = [k], [k], [4.0 + rng.random(n)]
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ok = (0 <= i + di) & (i + di < H) & (0 <= j + dj) & (j + dj < W)
        rows.append(k[ok])
        cols.append(((i + di) * W + j + dj)[ok])
        vals.append(rng.uniform(-1.5, 0.5, ok.sum()))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def to_petsc(A):
    A = A.tocsr()
    A.sort_indices()
    return PETSc.Mat().createAIJWithArrays(A.shape, (A.indptr.astype(PETSc.IntType), A.indices.astype(PETSc.IntType),
                                                     A.data.copy()), comm=PETSc.COMM_SELF)


def dense_ilu0(A):
    """Textbook ILU(0) (IKJ variant) restricted to the pattern of A; returns M = L U dense."""
    a = A.toarray()
    pattern = a != 0
    n = a.shape[0]
    for i in range(1, n):
        for k in range(i):
            if not pattern[i, k]:
                continue
            a[i, k] /= a[k, k]
            for j in range(k + 1, n):
                if pattern[i, j]:
                    a[i, j] -= a[i, k] * a[k, j]
    L = np.tril(a, -1) + np.eye(n)
    U = np.triu(a)
    return L @ U


def orthonormal(n, r, seed):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((n, r)))[0]


def make_pc(A, V, prefix="fp_", options=None):
    opts = PETSc.Options()
    for key, value in (options or {}).items():
        opts[key] = value
    pc = PETSc.PC().create(comm=PETSc.COMM_SELF)
    pc.setOptionsPrefix(prefix)
    opts[f"{prefix}pc_type"] = "python"
    opts[f"{prefix}pc_python_type"] = DOTTED
    pc.setFromOptions()
    for key in list(options or {}) + [f"{prefix}pc_type", f"{prefix}pc_python_type"]:
        opts.delValue(key)
    pc.setOperators(A)
    ctx = pc.getPythonContext()
    ctx.set_basis(V)
    pc.setUp()
    return pc, ctx


def apply(pc, r):
    x = PETSc.Vec().createWithArray(np.array(r, dtype=float), comm=PETSc.COMM_SELF)
    y = x.duplicate()
    pc.apply(x, y)
    return y.getArray().copy()


def two_level_dense(A, V, Minv, r):
    E = V.T @ A @ V
    z = np.linalg.solve(E, V.T @ r)
    return V @ z + Minv @ (r - A @ V @ z)


@pytest.mark.parametrize("inner", ["jacobi", "ilu"])
def test_apply_equals_dense_two_level_formula(inner):
    A = five_point(4, 5, seed=1)
    V = orthonormal(A.shape[0], 3, seed=2)
    pc, ctx = make_pc(to_petsc(A), V, options={"fp_seedpc_pc_type": inner})
    assert ctx.inner_type == inner
    M = np.diag(A.diagonal()) if inner == "jacobi" else dense_ilu0(A)
    assert inner == "jacobi" or not np.allclose(M, A.toarray())  # ILU(0) is inexact here
    r = np.random.default_rng(3).standard_normal(A.shape[0])
    np.testing.assert_allclose(apply(pc, r), two_level_dense(A.toarray(), V, np.linalg.inv(M), r), rtol=1e-12,
                               atol=1e-12)
    pc.destroy()


def test_exact_solve_when_solution_in_span():
    A = five_point(5, 5, seed=4)
    V = orthonormal(A.shape[0], 4, seed=5)
    x = V @ np.array([1.0, -2.0, 0.5, 3.0])
    pc, _ = make_pc(to_petsc(A), V, options={"fp_seedpc_pc_type": "jacobi"})
    np.testing.assert_allclose(apply(pc, A @ x), x, atol=1e-12)
    # ... and not for a solution outside the span (the test can fail).
    x_out = np.random.default_rng(6).standard_normal(A.shape[0])
    assert np.linalg.norm(apply(pc, A @ x_out) - x_out) > 1e-3
    pc.destroy()


def test_rank_option_truncates_basis_and_view_prints_parameters(tmp_path):
    A = five_point(4, 4, seed=7)
    V = orthonormal(A.shape[0], 4, seed=8)
    pc, ctx = make_pc(to_petsc(A), V, options={"fp_seedpc_rank": 2, "fp_seedpc_pc_type": "jacobi"})
    r = np.random.default_rng(9).standard_normal(A.shape[0])
    Minv = np.diag(1.0 / A.diagonal())
    np.testing.assert_allclose(apply(pc, r), two_level_dense(A.toarray(), V[:, :2], Minv, r), atol=1e-12)
    viewer = PETSc.Viewer().createASCII(str(tmp_path / "view.txt"), comm=PETSc.COMM_SELF)
    pc.view(viewer)
    viewer.destroy()
    text = (tmp_path / "view.txt").read_text()
    assert "SeedSubspacePC" in text and "rank 2 (basis has 4)" in text and "one-level PC jacobi" in text
    pc.destroy()


def test_setup_once_per_operator_change_not_per_apply():
    A = five_point(6, 6, seed=10)
    Ap = to_petsc(A)
    V = orthonormal(A.shape[0], 3, seed=11)
    ksp = PETSc.KSP().create(comm=PETSc.COMM_SELF)
    ksp.setType("gmres")
    ksp.setOperators(Ap)
    pc = ksp.getPC()
    pc.setType("python")
    ctx = SeedSubspacePC()
    pc.setPythonContext(ctx)
    ctx.set_basis(V)
    ksp.setTolerances(rtol=1e-10, atol=0.0)
    b, x = Ap.createVecs()
    b.setArray(np.random.default_rng(12).standard_normal(A.shape[0]))
    ksp.solve(b, x)
    its = ksp.getIterationNumber()
    assert its >= 2 and ctx.setup_count == 1  # many applies, one setup
    ksp.solve(b, x)
    assert ctx.setup_count == 1  # same operator: no new setup
    Ap.scale(2.0)  # operator values change
    ksp.solve(b, x)
    assert ctx.setup_count == 2
    np.testing.assert_allclose(2.0 * (A @ x.getArray()), b.getArray(), atol=1e-8)
    pc.reset()
    assert ctx._inner is None and ctx._AV is None
    ksp.destroy()


def test_new_basis_same_operator_is_used():
    A = five_point(4, 4, seed=13)
    V1, V2 = orthonormal(16, 2, seed=14), orthonormal(16, 2, seed=15)
    pc, ctx = make_pc(to_petsc(A), V1, options={"fp_seedpc_pc_type": "jacobi"})
    ctx.set_basis(V2)
    r = np.random.default_rng(16).standard_normal(16)
    np.testing.assert_allclose(apply(pc, r), two_level_dense(A.toarray(), V2, np.diag(1 / A.diagonal()), r),
                               atol=1e-12)
    pc.destroy()


def test_unknown_inner_pc_names_the_value():
    A = to_petsc(five_point(3, 3, seed=17))
    with pytest.raises(PETSc.Error) as info:
        make_pc(A, orthonormal(9, 2, seed=18), options={"fp_seedpc_pc_type": "lu"})
    # PETSc wraps the context's ValueError (error 101); the original, with its message, is chained.
    assert "-fp_seedpc_pc_type: unknown one-level PC 'lu'" in str(info.value.__cause__)


@pytest.mark.parametrize("as_petsc", [False, True])
def test_projected_guess_equals_dense_least_squares_and_galerkin(as_petsc):
    A = five_point(5, 4, seed=19)
    V = orthonormal(20, 5, seed=20)
    b = np.random.default_rng(21).standard_normal(20)
    op = to_petsc(A) if as_petsc else A
    Ad = A.toarray()
    y_ls = np.linalg.lstsq(Ad @ V, b, rcond=None)[0]
    p = projected_guess(op, b, V, "minres")
    np.testing.assert_allclose(p.y, y_ls, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.x0, V @ y_ls, rtol=1e-10, atol=1e-12)
    assert p.residual == pytest.approx(np.linalg.norm(b - Ad @ V @ y_ls) / np.linalg.norm(b), rel=1e-10)
    y_g = np.linalg.solve(V.T @ Ad @ V, V.T @ b)
    g = projected_guess(op, b, V, "galerkin")
    np.testing.assert_allclose(g.y, y_g, rtol=1e-10, atol=1e-12)
    assert g.residual == pytest.approx(np.linalg.norm(b - Ad @ V @ y_g) / np.linalg.norm(b), rel=1e-10)
    assert p.residual <= g.residual + 1e-14  # minimal residual is minimal


def test_projected_guess_exact_in_span_and_bad_method():
    A = five_point(4, 4, seed=22)
    V = orthonormal(16, 3, seed=23)
    x = V @ np.array([0.3, -1.0, 2.0])
    p = projected_guess(A, A @ x, V)
    np.testing.assert_allclose(p.x0, x, atol=1e-11)
    assert p.residual < 1e-12  # normal equations: exact up to ~cond(A V)^2 * eps
    with pytest.raises(ValueError, match="'petrov'"):
        projected_guess(A, A @ x, V, "petrov")


def test_compress_basis_orthonormal_rank_capped_and_spanning():
    rng = np.random.default_rng(24)
    base = rng.standard_normal((50, 3))
    vecs = np.hstack([base, base @ rng.standard_normal((3, 4)), 1e-3 * base[:, :1]])  # rank 3 in 8 columns
    V = compress_basis(vecs, rank=10)
    assert V.shape == (50, 3) and V.flags.f_contiguous
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(V @ (V.T @ base), base, atol=1e-10)  # spans the input
    assert compress_basis(vecs, rank=2).shape == (50, 2)
    with pytest.raises(ValueError, match="rank"):
        compress_basis(vecs, rank=0)

"""The assembled A (SciPy and PETSc) equals a dense matrix built row by row from
the stencil table of METHOD.md §3 (zero padding, and reflect of §2b: a neighbour outside the
image moves onto the diagonal); lattice operators match their definitions for both boundaries."""
from __future__ import annotations

import numpy as np
import pytest

from fpscore.fokker_planck.assembly import FPPattern, FPSystem, rhs
from fpscore.fokker_planck.lattice import d_h, lap_h
from fpscore.fokker_planck.scheme import linearised

BOUNDARIES = ("zero", "reflect")


def stencil_dense(H, W, g, dt, v, h, boundary="zero"):
    """Independent construction: loop over rows, apply the §3 table; an outside entry is dropped
    (zero) or added to the diagonal (reflect)."""
    A = np.zeros((H * W, H * W))
    c = g * g * dt / (h * h)
    for i in range(H):
        for j in range(W):
            k = i * W + j
            A[k, k] = 1 + 2 * c
            for di, dj, sign in ((1, 0, 1), (0, 1, 1), (-1, 0, -1), (0, -1, -1)):
                ii, jj = i + di, j + dj
                value = -0.5 * c + sign * dt * v[i, j] / (2 * h)
                if 0 <= ii < H and 0 <= jj < W:
                    A[k, ii * W + jj] = value
                elif boundary == "reflect":
                    A[k, k] += value
    return A


def petsc_dense(mat):
    n = mat.getSize()[0]
    return mat.getValues(range(n), range(n))


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("H,W,h", [(3, 4, 1.0), (5, 5, 0.5), (1, 3, 1.0), (4, 1, 2.0)])
def test_matrix_matches_stencil(H, W, h, boundary):
    rng = np.random.default_rng(H * 10 + W)
    system = FPSystem(H, W)
    for g, dt in ((5.0, 0.05), (1.3, 0.2)):  # refill: values overwritten in place, pattern kept
        v = rng.normal(scale=3.0, size=(H, W))  # non-zero drift term v = f - g^2 s~/2
        system.fill(g, dt, v, h, boundary=boundary)
        ref = stencil_dense(H, W, g, dt, v, h, boundary)
        np.testing.assert_allclose(system.csr.toarray(), ref, rtol=0, atol=1e-14)
        np.testing.assert_allclose(petsc_dense(system.petsc), ref, rtol=0, atol=1e-14)
    assert system.csr.nnz == np.count_nonzero(stencil_dense(H, W, 1.0, 1.0, np.ones((H, W)) * 0.1, h))
    system.close()


def test_petsc_state_changes_on_refill():
    system = FPSystem(4, 4)
    system.fill(2.0, 0.1, np.zeros((4, 4)), 1.0, boundary="zero")
    mat = system.petsc
    state = mat.stateGet()
    system.fill(2.0, 0.1, np.ones((4, 4)), 1.0, boundary="zero")
    assert mat.stateGet() > state  # PCs see the new values
    np.testing.assert_allclose(petsc_dense(mat), stencil_dense(4, 4, 2.0, 0.1, np.ones((4, 4)), 1.0), atol=1e-14)
    system.close()


def test_pattern_is_csr_sorted_int32():
    p = FPPattern(6, 7)
    assert p.indptr.dtype == np.int32 and p.indices.dtype == np.int32
    assert p.nnz == 5 * 42 - 2 * 6 - 2 * 7
    for r in range(42):
        cols = p.indices[p.indptr[r]:p.indptr[r + 1]]
        assert np.all(np.diff(cols) > 0)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_lattice_operators_match_definitions(boundary):
    rng = np.random.default_rng(0)
    u = rng.normal(size=(5, 6))
    p = np.pad(u, 1, mode="constant" if boundary == "zero" else "edge")
    ref_d = np.empty_like(u)
    ref_l = np.empty_like(u)
    for i in range(5):
        for j in range(6):
            a, b = i + 1, j + 1
            ref_d[i, j] = (p[a + 1, b] - p[a - 1, b] + p[a, b + 1] - p[a, b - 1]) / (2 * 0.7)
            ref_l[i, j] = (p[a + 1, b] + p[a - 1, b] + p[a, b + 1] + p[a, b - 1] - 4 * p[a, b]) / 0.49
    np.testing.assert_allclose(d_h(u, 0.7, boundary=boundary), ref_d, atol=1e-13)
    np.testing.assert_allclose(lap_h(u, 0.7, boundary=boundary), ref_l, atol=1e-13)
    stack = np.stack([u, 2 * u])  # leading axes broadcast
    np.testing.assert_allclose(d_h(stack, 0.7, boundary=boundary)[1], 2 * ref_d, atol=1e-13)
    torch = pytest.importorskip("torch")  # the same code on torch tensors (the batched engine)
    np.testing.assert_allclose(d_h(torch.as_tensor(stack), 0.7, boundary=boundary).numpy()[1], 2 * ref_d,
                               atol=1e-13)
    np.testing.assert_allclose(lap_h(torch.as_tensor(u), 0.7, boundary=boundary).numpy(), ref_l, atol=1e-13)


def test_rhs_with_drift_and_source():
    rng = np.random.default_rng(1)
    m_prev, f, q = (rng.normal(size=(3, 3)) for _ in range(3))
    for boundary in BOUNDARIES:
        b = rhs(m_prev, 0.1, 1.0, drift=f, source=q, boundary=boundary)
        np.testing.assert_allclose(b, (m_prev - 0.1 * d_h(f, 1.0, boundary=boundary) + 0.1 * q).ravel(), atol=1e-15)
        np.testing.assert_array_equal(rhs(m_prev, 0.1, 1.0, boundary=boundary), m_prev.ravel())


def test_bad_v_shape_is_named():
    with pytest.raises(ValueError, match=r"v: expected shape \(3, 3\)"):
        FPSystem(3, 3).fill(1.0, 0.1, np.zeros((3, 4)), 1.0, boundary="zero")


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_many_levels_at_once_bit_identical_to_one_by_one(boundary):
    """A Picard sweep's matrices computed at once (leading axis: the level) equal the level-by-level
    values bit for bit, and the centred Picard matrix is the §3 table."""
    rng = np.random.default_rng(7)
    H, W, L, h = 6, 5, 4, 0.7
    g, dt = 5.0 ** rng.uniform(0, 1, L), rng.uniform(0.01, 0.2, L)
    x = rng.normal(scale=3.0, size=(L, H, W))
    a = 0.5 * g * g * dt
    system = FPSystem(H, W)
    fields, _ = linearised(x, a=a[:, None, None], h=h, scheme="centred", boundary=boundary, newton=False)
    values = system.pattern.values(fields)
    for level in range(L):
        one, _ = linearised(x[level], a=a[level], h=h, scheme="centred", boundary=boundary, newton=False)
        system.set_fields(one)
        np.testing.assert_array_equal(values[level], system.data)
        v = -0.5 * g[level] ** 2 * d_h(x[level], h, boundary=boundary)
        np.testing.assert_allclose(system.csr.toarray(), stencil_dense(H, W, g[level], dt[level], v, h, boundary),
                                   rtol=0, atol=1e-13)

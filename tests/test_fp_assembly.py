"""The assembled A (SciPy and PETSc) equals a dense matrix built row by row from
the stencil table of METHOD.md §3; lattice operators match their definitions."""
from __future__ import annotations

import numpy as np
import pytest

from fpscore.fokker_planck.assembly import FPPattern, FPSystem, rhs
from fpscore.fokker_planck.lattice import d_h, d_matrix, lap_h, lap_matrix


def stencil_dense(H, W, g, dt, v, h):
    """Independent construction: loop over rows, apply the §3 table, drop outside entries."""
    A = np.zeros((H * W, H * W))
    c = g * g * dt / (h * h)
    for i in range(H):
        for j in range(W):
            k = i * W + j
            A[k, k] = 1 + 2 * c
            for di, dj, sign in ((1, 0, 1), (0, 1, 1), (-1, 0, -1), (0, -1, -1)):
                ii, jj = i + di, j + dj
                if 0 <= ii < H and 0 <= jj < W:
                    A[k, ii * W + jj] = -0.5 * c + sign * dt * v[i, j] / (2 * h)
    return A


def petsc_dense(mat):
    n = mat.getSize()[0]
    return mat.getValues(range(n), range(n))


@pytest.mark.parametrize("H,W,h", [(3, 4, 1.0), (5, 5, 0.5), (1, 3, 1.0), (4, 1, 2.0)])
def test_matrix_matches_stencil(H, W, h):
    rng = np.random.default_rng(H * 10 + W)
    system = FPSystem(H, W)
    for g, dt in ((5.0, 0.05), (1.3, 0.2)):  # refill: values overwritten in place, pattern kept
        v = rng.normal(scale=3.0, size=(H, W))  # non-zero drift term v = f - g^2 s~/2
        system.fill(g, dt, v, h)
        ref = stencil_dense(H, W, g, dt, v, h)
        np.testing.assert_allclose(system.csr.toarray(), ref, rtol=0, atol=1e-14)
        np.testing.assert_allclose(petsc_dense(system.petsc), ref, rtol=0, atol=1e-14)
    assert system.csr.nnz == np.count_nonzero(stencil_dense(H, W, 1.0, 1.0, np.ones((H, W)) * 0.1, h))
    system.close()


def test_petsc_state_changes_on_refill():
    system = FPSystem(4, 4)
    system.fill(2.0, 0.1, np.zeros((4, 4)), 1.0)
    mat = system.petsc
    state = mat.stateGet()
    system.fill(2.0, 0.1, np.ones((4, 4)), 1.0)
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


def test_lattice_operators_match_definitions():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(5, 6))
    p = np.pad(u, 1)
    ref_d = np.empty_like(u)
    ref_l = np.empty_like(u)
    for i in range(5):
        for j in range(6):
            a, b = i + 1, j + 1
            ref_d[i, j] = (p[a + 1, b] - p[a - 1, b] + p[a, b + 1] - p[a, b - 1]) / (2 * 0.7)
            ref_l[i, j] = (p[a + 1, b] + p[a - 1, b] + p[a, b + 1] + p[a, b - 1] - 4 * p[a, b]) / 0.49
    np.testing.assert_allclose(d_h(u, 0.7), ref_d, atol=1e-13)
    np.testing.assert_allclose(lap_h(u, 0.7), ref_l, atol=1e-13)
    np.testing.assert_allclose(d_matrix(5, 6, 0.7) @ u.ravel(), ref_d.ravel(), atol=1e-13)
    np.testing.assert_allclose(lap_matrix(5, 6, 0.7) @ u.ravel(), ref_l.ravel(), atol=1e-13)
    stack = np.stack([u, 2 * u])  # leading axes broadcast
    np.testing.assert_allclose(d_h(stack, 0.7)[1], 2 * ref_d, atol=1e-13)


def test_rhs_with_drift_and_source():
    rng = np.random.default_rng(1)
    m_prev, f, q = (rng.normal(size=(3, 3)) for _ in range(3))
    b = rhs(m_prev, 0.1, 1.0, drift=f, source=q)
    np.testing.assert_allclose(b, (m_prev - 0.1 * d_h(f) + 0.1 * q).ravel(), atol=1e-15)
    np.testing.assert_array_equal(rhs(m_prev, 0.1, 1.0), m_prev.ravel())


def test_bad_v_shape_is_named():
    with pytest.raises(ValueError, match=r"v: expected shape \(3, 3\)"):
        FPSystem(3, 3).fill(1.0, 0.1, np.zeros((3, 4)), 1.0)


def test_fill_levels_bit_identical_to_fill():
    """A Picard sweep's matrices computed at once equal the level-by-level fill bit for bit."""
    rng = np.random.default_rng(7)
    H, W, L, h = 6, 5, 4, 0.7
    g, dt = 5.0 ** rng.uniform(0, 1, L), rng.uniform(0.01, 0.2, L)
    v = rng.normal(scale=3.0, size=(L, H, W))
    system = FPSystem(H, W)
    values = system.pattern.fill_levels(g * g * dt / (h * h), dt, v, h)
    for level in range(L):
        system.fill(g[level], dt[level], v[level], h)
        np.testing.assert_array_equal(values[level], system.data)
        before = system.data.copy()
        system.set_values(values[level])
        np.testing.assert_allclose(system.csr.toarray(), stencil_dense(H, W, g[level], dt[level], v[level], h),
                                   rtol=0, atol=1e-14)
        np.testing.assert_array_equal(system.data, before)

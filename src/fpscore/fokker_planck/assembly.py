"""Assembly of the linear systems A^{n,(k)} m = b^{n,(k)} of METHOD.md §3.

Row k = (i, j) of A (zero padding: entries outside the image are dropped):

    diagonal            1 + 2 g^2 dt / h^2
    (i+1, j), (i, j+1)  -(1/2) g^2 dt / h^2 + dt v_ij / (2h)
    (i-1, j), (i, j-1)  -(1/2) g^2 dt / h^2 - dt v_ij / (2h)

with v = f^n - (1/2) g_n^2 s~. The sparsity pattern depends only on (H, W):
``FPPattern`` builds it once (CSR, int32, columns sorted) together with a
gather map from a 3 x HW coefficient table (minus, diagonal, plus) to the CSR
value slots, so filling the values of a new system is one vectorised
``np.take``. ``FPSystem`` owns one value array that a SciPy CSR matrix and a
PETSc seqaij Mat share (no copy), overwritten in place for every system.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fpscore.fokker_planck.lattice import d_h

# Stencil roles in increasing column order within a row: (i-1,j), (i,j-1), (i,j), (i,j+1), (i+1,j).
_ROLES = ((-1, 0), (0, -1), (0, 0), (0, 1), (1, 0))
# Row of the coefficient table each role reads: 0 = minus neighbour, 1 = diagonal, 2 = plus neighbour.
_ROLE_TABLE_ROW = (0, 0, 1, 2, 2)


class FPPattern:
    """CSR pattern of the 5-point stencil on an H x W lattice, built once per size."""

    def __init__(self, H: int, W: int):
        if not (int(H) == H and int(W) == W and H >= 1 and W >= 1):
            raise ValueError(f"lattice size: expected positive integers H, W, got {H!r}, {W!r}")
        self.H, self.W = int(H), int(W)
        n = self.H * self.W
        self.n = n
        k = np.arange(n, dtype=np.int64)
        i, j = np.divmod(k, self.W)
        rows, cols, gather = [], [], []
        for role, (di, dj) in enumerate(_ROLES):
            ii, jj = i + di, j + dj
            ok = (ii >= 0) & (ii < self.H) & (jj >= 0) & (jj < self.W)
            rows.append(k[ok])
            cols.append((ii * self.W + jj)[ok])
            gather.append(_ROLE_TABLE_ROW[role] * n + k[ok])
        rows, cols, gather = (np.concatenate(a) for a in (rows, cols, gather))
        order = np.lexsort((cols, rows))  # row-major, columns ascending
        self.indices = cols[order].astype(np.int32)
        self.gather = gather[order].astype(np.intp)
        counts = np.bincount(rows, minlength=n)
        self.indptr = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=self.indptr[1:])
        self.nnz = int(self.indices.size)

    def fill_values(self, data_out: np.ndarray, g2dt_over_h2: float, dt: float, v: np.ndarray, h: float,
                    table: np.ndarray | None = None) -> np.ndarray:
        """Overwrite ``data_out`` (nnz,) with the values of A for v (H x W); returns data_out.

        ``table`` is an optional (3, HW) work array reused between calls.
        """
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.H, self.W):
            raise ValueError(f"v: expected shape {(self.H, self.W)}, got {v.shape}")
        if table is None:
            table = np.empty((3, self.n))
        half = -0.5 * g2dt_over_h2
        np.multiply(v.reshape(-1), dt / (2.0 * h), out=table[2])
        np.subtract(half, table[2], out=table[0])
        table[2] += half
        table[1] = 1.0 + 2.0 * g2dt_over_h2
        np.take(table.reshape(-1), self.gather, out=data_out)
        return data_out

    def fill_levels(self, g2dt_over_h2: np.ndarray, dt: np.ndarray, v: np.ndarray, h: float) -> np.ndarray:
        """Values of A for L systems at once (one Picard sweep): scalars of shape (L,), v (L, H, W);
        returns (L, nnz), row l bit-identical to ``fill_values`` with the l-th arguments."""
        v = np.asarray(v, dtype=np.float64)
        L = v.shape[0]
        if v.shape[1:] != (self.H, self.W):
            raise ValueError(f"v: expected shape (L, {self.H}, {self.W}), got {v.shape}")
        c = np.asarray(g2dt_over_h2, dtype=np.float64).reshape(L, 1)
        half = -0.5 * c
        table = np.empty((L, 3, self.n))
        np.multiply(v.reshape(L, -1), (np.asarray(dt, dtype=np.float64) / (2.0 * h)).reshape(L, 1), out=table[:, 2])
        np.subtract(half, table[:, 2], out=table[:, 0])
        table[:, 2] += half
        table[:, 1] = 1.0 + 2.0 * c
        return np.take(table.reshape(L, -1), self.gather, axis=1)


class FPSystem:
    """The matrix A of one image size, as SciPy CSR (``csr``) and PETSc Mat (``petsc``),
    sharing one value array that ``fill`` overwrites in place."""

    def __init__(self, H: int, W: int, pattern: FPPattern | None = None):
        self.pattern = pattern if pattern is not None else FPPattern(H, W)
        if (self.pattern.H, self.pattern.W) != (H, W):
            raise ValueError(f"pattern is for {self.pattern.H}x{self.pattern.W}, not {H}x{W}")
        self.H, self.W, self.n = H, W, H * W
        self.data = np.zeros(self.pattern.nnz)
        self._table = np.empty((3, self.n))
        self.csr = sp.csr_matrix((self.data, self.pattern.indices, self.pattern.indptr), shape=(self.n, self.n))
        if not np.shares_memory(self.csr.data, self.data):  # pragma: no cover - scipy contract
            raise RuntimeError("scipy copied the CSR value array; in-place assembly would be lost")
        self._petsc = None
        self._petsc_shared = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.H, self.W

    @property
    def petsc(self):
        """PETSc seqaij Mat with this pattern (created on first use, values shared)."""
        if self._petsc is None:
            from petsc4py import PETSc

            p = self.pattern
            mat = PETSc.Mat().createAIJWithArrays((self.n, self.n), (p.indptr, p.indices, self.data),
                                                  comm=PETSc.COMM_SELF)
            mat.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
            # Does the Mat use our value array (MatCreateSeqAIJWithArrays) or a copy?
            old = self.data[0]
            self.data[0] = old + 1.0
            self._petsc_shared = mat.getValue(0, int(p.indices[0])) == self.data[0]
            self.data[0] = old
            self._petsc = mat
            self._sync_petsc()
        return self._petsc

    def _sync_petsc(self) -> None:
        """Tell PETSc the values changed (new object state, so PCs rebuild)."""
        if self._petsc_shared:
            self._petsc.assemble()
        else:
            p = self.pattern
            self._petsc.setValuesCSR(p.indptr, p.indices, self.data)
            self._petsc.assemble()

    def fill(self, g: float, dt: float, v: np.ndarray, h: float) -> None:
        """Set A = I - dt g^2/2 Lap_h + dt diag(v) D_h (values only; pattern fixed)."""
        self.pattern.fill_values(self.data, g * g * dt / (h * h), dt, v, h, table=self._table)
        if self._petsc is not None:
            self._sync_petsc()

    def set_values(self, values: np.ndarray) -> None:
        """Set A's values (nnz,) computed beforehand (a row of ``pattern.fill_levels``)."""
        np.copyto(self.data, values)
        if self._petsc is not None:
            self._sync_petsc()

    def close(self) -> None:
        if self._petsc is not None:
            self._petsc.destroy()
            self._petsc = None


def rhs(m_prev: np.ndarray, dt: float, h: float, drift: np.ndarray | None = None,
        source: np.ndarray | None = None) -> np.ndarray:
    """b = m^{n-1} - dt D_h f^n (+ dt q^n for a manufactured source q), flat float64."""
    b = np.array(m_prev, dtype=np.float64).reshape(-1)
    if drift is not None:
        b -= dt * d_h(drift, h).reshape(-1)
    if source is not None:
        b += dt * np.asarray(source, dtype=np.float64).reshape(-1)
    return b


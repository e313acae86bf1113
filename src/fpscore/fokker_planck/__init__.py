"""The log-density Fokker-Planck equation on the pixel lattice (METHOD.md §2-5).

lattice: D_h, Lap_h (zero padding); assembly: the 5-point system A, b with a
fixed sparsity pattern; kde: the initial log-density m^0; picard: Algorithm 1.
"""
from fpscore.fokker_planck.params import FPParams

__all__ = ["FPParams"]

"""fpscore: score pre-computation for diffusion models by solving the log-density
Fokker-Planck equation, with cross-matrix Krylov projection (Lau, Na, Wan 2025)."""

__version__ = "0.1.0"

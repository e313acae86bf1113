"""``batched``: all image channels of a set at once (METHOD.md §5c), on the CPU or CUDA.

Two engines, one contract (the same m within rounding, flags, residuals and log):

* **fused** (the CPU with numba, per-level Newton, no drift field: the pipeline's default): the
  initial densities from the compiled KDE (``kde_batched.initial_log_density_compiled``), then the
  whole Newton iteration of every channel in one compiled loop (``numba_kernels.newton_channels``:
  no Python per level or per system, no torch; channels in parallel with ``threads`` > 1), writing
  m, its scores and the validity of each channel straight into the output arrays. A channel with a
  system BiCGStab could not bring to rtol, or a non-finite iterate, is handed back and solved again
  by the stepwise engine, so the SuperLU fallback and the breakdown flags are exactly its.
* **stepwise** (CUDA, Picard, a drift field, or the torch kernel): torch float64; the K = N*C
  channels form a (K, H*W) array; the initial densities from the batched KDE
  (``kde_batched.initial_log_density_batched``); then the nonlinear driver runs over all channels
  together: per-level Newton (§5b) or Picard sweeps (Algorithm 1), each channel with its own
  convergence test (a converged channel stops while the others go on). Every linear step is one
  BiCGStab over the active channels (matrix-free operator, per-system scalars and stopping tests;
  the torch kernel ``batched_ops.bicgstab`` on CUDA, the compiled ``batched_numba.bicgstab`` on the
  CPU, ``scores.batched.kernel``), warm started as the other solvers are (Newton: the current
  iterate; Picard: the extrapolated previous iterate).

Every system is held to the same TRUE relative residual rtol as the other solvers (one more
operator application); a system that misses it is solved again from where it stopped (``_ROUNDS``
runs in all), and if it still misses, or broke down, it is solved by SuperLU (scipy; one
RuntimeWarning per set says how many). A system that SuperLU cannot solve to rtol either
(``SystemFailure``: ill-conditioned at a diverging iterate) keeps its warm start; its channel
leaves the iteration flagged as not converged, as in the per-channel drivers, while the others go
on. Flagged channels are reported once per set (``SetResult.flags``; ``compute_scores`` warns).
The log (``step.SolveLog``) has one entry per channel and successful linear solve (the stepwise
engine apportions the seconds of a step equally over the systems solved together; the fused one
times each).

This module: the solver (settings, device and kernel selection, the set, the fused engine's
driver); the stepwise engine's run over one batch of channels is ``batched_stepwise.StepwiseRun``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpscore.config import schema_default

from fpscore.fokker_planck.step import Flag, SolveLog
from fpscore.names import KRYLOV_KERNELS
from fpscore.solvers.base import SolveContext, Solver, SolverError, SolveStats
from fpscore.solvers.batched_ops import DEVICES, Stencil, bicgstab, check_tolerance, resolve_device
from fpscore.solvers.batched_stepwise import NEWTON_DIVERGING, StepwiseRun, newton_max_iter_cause

_ROUNDS = 2  # BiCGStab runs from the current x for a system whose true residual misses rtol
_FUSED_CHUNK = 16  # the fused engine takes batch_size * this many channels at a time (4,096 by default)
_SAFETY = 0.5  # the recursive residual must reach _SAFETY * rtol before the true one is checked


@dataclass
class SetResult:
    """What ``solve_set`` returns: m, s (N, C, T, H, W) numpy (``dtype``), outer iterations, convergence
    and linear solves per (image, channel), the log, the flagged channels (``step.Flag``, one per
    channel) and, from the fused engine, the validity of every channel (``scheme.validity``:
    ``within_bound``, ``nu_active``; None: the caller computes it)."""

    m: np.ndarray
    s: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    solves: np.ndarray
    log: SolveLog
    flags: list = field(default_factory=list)
    within_bound: np.ndarray | None = None
    nu_active: np.ndarray | None = None


_BATCHED = schema_default("scores.batched")


def _gpu_visible() -> bool:
    """Whether a GPU device node or driver is visible (NVIDIA or ROCm): where none is, torch cannot
    see CUDA, and "auto" resolves to the CPU without importing torch."""
    import glob

    return bool(glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/kfd"))


def device_type(device: str) -> str:
    """"cpu" or "cuda" for a device setting (auto|cpu|cuda): torch decides only where a GPU could be
    there (``batched_ops.resolve_device``); ValueError naming the key as there."""
    if device not in DEVICES:
        raise ValueError(f"device: unknown value {device!r}, expected one of {', '.join(DEVICES)}")
    if device == "cpu" or (device == "auto" and not _gpu_visible()):
        return "cpu"
    return resolve_device(device).type


def _has_numba() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def krylov_kernel(kernel: str, device):
    """The BiCGStab function of ``kernel`` (auto|torch|numba) on ``device`` (a torch.device or its
    type): auto = the compiled numba kernel on the CPU where numba is installed, else torch's;
    ValueError naming the key for an unknown name, numba on a GPU, or numba requested but not
    installed."""
    if kernel not in KRYLOV_KERNELS:
        raise ValueError(f"kernel: unknown value {kernel!r}, expected one of {', '.join(KRYLOV_KERNELS)}")
    kind = getattr(device, "type", device)
    has_numba = _has_numba()
    if kernel == "numba" and kind != "cpu":
        raise ValueError(f"kernel: 'numba' runs on the CPU only, the device is {kind!r} (use torch or auto)")
    if kernel == "numba" and not has_numba:
        raise ValueError("kernel: 'numba' requested but numba is not installed (pip install numba, or use torch)")
    if kernel == "torch" or kind != "cpu" or not has_numba:
        return bicgstab
    from fpscore.solvers import batched_numba

    return batched_numba.bicgstab


def load_kernel(kernel: str, device) -> None:
    """Pay the compiled kernel's one-time load (numba's cache; compilation on a fresh checkout) before
    any solve is timed, as the imports of the other solvers are."""
    if krylov_kernel(kernel, device) is not bicgstab:
        from fpscore.solvers import batched_numba

        batched_numba.load()


#: The engines of ``BatchedSolver(engine=...)``: auto = fused wherever it applies (``fused_applies``).
ENGINES = ("auto", "fused", "stepwise")


class BatchedSolver(Solver):
    """The batched engine (module docstring). ``device`` auto|cpu|cuda; ``threads``: torch
    CPU threads while solving (None: torch's setting); ``batch_size``: channels solved
    together (memory ~ 3 * T * batch_size * H * W * 8 bytes; the fused engine takes
    ``_FUSED_CHUNK`` times as many at a time, its working arrays ~ 20 kB per channel at 32x32
    besides the outputs); ``max_it``: BiCGStab cap
    per round; ``kernel``: auto|torch|numba, the BiCGStab kernel (``krylov_kernel``); ``engine``
    (not a config key: tests and benchmarks): auto = the fused engine wherever it applies
    (``fused_applies``), stepwise = always the stepwise one, fused = the fused one or a ValueError
    saying why it does not apply. ``threads`` > 1: the fused engine's channels in parallel too."""

    name = "batched"

    def __init__(self, rtol: float = schema_default("scores.rtol"), device: str = _BATCHED["device"],
                 threads: int | None = _BATCHED["threads"], batch_size: int = _BATCHED["batch_size"],
                 max_it: int = _BATCHED["max_it"], kernel: str = _BATCHED["kernel"], engine: str = "auto"):
        super().__init__(rtol)
        check_tolerance(rtol)
        krylov_kernel(kernel, device_type(device))  # fail early on a bad name, a missing GPU or numba
        if engine not in ENGINES:
            raise ValueError(f"engine: unknown value {engine!r}, expected one of {', '.join(ENGINES)}")
        self.engine = engine
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads: expected a positive integer or None, got {threads!r}")
        for key, value in (("batch_size", batch_size), ("max_it", max_it)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: expected a positive integer, got {value!r}")
        self.device_name, self.threads, self.batch_size, self.max_it = device, threads, batch_size, max_it
        self.kernel = kernel
        self.fallbacks = 0  # systems solved by SuperLU after BiCGStab missed rtol

    def solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        raise SolverError("batched: solves whole sets (compute_scores calls solve_set), not single systems")

    def fused_applies(self, params, drift=None) -> str | None:
        """None where the fused engine solves ``params`` (the CPU, numba, per-level Newton, no drift),
        else why not."""
        if self.engine == "stepwise":
            return "engine 'stepwise' chosen"
        if self.kernel == "torch" or not _has_numba():
            return "the fused engine is compiled by numba (kernel torch, or numba missing)"
        if device_type(self.device_name) != "cpu":
            return "the fused engine runs on the CPU (CUDA: the stepwise torch engine)"
        if params.nonlinear != "newton":
            return f"the fused engine runs per-level Newton, not {params.nonlinear!r}"
        if drift is not None:
            return "the fused engine has no drift field (f = 0, the pipeline's)"
        return None

    def load(self) -> None:
        """The compiled kernels of the CPU (numba's cache, or their compilation on a fresh checkout), or
        torch where it runs the set, now: a process pays them once, before any solve is timed."""
        if self.kernel != "torch" and _has_numba() and device_type(self.device_name) == "cpu":
            from fpscore.solvers import batched_numba, numba_kernels

            batched_numba.load()
            if self.engine != "stepwise":
                numba_kernels.load(self.threads or 1)
        else:
            import torch  # noqa: F401

    def describe(self) -> dict[str, Any]:
        return {"solver": self.name, "rtol": self.rtol, "device": self.device_name, "kernel": self.kernel,
                "batch_size": self.batch_size, "max_it": self.max_it}

    # ---- the set ----------------------------------------------------------------------------
    def solve_set(self, images: np.ndarray, params, labels: np.ndarray, *, progress: bool = False,
                  drift: np.ndarray | None = None, dtype=np.float64, out: dict | None = None) -> SetResult:
        """m and s of every channel of ``images`` (N, C, H, H, validated), driver ``params.nonlinear``;
        m and s in ``dtype`` (the solves are float64 throughout), written into ``out`` ({"m", "scores"},
        ``scores.output_arrays``) when given. ``drift`` (T, H, W) f^n for every channel (tests; zero
        in the pipeline). The fused engine where it applies (``engine``)."""
        why = self.fused_applies(params, drift)
        if why is None:
            return self._solve_fused(images, params, labels, dtype, out)
        if self.engine == "fused":
            raise ValueError(f"engine: 'fused' does not apply here: {why}")
        res = self._solve_stepwise(images, params, labels, drift, dtype)
        if out is not None:
            from fpscore.scores import output_arrays

            m, s = output_arrays(out, res.m.shape, dtype)
            m[...], s[...] = res.m, res.s
            res.m, res.s = m, s
        return res

    def _solve_fused(self, images, params, labels, dtype, out=None) -> SetResult:
        """The fused engine (module docstring): every channel in one compiled loop, the channels it
        hands back by the stepwise engine."""
        from fpscore.fokker_planck.kde_batched import initial_log_density_compiled
        from fpscore.scores import output_arrays
        from fpscore.solvers import numba_kernels as fz

        N, C, H, W = images.shape
        T, K = params.n_times, N * C
        m, s = output_arrays(out, (N, C, T, H, W), dtype)
        g, dts = params.g(), np.diff(params.times())
        a_levels = np.zeros(T)
        a_levels[1:] = 0.5 * g[1:] ** 2 * dts
        chans, m_all, s_all = images.reshape(K, H, W), m.reshape(K, T, H, W), s.reshape(K, T, H, W)
        ch_i, ch_f, owner, ri, rf = [], [], [], [], []
        chunk = self.batch_size * _FUSED_CHUNK  # bounds the working arrays (not the outputs: the caller's)
        for start in range(0, K, chunk):
            sel = slice(start, min(start + chunk, K))
            m0 = initial_log_density_compiled(chans[sel], bins=params.kde_bins, floor=params.kde_floor)
            c_rec_i, c_rec_f, c_ch_i, c_ch_f = fz.newton_channels(
                m0, a_levels, params.dh, params.scheme, params.boundary, rtol=self.rtol, max_it=self.max_it,
                rounds=_ROUNDS, safety=_SAFETY, tol=params.newton_tol, max_iter=params.newton_max_iter,
                stop=params.newton_stop, monotone=params.newton_monotone, m_out=m_all[sel], s_out=s_all[sel],
                threads=self.threads or 1)
            # the log: every record of the channels solved here, channel by channel
            kept = ((c_ch_i[:, fz.CH_STATUS] == fz.DONE)[:, None]
                    & (np.arange(c_rec_i.shape[1])[None, :] < c_ch_i[:, fz.CH_RECORDS][:, None]))
            owner.append(start + np.nonzero(kept)[0])
            ri.append(c_rec_i[kept])
            rf.append(c_rec_f[kept])
            ch_i.append(c_ch_i)
            ch_f.append(c_ch_f)
        ch_i, ch_f, owner, ri, rf = (np.concatenate(a) for a in (ch_i, ch_f, owner, ri, rf))
        images_of, channels_of = labels[np.arange(K) // C], np.arange(K) % C
        done = ch_i[:, fz.CH_STATUS] == fz.DONE
        iters, conv = ch_i[:, fz.CH_MOST].copy(), ch_i[:, fz.CH_CONVERGED].astype(bool)
        solves = ch_i[:, fz.CH_SOLVES].copy()
        within, nu_active = ch_f[:, fz.CHF_WITHIN].astype(bool), ch_f[:, fz.CHF_NU_ACTIVE].copy()
        log = SolveLog({
            "image": images_of[owner], "channel": channels_of[owner], "picard_iter": ri[:, fz.REC_OUTER],
            "time_level": np.abs(ri[:, fz.REC_LEVEL]), "solver": np.full(owner.size, self.name, dtype=object),
            "iterations": ri[:, fz.REC_ITS], "initial_residual": rf[:, fz.REC_INIT],
            "final_residual": rf[:, fz.REC_FINAL], "projection_residual": np.full(owner.size, np.nan),
            "assemble_seconds": rf[:, fz.REC_ASSEMBLE], "solve_seconds": rf[:, fz.REC_SOLVE],
            "converged": ri[:, fz.REC_LEVEL] > 0})
        causes = {fz.CAUSE_MAX_ITER: newton_max_iter_cause(params),
                  fz.CAUSE_DIVERGING: NEWTON_DIVERGING}
        flags = {a: Flag(int(images_of[a]), int(channels_of[a]), int(ch_i[a, fz.CH_FLAG_LEVEL]),
                         causes[int(ch_i[a, fz.CH_FLAG_CAUSE])]) for a in np.flatnonzero(done & ~conv)}
        handed = np.flatnonzero(~done)
        if handed.size:  # the stepwise engine for these (SuperLU, breakdowns): exactly its semantics
            sub = self._solve_stepwise(images.reshape(K, 1, H, W)[handed], params, images_of[handed], None,
                                       dtype, channels=channels_of[handed])
            m.reshape(K, T, H, W)[handed] = sub.m[:, 0]
            s.reshape(K, T, H, W)[handed] = sub.s[:, 0]
            iters[handed], conv[handed], solves[handed] = sub.iterations[:, 0], sub.converged[:, 0], sub.solves[:, 0]
            within[handed], nu_active[handed] = sub.within_bound[:, 0], sub.nu_active[:, 0]
            position = {(int(images_of[a]), int(channels_of[a])): a for a in handed}
            flags.update({position[(f.image, f.channel)]: f for f in sub.flags})
            log = SolveLog.concat([log, sub.log])
            owner = np.r_[owner, [position[key] for key in zip(sub.log.columns["image"].tolist(),
                                                                 sub.log.columns["channel"].tolist())]]
            log = SolveLog({k: v[np.argsort(owner, kind="stable")] for k, v in log.columns.items()})
        return SetResult(m=m, s=s, iterations=iters.reshape(N, C), converged=conv.reshape(N, C),
                         solves=solves.reshape(N, C), log=log, flags=[flags[a] for a in sorted(flags)],
                         within_bound=within.reshape(N, C), nu_active=nu_active.reshape(N, C))

    def _solve_stepwise(self, images, params, labels, drift, dtype, channels=None) -> SetResult:
        """The stepwise engine (module docstring). ``channels``: the channel number of every image
        (N,), images then (N, 1, H, W) (the fused engine's hand-back); default 0..C-1 of each."""
        import torch

        from fpscore.fokker_planck.kde_batched import initial_log_density_batched
        from fpscore.fokker_planck.lattice import d_h
        from fpscore.fokker_planck.scheme import validity

        N, C, H, W = images.shape
        T = params.n_times
        K = N * C
        old_threads = torch.get_num_threads()
        device = resolve_device(self.device_name)
        if self.threads is not None and device.type == "cpu":
            torch.set_num_threads(self.threads)
        load_kernel(self.kernel, device)
        krylov = krylov_kernel(self.kernel, device)
        chan_of = np.tile(np.arange(C), N) if channels is None else np.asarray(channels)
        try:
            m = np.empty((K, T, H, W))
            logs: list[SolveLog] = []
            flags: list[Flag] = []
            iters = np.zeros(K, dtype=int)
            conv = np.zeros(K, dtype=bool)
            solves = np.zeros(K, dtype=int)
            stencil = Stencil(H, W, device)
            f = None if drift is None else torch.as_tensor(drift, dtype=torch.float64, device=device).reshape(T, -1)
            chans = images.reshape(K, H, W)
            fallbacks: list[str] = []
            for start in range(0, K, self.batch_size):
                idx = np.arange(start, min(start + self.batch_size, K))
                m0 = initial_log_density_batched(chans[idx], bins=params.kde_bins, floor=params.kde_floor,
                                                 device=device).reshape(len(idx), -1)
                engine = StepwiseRun(self, stencil, params, f, labels[idx // C], chan_of[idx], krylov=krylov,
                                     rounds=_ROUNDS, safety=_SAFETY)
                mt, it, cv, ns = engine.newton(m0) if params.nonlinear == "newton" else engine.picard(m0)
                m[idx] = mt.reshape(len(idx), T, H, W)
                iters[idx], conv[idx], solves[idx] = it, cv, ns
                logs.append(SolveLog.from_rows(engine.rows))
                flags.extend(engine.flags)
                fallbacks.extend(engine.fallback_places)
        finally:
            torch.set_num_threads(old_threads)
        if fallbacks:
            warnings.warn(f"batched: BiCGStab missed rtol {self.rtol:.1e} for {len(fallbacks)} system(s) (first: "
                          f"{fallbacks[0]}); solved directly (SuperLU)", RuntimeWarning, stacklevel=3)
        log = SolveLog.concat(logs)
        log.part[:] = 0
        s = d_h(m, params.dh, boundary=params.boundary)
        check = validity(m, s, params.dh, params.scheme, params.boundary)  # float64, before any cast
        return SetResult(m=m.reshape(N, C, T, H, W).astype(dtype, copy=False),
                         s=s.reshape(N, C, T, H, W).astype(dtype, copy=False), iterations=iters.reshape(N, C),
                         converged=conv.reshape(N, C), solves=solves.reshape(N, C), log=log, flags=flags,
                         within_bound=check.within_bound.reshape(N, C), nu_active=check.nu_active.reshape(N, C))

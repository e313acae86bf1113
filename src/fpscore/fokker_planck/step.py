"""The linear step shared by the nonlinear drivers (Picard sweeps, per-level Newton).

``linear_step`` builds the ``SolveContext`` of one system by keyword (driver-neutral
names: outer iteration, previous outer iterate), calls the solver, checks the true
residual it reports and returns the solution with its solve-log row. ``check_solution``
and ``log_row`` are the two halves the batched engine reuses for its own systems.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fpscore.solvers.base import SolveContext, Solver, SystemFailure

#: Slack on the residual a solver reports before the driver rejects it (rounding only).
RESIDUAL_SLACK = 1.0 + 1e-6


@dataclass
class ChannelResult:
    """m and s (T, H, W) of one channel, the outer-iteration history and one log row per linear solve.

    ``iterations``: Picard sweeps, or the largest Newton iteration count over the levels;
    ``solves``: linear solves of this channel; ``change``: the last relative change.
    """

    m: np.ndarray
    s: np.ndarray
    iterations: int
    converged: bool
    change: float
    rows: list[dict] = field(default_factory=list)
    solves: int = 0


def where(image: int, channel: int, nonlinear: str, outer_iter: int, time_level: int) -> str:
    return (f"image {image}, channel {channel}, {nonlinear.capitalize()} iteration {outer_iter}, "
            f"time level {time_level}")


def residual_met(final_residual, rtol: float):
    """Whether reported true relative residuals (a scalar or an array) meet rtol; NaN does not."""
    return np.asarray(final_residual) <= rtol * RESIDUAL_SLACK


def check_solution(name: str, rtol: float, x: np.ndarray, final_residual: float, place: str) -> None:
    """SystemFailure unless the reported true relative residual is <= rtol (NaN fails too)."""
    if not residual_met(final_residual, rtol):
        if not np.all(np.isfinite(x)):
            raise SystemFailure(f"solver {name} returned non-finite values ({place})")
        raise SystemFailure(f"solver {name} reached relative residual {final_residual:.3e} > rtol {rtol:.1e} "
                          f"({place})")


def log_row(*, image: int, channel: int, outer_iter: int, time_level: int, solver: str, iterations: int,
            initial_residual: float, final_residual: float, projection_residual: float,
            assemble_seconds: float, solve_seconds: float, converged: bool = True) -> dict:
    """One solve-log row (LOG_COLUMNS; the column picard_iter holds the outer iteration)."""
    return {
        "image": image, "channel": channel, "picard_iter": outer_iter, "time_level": time_level,
        "solver": solver, "iterations": int(iterations), "initial_residual": float(initial_residual),
        "final_residual": float(final_residual), "projection_residual": float(projection_residual),
        "assemble_seconds": assemble_seconds, "solve_seconds": solve_seconds, "converged": converged,
        "startup_seconds": 0.0,
    }


def linear_step(solver: Solver, system, b: np.ndarray, *, image: int, channel: int, outer_iter: int,
                time_level: int, n_times: int, prev_outer: np.ndarray, prev_level: np.ndarray,
                nonlinear: str, prev_outer_prev_level: np.ndarray | None = None,
                prev_level2: np.ndarray | None = None, assemble_seconds: float = 0.0) -> tuple[np.ndarray, dict]:
    """Solve system x = b (the system's current values) with ``solver``; returns x and its log row.

    Raises SystemFailure if the solver's true relative residual misses its rtol.
    """
    t1 = time.perf_counter()
    ctx = SolveContext(image, channel, outer_iter, time_level, n_times, system, b, prev_outer, prev_level, nonlinear,
                       prev_outer_prev_level, prev_level2)
    x, stats = solver.solve(ctx)
    t2 = time.perf_counter()
    check_solution(solver.name, solver.rtol, x, stats.final_residual,
                   where(image, channel, nonlinear, outer_iter, time_level))
    row = log_row(image=image, channel=channel, outer_iter=outer_iter, time_level=time_level, solver=solver.name,
                  iterations=stats.iterations, initial_residual=stats.initial_residual,
                  final_residual=stats.final_residual, projection_residual=stats.projection_residual,
                  assemble_seconds=assemble_seconds, solve_seconds=t2 - t1)
    return x, row


def per_level(name: str, arr: np.ndarray | None, T: int, shape: tuple[int, int]) -> np.ndarray | None:
    """A (T, H, W) float64 field per time level, or None; ValueError naming ``name`` otherwise."""
    if arr is None:
        return None
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != (T, *shape):
        raise ValueError(f"{name}: expected one H x W field per time level, shape {(T, *shape)}, got {arr.shape}")
    return arr


def check_grid(m0: np.ndarray, times: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """m0 (H, W) finite, times increasing, g of equal length >= 2 (float64), or a ValueError."""
    m0 = np.asarray(m0, dtype=np.float64)
    if m0.ndim != 2 or not np.all(np.isfinite(m0)):
        raise ValueError(f"m0: expected a finite H x W array, got shape {m0.shape}")
    times = np.asarray(times, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if times.size < 2 or g.shape != times.shape or np.any(np.diff(times) <= 0):
        raise ValueError(f"times/g: expected increasing times and g of equal length >= 2, got {times.shape}, {g.shape}")
    return m0, times, g


@dataclass
class DriverInputs:
    """What both nonlinear drivers start from, checked: m^0, the time grid and its steps, the
    per-level drift and source (or None) and the FPSystem of this size."""

    m0: np.ndarray
    times: np.ndarray
    g: np.ndarray
    dts: np.ndarray
    drift: np.ndarray | None
    source: np.ndarray | None
    system: object


def driver_inputs(m0, times, g, drift, source, system) -> DriverInputs:
    """Check a driver's arguments and build (or check) its FPSystem."""
    from fpscore.fokker_planck.assembly import FPSystem

    m0, times, g = check_grid(m0, times, g)
    T, shape = times.size, m0.shape
    if system is None:
        system = FPSystem(*shape)
    elif system.shape != shape:
        raise ValueError(f"system is for {system.shape}, image channel is {shape}")
    return DriverInputs(m0, times, g, np.diff(times), per_level("drift", drift, T, shape),
                        per_level("source", source, T, shape), system)


# ---- the solve log in memory -----------------------------------------------------------------------
_INT_COLUMNS = ("image", "channel", "picard_iter", "time_level", "iterations", "solves", "max_iterations")


class SolveLog:
    """The solve log of a ``compute_scores`` call in memory, column by column: numpy arrays of
    LOG_COLUMNS, one entry per linear solve (whatever ``scores.solve_log`` writes: ``levels``
    aggregates them per image, channel and time level). Iterating gives the rows as dicts in
    LOG_COLUMNS order (Python scalars), ``log[i]`` one row and ``log[a:b]`` a list of them,
    ``frame()`` a DataFrame. ``part`` numbers the pieces a log was concatenated from (the
    projection's seed solves, then the set): levels are aggregated within a piece."""

    def __init__(self, columns: dict | None = None, part: np.ndarray | None = None):
        from fpscore.solvers.base import LOG_COLUMNS

        columns = columns or {}
        n = len(next(iter(columns.values()))) if columns else 0
        self.columns = {}
        for key in LOG_COLUMNS:
            value = columns.get(key)
            if value is None:
                value = _empty_column(key, n)
            elif key == "solver":
                value = np.asarray(value, dtype=object)
            else:
                value = np.asarray(value, dtype=_dtype(key))
            if value.shape != (n,):
                raise ValueError(f"solve log column {key!r}: expected {n} entries, got shape {value.shape}")
            self.columns[key] = value
        self.part = np.zeros(n, dtype=np.int64) if part is None else np.asarray(part, dtype=np.int64)

    @classmethod
    def from_rows(cls, rows) -> "SolveLog":
        """A log from row dicts (``log_row``); a SolveLog is returned as it is."""
        from fpscore.solvers.base import LOG_COLUMNS

        if isinstance(rows, SolveLog):
            return rows
        rows = list(rows)
        return cls({key: [row.get(key, _missing(key)) for row in rows] for key in LOG_COLUMNS})

    @classmethod
    def concat(cls, logs) -> "SolveLog":
        """One log of several (each becomes its own ``part``)."""
        logs = [cls.from_rows(log) for log in logs]
        logs = [log for log in logs if len(log)] or [cls()]
        columns = {key: np.concatenate([log.columns[key] for log in logs]) for key in logs[0].columns}
        parts, offset = [], 0
        for log in logs:
            parts.append(log.part + offset)
            offset = int(parts[-1].max()) + 1 if len(log) else offset
        return cls(columns, np.concatenate(parts))

    def __len__(self) -> int:
        return self.part.size

    def _row(self, i: int) -> dict:
        return {key: _scalar(col[i]) for key, col in self.columns.items()}

    def __iter__(self):
        lists = [col.tolist() for col in self.columns.values()]
        keys = list(self.columns)
        return (dict(zip(keys, values)) for values in zip(*lists))

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self._row(i) for i in range(*item.indices(len(self)))]
        return self._row(range(len(self))[item])

    def frame(self):
        """The rows as a pandas DataFrame (LOG_COLUMNS)."""
        import pandas as pd

        return pd.DataFrame({key: col for key, col in self.columns.items()})

    def levels(self) -> dict[str, np.ndarray]:
        """The rows aggregated per (part, image, channel, time level) in LEVEL_COLUMNS, in the order of
        (part, image, channel, time level): outer iterations the largest, solves counted, Krylov
        iterations summed and their largest, the worst final residual (NaN if any is), seconds
        summed, converged only if every solve of the level is."""
        from fpscore.solvers.base import LEVEL_COLUMNS

        c = self.columns
        if len(self) == 0:
            return {key: _empty_column(key, 0) for key in LEVEL_COLUMNS}
        order = np.lexsort((c["time_level"], c["channel"], c["image"], self.part))
        keys = np.stack([self.part[order], c["image"][order], c["channel"][order], c["time_level"][order]])
        start = np.flatnonzero(np.r_[True, np.any(keys[:, 1:] != keys[:, :-1], axis=0)])

        def reduce(ufunc, key):
            return ufunc.reduceat(c[key][order], start)

        return {
            "image": keys[1, start], "channel": keys[2, start], "time_level": keys[3, start],
            "solver": c["solver"][order][start],
            "picard_iter": reduce(np.maximum, "picard_iter"),
            "solves": np.diff(np.r_[start, len(self)]),
            "iterations": reduce(np.add, "iterations"),
            "max_iterations": reduce(np.maximum, "iterations"),
            "final_residual": reduce(np.maximum, "final_residual"),
            "assemble_seconds": reduce(np.add, "assemble_seconds"),
            "solve_seconds": reduce(np.add, "solve_seconds"),
            "converged": reduce(np.logical_and, "converged"),
            "startup_seconds": reduce(np.add, "startup_seconds"),
        }

    def table(self, kind: str) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
        """(columns, arrays) of the file ``kind`` (names.SOLVE_LOGS: "solve" = LOG_COLUMNS, "level")."""
        from fpscore.solvers.base import LOG_KINDS

        if kind not in LOG_KINDS:
            raise ValueError(f"solve_log: unknown value {kind!r}, expected one of {', '.join(LOG_KINDS)}")
        return LOG_KINDS[kind], (self.columns if kind == "solve" else self.levels())


def _dtype(key: str):
    if key in _INT_COLUMNS:
        return np.int64
    return bool if key == "converged" else np.float64


def _missing(key: str):
    return 0.0 if key == "startup_seconds" else (True if key == "converged" else np.nan)


def _empty_column(key: str, n: int) -> np.ndarray:
    if key == "solver":
        return np.full(n, "", dtype=object)
    if key == "startup_seconds":
        return np.zeros(n)
    if key == "converged":
        return np.ones(n, dtype=bool)
    return np.full(n, np.nan) if _dtype(key) is np.float64 else np.zeros(n, dtype=np.int64)


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


# ---- what a set reports once, at its end ------------------------------------------------------------
@dataclass
class Flag:
    """A channel flagged as not converged: where (image, channel, the first time level it failed at,
    0 for the whole Picard iteration) and why (``cause``; ``text``: the whole message where a
    per-channel driver wrote one, which names the place itself)."""

    image: int
    channel: int
    level: int
    cause: str
    text: str | None = None

    def describe(self) -> str:
        if self.text is not None:
            return self.text
        where = f"image {self.image}, channel {self.channel}" + (f", time level {self.level}" if self.level else "")
        return f"{where}: {self.cause}"


def flag_summary(flags: list[Flag], shown: int = 10) -> str:
    """The one warning of a set about its flagged channels: how many, which (image, channel) with the
    level and the cause (the first ``shown``), and where the details are."""
    listed = "; ".join(f.describe() for f in flags[:shown])
    more = f"; and {len(flags) - shown} more" if len(flags) > shown else ""
    return (f"{len(flags)} channel(s) flagged as not converged ({listed}{more}); each keeps its last finite "
            "iterate, its unconverged levels are converged=False in the solve log")


_PROCESS_START: float | None = None
_IMPORTED = time.monotonic()


def process_seconds() -> float:
    """Seconds since this process started (Linux: /proc/self/stat; elsewhere since fpscore's import)."""
    import os

    global _PROCESS_START
    if _PROCESS_START is None:
        try:
            ticks = os.sysconf("SC_CLK_TCK")
            with open("/proc/self/stat") as f:
                start = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
            with open("/proc/uptime") as f:
                uptime = float(f.read().split()[0])
            _PROCESS_START = time.monotonic() - (uptime - start)
        except (OSError, ValueError, IndexError):
            _PROCESS_START = _IMPORTED
    return time.monotonic() - _PROCESS_START


_STARTUP_COUNTED = False


def startup_seconds(load_seconds: float) -> float:
    """The start-up a ``compute_scores`` call logs: on the first call of a process, the process's age
    once its solver is loaded (interpreter, imports, reading the images, compiled kernels: what a
    shard job pays once); on later calls the seconds of that call's ``solver.load()``."""
    global _STARTUP_COUNTED
    if _STARTUP_COUNTED:
        return load_seconds
    _STARTUP_COUNTED = True
    return process_seconds()

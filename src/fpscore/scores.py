"""Score pre-computation over a set of images (METHOD.md §4-5): m and s for every
image channel, with one solver for the whole set and one solve-log row per
linear solve."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace

import numpy as np
from tqdm.auto import tqdm

from fpscore.data import check_images, read_images  # noqa: F401  (read_images: the one images.npz reader)
from fpscore.fileio import atomic_outputs
from fpscore.fokker_planck.assembly import FPSystem
from fpscore.fokker_planck.kde import initial_log_density
from fpscore.fokker_planck.params import NONLINEAR, FPParams
from fpscore.fokker_planck.picard import solve_channel
from fpscore.fokker_planck.scheme import validity
from fpscore.solvers.base import LOG_COLUMNS, Solver


@dataclass
class ScoreSet:
    """m and scores (N, C, T, H, W), the time grid and g(t_n), outer iterations (Picard
    sweeps, or the most Newton iterations at any level), convergence and linear solves
    per (image, channel), the solve log (rows of LOG_COLUMNS) and the validity per channel
    (``scheme.validity``): ``within_bound`` (m stayed within the maximum-principle bound),
    ``nu_active`` (share of pixel-levels with artificial diffusion) and ``valid`` = converged
    and within the bound: the channels a method may learn from."""

    m: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    g: np.ndarray
    picard_iterations: np.ndarray
    converged: np.ndarray
    log: list[dict]
    solves: np.ndarray | None = None
    within_bound: np.ndarray | None = None
    nu_active: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        return self.converged & self.within_bound


def _with_validity(result: ScoreSet, params: FPParams, m: np.ndarray, s: np.ndarray) -> ScoreSet:
    """``result`` with the validity of its channels, computed from float64 m and s."""
    check = validity(m, s, params.dh, params.scheme, params.boundary)
    result.within_bound, result.nu_active = check.within_bound, check.nu_active
    return result


def validate_images(images) -> np.ndarray:
    """(N, C, H, H) finite values in [0, 1] as float64 (``fpscore.data.check_images``)."""
    return check_images(images).astype(np.float64)


def channel_driver(nonlinear: str):
    """The per-channel driver of ``nonlinear`` ("picard": Algorithm 1, "newton": §5b)."""
    if nonlinear == "picard":
        return solve_channel
    if nonlinear == "newton":
        from fpscore.fokker_planck.newton import solve_channel_newton

        return solve_channel_newton
    raise ValueError(f"nonlinear: unknown driver {nonlinear!r}; expected one of {', '.join(NONLINEAR)}")


def prepare_solver(images, params: FPParams, solver: Solver) -> list[dict]:
    """The solver's work before the set: solve the images of ``solver.seed_request`` with
    its recording solver (this driver, ``params.nonlinear``), then ``solver.build_prepared``;
    returns the log rows of those solves ([] when the solver asks for none)."""
    imgs = validate_images(images)
    request = solver.seed_request(imgs)
    if request is None:
        return []
    indices, recorder = request
    indices = np.asarray(indices, dtype=int)
    with recorder:
        result = compute_scores(imgs[indices], params, recorder, progress=False, image_indices=indices)
    solver.build_prepared(recorder)
    return result.log


def compute_scores(images, params: FPParams, solver: Solver, *, progress: bool = True,
                   image_indices=None, dtype=np.float64, nonlinear: str | None = None) -> ScoreSet:
    """m and s of every channel of every image (N, C, H, H) with ``solver``.

    The nonlinear driver is ``params.nonlinear`` (``nonlinear`` overrides it): Picard
    sweeps (Algorithm 1) or per-level Newton (§5b). ``prepare_solver`` runs first (its
    log rows lead the log). ``image_indices`` labels the images in the log and solve
    contexts (default 0..N-1; the projection's seeds keep their indices in the full set).
    ``dtype`` of the returned m and scores (the solves are float64 throughout). A solver
    with ``solve_set`` (the batched engine) solves all channels at once instead.
    """
    if nonlinear is not None:
        params = replace(params, nonlinear=nonlinear)
    imgs = validate_images(images)
    N, C, H, W = imgs.shape
    labels = np.arange(N) if image_indices is None else np.asarray(image_indices, dtype=int)
    if labels.shape != (N,):
        raise ValueError(f"image_indices: expected {N} labels, got shape {labels.shape}")
    times, g = params.times(), params.g()
    T = times.size
    log = prepare_solver(imgs, params, solver)
    if hasattr(solver, "solve_set"):
        res = solver.solve_set(imgs, params, labels, progress=progress)
        result = ScoreSet(m=res.m.astype(dtype, copy=False), scores=res.s.astype(dtype, copy=False), times=times,
                          g=g, picard_iterations=res.iterations, converged=res.converged, log=log + res.rows,
                          solves=res.solves)
        return _with_validity(result, params, res.m, res.s)
    drive = channel_driver(params.nonlinear)
    stopping = (dict(tol=params.picard_tol, max_iter=params.picard_max_iter) if params.nonlinear == "picard"
                else dict(tol=params.newton_tol, max_iter=params.newton_max_iter, stop=params.newton_stop,
                          monotone=params.newton_monotone))
    m = np.empty((N, C, T, H, W), dtype=dtype)
    s = np.empty_like(m)
    iters = np.zeros((N, C), dtype=int)
    solves = np.zeros((N, C), dtype=int)
    conv = np.zeros((N, C), dtype=bool)
    within = np.zeros((N, C), dtype=bool)
    nu_active = np.zeros((N, C))
    system = FPSystem(H, W)
    try:
        for a in tqdm(range(N), desc=f"scores ({solver.name})", unit="image", disable=not progress):
            for c in range(C):
                m0 = initial_log_density(imgs[a, c], bins=params.kde_bins, floor=params.kde_floor)
                res = drive(m0, times, g, params.dh, solver, **stopping, scheme=params.scheme,
                            boundary=params.boundary, system=system, image=int(labels[a]), channel=c)
                m[a, c], s[a, c] = res.m, res.s
                check = validity(res.m, res.s, params.dh, params.scheme, params.boundary)
                within[a, c], nu_active[a, c] = check.within_bound, check.nu_active
                iters[a, c], conv[a, c], solves[a, c] = res.iterations, res.converged, res.solves
                log.extend(res.rows)
    finally:
        system.close()
    return ScoreSet(m=m, scores=s, times=times, g=g, picard_iterations=iters, converged=conv, log=log,
                    solves=solves, within_bound=within, nu_active=nu_active)


# ---- files -------------------------------------------------------------------------------------
SCORE_KEYS = ("m", "scores", "times", "g", "names", "params", "picard_iterations", "converged", "within_bound",
              "nu_active", "valid")


def write_npz(path, arrays: dict) -> None:
    """Write arrays to an uncompressed .npz atomically, byte-reproducibly (fixed zip
    timestamps), so equal contents give equal files."""
    with atomic_outputs(path) as (tmp,):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def write_log(path, rows: list[dict]) -> None:
    """Write the solve log (LOG_COLUMNS, one row per linear solve) as CSV, atomically; missing and NaN
    values are empty fields, as pandas writes them (the csv module: no pandas import in score jobs)."""
    import csv
    import math

    def cell(value):
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value

    with atomic_outputs(path) as (tmp,):
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(LOG_COLUMNS)
            writer.writerows([cell(row.get(key)) for key in LOG_COLUMNS] for row in rows)


def merge_logs(paths, out) -> int:
    """Concatenate solve logs (CSV with the LOG_COLUMNS header) into ``out``, atomically, a block of
    lines in memory at a time (a 50,000-image set has millions of rows); returns the row count. A file
    that cannot be read, has another header or a row of the wrong length is a ValueError naming it."""
    rows = 0
    with atomic_outputs(out) as (tmp,):
        with open(tmp, "w", newline="") as f:
            f.write(",".join(LOG_COLUMNS) + "\n")
            for path in paths:
                rows += _append_log(path, f)
    return rows


_LOG_BLOCK = 1 << 24  # bytes of whole lines copied at a time


def _append_log(path, out) -> int:
    """Append the rows of one solve log to the open file ``out``; returns their count. Blocks of
    plain rows (no quotes, one comma fewer than LOG_COLUMNS in every line) are copied as they
    are, bytes for bytes; any other block is parsed by the csv module, which names a bad line."""
    import csv

    commas = len(LOG_COLUMNS) - 1
    rows, lines_read = 0, 1  # rows written; file lines read, the header included
    try:
        with open(path) as src:  # universal newlines: a CRLF file's rows are copied with LF
            header = next(csv.reader([src.readline()]), None)
            if header != list(LOG_COLUMNS):
                raise ValueError(f"merge: solve log {path} has columns {header}, expected {list(LOG_COLUMNS)}")
            while lines := src.readlines(_LOG_BLOCK):
                if not lines[-1].endswith("\n"):
                    lines[-1] += "\n"
                if all(line.count(",") == commas for line in lines) and not any('"' in line for line in lines):
                    out.writelines(lines)
                    rows += len(lines)
                else:
                    rows += _append_parsed(path, lines, lines_read + 1, out)
                lines_read += len(lines)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"merge: cannot read solve log {path}: {err}") from None
    return rows


def _append_parsed(path, lines: list[str], first_line: int, out) -> int:
    """Append CSV ``lines`` (file lines ``first_line``...) of ``path`` through the csv module and
    return the rows written: a row of the wrong length is a ValueError naming the file and line."""
    import csv

    reader = csv.reader(lines)
    writer = csv.writer(out, lineterminator="\n")
    rows = 0
    for rows, row in enumerate(reader, 1):
        if len(row) != len(LOG_COLUMNS):
            raise ValueError(f"merge: solve log {path}, line {first_line + reader.line_num - 1}: {len(row)} "
                             f"fields, expected {len(LOG_COLUMNS)}")
        writer.writerow(row)
    return rows


def score_arrays(result: ScoreSet, names, params_json: str, indices=None) -> dict:
    """The contents of a scores file (float32 m and scores); ``indices`` marks a shard."""
    arrays = {
        "m": result.m.astype(np.float32), "scores": result.scores.astype(np.float32),
        "times": result.times, "g": result.g, "names": np.asarray(names).astype(str),
        "params": np.array(params_json), "picard_iterations": result.picard_iterations,
        "converged": result.converged, "within_bound": result.within_bound, "nu_active": result.nu_active,
        "valid": result.valid,
    }
    if indices is not None:
        arrays["indices"] = np.asarray(indices, dtype=np.int64)
    return arrays



"""Score pre-computation over a set of images (METHOD.md §4-5): m and s for every
image channel, with one solver for the whole set; its solve log (``step.SolveLog``, one entry per
linear solve in memory) is written with one row per time level of a channel or per linear solve
(``scores.solve_log``)."""
from __future__ import annotations

import re
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from fpscore.data import check_images, read_images  # noqa: F401  (read_images: the one images.npz reader)
from fpscore.fileio import atomic_outputs
from fpscore.fokker_planck.params import NONLINEAR, FPParams
from fpscore.fokker_planck.scheme import validity
from fpscore.fokker_planck.step import Flag, SolveLog, flag_summary, startup_seconds
from fpscore.solvers.base import LOG_KINDS, Solver


@dataclass
class ScoreSet:
    """m and scores (N, C, T, H, W), the time grid and g(t_n), outer iterations (Picard
    sweeps, or the most Newton iterations at any level), convergence and linear solves
    per (image, channel), the solve log (``step.SolveLog``: one entry per linear solve, the
    first with the start-up seconds), the flagged channels (``step.Flag``) and the validity per channel
    (``scheme.validity``): ``within_bound`` (m stayed within the maximum-principle bound),
    ``nu_active`` (share of pixel-levels with artificial diffusion) and ``valid`` = converged
    and within the bound: the channels a method may learn from."""

    m: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    g: np.ndarray
    picard_iterations: np.ndarray
    converged: np.ndarray
    log: SolveLog
    solves: np.ndarray | None = None
    within_bound: np.ndarray | None = None
    nu_active: np.ndarray | None = None
    flags: list | None = None

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
        from fpscore.fokker_planck.picard import solve_channel

        return solve_channel
    if nonlinear == "newton":
        from fpscore.fokker_planck.newton import solve_channel_newton

        return solve_channel_newton
    raise ValueError(f"nonlinear: unknown driver {nonlinear!r}; expected one of {', '.join(NONLINEAR)}")


def prepare_solver(images, params: FPParams, solver: Solver) -> SolveLog:
    """The solver's work before the set: solve the images of ``solver.seed_request`` with
    its recording solver (this driver, ``params.nonlinear``), then ``solver.build_prepared``;
    returns the log of those solves (empty when the solver asks for none)."""
    imgs = validate_images(images)
    request = solver.seed_request(imgs)
    if request is None:
        return SolveLog()
    indices, recorder = request
    indices = np.asarray(indices, dtype=int)
    with recorder:
        result = compute_scores(imgs[indices], params, recorder, progress=False, image_indices=indices)
    solver.build_prepared(recorder)
    return result.log


def compute_scores(images, params: FPParams, solver: Solver, *, progress: bool = True,
                   image_indices=None, dtype=np.float64, nonlinear: str | None = None,
                   out: dict | None = None) -> ScoreSet:
    """m and s of every channel of every image (N, C, H, H) with ``solver``.

    The nonlinear driver is ``params.nonlinear`` (``nonlinear`` overrides it): Picard
    sweeps (Algorithm 1) or per-level Newton (§5b). ``solver.load()`` runs first (its one-time
    costs, logged as start-up: ``step.startup_seconds``), then ``prepare_solver`` (its log
    entries lead the log). ``image_indices`` labels the images in the log and solve
    contexts (default 0..N-1; the projection's seeds keep their indices in the full set).
    ``dtype`` of the returned m and scores (the solves are float64 throughout). A solver
    with ``solve_set`` (the batched engine) solves all channels at once instead. Channels
    flagged as not converged are reported once, at the end: one RuntimeWarning (``step.flag_summary``).
    ``out``: {"m": array, "scores": array} (N, C, T, H, W) of ``dtype`` to write m and the scores into
    (e.g. ``NpzInPlace.arrays``: the score file itself); the ScoreSet then holds them.
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
    t0 = time.perf_counter()
    solver.load()
    startup = startup_seconds(time.perf_counter() - t0)
    prepared = prepare_solver(imgs, params, solver)
    if hasattr(solver, "solve_set"):
        res = solver.solve_set(imgs, params, labels, progress=progress, dtype=dtype, out=out)
        result = ScoreSet(m=res.m, scores=res.s, times=times, g=g, picard_iterations=res.iterations,
                          converged=res.converged, log=SolveLog.concat([prepared, res.log]), solves=res.solves,
                          within_bound=res.within_bound, nu_active=res.nu_active, flags=res.flags)
        if res.within_bound is None:
            result = _with_validity(result, params, res.m, res.s)
    else:
        result = _per_channel(imgs, params, solver, labels, progress, dtype, prepared, out)
    if len(result.log):
        result.log.columns["startup_seconds"][0] += startup
    if result.flags:
        warnings.warn(f"scores ({solver.name}): {flag_summary(result.flags)}", RuntimeWarning, stacklevel=2)
    return result


def output_arrays(out: dict | None, shape: tuple, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(m, scores) arrays of ``shape`` and ``dtype``: those of ``out`` (checked) or new ones."""
    if out is None:
        m = np.empty(shape, dtype=dtype)
        return m, np.empty_like(m)
    arrays = (out["m"], out["scores"])
    for key, a in zip(("m", "scores"), arrays):
        if a.shape != tuple(shape) or a.dtype != np.dtype(dtype) or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"out[{key!r}]: expected a writable C-ordered {np.dtype(dtype)} array of shape "
                             f"{tuple(shape)}, got {a.dtype} {a.shape}")
    return arrays


_FLAG_MESSAGE = re.compile(r"^(Newton|Picard) iteration (did not converge|broke down)")


def _per_channel(imgs, params, solver, labels, progress, dtype, prepared: SolveLog, out=None) -> ScoreSet:
    """compute_scores with a per-channel driver: channel by channel; a flagged channel's warnings
    become its ``Flag`` (the first one's message, its first unconverged level); other warnings pass.
    (The per-channel drivers, the CSR assembly and scipy.sparse are imported here: a batched score job
    never loads them.)"""
    from tqdm.auto import tqdm

    from fpscore.fokker_planck.assembly import FPSystem
    from fpscore.fokker_planck.kde import initial_log_density
    N, C, H, W = imgs.shape
    times, g = params.times(), params.g()
    T = times.size
    drive = channel_driver(params.nonlinear)
    stopping = (dict(tol=params.picard_tol, max_iter=params.picard_max_iter) if params.nonlinear == "picard"
                else dict(tol=params.newton_tol, max_iter=params.newton_max_iter, stop=params.newton_stop,
                          monotone=params.newton_monotone))
    m, s = output_arrays(out, (N, C, T, H, W), dtype)
    iters = np.zeros((N, C), dtype=int)
    solves = np.zeros((N, C), dtype=int)
    conv = np.zeros((N, C), dtype=bool)
    within = np.zeros((N, C), dtype=bool)
    nu_active = np.zeros((N, C))
    rows: list[dict] = []
    flags: list[Flag] = []
    system = FPSystem(H, W)
    try:
        for a in tqdm(range(N), desc=f"scores ({solver.name})", unit="image", disable=not progress):
            for c in range(C):
                m0 = initial_log_density(imgs[a, c], bins=params.kde_bins, floor=params.kde_floor)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    res = drive(m0, times, g, params.dh, solver, **stopping, scheme=params.scheme,
                                boundary=params.boundary, system=system, image=int(labels[a]), channel=c)
                mine = [w for w in caught if issubclass(w.category, RuntimeWarning)
                        and _FLAG_MESSAGE.match(str(w.message))] if not res.converged else []
                for w in caught:
                    if not any(w is x for x in mine):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                if not res.converged:
                    bad = [row["time_level"] for row in res.rows if not row["converged"]]
                    level = min(bad) if bad and params.nonlinear == "newton" else 0
                    flags.append(Flag(int(labels[a]), c, level, "did not converge",
                                      text=str(mine[0].message) if mine else None))
                m[a, c], s[a, c] = res.m, res.s
                check = validity(res.m, res.s, params.dh, params.scheme, params.boundary)
                within[a, c], nu_active[a, c] = check.within_bound, check.nu_active
                iters[a, c], conv[a, c], solves[a, c] = res.iterations, res.converged, res.solves
                rows.extend(res.rows)
    finally:
        system.close()
    return ScoreSet(m=m, scores=s, times=times, g=g, picard_iterations=iters, converged=conv,
                    log=SolveLog.concat([prepared, SolveLog.from_rows(rows)]), solves=solves, within_bound=within,
                    nu_active=nu_active, flags=flags)


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
                    _write_npy(member, np.asanyarray(value))


class NpzInPlace:
    """A stored .npz (zip64) whose large members are filled in place: ``arrays[key]`` are writable views of
    the file itself (memory-mapped), so an engine computes straight into the file's pages (no copy into
    the file afterwards: a 1,000-image shard's m and scores are 490 MB); ``finish(small)`` then adds the
    other members, the CRCs and the central directory. A file np.load and zipfile read as any .npz.
    Use ``npz_in_place`` (whole or not at all)."""

    _DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, 00:00 (as write_npz: byte-reproducible)

    def __init__(self, path, large: dict):
        import mmap

        self.path = path
        self._fh = open(path, "w+b")
        self._members: list[tuple[bytes, int, int, int]] = []  # name, header offset, size, crc
        self._spans: list[tuple[str, bytes, int, int]] = []  # key, npy header, data offset, data bytes
        offset = 0
        for key, (shape, dtype) in large.items():
            dtype = np.dtype(dtype)
            header = self._npy_header(tuple(shape), dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            name = f"{key}.npy".encode()
            size = len(header) + nbytes
            self._fh.seek(offset)
            self._fh.write(self._local(name, 0, size) + header)
            self._members.append((name, offset, size, 0))
            data = offset + 30 + len(name) + 20 + len(header)
            self._spans.append((key, header, data, nbytes))
            offset = data + nbytes
        self._fh.truncate(offset)
        self._end = offset
        self._map = mmap.mmap(self._fh.fileno(), offset) if offset else None
        self.arrays = {key: np.ndarray(shape, dtype=np.dtype(dtype), buffer=self._map, offset=span[2])
                       for (key, (shape, dtype)), span in zip(large.items(), self._spans)}

    @staticmethod
    def _npy_header(shape: tuple, dtype: np.dtype) -> bytes:
        import io

        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                    "fortran_order": False, "shape": shape})
        return buf.getvalue()

    @staticmethod
    def _local(name: bytes, crc: int, size: int) -> bytes:
        import struct

        return (struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, NpzInPlace._DATE, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                            len(name), 20) + name + struct.pack("<HHQQ", 1, 16, size, size))

    def finish(self, small: dict) -> None:
        """The CRCs of the large members, the small members (np.lib.format), the central directory."""
        import io
        import struct
        import zlib

        self.arrays = {}
        for i, (key, header, data, nbytes) in enumerate(self._spans):
            with memoryview(self._map) as whole:
                crc = zlib.crc32(whole[data:data + nbytes], zlib.crc32(header))
            name, offset, size, _ = self._members[i]
            self._members[i] = (name, offset, size, crc)
            self._map[offset + 14:offset + 18] = struct.pack("<I", crc)
        self._release()
        self._fh.seek(self._end)
        for key, value in small.items():
            buf = io.BytesIO()
            _write_npy(buf, np.asanyarray(value))
            payload = buf.getvalue()
            name, crc = f"{key}.npy".encode(), zlib.crc32(payload)
            self._members.append((name, self._fh.tell(), len(payload), crc))
            self._fh.write(self._local(name, crc, len(payload)) + payload)
        start = self._fh.tell()
        for name, offset, size, crc in self._members:
            self._fh.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 45, 45, 0, 0, 0, self._DATE, crc,
                                       0xFFFFFFFF, 0xFFFFFFFF, len(name), 28, 0, 0, 0, 0o100644 << 16, 0xFFFFFFFF)
                           + name + struct.pack("<HHQQQ", 1, 24, size, size, offset))
        end = self._fh.tell()
        count = len(self._members)
        self._fh.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, end - start, start))
        self._fh.write(struct.pack("<IIQI", 0x07064B50, 0, end, 1))
        self._fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                                   min(end - start, 0xFFFFFFFF), 0xFFFFFFFF, 0))
        self._fh.close()

    def _release(self) -> None:
        """Unmap now where no view of the arrays is left; else the mapping goes with the last view (the file's
        pages are the same either way: what was written through it is in the file)."""
        if self._map is not None and not self._map.closed:
            try:
                self._map.close()
            except BufferError:
                pass

    def abort(self) -> None:
        self.arrays = {}
        self._release()
        self._fh.close()


@contextmanager
def npz_in_place(path, large: dict):
    """``NpzInPlace`` on a temporary sibling of ``path``, moved into place when the block ends with
    ``finish`` called, removed when it raises (``fileio.atomic_outputs``)."""
    with atomic_outputs(path) as (tmp,):
        npz = NpzInPlace(tmp, large)
        try:
            yield npz
        except BaseException:
            npz.abort()
            raise
        if not npz._fh.closed:
            npz.abort()
            raise RuntimeError("npz_in_place: the block ended without finish()")


def _write_npy(fh, array: np.ndarray) -> None:
    """np.lib.format.write_array's bytes; a C-contiguous array of numbers is written from its own memory
    (no chunked copies: a 1,000-image shard's m and scores are 490 MB)."""
    if array.dtype.hasobject or not array.flags.c_contiguous or array.dtype.kind not in "biuf":
        np.lib.format.write_array(fh, array, allow_pickle=False)
        return
    np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
    fh.write(memoryview(array.reshape(-1)).cast("B"))


def write_log(path, log, kind: str = "solve") -> None:
    """Write the solve log (a ``step.SolveLog`` or row dicts) as CSV, atomically: ``kind`` "solve" one row
    per linear solve (LOG_COLUMNS), "level" one per image, channel and time level (LEVEL_COLUMNS,
    ``SolveLog.levels``); names.SOLVE_LOGS. Missing and NaN values are empty fields, as pandas writes
    them; floats as Python writes them (shortest round trip). Column by column: no per-row Python
    objects (a 1,000-image shard has 57,000 level rows)."""
    import gc

    columns, arrays = SolveLog.from_rows(log).table(kind)
    enabled = gc.isenabled()
    gc.disable()  # the strings and rows are no cycles: collections would only scan them
    try:
        cells = [_cells(arrays[key]) for key in columns]
        with atomic_outputs(path) as (tmp,):
            with open(tmp, "w", newline="") as f:
                f.write(",".join(columns) + "\n")
                f.writelines(",".join(row) + "\n" for row in zip(*cells))
    finally:
        if enabled:
            gc.enable()


def _cells(values: np.ndarray) -> list[str]:
    """CSV fields of one column (as the csv module writes them: True/False, integers, repr of floats,
    empty for NaN and None, quoted where needed)."""
    if values.dtype == object:
        out = ["" if v is None else str(v) for v in values.tolist()]
        if any(("," in v) or ('"' in v) or ("\n" in v) for v in out):
            import csv
            import io

            def quote(v):
                buf = io.StringIO()
                csv.writer(buf, lineterminator="").writerow([v])
                return buf.getvalue()

            out = [quote(v) for v in out]
        return out
    if values.dtype == bool or np.issubdtype(values.dtype, np.integer):
        return list(map(str, values.tolist()))
    return ["" if v != v else repr(v) for v in values.tolist()]


def log_kind(header) -> str | None:
    """The kind of a solve log (names.SOLVE_LOGS) from its header, None for another header."""
    for kind, columns in LOG_KINDS.items():
        if list(header or []) == list(columns):
            return kind
    return None


def merge_logs(paths, out, kind: str | None = None) -> int:
    """Concatenate solve logs of one kind (CSV, the header of LOG_COLUMNS or LEVEL_COLUMNS) into ``out``,
    atomically, a block of lines in memory at a time (a 50,000-image set has millions of rows);
    returns the row count. ``kind``: what the logs must be (default: the first one's; with no logs,
    the schema's ``scores.solve_log``). A file that cannot be read, has another header or a row of the
    wrong length is a ValueError naming it."""
    import csv

    from fpscore.config import schema_default

    paths = list(paths)
    if kind is None and paths:
        try:
            with open(paths[0]) as f:
                kind = log_kind(next(csv.reader([f.readline()]), None))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"merge: cannot read solve log {paths[0]}: {err}") from None
        if kind is None:
            kind = "solve"  # _append_log names the file and both headers
    kind = kind or schema_default("scores.solve_log")
    columns = LOG_KINDS[kind]
    rows = 0
    with atomic_outputs(out) as (tmp,):
        with open(tmp, "w", newline="") as f:
            f.write(",".join(columns) + "\n")
            for path in paths:
                rows += _append_log(path, f, columns)
    return rows


_LOG_BLOCK = 1 << 24  # bytes of whole lines copied at a time


def _append_log(path, out, columns) -> int:
    """Append the rows of one solve log to the open file ``out``; returns their count. Blocks of
    plain rows (no quotes, one comma fewer than ``columns`` in every line) are copied as they
    are, bytes for bytes; any other block is parsed by the csv module, which names a bad line."""
    import csv

    commas = len(columns) - 1
    rows, lines_read = 0, 1  # rows written; file lines read, the header included
    try:
        with open(path) as src:  # universal newlines: a CRLF file's rows are copied with LF
            header = next(csv.reader([src.readline()]), None)
            if header != list(columns):
                other = log_kind(header)
                raise ValueError(f"merge: solve log {path} has columns {header}, expected {list(columns)}"
                                 + (f" (it has one row per {'linear solve' if other == 'solve' else 'time level'}: "
                                    "every log of a merge must be of one kind, scores.solve_log)" if other else ""))
            while lines := src.readlines(_LOG_BLOCK):
                if not lines[-1].endswith("\n"):
                    lines[-1] += "\n"
                if all(line.count(",") == commas for line in lines) and not any('"' in line for line in lines):
                    out.writelines(lines)
                    rows += len(lines)
                else:
                    rows += _append_parsed(path, lines, lines_read + 1, out, columns)
                lines_read += len(lines)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"merge: cannot read solve log {path}: {err}") from None
    return rows


def _append_parsed(path, lines: list[str], first_line: int, out, columns) -> int:
    """Append CSV ``lines`` (file lines ``first_line``...) of ``path`` through the csv module and
    return the rows written: a row of the wrong length is a ValueError naming the file and line."""
    import csv

    reader = csv.reader(lines)
    writer = csv.writer(out, lineterminator="\n")
    rows = 0
    for rows, row in enumerate(reader, 1):
        if len(row) != len(columns):
            raise ValueError(f"merge: solve log {path}, line {first_line + reader.line_num - 1}: {len(row)} "
                             f"fields, expected {len(columns)}")
        writer.writerow(row)
    return rows


def score_arrays(result: ScoreSet, names, params_json: str, indices=None) -> dict:
    """The contents of a scores file (float32 m and scores); ``indices`` marks a shard."""
    arrays = {
        "m": result.m.astype(np.float32, copy=False), "scores": result.scores.astype(np.float32, copy=False),
        "times": result.times, "g": result.g, "names": np.asarray(names).astype(str),
        "params": np.array(params_json), "picard_iterations": result.picard_iterations,
        "converged": result.converged, "within_bound": result.within_bound, "nu_active": result.nu_active,
        "valid": result.valid,
    }
    if indices is not None:
        arrays["indices"] = np.asarray(indices, dtype=np.int64)
    return arrays



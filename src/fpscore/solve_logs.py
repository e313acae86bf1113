"""The solve log on disk: ``write_log`` writes a log (``fokker_planck.step.SolveLog``, in memory) as CSV,
one row per linear solve or per time level of a channel (``scores.solve_log``: names.SOLVE_LOGS);
``merge_logs`` concatenates the logs of a set's shards into one, streamed; ``log_kind`` tells the kind of a
log from its header. The tables read them with ``fpscore.logs.read_solve_logs``."""
from __future__ import annotations

import numpy as np

from fpscore.fileio import atomic_outputs
from fpscore.fokker_planck.step import SolveLog
from fpscore.solvers.base import LOG_KINDS


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

"""Readers of what the workflow steps wrote: solve logs, training summaries, metric CSVs.

Every reader names the file in its errors (a missing file is FileNotFoundError, a bad
one ValueError). The files: solve logs (``fpscore scores``, one row per time level of a channel or
per linear solve, ``scores.solve_log``),
training logs and summaries (``fpscore train``: train_log.csv, train_log.json), metric
rows (``fpscore ssim``, ``fpscore fid``) and the tables built from them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import pandas as pd


def read_csv(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV file as a DataFrame; FileNotFoundError naming ``what`` and the path when it is missing."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return pd.read_csv(path)


def concat_csv(paths: Iterable[str | Path], what: str) -> pd.DataFrame:
    """Several CSV files of the same columns, one after the other."""
    import pandas as pd

    paths = list(paths or [])
    if not paths:
        raise ValueError(f"no {what} files given")
    return pd.concat([read_csv(p, what) for p in paths], ignore_index=True)


def read_solve_logs(runs: Iterable[tuple[str | Path, str, int, str]], per_solve: bool = True) -> pd.DataFrame:
    """Concatenated solve logs, each (path, dataset, resolution, solver) labelled with its dataset,
    resolution and (where the log has no solver column) solver. ``per_solve``: every log must have
    one row per linear solve (T3, F7: a per-level log is a ValueError naming the option that writes
    them); else logs of either kind, each aggregated to one row per time level
    (``tables.per_level``: T2)."""
    import pandas as pd

    from fpscore.tables import per_level, require_per_solve

    frames = []
    for path, dataset, res, solver in runs:
        log = read_csv(path, "solve log")
        if "solver" not in log.columns:
            log["solver"] = solver
        if per_solve:
            require_per_solve(log, f"solve log {path}:")
        else:
            log = per_level(log)
        frames.append(log.assign(dataset=dataset, resolution=int(res)))
    if not frames:
        raise ValueError("no solve logs given")
    return pd.concat(frames, ignore_index=True)


def read_summary(path: str | Path) -> dict:
    """A training summary (train_log.json of ``fpscore train``)."""
    from fpscore.fileio import read_mapping

    return read_mapping(path, "training summary", json.loads, (json.JSONDecodeError,), "JSON")

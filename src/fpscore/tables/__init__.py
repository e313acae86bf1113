"""The paper's tables as pandas DataFrames, computed from the logs the workflow wrote.

One module per kind (``learning``: T1, T4; ``solvers``: T2, T3, score errors, F8's points;
``base``: captions). Pure functions: tidy DataFrames (or the dicts of training summaries) in, one DataFrame per
table out, and each table's caption (no file I/O: ``fpscore.logs`` reads the logs,
``fpscore.rendering`` writes CSV, Markdown and LaTeX, ``fpscore.cli.table`` joins them).
Columns named ``paper_*`` hold the paper's published values (Lau, Na, Wan 2025),
placed beside ours for comparison, never used in any computation.

Inputs (one row per ...):

* solve log (linear solve): the columns of ``fpscore.solvers.base.LOG_COLUMNS``
  plus ``dataset`` and ``resolution``; ``final_residual`` and
  ``projection_residual`` are relative (||b - A x|| / ||b||). T2 takes the other kind
  too, one row per image, channel and time level (``LEVEL_COLUMNS``, ``scores.solve_log:
  level``), and computes the same numbers from either (``per_level``); T3 and the
  projection's points need one row per linear solve.
* denoising runs (T1, run of one method): experiment, dataset, resolution,
  target_ssim, method (ours|ddpm, and dsm: the like-for-like denoising score
  matching baseline, where it was trained), reached (bool), train_seconds (training
  seconds to the target, or until the cap when not reached), precompute_seconds
  (assembly + solve seconds of the image's scores for ours, 0 for ddpm and dsm).
* budget metrics (T4, method of one budget experiment): experiment, dataset,
  resolution, budget_seconds, method (ours|ddpm[|dsm]), mean_ssim, fid (NaN when
  unavailable), fid_status ("ok" or "unavailable: <reason>"), and where ``fpscore fid``
  wrote them (``SET_METRICS``): kid, kid_std, n_generated, n_reference, fid_floor, kid_floor,
  n_floor, network.

T1 and T4 compare ours with DDPM; where the runs include dsm (in every experiment or
in none), dsm columns follow the DDPM ones, and without dsm the tables have no dsm
columns at all.
"""
from __future__ import annotations

from fpscore.tables.base import CAPTIONS, DSM_CAPTIONS, caption, require_columns
from fpscore.tables.learning import (PAPER_T1, PAPER_T4, SET_METRICS, SUMMARY_KEYS, budget_metrics, budget_run,
                                     denoise_run, speedup_text, t1_time_to_ssim, t4_budget)
from fpscore.tables.solvers import (PAPER_T2_REDUCTION, REFERENCE_SOLVER, is_per_level, outer_iterations, per_level,
                                    projection_vs_dissimilarity, require_per_solve, score_errors, stencil_nnz,
                                    t2_solvers, t3_systems)

__all__ = ["CAPTIONS", "DSM_CAPTIONS", "PAPER_T1", "PAPER_T2_REDUCTION", "PAPER_T4", "REFERENCE_SOLVER", "SET_METRICS",
           "SUMMARY_KEYS", "budget_metrics", "budget_run", "caption", "denoise_run", "is_per_level", "outer_iterations",
           "per_level", "projection_vs_dissimilarity", "require_columns", "require_per_solve", "score_errors",
           "speedup_text", "stencil_nnz", "t1_time_to_ssim", "t2_solvers", "t3_systems", "t4_budget"]

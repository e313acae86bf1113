"""What the tables share: each table's caption and the check of an input's columns."""
from __future__ import annotations

import pandas as pd

CAPTIONS = {
    "t1": "Time to the target SSIM (single-image denoising): ours with and without score pre-computation vs "
          "DDPM; paper_* columns are the paper's published values.",
    "t2": "Score pre-computation per solver: seconds, iterations, residuals, reduction vs spsolve "
          "(the paper reports 15.8-43.7%), score error vs spsolve.",
    "t3": "The linear systems: size, non-zeros, fixed-point iterations, subspace rank, projection residuals.",
    "t4": "Fixed training budget: mean SSIM to the closest training image, FID and KID (mean over subsets; "
          "kid_std their spread) against the training images, ours vs DDPM; n_generated vs n_reference: the "
          "images each FID/KID compares; fid_floor, kid_floor: one half of the training images against the "
          "other (n_floor), what real images score at that count; paper_* columns are the paper's published "
          "values.",
}
# Appended to the caption where the table has dsm columns (learn.dsm.train).
DSM_CAPTIONS = {
    "t1": " dsm: the like-for-like baseline (denoising score matching with ours' SDE, parameterisation and "
          "sampler; only the training targets differ); dsm_over_ours is its time over ours with "
          "pre-computation: what score embedding buys at equal preconditioning.",
    "t4": " dsm: the like-for-like baseline (denoising score matching with ours' SDE, parameterisation and "
          "sampler; only the training targets differ); dsm_ssim_difference is ours minus dsm.",
}


def caption(name: str, table: pd.DataFrame) -> str:
    """The caption of a table, with the dsm sentence where it has dsm columns."""
    has_dsm = any(str(c).startswith("dsm_") for c in table.columns)
    return CAPTIONS[name] + (DSM_CAPTIONS.get(name, "") if has_dsm else "")


def require_columns(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")

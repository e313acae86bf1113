"""Image-quality metrics: SSIM against the closest reference (METHOD.md section 10).

How a generated sample is brought to [0, 1] before scoring is a choice (``SSIM_MODES``):
``clip`` clips it (this project's), ``minmax`` min-max normalises each sample to [0, 1]
(the authors' code, METHOD.md section 8b). Every reported SSIM says which mode it used.
FID lives in :mod:`fpscore.fid`.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from fpscore.config import schema_default
from fpscore.names import SSIM_MODES

SSIM_MODE = schema_default("evaluate.ssim_mode")  # the default of every function here


def to_unit_range(samples: np.ndarray, mode: str = SSIM_MODE) -> np.ndarray:
    """Samples N x ... as float64 in [0, 1]: clipped, or each min-max normalised (a constant one becomes 0)."""
    samples = np.asarray(samples, dtype=np.float64)
    if mode == "clip":
        return np.clip(samples, 0.0, 1.0)
    if mode != "minmax":
        raise ValueError(f"ssim_mode: expected one of {SSIM_MODES}, got {mode!r}")
    flat = samples.reshape(len(samples), -1)
    lo, span = flat.min(axis=1, keepdims=True), np.ptp(flat, axis=1, keepdims=True)
    return np.where(span > 0, (flat - lo) / np.where(span > 0, span, 1.0), 0.0).reshape(samples.shape)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two C x H x W images in [0, 1] (data_range 1, channels last axis)."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"ssim expects two C x H x W arrays of equal shape, got {a.shape} and {b.shape}")
    win = min(7, a.shape[1], a.shape[2])
    win -= 1 - win % 2  # odd window no larger than the image
    return float(structural_similarity(np.moveaxis(a, 0, -1), np.moveaxis(b, 0, -1), data_range=1.0,
                                       channel_axis=-1, win_size=win))


def ssim_to_closest(samples: np.ndarray, references: np.ndarray, mode: str = SSIM_MODE) -> np.ndarray:
    """Per sample, the SSIM against its closest reference image (highest SSIM).

    samples: S x C x H x W, references: R x C x H x W in [0, 1]. Samples are brought to
    [0, 1] first as ``mode`` says (clip | minmax, see the module docstring).
    """
    samples = to_unit_range(samples, mode)
    references = np.asarray(references, dtype=np.float64)
    if samples.ndim != 4 or references.ndim != 4 or samples.shape[1:] != references.shape[1:]:
        raise ValueError(f"samples {samples.shape} and references {references.shape} must be "
                         "N x C x H x W with equal C, H, W")
    return np.array([max(ssim(s, r) for r in references) for s in samples])


def mean_ssim_to_closest(samples: np.ndarray, references: np.ndarray, mode: str = SSIM_MODE) -> float:
    """Mean over samples of the SSIM against the closest reference (the paper's metric)."""
    return float(ssim_to_closest(samples, references, mode).mean())


def ssim_to_own(samples: np.ndarray, references: np.ndarray, mode: str = SSIM_MODE) -> np.ndarray:
    """Per sample i, the SSIM against references[i] (a denoised copy against its own source image)."""
    samples = to_unit_range(samples, mode)
    references = np.asarray(references, dtype=np.float64)
    if samples.shape != references.shape or samples.ndim != 4:
        raise ValueError(f"samples {samples.shape} and references {references.shape} must be N x C x H x W "
                         "of equal shape")
    return np.array([ssim(s, r) for s, r in zip(samples, references)])

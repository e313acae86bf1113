"""Image-quality metrics: SSIM against the closest reference (METHOD.md section 10).

FID lives in :mod:`fpscore.fid`.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two C x H x W images in [0, 1] (data_range 1, channels last axis)."""
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"ssim expects two C x H x W arrays of equal shape, got {a.shape} and {b.shape}")
    win = min(7, a.shape[1], a.shape[2])
    win -= 1 - win % 2  # odd window no larger than the image
    return float(structural_similarity(np.moveaxis(a, 0, -1), np.moveaxis(b, 0, -1), data_range=1.0,
                                       channel_axis=-1, win_size=win))


def ssim_to_closest(samples: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per sample, the SSIM against its closest reference image (highest SSIM).

    samples: S x C x H x W, references: R x C x H x W, both in [0, 1].
    Samples are clipped to [0, 1] first (generated images may overshoot).
    """
    samples = np.clip(np.asarray(samples, dtype=np.float64), 0.0, 1.0)
    references = np.asarray(references, dtype=np.float64)
    if samples.ndim != 4 or references.ndim != 4 or samples.shape[1:] != references.shape[1:]:
        raise ValueError(f"samples {samples.shape} and references {references.shape} must be "
                         "N x C x H x W with equal C, H, W")
    return np.array([max(ssim(s, r) for r in references) for s in samples])


def mean_ssim_to_closest(samples: np.ndarray, references: np.ndarray) -> float:
    """Mean over samples of the SSIM against the closest reference (the paper's metric)."""
    return float(ssim_to_closest(samples, references).mean())

"""Image-quality metrics: SSIM against the closest reference (METHOD.md section 10).

How a generated sample is brought to [0, 1] before scoring is a choice (``SSIM_MODES``):
``clip`` clips it (this project's), ``minmax`` min-max normalises each sample to [0, 1]
(the authors' code, METHOD.md section 8b). Every reported SSIM says which mode it used.
FID and KID live in :mod:`fpscore.fid`; ``memorisation`` measures how close samples are to
their nearest training image (pixel distances), which SSIM to the closest image rewards.
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


def nearest_neighbours(samples: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: (RMS pixel distance to the closest reference, to the second closest, index of the closest).

    samples S x C x H x W (clipped to [0, 1] first), references R x C x H x W in [0, 1]; R >= 2. A sample
    whose closest distance is far below the second closest is a near copy of one training image
    (``memorisation``).
    """
    s = np.clip(np.asarray(samples, np.float64), 0.0, 1.0).reshape(len(samples), -1)
    r = np.asarray(references, np.float64).reshape(len(references), -1)
    if s.shape[1] != r.shape[1] or len(r) < 2:
        raise ValueError(f"nearest_neighbours: samples {np.shape(samples)} and references {np.shape(references)} "
                         "must have equal C, H, W and at least 2 references")
    d2 = (s ** 2).sum(1)[:, None] + (r ** 2).sum(1)[None, :] - 2.0 * s @ r.T
    d = np.sqrt(np.clip(d2, 0.0, None) / s.shape[1])
    order = np.argsort(d, axis=1)
    rows = np.arange(len(s))
    return d[rows, order[:, 0]], d[rows, order[:, 1]], order[:, 0]


#: A sample is a near copy when its closest training image is this many times closer than the second
#: closest (the ratio test of Carlini et al. 2023, "Extracting training data from diffusion models", 1/3).
COPY_RATIO = 1.0 / 3.0


def memorisation(samples: np.ndarray, references: np.ndarray) -> dict:
    """How close samples are to the training images (RMS pixel distances; ``nearest_neighbours``):
    median and min distance to the closest training image, the training images' own median distance to
    their closest other image (the scale: a sample that is no closer than that is no copy), the fraction
    of samples with d1 < COPY_RATIO d2 (near copies) and how many distinct training images the samples
    are closest to."""
    d1, d2, idx = nearest_neighbours(samples, references)
    _, own2, _ = nearest_neighbours(references, references)  # each image's closest is itself: the second counts
    return {"nn_distance_median": float(np.median(d1)), "nn_distance_min": float(d1.min()),
            "train_nn_distance_median": float(np.median(own2)), "copy_fraction": float(np.mean(d1 < COPY_RATIO * d2)),
            "distinct_nearest": int(len(set(idx.tolist()))), "n_samples": int(len(d1))}

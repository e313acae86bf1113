"""Image conversions of the data step: to H x W x C floats in [0, 1], channel conversion, the central
square crop and the anti-aliased resize (scikit-image)."""
from __future__ import annotations

import numpy as np

from fpscore.data.base import DataError

RESIZE_METHOD = "skimage.transform.resize(order=1 bilinear, anti_aliasing=True, mode='reflect')"


def to_float_hwc(image: np.ndarray, what: str) -> np.ndarray:
    """H x W x C float64 in [0, 1] from a grey, RGB or RGBA array of bool, uint or float."""
    from skimage.color import rgba2rgb
    from skimage.util import img_as_float

    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.float64)
    elif image.dtype.kind in "ui":
        image = img_as_float(image)
    else:
        image = image.astype(np.float64)
        if image.size and (not np.isfinite(image).all() or image.min() < 0 or image.max() > 1):
            raise DataError(f"{what}: float pixel values must lie in [0, 1], "
                            f"got range [{np.nanmin(image)}, {np.nanmax(image)}]")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DataError(f"{what}: expected a grey, RGB or RGBA image, got an array of shape {image.shape}")
    if image.shape[2] == 4:  # composite on white, as a viewer shows it
        image = rgba2rgb(image)
    return image


def convert_channels(image: np.ndarray, channels: int) -> tuple[np.ndarray, str]:
    """Convert H x W x C to `channels` (1 or 3): grey is replicated, RGB becomes Rec. 709 luminance."""
    from skimage.color import rgb2gray

    if channels not in (1, 3):
        raise DataError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    have = image.shape[2]
    if have == channels:
        return image, "none"
    if channels == 3:
        return np.repeat(image, 3, axis=2), "grey replicated to RGB"
    return rgb2gray(image)[:, :, None], "RGB to grey (Rec. 709 luminance, skimage.color.rgb2gray)"


def center_crop_square(image: np.ndarray, size: int = 0) -> np.ndarray:
    """The central size x size square (size 0: the largest square that fits)."""
    h, w = image.shape[:2]
    side = min(h, w) if not size else int(size)
    if side < 1 or side > min(h, w):
        raise DataError(f"crop = {size} does not fit an image of {h} x {w} pixels "
                        f"(expected 0 for the largest square, or 1..{min(h, w)})")
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def resize_square(image: np.ndarray, resolution: int) -> np.ndarray:
    """Resize a square H x H x C image to resolution x resolution x C (anti-aliased when shrinking)."""
    from skimage.transform import resize

    if image.shape[0] != image.shape[1]:
        raise DataError(f"resize_square expects a square image, got {image.shape[0]} x {image.shape[1]}")
    if image.shape[0] == resolution:
        return image
    out = resize(image, (resolution, resolution, image.shape[2]), order=1, mode="reflect",
                 anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0.0, 1.0)

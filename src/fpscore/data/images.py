"""images.npz, the file of the data step (images N x C x H x W float32 in [0, 1], names N): its one
writer and its one reader, for the whole project, with the check of an images array."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fpscore.fileio import atomic_outputs, npz_member_memmap, read_npz_arrays


def write_dataset(images: np.ndarray, names: np.ndarray, manifest: dict, out: str | Path,
                  manifest_path: str | Path) -> None:
    """Write images.npz (keys images, names) and manifest.json whole or not at all (temp files + os.replace)."""
    with atomic_outputs(out, manifest_path) as (tmp_images, tmp_manifest):
        with open(tmp_images, "wb") as f:
            np.savez(f, images=images, names=names)  # stored: shard jobs memory-map their rows
        Path(tmp_manifest).write_text(json.dumps(manifest, indent=1))


def check_images(images) -> np.ndarray:
    """``images`` if it is (N, C, H, H) finite real values in [0, 1] (dtype kept), else a ValueError
    saying what is wrong."""
    arr = np.asarray(images)
    if arr.ndim != 4 or 0 in arr.shape:
        raise ValueError(f"images: expected a non-empty array N x C x H x W, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"images: expected real numbers, got dtype {arr.dtype}")
    H, W = arr.shape[2:]
    if H != W:
        raise ValueError(f"images: expected square images (H == W; METHOD.md §4 pairs I_ij with I_ji), got {H} x {W}")
    bad = ~np.isfinite(arr)
    if bad.any():
        n = np.argwhere(bad)[0]
        raise ValueError(f"images: {int(bad.sum())} NaN/inf pixel value(s), first at image {n[0]}, "
                         f"channel {n[1]}, pixel ({n[2]}, {n[3]})")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"images: expected pixel values in [0, 1], got range [{lo:.6g}, {hi:.6g}]")
    return arr


def read_images(path, rows: range | None = None) -> tuple[np.ndarray, np.ndarray]:
    """images (N, C, H, W, as stored: float32) and names (N) from an images.npz of the data stage,
    validated; every error names the file. The one reader of images.npz.

    ``rows`` (a range of image indices, clipped to N): only those images are read and checked
    (names stay whole), from a memory map where the file stores them uncompressed, as
    ``write_dataset`` does, so a shard job of a 50,000-image set reads its own images only.
    """
    from fpscore.fileio import npz_member_memmap

    what = "images file"
    try:
        if rows is None:
            arrays = read_npz_arrays(path, what, ("images", "names"))
            images = arrays["images"]
        else:
            arrays = read_npz_arrays(path, what, ("names",))
            images = npz_member_memmap(path, "images", what)
            if images is None:  # compressed (an older data stage): read whole
                images = read_npz_arrays(path, what, ("images",))["images"]
    except ValueError as err:
        if "missing key" in str(err):
            raise ValueError(f"{err}; expected 'images' (N x C x H x W) and 'names' (N)") from None
        raise
    names = np.asarray(arrays["names"]).astype(str)
    if images.ndim == 4 and names.shape != (images.shape[0],):
        raise ValueError(f"images file {path}: 'names' has shape {names.shape}, expected ({images.shape[0]},)")
    try:
        if rows is not None and images.ndim == 4:
            n = images.shape[0]
            images = np.array(images[min(rows.start, n):min(rows.stop, n)])
            if images.shape[0] == 0:  # a shard past the end of the set
                return images, names
        images = check_images(images)
    except ValueError as err:
        raise ValueError(f"images file {path}: {err}") from None
    return images, names

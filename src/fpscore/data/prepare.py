"""The data step of one dataset at one resolution: load, convert, centre-crop and resize image by
image into float32 N x C x R x R in [0, 1], with a manifest of where each image came from and how
it was transformed."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from fpscore.config import schema_default
from fpscore.data.base import DataError, RawImages, check_dataset, check_resolution
from fpscore.data.builtin import load_faces, load_photos
from fpscore.data.celeba import read_celeba
from fpscore.data.cifar10 import read_cifar10
from fpscore.data.download import archive_path, ensure_archive
from fpscore.data.transforms import RESIZE_METHOD, center_crop_square, convert_channels, resize_square
from fpscore.names import ARCHIVE_FILENAMES

_LOADERS: dict[str, Callable[..., RawImages]] = {"photos": load_photos, "faces": load_faces,
                                                   "cifar10": read_cifar10, "celeba": read_celeba}


def _convert_all(raw: RawImages, channels: int, crop: int, resolution: int, dataset: str):
    """(images N x C x R x R float32, per-image records, channel conversions) of ``raw``, converted,
    cropped and resized image by image into the output: the only array of the whole set's size."""
    images = np.empty((len(raw.images), channels, resolution, resolution), dtype=np.float32)
    records, conversions = [], set()
    for k, (name, index, image) in enumerate(tqdm(zip(raw.names, raw.indices, raw.images), total=len(raw.images),
                                                  desc=f"prepare {dataset}", unit="img",
                                                  disable=len(raw.images) < 64)):
        converted, how = convert_channels(image, channels)
        conversions.add(how)
        square = center_crop_square(converted, crop)
        images[k] = resize_square(square, resolution).transpose(2, 0, 1)
        records.append({"name": name, "index": int(index), "original_size": [int(s) for s in image.shape[:2]],
                        "original_channels": int(image.shape[2]), "crop_side": int(square.shape[0]),
                        "channel_conversion": how, "upsampled": bool(square.shape[0] < resolution)})
    return images, records, conversions


def prepare(dataset: str, resolution: Any, options: dict, resources_dir: str | Path = "resources",
            archive: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Load, convert, centre-crop and resize one dataset: (images N x C x R x R float32, names, manifest).

    `options` is the dataset's config section (data.<dataset>): selection keys,
    `channels` (1 or 3) and `crop` (side of the central square, 0 = largest; both default
    to the schema's data.<dataset>.channels / crop), and for archives `url`, `md5`, `local_path`. `archive`
    overrides where the archive is read from (the workflow passes its input).
    """
    dataset = check_dataset(dataset)
    resolution = check_resolution(resolution)
    opts = dict(options or {})
    channels = opts.pop("channels", schema_default(f"data.{dataset}.channels"))
    crop = opts.pop("crop", schema_default(f"data.{dataset}.crop")) or 0
    source: dict = {}
    if dataset in ARCHIVE_FILENAMES:
        url, md5, local_path = opts.pop("url", None), opts.pop("md5", None), opts.pop("local_path", None)
        user_file = bool(local_path) and (archive is None or Path(archive) == Path(local_path))
        path = Path(archive) if archive else archive_path(dataset, resources_dir, local_path)
        source = ensure_archive(dataset, path, url, md5, user_file=user_file)
        opts["path"] = path
    loader = _LOADERS[dataset]
    params = inspect.signature(loader).parameters
    unknown, missing = sorted(set(opts) - set(params)), sorted(set(params) - set(opts))
    if unknown or missing:
        problems = ([f"unknown option(s) {unknown}"] if unknown else []) + (
            [f"missing option(s) {missing}"] if missing else [])
        raise DataError(f"data.{dataset}: {'; '.join(problems)} "
                        f"(expected {sorted(set(params) - {'path'})} plus channels, crop)")
    raw = loader(**opts)
    try:
        images, records, conversions = _convert_all(raw, channels, crop, resolution, dataset)
    finally:
        getattr(raw.images, "close", lambda: None)()  # a lazy reader's open archive
    source = {**raw.source, **source, "dataset": dataset}

    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise DataError(f"{dataset}: prepared pixel values left [0, 1] (range {images.min()}..{images.max()})")
    notes = list(raw.notes)
    if any(r["upsampled"] for r in records):
        notes.append(f"some images are smaller than {resolution} x {resolution} after cropping and were "
                     "upsampled (interpolated)")
    manifest = {
        "dataset": dataset, "resolution": resolution, "count": len(records), "channels": int(channels),
        "shape": list(images.shape), "dtype": "float32", "value_range": [0.0, 1.0],
        "source": source, "selection": raw.selection, "indices": [r["index"] for r in records],
        "preprocessing": {"channels": sorted(conversions),
                          "crop": "central square" + (f" of side {crop}" if crop else " (largest that fits)"),
                          "resize": RESIZE_METHOD + " (skipped when the crop already has the resolution)"},
        "images": records, "notes": notes,
    }
    return images, np.array(raw.names, dtype=str), manifest

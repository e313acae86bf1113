"""What every dataset loader shares: the error type, the selected raw images, the checks of a
dataset name, a resolution and a selection of images (explicit indices or the first count)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpscore.names import DATASETS


class DataError(ValueError):
    """Bad dataset input; the message names the key, file or value and what was expected."""


@dataclass
class RawImages:
    """Selected images at their native size (H x W x C float64 in [0, 1]) and their provenance;
    ``images`` is a list or a lazy sequence that converts one image at a time (``_CifarPixels``)."""

    images: Sequence[np.ndarray]
    names: list[str]
    indices: list[int]
    source: dict
    selection: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_resolution(resolution: Any) -> int:
    """The resolution as a positive int; '32' is accepted, 0, -8, 3.5, 'abc', True are not."""
    value = resolution
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"resolution must be a positive integer (pixels per side), got {resolution!r}")
    return int(value)


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return dataset


def select_indices(n_available: int, count: int | None, indices: Sequence[int] | None, key: str,
                   pool: str = "", names: tuple[str, str] | None = None) -> list[int]:
    """Explicit `indices` (each in [0, n_available), no repeats) or else the first `count` (None = all).

    The one selection of images (the data step's data.<dataset>.indices / count, training's --indices /
    --count). `pool` describes what the indices count in, `names` what the two are called in the error
    messages (default: <key>.indices and <key>.count).
    """
    pool = f" ({pool})" if pool else ""
    what_indices, what_count = names or (f"{key}.indices", f"{key}.count")
    if indices:
        bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer))]
        if bad:
            raise DataError(f"{what_indices} must be integers, got {bad}")
        out = [int(i) for i in indices if not 0 <= int(i) < n_available]
        if out:
            raise DataError(f"{what_indices} out of range: {out}; valid indices are 0..{n_available - 1} "
                            f"({n_available} images available{pool})")
        repeated = sorted({int(i) for i in indices if list(indices).count(i) > 1})
        if repeated:
            raise DataError(f"{what_indices} repeats {repeated}; each image may be selected once")
        return [int(i) for i in indices]
    if count is None:
        return list(range(n_available))
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise DataError(f"{what_count} must be a positive integer, got {count!r}")
    if count > n_available:
        raise DataError(f"{what_count} = {count} but only {n_available} images are available{pool}")
    return list(range(int(count)))

"""CIFAR-10 from the official python-version archive (cifar-10-python.tar.gz): a split, filtered by
class, then by position; pickles read with an unpickler that runs no code."""
from __future__ import annotations

import pickle
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fpscore.data.base import DataError, RawImages, select_indices
from fpscore.names import ARCHIVE_FILENAMES

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10 batches hold (dicts, lists, bytes, numpy arrays): no code execution."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # bytes in protocol-2 pickles

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module.replace("numpy.core.", "numpy._core.", 1), name)


def _str_keys(obj: Any) -> Any:
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()} if isinstance(obj, dict) else obj


def _cifar_member(tar: tarfile.TarFile, name: str, path: Path) -> dict:
    member = f"{CIFAR10_DIR}/{name}"
    try:
        handle = tar.extractfile(member)
    except KeyError:
        raise DataError(f"{path} has no member {member}: expected the python version of CIFAR-10 "
                        f"({ARCHIVE_FILENAMES['cifar10']} with {CIFAR10_DIR}/data_batch_1..5, test_batch, "
                        "batches.meta)") from None
    try:
        obj = _str_keys(_ArrayUnpickler(handle, encoding="bytes").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: member {member} is not a readable CIFAR-10 pickle ({err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: member {member} should hold a dict, got {type(obj).__name__}")
    return obj


def _cifar_batch(tar: tarfile.TarFile, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _cifar_member(tar, name, path)
    try:
        data = np.asarray(batch["data"])
        labels = np.asarray(batch["labels"])
    except KeyError as err:
        raise DataError(f"{path}: {CIFAR10_DIR}/{name} lacks the key {err.args[0]!r} (expected 'data' and "
                        "'labels')") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataError(f"{path}: {CIFAR10_DIR}/{name} holds data {data.dtype} {data.shape} and labels "
                        f"{labels.shape}; expected uint8 (n, 3072) and (n,)")
    return data, labels.astype(np.int64)


def _class_ids(classes: Sequence[str | int] | None, label_names: list[str]) -> list[int]:
    ids = []
    for item in classes or []:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool) or (
                isinstance(item, str) and item.isdigit()):
            cid = int(item)
            if not 0 <= cid < len(label_names):
                raise DataError(f"data.cifar10.classes: class id {cid} out of range 0..{len(label_names) - 1}")
        elif isinstance(item, str) and item in label_names:
            cid = label_names.index(item)
        else:
            raise DataError(f"data.cifar10.classes: unknown class {item!r}; expected an id 0..{len(label_names) - 1} "
                            f"or one of {', '.join(label_names)}")
        ids.append(cid)
    return sorted(set(ids))


def read_cifar10(path: str | Path, split: str, classes: Sequence[str | int] | None, count: int | None,
                 indices: Sequence[int] | None) -> RawImages:
    """Images of one split of cifar-10-python.tar.gz, filtered by class, then by position (count or indices).

    Indices count within the filtered split in archive order (train: data_batch_1..5).
    """
    path = Path(path)
    if split not in CIFAR10_SPLITS:
        raise DataError(f"data.cifar10.split must be one of {', '.join(CIFAR10_SPLITS)}, got {split!r}")
    try:
        with tarfile.open(path, "r:gz") as tar:
            meta = _cifar_member(tar, "batches.meta", path)
            label_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
            if len(label_names) != 10:
                raise DataError(f"{path}: batches.meta should list 10 label_names, got {label_names}")
            parts = [_cifar_batch(tar, name, path) for name in CIFAR10_SPLITS[split]]
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"{path} is not a readable tar.gz archive ({err}); delete it and download it again") from None
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([lab for _, lab in parts])
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels outside 0..9 in the {split} split")
    class_ids = _class_ids(classes, label_names)
    pool = np.flatnonzero(np.isin(labels, class_ids)) if class_ids else np.arange(len(labels))
    described = f"{split} split" + (f", classes {[label_names[c] for c in class_ids]}" if class_ids else "")
    chosen = pool[select_indices(len(pool), count, indices, "data.cifar10", described)]
    pixels = _CifarPixels(data[chosen].reshape(-1, 3, 32, 32))
    names = [f"{split}_{i:05d}_{label_names[labels[i]]}" for i in chosen]
    selection = {"split": split, "classes": [label_names[c] for c in class_ids], "count": count,
                 "indices": list(indices or []), "split_indices": [int(i) for i in chosen],
                 "labels": [label_names[labels[i]] for i in chosen]}
    return RawImages(pixels, names, [int(i) for i in chosen], {}, selection)


class _CifarPixels(Sequence):
    """CIFAR-10 images kept as the archive's bytes (N, 3, 32, 32 uint8), each converted to
    H x W x C float64 in [0, 1] when it is read, so that the whole split is never held in
    float64 (50,000 images: 150 MB of bytes instead of 1.2 GB)."""

    def __init__(self, data: np.ndarray):
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, i: int) -> np.ndarray:
        return self._data[i].transpose(1, 2, 0).astype(np.float64) / 255.0

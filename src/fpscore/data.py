"""Datasets: offline builtin images, CIFAR-10 and CelebA archives, square resizing.

Every dataset becomes float32 images N x C x H x W in [0, 1] with one name per
image, plus a manifest recording where each image came from (file, URL,
checksum, index, original size) and how it was transformed (channel
conversion, centre crop, resize). Downloads are verified by MD5 and appear
whole or not at all; bad input raises DataError naming the key, file or value
and what was expected.
"""
from __future__ import annotations

import html
import inspect
import http.client
import json
import pickle
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from fpscore.config import schema_default
from fpscore.fileio import atomic_outputs, file_digest, read_npz_arrays
from fpscore.names import ARCHIVE_FILENAMES, DATASETS

BUILTIN = ("photos", "faces")

# Real photographs bundled in scikit-image's wheel (no pooch download needed):
# name -> (skimage.data function, bundled file). Synthetic images (binary_blobs,
# checkerboard, colorwheel, horse, logo, shepp_logan_phantom) are left out.
PHOTOS = {
    "astronaut": ("astronaut", "astronaut.png"),
    "brick": ("brick", "brick.png"),
    "camera": ("camera", "camera.png"),
    "cell": ("cell", "cell.png"),
    "chelsea": ("chelsea", "chelsea.png"),
    "clock": ("clock", "clock_motion.png"),
    "coffee": ("coffee", "coffee.png"),
    "coins": ("coins", "coins.png"),
    "grass": ("grass", "grass.png"),
    "gravel": ("gravel", "gravel.png"),
    "hubble_deep_field": ("hubble_deep_field", "hubble_deep_field.jpg"),
    "immunohistochemistry": ("immunohistochemistry", "ihc.png"),
    "microaneurysms": ("microaneurysms", "microaneurysms.png"),
    "moon": ("moon", "moon.png"),
    "page": ("page", "page.png"),
    "retina": ("retina", "retina.jpg"),
    "rocket": ("rocket", "rocket.jpg"),
    "text": ("text", "text.png"),
}
PHOTO_ALIASES = {"cat": "chelsea"}  # skimage.data.cat() returns the chelsea image
LFW_FILE = "lfw_subset.npy"
LFW_FACES = 100  # lfw_subset(): images 0-99 are faces, 100-199 are non-face background patches

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CELEBA_DIR = "img_align_celeba/"
RESIZE_METHOD = "skimage.transform.resize(order=1 bilinear, anti_aliasing=True, mode='reflect')"


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


# ---- checks -------------------------------------------------------------------------------
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
                   pool: str = "") -> list[int]:
    """Explicit `indices` (each in [0, n_available), no repeats) or else the first `count` (None = all).

    `pool` describes what the indices count in, for the error messages.
    """
    pool = f" ({pool})" if pool else ""
    if indices:
        bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer))]
        if bad:
            raise DataError(f"{key}.indices must be integers, got {bad}")
        out = [int(i) for i in indices if not 0 <= int(i) < n_available]
        if out:
            raise DataError(f"{key}.indices out of range: {out}; valid indices are 0..{n_available - 1} "
                            f"({n_available} images available{pool})")
        repeated = sorted({int(i) for i in indices if list(indices).count(i) > 1})
        if repeated:
            raise DataError(f"{key}.indices repeats {repeated}; each image may be selected once")
        return [int(i) for i in indices]
    if count is None:
        return list(range(n_available))
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise DataError(f"{key}.count must be a positive integer, got {count!r}")
    if count > n_available:
        raise DataError(f"{key}.count = {count} but only {n_available} images are available{pool}")
    return list(range(int(count)))


# ---- image conversions ---------------------------------------------------------------------
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


# ---- files: checksum, download, archive location ------------------------------------------------
def md5sum(path: str | Path) -> str:
    return file_digest(path, "md5")


def sha256sum(path: str | Path) -> str:
    return file_digest(path, "sha256")


def _offline_hint(dest: Path, md5: str | None) -> str:
    checksum = f" (md5 {md5})" if md5 else ""
    return f"To continue offline, place the file {dest.name}{checksum} at {dest}"


_FORM = re.compile(r'<form\b[^>]*\baction="([^"]+)"[^>]*>(.*?)</form>', re.S | re.I)
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r'\b(type|name|value)="([^"]*)"', re.I)


def _confirm_url(page: str) -> str | None:
    """The download link of a Google Drive 'cannot scan for viruses' page (a form of hidden inputs)."""
    match = _FORM.search(page)
    if not match:
        return None
    action = html.unescape(match.group(1))
    params = {}
    for tag in _INPUT.findall(match.group(2)):
        attrs = {k.lower(): html.unescape(v) for k, v in _ATTR.findall(tag)}
        if attrs.get("type", "").lower() == "hidden" and "name" in attrs:
            params[attrs["name"]] = attrs.get("value", "")
    return f"{action}?{urllib.parse.urlencode(params)}" if params else action


def _stream(url: str, out, label: str, timeout: float, follow_confirm: bool = True) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "fpscore-data/0.1"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if "text/html" in (response.headers.get("Content-Type") or ""):
            page = response.read(1 << 20).decode("utf-8", "replace")
            link = _confirm_url(page) if follow_confirm else None
            if link is None:
                raise DataError(f"{url} returned an HTML page instead of {label} (a quota, login or "
                                "confirmation page?)")
            return _stream(urllib.parse.urljoin(url, link), out, label, timeout, follow_confirm=False)
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"download {label}") as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def download(url: str, dest: str | Path, md5: str | None, timeout: float = 60.0) -> str:
    """Download `url` to `dest` through a temp file in the same folder; verify MD5; return it.

    A failed or mismatching download is deleted; the error says where to put the
    file by hand to continue offline.
    """
    dest = Path(dest)
    with atomic_outputs(dest, suffix=".part") as (tmp,):
        try:
            with open(tmp, "wb") as out:
                _stream(url, out, dest.name, timeout)
        except DataError as err:
            raise DataError(f"{err}. {_offline_hint(dest, md5)}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise DataError(f"could not download {dest.name} from {url} ({reason}). "
                            f"{_offline_hint(dest, md5)}") from None
        actual = md5sum(tmp)
        if md5 and actual != md5.lower():
            raise DataError(f"checksum mismatch for {dest.name} downloaded from {url}: expected md5 {md5.lower()}, "
                            f"got {actual}; the download was deleted. {_offline_hint(dest, md5)}")
    return actual


def archive_path(dataset: str, resources_dir: str | Path, local_path: str | None = None) -> Path:
    """Where the archive of `dataset` is read from: `local_path` if given, else resources_dir/dataset/FILE."""
    if dataset not in ARCHIVE_FILENAMES:
        raise DataError(f"dataset {dataset!r} has no archive; archives exist for {', '.join(ARCHIVE_FILENAMES)}")
    if local_path:
        return Path(local_path)
    return Path(resources_dir) / dataset / ARCHIVE_FILENAMES[dataset]


def ensure_archive(dataset: str, path: str | Path, url: str | None, md5: str | None,
                   user_file: bool = False) -> dict:
    """Make sure the archive at `path` exists (downloading it from `url` if missing) and matches `md5`.

    An existing file that fails the checksum is never deleted (it may be the
    user's); the error says expected vs actual and what to do. Returns the
    source record for the manifest.
    """
    path = Path(path)
    name = ARCHIVE_FILENAMES[dataset]
    record = {"kind": "local_path" if user_file else "resources", "url": None if user_file else url,
              "path": str(path), "md5_expected": md5.lower() if md5 else None, "downloaded_now": False}
    if not path.exists():
        if user_file:
            raise DataError(f"data.{dataset}.local_path = {str(path)!r} does not exist; expected {name}")
        if not url:
            raise DataError(f"{path} is missing and data.{dataset}.url is empty. "
                            f"{_offline_hint(path, md5)}")
        actual = download(url, path, md5)
        record["downloaded_now"] = True
    else:
        actual = md5sum(path)
        if md5 and actual != md5.lower():
            raise DataError(f"checksum mismatch for {path}: expected md5 {md5.lower()}, got {actual}. The file is "
                            f"corrupt or not the official {name}: delete it "
                            f"{'and fix data.' + dataset + '.local_path' if user_file else 'to download it again'}, "
                            "or replace it with the correct file")
    record.update(md5=actual, md5_verified=bool(md5))
    return record


# ---- builtin sets ----------------------------------------------------------------------------
def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def _bundled_sha256(filename: str) -> str | None:
    path = _skimage_data_dir() / filename
    return sha256sum(path) if path.exists() else None


def load_photos(names: Sequence[str]) -> RawImages:
    """Real photographs bundled in scikit-image, in the order given."""
    import skimage
    import skimage.data

    if isinstance(names, str) or not names:
        raise DataError(f"data.photos.names must be a non-empty list of names, got {names!r}")
    unknown = [n for n in names if n not in PHOTOS and n not in PHOTO_ALIASES]
    if unknown:
        raise DataError(f"data.photos.names: unknown photo(s) {unknown}; offline photographs are "
                        f"{', '.join(sorted(PHOTOS))} (alias: cat = chelsea)")
    canonical = [PHOTO_ALIASES.get(n, n) for n in names]
    repeated = sorted({n for n in canonical if canonical.count(n) > 1})
    if repeated:
        raise DataError(f"data.photos.names selects the same image twice: {repeated} "
                        f"(note: 'cat' is the same image as 'chelsea'); got {list(names)}")
    images, files = [], []
    for name in canonical:
        loader, filename = PHOTOS[name]
        try:
            pixels = getattr(skimage.data, loader)()
        except (ModuleNotFoundError, OSError) as err:
            raise DataError(f"data.photos.names: {name!r} cannot be loaded offline ({err})") from None
        images.append(to_float_hwc(pixels, f"photo {name!r}"))
        files.append({"name": name, "file": filename, "sha256": _bundled_sha256(filename)})
    source = {"kind": "builtin", "package": f"scikit-image {skimage.__version__}",
              "path": str(_skimage_data_dir()), "files": files}
    return RawImages(images, list(canonical), list(range(len(names))), source, {"names": list(names)})


def load_faces(count: int | None, indices: Sequence[int] | None) -> RawImages:
    """LFW faces of skimage.data.lfw_subset() (grey 25 x 25; only images 0-99 are faces)."""
    import skimage
    import skimage.data

    chosen = select_indices(LFW_FACES, count, indices, "data.faces")
    stack = skimage.data.lfw_subset()
    images = [to_float_hwc(stack[i], f"LFW face {i}") for i in chosen]
    source = {"kind": "builtin", "package": f"scikit-image {skimage.__version__}", "function": "lfw_subset",
              "path": str(_skimage_data_dir() / LFW_FILE), "sha256": _bundled_sha256(LFW_FILE)}
    notes = [f"lfw_subset() holds {LFW_FACES} faces (indices 0-{LFW_FACES - 1}) and {LFW_FACES} non-face patches; "
             "only faces are offered. The originals are 25 x 25: larger resolutions are interpolated, "
             "they add no detail."]
    return RawImages(images, [f"lfw_{i:03d}" for i in chosen], chosen, source,
                     {"count": count, "indices": list(indices or [])}, notes)


# ---- CIFAR-10 ---------------------------------------------------------------------------------
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


# ---- CelebA -----------------------------------------------------------------------------------
def read_celeba(path: str | Path, count: int | None, indices: Sequence[int] | None) -> RawImages:
    """Images of img_align_celeba.zip by position in file order (000001.jpg is index 0), decoded
    one at a time when ``prepare`` reads them (``_CelebaPixels``): a corrupt member is a DataError
    naming it, raised before anything is written."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(n for n in archive.namelist() if n.startswith(CELEBA_DIR) and n.lower().endswith(".jpg"))
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path} is not a readable zip archive ({err}); delete it and download it again") from None
    if not members:
        raise DataError(f"{path} has no {CELEBA_DIR}*.jpg members: expected the aligned-and-cropped CelebA "
                        f"archive {ARCHIVE_FILENAMES['celeba']}")
    chosen = select_indices(len(members), count, indices, "data.celeba")
    names = [Path(members[i]).stem for i in chosen]
    return RawImages(_CelebaPixels(path, [members[i] for i in chosen]), names, chosen, {},
                     {"count": count, "indices": list(indices or []), "members": [members[i] for i in chosen]})


class _CelebaPixels(Sequence):
    """CelebA members decoded when read (H x W x 3 float64 in [0, 1]), from one open handle of the
    archive (``close`` releases it): the selected images are never all in memory at once."""

    def __init__(self, path: Path, members: list[str]):
        self._path, self._members, self._archive = path, members, None

    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, i: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        member = self._members[i]
        try:
            if self._archive is None:
                self._archive = zipfile.ZipFile(self._path)
            with Image.open(self._archive.open(member)) as img:
                return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
        except (zipfile.BadZipFile, zlib.error, OSError, UnidentifiedImageError, EOFError) as err:
            raise DataError(f"{self._path}: member {member} is corrupt ({err})") from None

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None


# ---- the whole stage ---------------------------------------------------------------------------
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


def load_dataset(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """``read_images`` with the names as a list."""
    images, names = read_images(path)
    return images, names.tolist()

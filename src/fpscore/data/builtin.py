"""The offline builtin sets: real photographs bundled in scikit-image (photos) and the LFW faces of
skimage.data.lfw_subset() (faces)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fpscore.data.base import DataError, RawImages, select_indices
from fpscore.data.transforms import to_float_hwc
from fpscore.fileio import file_digest

BUILTIN = ("photos", "faces")
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


def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def _bundled_sha256(filename: str) -> str | None:
    path = _skimage_data_dir() / filename
    return file_digest(path, "sha256") if path.exists() else None


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

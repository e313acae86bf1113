"""CelebA from the aligned-and-cropped archive (img_align_celeba.zip), images by position in file
order, decoded one at a time when read."""
from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fpscore.data.base import DataError, RawImages, select_indices
from fpscore.names import ARCHIVE_FILENAMES

CELEBA_DIR = "img_align_celeba/"


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

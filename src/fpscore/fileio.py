"""Files written whole or not at all, and file checksums (shared by every step)."""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


@contextmanager
def atomic_outputs(*paths: str | Path, suffix: str = ".tmp") -> Iterator[list[str]]:
    """Yield one temporary path beside each of ``paths``; move them all into place if the
    block succeeds, delete them all if it raises.

    The temporaries live in their target's folder (so the rename is atomic) and get
    the permissions a plain new file would (mkstemp alone makes them 0600).
    """
    targets = [Path(p) for p in paths]
    umask = os.umask(0)
    os.umask(umask)
    temps: list[str] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~umask)
            temps.append(tmp)
        yield list(temps)
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)


def write_all(outputs: list[tuple[str | Path, Callable[[str], None]]]) -> None:
    """Run each writer on a temporary sibling of its path; move all into place only if all succeeded."""
    with atomic_outputs(*(path for path, _ in outputs)) as temps:
        for tmp, (_, writer) in zip(temps, outputs):
            writer(tmp)


def read_mapping(path: str | Path, what: str, parse: Callable[[str], object], errors: tuple, kind: str) -> dict:
    """``parse`` of a text file that holds a mapping (a YAML config, a JSON summary); an empty one is {}.
    A missing file is FileNotFoundError, one that does not parse (``errors``) or holds no mapping a
    ValueError, each naming ``what`` and the path."""
    path = Path(path)
    try:
        value = parse(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    except errors as err:
        raise ValueError(f"{what} {path} is not valid {kind}: {err}") from None
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{what} {path} must hold a mapping, got {type(value).__name__}")
    return value or {}


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 22) -> str:
    """Hex digest of a file, read in chunks (archives are GBs)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def open_npz(path, what: str):
    """np.load of an .npz (allow_pickle=False) whose failures name the file: a missing file
    is FileNotFoundError, anything that is not a readable .npz a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{what} {path}: not a readable .npz ({err})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{what} {path}: not an .npz archive (a single .npy array)")
    return f


def npz_member_memmap(path, key: str, what: str) -> np.ndarray | None:
    """The member ``key`` of an .npz as a read-only memory map when it is stored uncompressed
    (None when it is compressed: then it must be read whole); ValueError naming the file when
    the member's header or extent does not fit the file (truncated or not an .npy)."""
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(f"{key}.npy")
        except KeyError:
            raise ValueError(f"{what} {path}: missing key(s) {key} (found: "
                             f"{', '.join(n.removesuffix('.npy') for n in zf.namelist()) or 'none'})") from None
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # the local file header: its name and extra field lengths at bytes 26..29
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise ValueError(f"{what} {path}: member {key}.npy has no valid local header")
        fh.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                + int.from_bytes(local[28:30], "little"))
        try:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
        except ValueError as err:
            raise ValueError(f"{what} {path}: member {key}.npy is not a readable .npy ({err})") from None
        offset = fh.tell()
    if dtype.hasobject or offset + dtype.itemsize * int(np.prod(shape)) > path.stat().st_size:
        raise ValueError(f"{what} {path}: member {key}.npy is truncated or holds objects")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def read_npz_arrays(path, what: str, keys) -> dict:
    """The arrays ``keys`` of an .npz, loaded; ValueError naming the file and the missing keys,
    or the file when it (or a member) is unreadable or truncated."""
    with open_npz(path, what) as f:
        missing = [k for k in keys if k not in f.files]
        if missing:
            raise ValueError(f"{what} {path}: missing key(s) {', '.join(missing)} "
                             f"(found: {', '.join(f.files) or 'none'})")
        try:
            return {k: f[k] for k in keys}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"{what} {path}: not a readable .npz ({err})") from None

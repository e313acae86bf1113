"""The score file on disk: its keys (``SCORE_KEYS``), its contents from a ``scores.ScoreSet``
(``score_arrays``) and its writers: ``write_npz`` (a whole .npz, atomically and byte-reproducibly) and
``npz_in_place`` (a .npz whose m and scores an engine computes into, memory-mapped: ``NpzInPlace``).
A merged score set (a directory of .npy files) is ``fpscore.score_store``'s."""
from __future__ import annotations

import zipfile
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from fpscore.fileio import atomic_outputs

if TYPE_CHECKING:
    from fpscore.scores import ScoreSet

SCORE_KEYS = ("m", "scores", "times", "g", "names", "params", "picard_iterations", "converged", "within_bound",
              "nu_active", "valid")


def score_arrays(result: ScoreSet, names, params_json: str, indices=None) -> dict:
    """The contents of a scores file (float32 m and scores); ``indices`` marks a shard."""
    arrays = {
        "m": result.m.astype(np.float32, copy=False), "scores": result.scores.astype(np.float32, copy=False),
        "times": result.times, "g": result.g, "names": np.asarray(names).astype(str),
        "params": np.array(params_json), "picard_iterations": result.picard_iterations,
        "converged": result.converged, "within_bound": result.within_bound, "nu_active": result.nu_active,
        "valid": result.valid,
    }
    if indices is not None:
        arrays["indices"] = np.asarray(indices, dtype=np.int64)
    return arrays


def write_npz(path, arrays: dict) -> None:
    """Write arrays to an uncompressed .npz atomically, byte-reproducibly (fixed zip
    timestamps), so equal contents give equal files."""
    with atomic_outputs(path) as (tmp,):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as member:
                    _write_npy(member, np.asanyarray(value))


class NpzInPlace:
    """A stored .npz (zip64) whose large members are filled in place: ``arrays[key]`` are writable views of
    the file itself (memory-mapped), so an engine computes straight into the file's pages (no copy into
    the file afterwards: a 1,000-image shard's m and scores are 490 MB); ``finish(small)`` then adds the
    other members, the CRCs and the central directory. A file np.load and zipfile read as any .npz.
    Use ``npz_in_place`` (whole or not at all)."""

    _DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, 00:00 (as write_npz: byte-reproducible)

    def __init__(self, path, large: dict):
        import mmap

        self.path = path
        self._fh = open(path, "w+b")
        self._members: list[tuple[bytes, int, int, int]] = []  # name, header offset, size, crc
        self._spans: list[tuple[str, bytes, int, int]] = []  # key, npy header, data offset, data bytes
        offset = 0
        for key, (shape, dtype) in large.items():
            dtype = np.dtype(dtype)
            header = self._npy_header(tuple(shape), dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            name = f"{key}.npy".encode()
            size = len(header) + nbytes
            self._fh.seek(offset)
            self._fh.write(self._local(name, 0, size) + header)
            self._members.append((name, offset, size, 0))
            data = offset + 30 + len(name) + 20 + len(header)
            self._spans.append((key, header, data, nbytes))
            offset = data + nbytes
        self._fh.truncate(offset)
        self._end = offset
        self._map = mmap.mmap(self._fh.fileno(), offset) if offset else None
        self.arrays = {key: np.ndarray(shape, dtype=np.dtype(dtype), buffer=self._map, offset=span[2])
                       for (key, (shape, dtype)), span in zip(large.items(), self._spans)}

    @staticmethod
    def _npy_header(shape: tuple, dtype: np.dtype) -> bytes:
        import io

        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                    "fortran_order": False, "shape": shape})
        return buf.getvalue()

    @staticmethod
    def _local(name: bytes, crc: int, size: int) -> bytes:
        import struct

        return (struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, NpzInPlace._DATE, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                            len(name), 20) + name + struct.pack("<HHQQ", 1, 16, size, size))

    def finish(self, small: dict) -> None:
        """The CRCs of the large members, the small members (np.lib.format), the central directory."""
        import io
        import struct
        import zlib

        self.arrays = {}
        for i, (key, header, data, nbytes) in enumerate(self._spans):
            with memoryview(self._map) as whole:
                crc = zlib.crc32(whole[data:data + nbytes], zlib.crc32(header))
            name, offset, size, _ = self._members[i]
            self._members[i] = (name, offset, size, crc)
            self._map[offset + 14:offset + 18] = struct.pack("<I", crc)
        self._release()
        self._fh.seek(self._end)
        for key, value in small.items():
            buf = io.BytesIO()
            _write_npy(buf, np.asanyarray(value))
            payload = buf.getvalue()
            name, crc = f"{key}.npy".encode(), zlib.crc32(payload)
            self._members.append((name, self._fh.tell(), len(payload), crc))
            self._fh.write(self._local(name, crc, len(payload)) + payload)
        start = self._fh.tell()
        for name, offset, size, crc in self._members:
            self._fh.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 45, 45, 0, 0, 0, self._DATE, crc,
                                       0xFFFFFFFF, 0xFFFFFFFF, len(name), 28, 0, 0, 0, 0o100644 << 16, 0xFFFFFFFF)
                           + name + struct.pack("<HHQQQ", 1, 24, size, size, offset))
        end = self._fh.tell()
        count = len(self._members)
        self._fh.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, end - start, start))
        self._fh.write(struct.pack("<IIQI", 0x07064B50, 0, end, 1))
        self._fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                                   min(end - start, 0xFFFFFFFF), 0xFFFFFFFF, 0))
        self._fh.close()

    def _release(self) -> None:
        """Unmap now where no view of the arrays is left; else the mapping goes with the last view (the file's
        pages are the same either way: what was written through it is in the file)."""
        if self._map is not None and not self._map.closed:
            try:
                self._map.close()
            except BufferError:
                pass

    def abort(self) -> None:
        self.arrays = {}
        self._release()
        self._fh.close()


@contextmanager
def npz_in_place(path, large: dict):
    """``NpzInPlace`` on a temporary sibling of ``path``, moved into place when the block ends with
    ``finish`` called, removed when it raises (``fileio.atomic_outputs``)."""
    with atomic_outputs(path) as (tmp,):
        npz = NpzInPlace(tmp, large)
        try:
            yield npz
        except BaseException:
            npz.abort()
            raise
        if not npz._fh.closed:
            npz.abort()
            raise RuntimeError("npz_in_place: the block ended without finish()")


def _write_npy(fh, array: np.ndarray) -> None:
    """np.lib.format.write_array's bytes; a C-contiguous array of numbers is written from its own memory
    (no chunked copies: a 1,000-image shard's m and scores are 490 MB)."""
    if array.dtype.hasobject or not array.flags.c_contiguous or array.dtype.kind not in "biuf":
        np.lib.format.write_array(fh, array, allow_pickle=False)
        return
    np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
    fh.write(memoryview(array.reshape(-1)).cast("B"))

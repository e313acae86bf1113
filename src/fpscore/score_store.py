"""Score storage that scales with the data set, not with memory.

A merged score set is a directory of uncompressed ``.npy`` files (``m.npy``, ``scores.npy``
(N, C, T, H, W) float32, ``times.npy``, ``g.npy``, ``names.npy``, ``params.npy``,
``picard_iterations.npy``, ``converged.npy``, ``within_bound.npy``, ``nu_active.npy``,
``valid.npy``: per (image, channel), see ``fpscore.scores.ScoreSet``). ``merge_shards_to_dir`` writes it shard by
shard into ``np.lib.format.open_memmap`` arrays (one shard in memory at a time) and moves
the finished directory into place whole (a temporary sibling, then a rename);
``read_scores`` returns the large arrays memory-mapped (read-only), so a training loader
reads only the batches it indexes. ``read_scores`` also reads a ``scores.npz`` file (the
single-file format of ``fpscore.score_files.write_npz``), loaded whole. Bad, truncated or
mismatching files raise ValueError naming the file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from fpscore.score_files import SCORE_KEYS

#: The arrays memory-mapped on reading (the rest are small and loaded).
LARGE_KEYS = ("m", "scores")
#: The small arrays with one entry per (image, channel), merged by image index.
PER_CHANNEL_KEYS = ("picard_iterations", "converged", "within_bound", "nu_active", "valid")


def _shard_meta(path: Path) -> tuple[dict, dict]:
    """Small arrays of a shard .npz and the (shape, dtype) of its large ones, without loading those."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {Path(n).stem: n for n in zf.namelist() if n.endswith(".npy")}
            missing = [k for k in (*SCORE_KEYS, "indices") if k not in members]
            if missing:
                raise ValueError(f"shard {path}: missing key(s) {', '.join(missing)}")
            shapes = {}
            for key in LARGE_KEYS:
                with zf.open(members[key]) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        raise ValueError(f"shard {path}: {key}.npy has .npy format version {version}")
                    shape, _, dtype = read(fh)
                    shapes[key] = (shape, dtype)
        with np.load(path, allow_pickle=False) as f:
            small = {k: f[k] for k in f.files if k not in LARGE_KEYS}
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        if isinstance(err, ValueError) and str(err).startswith(f"shard {path}"):
            raise
        raise ValueError(f"shard {path}: not a readable score shard .npz ({err})") from None
    return small, shapes


def merge_shards_to_dir(shard_paths, n_images: int, out_dir, names=None) -> Path:
    """Merge shard files (each with 'indices') into the score directory ``out_dir`` covering
    images 0..n_images-1 exactly once, in order; parameters must agree across shards and
    ``names`` (when given) must equal the merged names. Memory: one shard at a time."""
    shard_paths = [Path(p) for p in shard_paths]
    if not shard_paths:
        raise ValueError("merge: no shard files given")
    metas = [(p, *_shard_meta(p)) for p in shard_paths]
    ref_path, ref, ref_shapes = metas[0]
    for p, small, shapes in metas[1:]:
        for key in ("params", "times", "g"):
            if not np.array_equal(small[key], ref[key]):
                raise ValueError(f"merge: shard {p} differs from {ref_path} in {key!r}")
        for key in LARGE_KEYS:
            if shapes[key][0][1:] != ref_shapes[key][0][1:] or shapes[key][1] != ref_shapes[key][1]:
                raise ValueError(f"merge: shard {p} has {key} of shape {shapes[key][0]} ({shapes[key][1]}), "
                                 f"{ref_path} has {ref_shapes[key][0]} ({ref_shapes[key][1]})")
    for p, small, shapes in metas:
        if any(shapes[k][0][0] != small["indices"].shape[0] for k in LARGE_KEYS):
            raise ValueError(f"shard {p}: {small['indices'].shape[0]} indices for {shapes['m'][0][0]} images")
    indices = np.concatenate([small["indices"] for _, small, _ in metas])
    counts = np.bincount(indices[(indices >= 0) & (indices < n_images)], minlength=n_images)
    if indices.size != n_images or np.any(counts != 1):
        raise ValueError(f"merge: shards do not cover images 0..{n_images - 1} exactly once (missing "
                         f"{np.flatnonzero(counts == 0)[:10].tolist()}, duplicated "
                         f"{np.flatnonzero(counts > 1)[:10].tolist()}, out of range "
                         f"{indices[(indices < 0) | (indices >= n_images)][:10].tolist()})")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for k in LARGE_KEYS:  # the output files, written shard by shard below
            np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=ref_shapes[k][1],
                                      shape=(n_images, *ref_shapes[k][0][1:])).flush()
        small_out = {"names": np.empty(n_images, dtype=object), **{key: None for key in PER_CHANNEL_KEYS}}
        for p, small, _ in metas:
            idx = small["indices"]
            for key in LARGE_KEYS:
                if not _copy_rows(p, key, tmp / f"{key}.npy", idx):
                    with np.load(p, allow_pickle=False) as f:
                        # mapped per shard and unmapped after it: the written pages leave this process
                        out = np.lib.format.open_memmap(tmp / f"{key}.npy", mode="r+")
                        out[idx] = f[key]
                        out.flush()
                        del out
            small_out["names"][idx] = small["names"]
            for key in PER_CHANNEL_KEYS:
                if small_out[key] is None:
                    small_out[key] = np.zeros((n_images, *small[key].shape[1:]), dtype=small[key].dtype)
                small_out[key][idx] = small[key]
        merged_names = small_out["names"].astype(str)
        if names is not None and not np.array_equal(merged_names, np.asarray(names).astype(str)):
            raise ValueError("merge: image names of the shards differ from those of the images file")
        for key, value in (("times", ref["times"]), ("g", ref["g"]), ("params", ref["params"]),
                           ("names", merged_names), *((key, small_out[key]) for key in PER_CHANNEL_KEYS)):
            np.save(tmp / f"{key}.npy", value, allow_pickle=False)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _npy_data(fh) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream ``fh``, read up to its data."""
    version = np.lib.format.read_magic(fh)
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise ValueError(f".npy format version {version}")
    return read(fh)


def _copy_rows(shard: Path, key: str, out: Path, idx: np.ndarray) -> bool:
    """Copy the rows of ``key`` of a shard .npz (stored, C order) into the .npy file ``out`` at rows ``idx``
    (consecutive, ascending) inside the kernel (``os.copy_file_range``: no copy through this process,
    a 1,000-image shard is 490 MB); False where that does not apply (the caller copies them itself)."""
    if not hasattr(os, "copy_file_range") or idx.size == 0 or np.any(np.diff(idx) != 1):
        return False
    try:
        with zipfile.ZipFile(shard) as zf:
            info = zf.getinfo(f"{key}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                return False
            with zf.open(info) as fh:
                shape, fortran, dtype = _npy_data(fh)
                header = fh.tell()
        with open(shard, "rb") as f:  # the member's data: after its local header (30 bytes, name, extra)
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                return False
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + \
                int.from_bytes(local[28:30], "little") + header
        dst = np.load(out, mmap_mode="r")
        if fortran or dtype != dst.dtype or tuple(shape[1:]) != dst.shape[1:] or shape[0] != idx.size:
            return False
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        target, count = dst.offset + int(idx[0]) * row, idx.size * row
        del dst
        with open(shard, "rb") as src, open(out, "r+b") as dst_file:
            done = 0
            while done < count:
                n = os.copy_file_range(src.fileno(), dst_file.fileno(), count - done, start + done, target + done)
                if n <= 0:
                    raise OSError(f"copy_file_range copied nothing at byte {done} of {count}")
                done += n
    except OSError:
        return False
    return True


def read_scores(path, mmap: bool = True) -> dict:
    """The arrays of a score set (SCORE_KEYS): a directory of .npy files (m and scores
    memory-mapped read-only with ``mmap``) or a scores .npz file (loaded whole)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"scores {path} does not exist")
    if path.is_dir():
        out = {}
        for key in SCORE_KEYS:
            file = path / f"{key}.npy"
            if not file.is_file():
                raise ValueError(f"scores {path}: missing {file.name}")
            try:
                out[key] = np.load(file, mmap_mode="r" if mmap and key in LARGE_KEYS else None, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise ValueError(f"scores file {file}: not a readable .npy ({err})") from None
    else:
        try:
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in SCORE_KEYS if k not in f.files]
                if missing:
                    raise ValueError(f"scores file {path}: missing key(s) {', '.join(missing)}")
                out = {k: f[k] for k in SCORE_KEYS}
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
            if isinstance(err, ValueError) and str(err).startswith(f"scores file {path}"):
                raise
            raise ValueError(f"scores file {path}: not a readable .npz ({err})") from None
    n = out["names"].shape[0]
    for key in LARGE_KEYS:
        if out[key].ndim != 5 or out[key].shape[0] != n:
            raise ValueError(f"scores {path}: {key} has shape {out[key].shape}, expected ({n}, C, T, H, W)")
    if out["times"].shape != (out["m"].shape[2],):
        raise ValueError(f"scores {path}: times has shape {out['times'].shape}, expected ({out['m'].shape[2]},)")
    return out

"""The scale path: a few hundred images through shards -> merge into memory-mapped .npy files
-> a batch read, equal to the in-memory result; bad and truncated files named in the error."""
from __future__ import annotations

import numpy as np
import pytest

from fpscore.data import prepare, read_images
from fpscore.fokker_planck.params import FPParams
from fpscore.score_files import score_arrays, write_npz
from fpscore.score_store import merge_shards_to_dir, read_scores
from fpscore.scores import compute_scores
from fpscore.solvers import make_solver

PARAMS = FPParams(n_times=4, kde_bins=64)
N_IMAGES, SHARD = 240, 64


@pytest.fixture(scope="module")
def images():
    """240 8x8 single-channel images: random crops and flips of the builtin photos and faces."""
    rng = np.random.default_rng(0)
    photos, _, _ = prepare("photos", 32, {"names": ["camera", "coins", "astronaut"], "channels": 1})
    faces, _, _ = prepare("faces", 32, {"count": 4, "indices": []})
    pool = np.concatenate([photos, faces])[:, 0]
    out = np.empty((N_IMAGES, 1, 8, 8))
    for k in range(N_IMAGES):
        i, a, b = rng.integers(len(pool)), *rng.integers(0, 25, 2)
        crop = pool[i, a:a + 8, b:b + 8]
        out[k, 0] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


@pytest.fixture(scope="module")
def shards(images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    names = np.array([f"img{k}" for k in range(N_IMAGES)])
    paths = []
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for start in range(0, N_IMAGES, SHARD):
            idx = np.arange(start, min(start + SHARD, N_IMAGES))
            res = compute_scores(images[idx], PARAMS, make_solver("batched", batched=dict(device="cpu")),
                                 progress=False, image_indices=idx, dtype=np.float32, nonlinear="newton")
            path = folder / f"shard{start // SHARD}.npz"
            write_npz(path, score_arrays(res, names[idx], "{}", indices=idx))
            paths.append(path)
    finally:
        torch.set_num_threads(old)
    return paths, names, folder


def test_merge_equals_the_in_memory_result_and_reads_memory_mapped(images, shards):
    paths, names, folder = shards
    whole = compute_scores(images, PARAMS, make_solver("batched", batched=dict(device="cpu", threads=1)),
                           progress=False, dtype=np.float32, nonlinear="newton")
    out = merge_shards_to_dir(paths[::-1], N_IMAGES, folder / "merged", names=names)  # any shard order
    got = read_scores(out)
    assert isinstance(got["m"], np.memmap) and isinstance(got["scores"], np.memmap)
    assert not got["m"].flags.writeable
    np.testing.assert_array_equal(got["m"], whole.m)
    np.testing.assert_array_equal(got["scores"], whole.scores)
    np.testing.assert_array_equal(got["names"], names)
    batch = np.sort(np.random.default_rng(1).choice(N_IMAGES, 32, replace=False))
    np.testing.assert_array_equal(np.asarray(got["scores"][batch]), whole.scores[batch])  # a lazy batch read


def test_merge_copies_rows_in_the_kernel_or_through_memory_alike(images, shards, tmp_path, monkeypatch):
    """The merge copies each shard's consecutive rows inside the kernel (copy_file_range); shards whose rows
    are not consecutive, or a system without it, go through memory: the same files either way."""
    import os

    from fpscore import score_store

    paths, names, folder = shards
    fast = merge_shards_to_dir(paths, N_IMAGES, tmp_path / "fast", names=names)
    assert score_store._copy_rows(paths[0], "m", fast / "m.npy", np.arange(SHARD))
    assert not score_store._copy_rows(paths[0], "m", fast / "m.npy", np.arange(SHARD)[::-1])
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    slow = merge_shards_to_dir(paths, N_IMAGES, tmp_path / "slow", names=names)
    for key in ("m", "scores"):
        assert (fast / f"{key}.npy").read_bytes() == (slow / f"{key}.npy").read_bytes()
    # a shard of scattered images: through memory
    idx = np.arange(0, N_IMAGES, 2)
    res = compute_scores(images[idx], PARAMS, make_solver("batched", batched=dict(device="cpu", threads=1)),
                         progress=False, image_indices=idx, dtype=np.float32, nonlinear="newton")
    rest = np.arange(1, N_IMAGES, 2)
    res2 = compute_scores(images[rest], PARAMS, make_solver("batched", batched=dict(device="cpu", threads=1)),
                          progress=False, image_indices=rest, dtype=np.float32, nonlinear="newton")
    write_npz(tmp_path / "even.npz", score_arrays(res, names[idx], "{}", indices=idx))
    write_npz(tmp_path / "odd.npz", score_arrays(res2, names[rest], "{}", indices=rest))
    mixed = merge_shards_to_dir([tmp_path / "odd.npz", tmp_path / "even.npz"], N_IMAGES, tmp_path / "mixed",
                                names=names)
    np.testing.assert_array_equal(read_scores(mixed)["m"], read_scores(fast)["m"])


def test_merge_checks_coverage_and_names(shards, tmp_path):
    paths, names, _ = shards
    with pytest.raises(ValueError, match=r"do not cover images 0..239 exactly once \(missing \[64, 65"):
        merge_shards_to_dir([paths[0], paths[2], paths[3]], N_IMAGES, tmp_path / "m")
    with pytest.raises(ValueError, match="image names of the shards differ"):
        merge_shards_to_dir(paths, N_IMAGES, tmp_path / "m", names=names[::-1])
    assert not (tmp_path / "m").exists() and not list(tmp_path.iterdir())  # nothing half written


def test_bad_and_truncated_files_are_named(shards, tmp_path):
    paths, names, _ = shards
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not an npz file" * 4)
    for reader in (read_images, read_scores, lambda p: merge_shards_to_dir([p], 1, tmp_path / "o")):
        with pytest.raises(ValueError, match=f"{bad}: not a readable"):
            reader(bad)
    cut = tmp_path / "cut.npz"
    data = paths[1].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"shard {cut}: not a readable"):
        merge_shards_to_dir([paths[0], cut], N_IMAGES, tmp_path / "o")
    out = merge_shards_to_dir(paths, N_IMAGES, tmp_path / "merged")
    m = out / "m.npy"
    m.write_bytes(m.read_bytes()[:-100])
    with pytest.raises(ValueError, match=f"scores file {m}: not a readable .npy"):
        read_scores(out)


def test_training_reads_batches_of_the_merged_set_lazily(images, shards, monkeypatch):
    """The merged directory through the learning step's reader: the scores stay memory-mapped, a
    set over RESIDENT_BYTES is embedded per batch, and the loss equals the one of the whole set."""
    torch = pytest.importorskip("torch")
    from fpscore.diffusion import embedding
    from fpscore.diffusion.io import load_scores
    from fpscore.diffusion.losses import ours_loss
    from fpscore.diffusion.unet import UNet, UNetConfig

    paths, names, folder = shards
    out = merge_shards_to_dir(paths, N_IMAGES, folder / "for_training", names=names)
    scores, times, g, sde = load_scores(out, list(names), (1, 8, 8), range(N_IMAGES))
    assert isinstance(scores, np.memmap)
    monkeypatch.setattr(embedding, "RESIDENT_BYTES", 1024)
    lazy = embedding.trajectories_of(images, scores, times, g)
    assert isinstance(lazy, embedding.LazyTrajectories) and lazy.shape == (N_IMAGES, 4, 1, 8, 8)
    whole = embedding.embed_scores(images, np.asarray(scores), times, g)
    idx = torch.tensor([5, 239, 5, 0])
    np.testing.assert_array_equal(lazy[idx].numpy(), whole[idx.numpy()])
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1,), num_res_blocks=1,
                          attn_resolutions=()))
    times_t = torch.as_tensor(times, dtype=torch.float32)
    for sampling in ("levels", "jittered"):
        losses = [ours_loss(net, traj, times_t, sde, 8, torch.Generator().manual_seed(3), sampling=sampling)
                  for traj in (lazy, torch.as_tensor(whole))]
        assert losses[0].item() == losses[1].item()
    selected, *_ = load_scores(out, list(names), (1, 8, 8), [3, 1])  # a subset: only those images read
    assert not isinstance(selected, np.memmap) and selected.shape == (2, 1, 4, 8, 8)

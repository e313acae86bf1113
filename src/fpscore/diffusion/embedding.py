"""Score embedding (METHOD.md section 7): transport each image along the pre-computed scores.

    x^0 = image,   x^n = x^{n-1} + (f^n - (1/2) g(t_n)^2 s^n) dt_n,   dt_n = t_n - t_{n-1}

The embedded trajectory x^0..x^{N-1} is what our method trains on (section 8). A set whose
trajectories fit in memory (RESIDENT_BYTES) is embedded at once; a larger one is embedded
batch by batch from its (memory-mapped) scores by ``LazyTrajectories``, with the same values.
"""
from __future__ import annotations

import numpy as np

#: Embedded trajectories (float32) up to this size are held in memory; larger sets are lazy.
RESIDENT_BYTES = 1 << 30


def embed_scores(images: np.ndarray, scores: np.ndarray, times: np.ndarray, g: np.ndarray,
                 drift: np.ndarray | None = None) -> np.ndarray:
    """Embedded trajectories, N x T x C x H x W (float32), of images N x C x H x W.

    scores: N x C x T x H x W (the layout of a score set); times, g: length T;
    drift: f^n broadcastable to scores (None means f = 0, the diffusion pipeline).
    """
    images = np.asarray(images)
    scores = np.asarray(scores)
    times = np.asarray(times, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if images.ndim != 4:
        raise ValueError(f"images: expected N x C x H x W, got shape {images.shape}")
    n, c, h, w = images.shape
    if scores.ndim != 5 or scores.shape[:2] != (n, c) or scores.shape[3:] != (h, w):
        raise ValueError(f"scores: expected shape N x C x T x H x W = ({n}, {c}, T, {h}, {w}) to match the "
                         f"images, got {scores.shape}")
    t_count = scores.shape[2]
    if times.shape != (t_count,) or g.shape != (t_count,):
        raise ValueError(f"times and g: expected {t_count} values (the T axis of scores), got shapes "
                         f"{times.shape} and {g.shape}")
    if t_count > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("times: expected strictly increasing time levels")
    dt = np.diff(times)                                       # dt_n for n = 1..T-1
    velocity = -0.5 * (g[1:] ** 2)[None, None, :, None, None] * scores[:, :, 1:].astype(np.float64)
    if drift is not None:
        velocity = velocity + np.broadcast_to(np.asarray(drift, dtype=np.float64), scores.shape)[:, :, 1:]
    steps = velocity * dt[None, None, :, None, None]
    traj = np.empty((n, c, t_count, h, w), dtype=np.float64)
    traj[:, :, 0] = images
    traj[:, :, 1:] = images[:, :, None] + np.cumsum(steps, axis=2)
    return np.ascontiguousarray(traj.transpose(0, 2, 1, 3, 4), dtype=np.float32)


class LazyTrajectories:
    """The embedded trajectories N x T x C x H x W of a set too large to hold in memory.

    Indexing with a 1-D integer tensor of image indices reads those images' scores (a
    memory-mapped array reads only their pages), embeds them (``embed_scores``, the same
    values as embedding the whole set) and returns a float32 tensor on ``device``; a
    training batch is all ``ours_loss`` indexes, so memory grows with the batch, not the set.
    """

    ndim = 5

    def __init__(self, images: np.ndarray, scores: np.ndarray, times: np.ndarray, g: np.ndarray,
                 device="cpu"):
        import torch

        n, c, h, w = images.shape
        if scores.ndim != 5 or scores.shape[:2] != (n, c) or scores.shape[3:] != (h, w):
            raise ValueError(f"scores: expected shape N x C x T x H x W = ({n}, {c}, T, {h}, {w}) to match the "
                             f"images, got {scores.shape}")
        self.images, self.scores, self.times, self.g = images, scores, times, g
        self.shape = (n, scores.shape[2], c, h, w)
        self.device = torch.device(device)

    def __getitem__(self, idx):
        import torch

        idx = np.asarray(torch.as_tensor(idx).cpu(), dtype=np.int64)
        unique, inverse = np.unique(idx, return_inverse=True)   # sorted reads of the mapped file
        traj = embed_scores(np.asarray(self.images[unique]), np.asarray(self.scores[unique]), self.times, self.g)
        return torch.as_tensor(traj[inverse], device=self.device)


def trajectories_of(images: np.ndarray, scores: np.ndarray, times: np.ndarray, g: np.ndarray, device="cpu"):
    """The training set of our method: embedded at once (an array) when it fits RESIDENT_BYTES, else lazy."""
    n, c, h, w = np.shape(images)
    if n * scores.shape[2] * c * h * w * 4 <= RESIDENT_BYTES:
        return embed_scores(images, scores, times, g)
    return LazyTrajectories(images, scores, times, g, device)

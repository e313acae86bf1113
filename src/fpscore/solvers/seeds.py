"""Seed selection for the cross-matrix projection (METHOD.md §6).

A seed is an image whose Fokker-Planck systems are solved first; the
subspaces met there are reused for the other ("target") images. Seeds are
either the first images of the set or the medoids of the set by pixel L2
distance (a small k-medoids), and every target is served by its nearest seed.
The same distances give the image dissimilarity that the diagnostics plot
against the projection residual.
"""

from __future__ import annotations

import numpy as np

from fpscore.names import SEED_CHOICES


def _flatten(images: np.ndarray) -> np.ndarray:
    """(N, ...) image stack -> (N, P) float64 rows, with a clear error on bad input."""
    arr = np.asarray(images)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"images: expected a non-empty stack (N, ...) of images, got shape {arr.shape}")
    flat = arr.reshape(arr.shape[0], -1).astype(np.float64, copy=False)
    if not np.all(np.isfinite(flat)):
        raise ValueError("images: contains NaN or inf pixels")
    return flat


def pairwise_distances(images: np.ndarray) -> np.ndarray:
    """Pixel L2 distances ||x_i - x_j||_2 between all images, (N, N)."""
    flat = _flatten(images)
    d2 = _sq_dist_gram(flat, flat)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def k_medoids(dist: np.ndarray, k: int, max_iter: int = 100) -> np.ndarray:
    """Indices of k medoids of a distance matrix (PAM BUILD start, then alternating updates).

    Deterministic: BUILD adds, one at a time, the point that lowers the total
    distance to the nearest medoid most; the alternating phase then moves each
    medoid to the member of its cluster with the least summed distance, until
    nothing changes. Ties go to the lowest index.
    """
    dist = np.asarray(dist, dtype=np.float64)
    n = dist.shape[0]
    if dist.shape != (n, n):
        raise ValueError(f"dist: expected a square matrix, got shape {dist.shape}")
    _check_count(k, n)
    medoids = [int(np.argmin(dist.sum(axis=1)))]
    nearest = dist[medoids[0]].copy()
    for _ in range(1, k):
        # Total cost if candidate c joined: sum_j min(nearest_j, d(c, j)).
        cost = np.minimum(nearest[None, :], dist).sum(axis=1)
        cost[medoids] = np.inf
        c = int(np.argmin(cost))
        medoids.append(c)
        nearest = np.minimum(nearest, dist[c])
    medoids = np.array(medoids)
    for _ in range(max_iter):
        labels = np.argmin(dist[medoids], axis=0)
        labels[medoids] = np.arange(k)  # a medoid always belongs to its own cluster
        new = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(labels == c)
            within = dist[np.ix_(members, members)].sum(axis=1)
            new[c] = members[int(np.argmin(within))]
        if np.array_equal(new, medoids):
            break
        medoids = new
    return medoids


def _check_count(n_seeds: int, n_images: int) -> None:
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds: expected a positive integer, got {n_seeds!r}")
    if n_seeds > n_images:
        raise ValueError(f"n_seeds={n_seeds} is larger than the set of {n_images} images")


def select_seeds(images: np.ndarray, n_seeds: int, choice: str = "medoid") -> np.ndarray:
    """Indices (n_seeds,) of the seed images: the first ones, or the medoids by pixel L2 distance."""
    if choice not in SEED_CHOICES:
        raise ValueError(f"seed_choice: unknown value {choice!r}, expected one of {SEED_CHOICES}")
    n = np.asarray(images).shape[0]
    _check_count(n_seeds, n)
    if choice == "first":
        return np.arange(n_seeds)
    return k_medoids(pairwise_distances(images), n_seeds)


def nearest_seed(images: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each image: its nearest seed, and per-channel dissimilarity to that seed.

    images: (N, C, H, W) (or (N, H, W), read as one channel); seeds: indices.
    Returns (nearest (N,) seed image index, distance (N, C) pixel L2 distance
    per channel, relative (N, C) distance / ||channel||). A seed is its own
    nearest seed (distance 0).
    """
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        raise ValueError(f"images: expected shape (N, C, H, W) or (N, H, W), got {np.asarray(images).shape}")
    seeds = np.asarray(seeds, dtype=int).ravel()
    if seeds.size == 0 or seeds.min() < 0 or seeds.max() >= arr.shape[0]:
        raise ValueError(f"seeds: expected indices in [0, {arr.shape[0]}), got {seeds.tolist()}")
    flat = _flatten(arr)
    d2 = _sq_dist_gram(flat, flat[seeds])
    d2[seeds, np.arange(seeds.size)] = 0.0  # exact zero for a seed against itself
    nearest = seeds[np.argmin(d2, axis=1)]
    diff = arr - arr[nearest]
    distance = np.sqrt(np.einsum("ncij,ncij->nc", diff, diff))
    norm = np.sqrt(np.einsum("ncij,ncij->nc", arr, arr))
    relative = np.divide(distance, norm, out=np.zeros_like(distance), where=norm > 0)
    return nearest, distance, relative


def _sq_dist_gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared L2 distances between rows of a and rows of b via the Gram trick."""
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)

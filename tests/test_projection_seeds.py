"""Seed selection (first, medoids) and dissimilarity to the nearest seed."""

import numpy as np
import pytest

from fpscore.solvers.seeds import k_medoids, nearest_seed, pairwise_distances, select_seeds


def _constant_images(values, size=4):
    return np.stack([np.full((1, size, size), v) for v in values])


def test_pairwise_distances_match_direct_norms():
    rng = np.random.default_rng(0)
    imgs = rng.random((5, 2, 3, 3))
    d = pairwise_distances(imgs)
    direct = np.array([[np.linalg.norm(a - b) for b in imgs] for a in imgs])
    np.testing.assert_allclose(d, direct, atol=1e-12)


def test_medoids_of_two_clusters_are_their_middle_images():
    # Cluster {0.1, 0.2, 0.3} has medoid 0.2 (index 1); cluster {0.7, 0.8, 0.85, 0.95}
    # has medoid 0.8 (index 5: summed distance 0.3 against 0.35 for 0.85).
    imgs = _constant_images([0.7, 0.2, 0.1, 0.85, 0.3, 0.8, 0.95])
    seeds = select_seeds(imgs, 2, "medoid")
    assert sorted(seeds.tolist()) == [1, 5]


def test_single_medoid_minimises_summed_distance():
    rng = np.random.default_rng(1)
    imgs = rng.random((9, 1, 5, 5))
    d = pairwise_distances(imgs)
    (m,) = select_seeds(imgs, 1, "medoid")
    assert m == int(np.argmin(d.sum(axis=1)))


def test_alternating_phase_improves_build_start():
    # Points on a line: BUILD's first medoid is the global medoid (index 2, value 3),
    # which is not a medoid of either cluster; the alternating phase must fix that.
    x = np.array([0.0, 1.0, 3.0, 5.0, 6.0])
    d = np.abs(x[:, None] - x[None, :])
    assert sorted(k_medoids(d, 2).tolist()) in ([0, 3], [1, 3], [1, 4], [0, 4])
    cost = lambda med: np.min(d[med], axis=0).sum()  # noqa: E731
    best = min(cost([i, j]) for i in range(5) for j in range(i + 1, 5))
    assert cost(k_medoids(d, 2)) == best


def test_first_seeds_are_the_first_indices():
    imgs = _constant_images([0.5, 0.1, 0.9])
    assert select_seeds(imgs, 2, "first").tolist() == [0, 1]


def test_nearest_seed_and_per_channel_distance():
    imgs = np.zeros((3, 2, 2, 2))
    imgs[1, 0] = 1.0  # channel 0 differs from image 0 by 1 per pixel (L2 = 2)
    imgs[2] = 5.0
    nearest, dist, rel = nearest_seed(imgs, np.array([0, 2]))
    assert nearest.tolist() == [0, 0, 2]
    np.testing.assert_allclose(dist[1], [2.0, 0.0])
    np.testing.assert_allclose(dist[[0, 2]], 0.0)
    np.testing.assert_allclose(rel[1], [1.0, 0.0])


@pytest.mark.parametrize("n_seeds", [4, 0, -1, 1.5])
def test_bad_seed_count_names_the_value(n_seeds):
    imgs = _constant_images([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=rf"n_seeds.*{n_seeds}|{n_seeds}.*n_seeds"):
        select_seeds(imgs, n_seeds, "medoid")


def test_unknown_seed_choice_names_the_value():
    with pytest.raises(ValueError, match="seed_choice.*'random'"):
        select_seeds(_constant_images([0.1, 0.2]), 1, "random")

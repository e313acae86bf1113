"""Score embedding (METHOD.md section 7) against closed forms."""
import numpy as np
import pytest

from fpscore.diffusion.embedding import embed_scores
from fpscore.diffusion.sde import VESDE


def setup(n=2, c=1, size=5):
    sde = VESDE(n_times=6)
    rng = np.random.default_rng(0)
    images = rng.random((n, c, size, size)).astype(np.float32)
    return sde, images, sde.times(), sde.g(sde.times())


def test_zero_scores_return_the_image():
    sde, images, times, g = setup()
    traj = embed_scores(images, np.zeros((2, 1, 6, 5, 5)), times, g)
    assert traj.shape == (2, 6, 1, 5, 5)
    assert np.array_equal(traj, np.repeat(images[:, None], 6, axis=1))


def test_constant_score_moves_by_closed_form():
    """x^n = x^0 - (c / 2) sum_{m=1..n} sigma^(2 t_m) dt on the uniform grid."""
    sde, images, times, g = setup()
    c = 0.7
    traj = embed_scores(images, np.full((2, 1, 6, 5, 5), c), times, g)
    dt = (1 - sde.eps) / 5
    for n in range(6):
        shift = -0.5 * c * dt * sum(5.0 ** (2 * times[m]) for m in range(1, n + 1))
        assert np.allclose(traj[:, n], images + shift, atol=1e-5)
    # with a drift f the step gains f dt: a drift equal to g^2 c / 2 cancels the score
    drift = 0.5 * c * (g ** 2)[None, None, :, None, None] * np.ones((2, 1, 6, 5, 5))
    assert np.allclose(embed_scores(images, np.full((2, 1, 6, 5, 5), c), times, g, drift=drift),
                       np.repeat(images[:, None], 6, axis=1), atol=1e-5)


def test_mismatched_shapes_are_clear_errors():
    sde, images, times, g = setup()
    with pytest.raises(ValueError, match="do not match|match the images"):
        embed_scores(images, np.zeros((3, 1, 6, 5, 5)), times, g)
    with pytest.raises(ValueError, match="match the images"):
        embed_scores(images, np.zeros((2, 1, 6, 4, 5)), times, g)
    with pytest.raises(ValueError, match="times and g"):
        embed_scores(images, np.zeros((2, 1, 6, 5, 5)), times[:5], g[:5])

"""DDPM schedule closed forms; the samplers with the exact epsilon of a point mass return the point."""
import numpy as np
import pytest
import torch

from fpscore.diffusion.ddpm import DDPMSchedule, ancestral_sample, ddim_sample, ddim_timesteps


def test_schedule_closed_forms():
    s = DDPMSchedule(1000, 1e-4, 0.02)
    t = np.arange(1000)
    betas = 1e-4 + (0.02 - 1e-4) * t / 999
    assert np.allclose(s.betas, betas, rtol=0, atol=1e-15)
    assert np.allclose(s.alphas, 1 - betas)
    assert np.allclose(s.alpha_bars, np.exp(np.cumsum(np.log1p(-betas))), rtol=1e-12)
    assert s.alpha_bars[0] == pytest.approx(1 - 1e-4)
    assert s.alpha_bars[-1] == pytest.approx(4.0358e-5, rel=1e-3)  # the well-known abar_T of this schedule
    post = s.posterior_variance
    assert post[0] == 0.0
    k = 500
    assert post[k] == pytest.approx(betas[k] * (1 - s.alpha_bars[k - 1]) / (1 - s.alpha_bars[k]))
    assert np.all(post[1:] < betas[1:])


def point_mass(schedule, x0):
    abar = torch.as_tensor(schedule.alpha_bars, dtype=torch.float32)

    def eps(x, steps):
        a = abar[steps.long()].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    return eps


@pytest.mark.parametrize("kind", ["ancestral", "ddim"])
def test_exact_epsilon_of_a_point_mass_returns_the_point(kind):
    schedule = DDPMSchedule(200, 1e-4, 0.02)
    x0 = torch.linspace(-0.9, 0.9, 16).reshape(1, 1, 4, 4)
    gen = torch.Generator().manual_seed(1)
    x_init = torch.randn(3, 1, 4, 4, generator=gen)
    if kind == "ancestral":
        res = ancestral_sample(point_mass(schedule, x0), x_init, schedule, gen, progression_steps=4)
    else:
        res = ddim_sample(point_mass(schedule, x0), x_init, schedule, 20, progression_steps=4)
    expected = ((x0.numpy() + 1) / 2).repeat(3, axis=0)  # output in image units [0, 1]
    assert np.abs(res.final - expected).max() < 1e-4
    assert res.states.shape == (4, 3, 1, 4, 4) and np.allclose(res.states[-1], res.final)


def test_bad_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="timesteps"):
        DDPMSchedule(1)
    with pytest.raises(ValueError, match="beta_start"):
        DDPMSchedule(10, 0.1, 0.01)
    with pytest.raises(ValueError, match="ddim_steps"):
        ddim_timesteps(10, 11)


def test_exact_epsilon_of_a_few_images_generates_those_images():
    """DDPMMethod's whole sampling path (the [-1, 1] mapping, the step input, the default schedule of
    1000 steps, both samplers) with the exact epsilon of the empirical distribution of 4 images:
    every sample from pure noise is one of the images, and more than one image is reached."""
    from fpscore.config import schema_default
    from fpscore.diffusion.methods import DDPMMethod

    dd = schema_default("learn.ddpm")
    schedule = DDPMSchedule(dd["timesteps"], dd["beta_start"], dd["beta_end"])
    images = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    data = torch.as_tensor(2 * images - 1).reshape(4, -1)
    abar = torch.as_tensor(schedule.alpha_bars, dtype=torch.float64)

    def exact_eps(x, steps):  # E[eps | x_t] of the mixture of 4 point masses, in the network's units
        a = abar[steps.long()].reshape(-1, 1)
        flat = x.reshape(x.shape[0], -1).double()
        logw = -((flat[:, None, :] - a.sqrt()[:, None] * data[None].double()) ** 2).sum(-1) / (2 * (1 - a))
        x0 = torch.softmax(logw, dim=1) @ data.double()
        return ((flat - a.sqrt() * x0) / (1 - a).sqrt()).reshape(x.shape).float()

    for sampler in ("ancestral", "ddim"):
        res = DDPMMethod(schedule, sampler, dd["ddim_steps"]).sample(exact_eps, 12, (1, 8, 8),
                                                                     torch.Generator().manual_seed(3))
        dist = np.sqrt(((res.final[:, None] - images[None]) ** 2).mean(axis=(2, 3, 4)))  # (12, 4) RMS
        assert dist.min(axis=1).max() < 0.02, (sampler, dist.min(axis=1))
        assert len(set(dist.argmin(axis=1))) > 1

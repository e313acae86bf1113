"""Probability-flow ODE sampler against the exact score of a Gaussian data distribution (no network)."""
import numpy as np
import pytest
import torch

from fpscore.diffusion.sampling import ode_sample, progression_indices
from fpscore.diffusion.sde import VESDE

MU, S0 = 0.3, 0.2  # data distribution N(MU, S0^2) per pixel


def gaussian_score(sde):
    """Exact score of the VE marginal N(MU, S0^2 + lambda(t)^2)."""
    return lambda x, t: -(x - MU) / (S0 ** 2 + sde.marginal_std(t) ** 2)


def start(sde, n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return MU + np.sqrt(S0 ** 2 + sde.marginal_std(1.0) ** 2) * torch.randn(n, 1, 16, 16, generator=gen)


def test_sde_closed_forms():
    sde = VESDE(sigma=5.0, eps=1e-3, n_times=20)
    t = np.linspace(0.01, 1, 7)
    assert np.allclose(sde.g(t), 5.0 ** t)
    assert np.allclose(sde.marginal_std(t) ** 2, (25.0 ** t - 1) / (2 * np.log(5.0)))
    # d lambda^2 / dt = g^2 (the VE marginal variance is the integral of g^2)
    h = 1e-6
    assert np.allclose((sde.marginal_std(t + h) ** 2 - sde.marginal_std(t - h) ** 2) / (2 * h), sde.g(t) ** 2,
                       rtol=1e-5)
    assert np.allclose(sde.times(), np.linspace(1e-3, 1, 20))
    assert sde.marginal_std(torch.tensor([0.5])).item() == pytest.approx(sde.marginal_std(0.5))


@pytest.mark.parametrize("method,tol", [("rk45", 2e-2), ("heun", 5e-3)])
def test_gaussian_marginal_at_eps(method, tol):
    """Samples match N(MU, S0^2 + lambda(eps)^2): mean within 4 standard errors, std within 5 %, and each
    sample lies on the exact (linear) ODE flow within `tol` (RK45 at rtol = atol = 1e-3, Heun with 100 steps)."""
    sde = VESDE()
    x1 = start(sde)
    res = ode_sample(gaussian_score(sde), x1, sde, method=method, heun_steps=100, progression_steps=6,
                     denoise=False)
    var_eps, var_1 = S0 ** 2 + sde.marginal_std(sde.eps) ** 2, S0 ** 2 + sde.marginal_std(1.0) ** 2
    n = res.final.size
    assert abs(res.final.mean() - MU) < 4 * np.sqrt(var_eps / n)
    assert res.final.std() == pytest.approx(np.sqrt(var_eps), rel=0.05)
    exact = MU + np.sqrt(var_eps / var_1) * (x1.numpy() - MU)
    assert np.abs(res.final - exact).max() < tol
    assert res.states.shape == (6, *x1.shape)
    assert res.times[0] == 1.0 and res.times[-1] == pytest.approx(sde.eps)
    assert np.allclose(res.states[0], x1.numpy()) and np.allclose(res.states[-1], res.final)


def test_denoise_step_is_the_posterior_mean():
    """With the final Tweedie step, x -> x + lambda(eps)^2 s(x, eps) = MU + S0^2 / var_eps (x - MU)."""
    sde = VESDE()
    x1 = start(sde, n=4)
    raw = ode_sample(gaussian_score(sde), x1, sde, method="heun", heun_steps=20, denoise=False)
    den = ode_sample(gaussian_score(sde), x1, sde, method="heun", heun_steps=20, denoise=True)
    var_eps = S0 ** 2 + sde.marginal_std(sde.eps) ** 2
    assert np.allclose(den.final, MU + S0 ** 2 / var_eps * (raw.final - MU), atol=1e-5)
    assert den.nfe == raw.nfe + 1 and "denoise" in den.sampler


def test_bad_sampler_options():
    sde = VESDE()
    with pytest.raises(ValueError, match="sampler.method"):
        ode_sample(gaussian_score(sde), start(sde, 1), sde, method="euler")
    with pytest.raises(ValueError, match="progression_steps"):
        progression_indices(10, 1)
    with pytest.raises(ValueError, match="sigma"):
        VESDE(sigma=1.0)


def test_heun_grid_and_inverse_of_lambda():
    from fpscore.diffusion.sampling import heun_grid

    sde = VESDE()
    t = np.linspace(sde.eps, 1, 9)
    assert np.allclose(sde.time_of_std(sde.marginal_std(t)), t)
    grid = heun_grid(sde, 10)
    assert grid[0] == 1.0 and grid[-1] == sde.eps and np.all(np.diff(grid) < 0)
    assert grid[-2] < 0.05  # steps crowd towards eps, where the flow is stiff


def test_zero_network_gives_the_gaussian_score_of_the_preconditioning():
    """With F = 0 the edm parameterisation is the exact score of N(1/2, 1/4 + lambda^2): a closed form."""
    from fpscore.diffusion.losses import score_from_net

    sde = VESDE()
    x = torch.rand(3, 1, 4, 4)
    t = torch.tensor([0.001, 0.3, 1.0])
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    lam2 = torch.as_tensor(sde.marginal_std(t.numpy()), dtype=torch.float32).reshape(-1, 1, 1, 1) ** 2
    assert torch.allclose(score_from_net(zero, x, t, sde, "edm"), -(x - 0.5) / (0.25 + lam2), rtol=1e-4, atol=1e-4)  # float32 cancellation at eps
    one = lambda x, t: torch.ones_like(x)  # noqa: E731
    assert torch.allclose(score_from_net(one, x, t, sde, "eps"), 1 / lam2.sqrt().expand_as(x), rtol=1e-5)

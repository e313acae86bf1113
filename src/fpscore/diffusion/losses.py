"""Training losses: ours (METHOD.md section 8), plain denoising score matching, the DDPM epsilon MSE.

Ours: time levels n stratified over the batch, t = t_n, z ~ N(0, I),
x_eps = x^n + lambda(t) z, and

    loss = mean over the batch of  1 / (2 g(t)^2) * || lambda(t) s_theta(x_eps, t) + z ||^2

with x^n the embedded trajectory (section 7). How the U-Net F parameterises
s_theta is a choice of this implementation (METHOD.md leaves it open):

* ``edm`` (default): Karras et al. 2022 preconditioning around the data centre 1/2,
      D(x, t) = 1/2 + c_skip (x - 1/2) + c_out F(c_in (x - 1/2), 999 t),   s_theta = (D - x) / lambda^2,
  c_skip = sd^2 / (lambda^2 + sd^2), c_out = lambda sd / sqrt(lambda^2 + sd^2),
  c_in = 1 / sqrt(lambda^2 + sd^2), sd = 1/2: unit-scale input and output at every noise level.
* ``eps``: s_theta = F(x, 999 t) / lambda (Song et al.'s output scaling of their VE models, by
  1/sigma), so lambda s_theta = F predicts -z.
* ``raw`` (the authors' code, METHOD.md section 8b): s_theta = F(2 x - 1, t), the network output
  is the score itself, no scaling or preconditioning; the time enters as t itself (their network
  is fed t in [eps, 1]; with ``UNetConfig.time_embedding = "linear"`` it is copied into every
  embedding dimension).

Training times (``TIME_SAMPLINGS``): ``levels`` draws the N time levels t_n stratified over the
batch (METHOD.md section 8); ``jittered`` (the authors') draws, per level n, one continuous t
uniformly in the level's bin (``level_bins``) with the embedding x^n recomputed at that t
(``jittered_embedding``); it needs a batch that is a multiple of N.

DSM (the like-for-like baseline): the same loss with x_eps = x_0 + lambda(t) z, i.e. the noise
is added to the image instead of the embedded x^n, at stratified continuous times in [eps, 1]
(or ours' stratified levels); see ``dsm_loss``.

DDPM: t ~ U{0..T-1}, x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, loss = mean (eps - net(x_t, t))^2.
"""
from __future__ import annotations

import torch

from fpscore.config import schema_default
from fpscore.diffusion.ddpm import DDPMSchedule
from fpscore.diffusion.sde import VESDE
from fpscore.names import DSM_TIMES, PARAMETERIZATIONS, TIME_SAMPLINGS

#: Our continuous time t in [eps, 1] is fed to the network as TIME_SCALE * t (DDPM feeds its step 0..T-1).
TIME_SCALE = 999.0


def stratified_levels(batch: int, n_levels: int, generator: torch.Generator) -> torch.Tensor:
    """One time level per sample, stratified: sample b falls in [b T / B, (b + 1) T / B)."""
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    levels = ((torch.arange(batch, dtype=torch.float64) + u) * n_levels / batch).floor().long()
    return levels.clamp_(0, n_levels - 1)


SIGMA_DATA, DATA_CENTRE = 0.5, 0.5


def check_parameterization(parameterization: str) -> str:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: expected one of {PARAMETERIZATIONS}, got {parameterization!r}")
    return parameterization


def score_from_net(net, x: torch.Tensor, t: torch.Tensor, sde: VESDE,
                   parameterization: str = schema_default("learn.parameterization")) -> torch.Tensor:
    """s_theta(x, t) from the U-Net output (see the module docstring); t is a batch (B,) of times."""
    check_parameterization(parameterization)
    if parameterization == "raw":
        return net(2.0 * x - 1.0, t)
    lam = sde.marginal_std(t.to(x.dtype)).reshape(-1, 1, 1, 1)
    if parameterization == "eps":
        return net(x, TIME_SCALE * t) / lam
    var = lam ** 2 + SIGMA_DATA ** 2
    c_skip, c_out, c_in = SIGMA_DATA ** 2 / var, lam * SIGMA_DATA / var.sqrt(), 1.0 / var.sqrt()
    xc = x - DATA_CENTRE
    denoised = DATA_CENTRE + c_skip * xc + c_out * net(c_in * xc, TIME_SCALE * t)
    return (denoised - x) / lam ** 2


def level_bins(times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) edges of each level's bin: halfway to the neighbouring levels, [eps, 1] at the ends.

    The bins tile [t_0, t_{N-1}] = [eps, 1] and each contains its level t_n.
    """
    mids = 0.5 * (times[1:] + times[:-1])
    return torch.cat([times[:1], mids]), torch.cat([mids, times[-1:]])


def jittered_times(batch: int, times: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(levels, t): batch / N samples per level n, each t uniform in the level's bin (``level_bins``).

    batch must be a multiple of N = len(times) (one continuous t per level bin, the authors' batch = N).
    """
    n_levels = len(times)
    if batch % n_levels:
        raise ValueError(f"batch_size: jittered training times need a multiple of the {n_levels} time levels, "
                         f"got {batch}")
    levels = torch.arange(n_levels).repeat(batch // n_levels)
    lo, hi = level_bins(times.detach().cpu().to(torch.float64))
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    t = lo[levels] + u * (hi[levels] - lo[levels])
    return levels.to(times.device), t.to(device=times.device, dtype=times.dtype)


def jittered_embedding(trajectories: torch.Tensor, times: torch.Tensor, sde: VESDE, idx: torch.Tensor,
                       levels: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x^n recomputed at the jittered time t with dt = 1/N (METHOD.md sections 7 and 8b), f = 0:

        x^n(t) = x^{n-1} - (1/2) g(t)^2 s^n / N   (n >= 1),   x^0(t) = x^0 (the image),

    with s^n read back from the embedded trajectory: x^n - x^{n-1} = -(1/2) g(t_n)^2 s^n dt_n.
    """
    n_levels = trajectories.shape[1]
    prev = trajectories[idx, (levels - 1).clamp(min=0)]
    step = trajectories[idx, levels] - prev                                   # -(1/2) g(t_n)^2 s^n dt_n
    dt_n = (times[1:] - times[:-1])[(levels - 1).clamp(min=0)]
    scale = (sde.g(t) ** 2 / sde.g(times[levels]) ** 2) * (1.0 / n_levels) / dt_n
    scale = torch.where(levels > 0, scale, torch.zeros_like(scale)).to(trajectories.dtype).reshape(-1, 1, 1, 1)
    return prev + scale * step


def draw_times(batch: int, times: torch.Tensor, sampling: str,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(levels, t) of a batch: stratified levels at t = t_n, or jittered inside the level bins."""
    if sampling == "levels":
        levels = stratified_levels(batch, len(times), generator).to(times.device)
        return levels, times[levels]
    if sampling == "jittered":
        return jittered_times(batch, times, generator)
    raise ValueError(f"times: expected one of {TIME_SAMPLINGS}, got {sampling!r}")


def ours_loss(net, trajectories: torch.Tensor, times: torch.Tensor, sde: VESDE, batch: int,
              generator: torch.Generator, parameterization: str = "edm", sampling: str = "levels") -> torch.Tensor:
    """Section 8 loss on a batch drawn from the embedded trajectories N x T x C x H x W (on net's device):
    a tensor, or a ``fpscore.diffusion.embedding.LazyTrajectories`` that embeds the drawn images.

    times: the T time levels t_n (float tensor on the same device);
    sampling: levels | jittered (``TIME_SAMPLINGS``, see the module docstring).
    """
    n_images, n_levels = trajectories.shape[:2]
    device = trajectories.device
    idx = torch.randint(n_images, (batch,), generator=generator).to(device)
    levels, t = draw_times(batch, times, sampling, generator)
    z = torch.randn((batch, *trajectories.shape[2:]), generator=generator).to(device)
    lam = sde.marginal_std(t).reshape(-1, 1, 1, 1)
    g2 = (sde.g(t) ** 2).reshape(-1)
    drawn = trajectories[idx]                      # b x T x C x H x W (lazily embedded for a large set)
    rows = torch.arange(batch, device=device)
    x_n = drawn[rows, levels] if sampling == "levels" else jittered_embedding(drawn, times, sde, rows, levels, t)
    residual = lam * score_from_net(net, x_n + lam * z, t, sde, parameterization) + z
    return (residual.square().flatten(1).sum(1) / (2 * g2)).mean()


def stratified_times(batch: int, t_min: float, generator: torch.Generator) -> torch.Tensor:
    """One continuous time per sample, stratified over [t_min, 1]: sample b in [b / B, (b + 1) / B) of it."""
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return t_min + (1.0 - t_min) * (torch.arange(batch, dtype=torch.float64) + u) / batch


def dsm_loss(net, data: torch.Tensor, sde: VESDE, batch: int, generator: torch.Generator,
             parameterization: str = "edm", levels: torch.Tensor | None = None,
             sampling: str = "levels") -> torch.Tensor:
    """Denoising score matching (Vincent 2011; Song et al. 2021) on data N x C x H x W in [0, 1].

    x_t = x_0 + lambda(t) z with z ~ N(0, I) regresses the known conditional score
    -z / lambda(t) of the VE SDE. Weighting: the usual lambda(t)^2 (Song et al.: the residual
    lambda s_theta + z has unit scale at every t, so no noise level dominates), times the
    1 / (2 g(t)^2) of METHOD.md section 8, so that this loss is term by term the loss of ours
    with x^n replaced by x_0: the comparison isolates the training targets, not a reweighting.

    levels: None draws t stratified and continuous in [eps, 1] (the standard choice); a tensor
    of time levels t_n draws from them as ``ours_loss`` does with ``sampling`` (levels | jittered;
    random numbers drawn in the same order, so this equals ``ours_loss`` on trajectories that
    stay at the image).
    """
    if data.ndim != 4:
        raise ValueError(f"data: expected N x C x H x W, got shape {tuple(data.shape)}")
    check_parameterization(parameterization)
    device = data.device
    idx = torch.randint(data.shape[0], (batch,), generator=generator).to(device)
    if levels is None:
        t = stratified_times(batch, sde.eps, generator).to(device=device, dtype=data.dtype)
    else:
        if levels.ndim != 1:
            raise ValueError(f"levels: expected a 1-D tensor of time levels, got shape {tuple(levels.shape)}")
        t = draw_times(batch, levels, sampling, generator)[1].to(device=device, dtype=data.dtype)
    z = torch.randn((batch, *data.shape[1:]), generator=generator).to(device)
    lam = sde.marginal_std(t).reshape(-1, 1, 1, 1)
    g2 = (sde.g(t) ** 2).reshape(-1)
    residual = lam * score_from_net(net, data[idx] + lam * z, t, sde, parameterization) + z
    return (residual.square().flatten(1).sum(1) / (2 * g2)).mean()


def ddpm_loss(net, data: torch.Tensor, schedule: DDPMSchedule, batch: int,
              generator: torch.Generator) -> torch.Tensor:
    """Epsilon-prediction MSE on a batch drawn from data N x C x H x W scaled to [-1, 1]."""
    device = data.device
    idx = torch.randint(data.shape[0], (batch,), generator=generator).to(device)
    steps = torch.randint(schedule.timesteps, (batch,), generator=generator).to(device)
    eps = torch.randn((batch, *data.shape[1:]), generator=generator).to(device)
    abar = torch.as_tensor(schedule.alpha_bars, dtype=data.dtype, device=device)[steps].reshape(-1, 1, 1, 1)
    x_t = abar.sqrt() * data[idx] + (1 - abar).sqrt() * eps
    return (eps - net(x_t, steps.to(data.dtype))).square().mean()

"""The like-for-like DSM baseline: its loss against exact scores, a tiny run, bad inputs, the model round trip."""
import numpy as np
import pytest
import torch

from fpscore.diffusion.losses import (SIGMA_DATA, TIME_SCALE, dsm_loss, ours_loss, score_from_net,
                                      stratified_times)
from fpscore.diffusion.methods import DSMMethod, method_from_description
from fpscore.diffusion.sde import VESDE
from fpscore.diffusion.training import StopRule, TrainSettings, train
from fpscore.diffusion.unet import UNet, UNetConfig

SDE = VESDE(n_times=10)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class ExactScoreNet(torch.nn.Module):
    """A 'U-Net' whose output gives, through score_from_net, the score of N(mean, std^2 I) data under the SDE."""

    def __init__(self, mean: torch.Tensor, std: float, parameterization: str):
        super().__init__()
        self.mean, self.std, self.parameterization = mean, std, parameterization

    def score(self, x, lam):
        return -(x - self.mean) / (self.std ** 2 + lam ** 2)

    def forward(self, y, tau):
        if self.parameterization == "raw":  # input 2x - 1, time t itself, output the score
            return self.score((y + 1) / 2, SDE.marginal_std(tau).reshape(-1, 1, 1, 1))
        lam = SDE.marginal_std(tau / TIME_SCALE).reshape(-1, 1, 1, 1)
        if self.parameterization == "eps":
            return lam * self.score(y, lam)
        var = lam ** 2 + SIGMA_DATA ** 2
        c_skip, c_out, c_in = SIGMA_DATA ** 2 / var, lam * SIGMA_DATA / var.sqrt(), 1.0 / var.sqrt()
        x = 0.5 + y / c_in
        denoised = x + lam ** 2 * self.score(x, lam)
        return (denoised - 0.5 - c_skip * (x - 0.5)) / c_out


@pytest.mark.parametrize("parameterization", ["edm", "eps", "raw"])
def test_exact_score_of_a_point_mass_has_zero_loss(parameterization):
    image = torch.rand((1, 1, 6, 6), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = ExactScoreNet(image, 0.0, parameterization)
    x = image + 0.3 * torch.randn((4, 1, 6, 6), dtype=torch.float64)
    t = torch.full((4,), 0.4, dtype=torch.float64)
    lam = SDE.marginal_std(0.4)
    assert torch.allclose(score_from_net(net, x, t, SDE, parameterization), -(x - image) / lam ** 2)
    loss = dsm_loss(net, image, SDE, 256, torch.Generator().manual_seed(1), parameterization)
    assert float(loss) < 1e-12


@pytest.mark.parametrize("parameterization", ["edm", "eps", "raw"])
def test_exact_gaussian_score_attains_the_expected_loss_and_beats_wrong_scores(parameterization):
    """Gaussian data N(mu, s0^2): per pixel, E || lambda s + z ||^2 = s0^2 / (s0^2 + lambda^2) at the exact score,
    the minimum of the loss (it is not 0: x_t does not determine z)."""
    mu, s0, n, batch, seed = 0.5, 0.2, 4096, 2048, 3
    rng = torch.Generator().manual_seed(0)
    data = mu + s0 * torch.randn((n, 1, 4, 4), generator=rng, dtype=torch.float64)

    def loss_of(mean, std):
        return float(dsm_loss(ExactScoreNet(torch.tensor(mean, dtype=torch.float64), std, parameterization),
                              data, SDE, batch, torch.Generator().manual_seed(seed), parameterization))

    replay = torch.Generator().manual_seed(seed)  # the times dsm_loss draws: after the image indices
    torch.randint(n, (batch,), generator=replay)
    t = stratified_times(batch, SDE.eps, replay)
    lam2, g2 = SDE.marginal_std(t) ** 2, SDE.g(t) ** 2
    expected = float((16 * s0 ** 2 / (s0 ** 2 + lam2) / (2 * g2)).mean())
    exact = loss_of(mu, s0)
    assert exact == pytest.approx(expected, rel=0.05)
    for wrong in (loss_of(mu + 0.2, s0), loss_of(mu, 2 * s0), loss_of(mu, 0.5 * s0)):
        assert wrong > 1.1 * exact  # the same random draws: the difference is the score error alone


def test_levels_make_dsm_equal_ours_with_zero_scores():
    image = torch.rand((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=()))
    times = torch.as_tensor(SDE.times(), dtype=torch.float32)
    for param in ("edm", "eps", "raw"):
        ours = ours_loss(net, image[:, None].repeat(1, SDE.n_times, 1, 1, 1), times, SDE, 8,
                         torch.Generator().manual_seed(5), param)
        dsm = dsm_loss(net, image, SDE, 8, torch.Generator().manual_seed(5), param, levels=times)
        assert torch.allclose(ours, dsm)
    uniform = stratified_times(1000, SDE.eps, torch.Generator().manual_seed(0))
    assert uniform.min() >= SDE.eps and uniform.max() <= 1.0
    assert np.histogram(uniform.numpy(), bins=10, range=(SDE.eps, 1.0))[0].tolist() == [100] * 10  # stratified


def tiny_image():
    yy, xx = np.mgrid[0:8, 0:8] / 7.0
    blob = np.exp(-((yy - 0.5) ** 2 + (xx - 0.4) ** 2) / 0.08) * (xx + 0.3) / 1.3
    return (0.2 + 0.6 * blob)[None, None].astype(np.float32)


def tiny_net():
    torch.manual_seed(0)
    return UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=(4,)))


def test_tiny_dsm_run_lowers_the_loss():
    img = tiny_image()
    method = DSMMethod(SDE, {"method": "heun", "heun_steps": 10}, img)
    settings = TrainSettings(batch_size=16, lr=3e-3, eval_every_seconds=1e9, eval_samples=2)
    result = train(method, tiny_net(), img, settings, StopRule("steps", max_steps=120), progress=False)
    losses = [row["loss"] for row in result.log if not np.isnan(row["loss"])]
    assert result.summary["method"] == "dsm" and result.summary["steps"] == 120
    assert np.mean(losses[-3:]) < 0.3 * losses[0], losses
    assert result.summary["final_ssim"] > 0.5, result.summary["final_ssim"]
    assert result.summary["clock"] == "wall"


def test_describe_rebuilds_the_same_sampler():
    method = DSMMethod(SDE, {"method": "heun", "heun_steps": 3}, tiny_image(), parameterization="eps",
                       times="levels")
    rebuilt = method_from_description(method.describe())
    assert isinstance(rebuilt, DSMMethod) and rebuilt.describe() == method.describe()
    assert rebuilt.data is None and rebuilt.describe()["times"] == "levels"
    net = tiny_net().eval()
    a = method.sample(net, 2, (1, 8, 8), torch.Generator().manual_seed(0))
    b = rebuilt.sample(net, 2, (1, 8, 8), torch.Generator().manual_seed(0))
    assert np.array_equal(a.final, b.final) and a.sampler == b.sampler == "heun(3)+denoise"
    with pytest.raises(RuntimeError, match="without images"):
        rebuilt.loss(net, 2, torch.Generator())


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="images: expected N x C x H x W"):
        DSMMethod(SDE, {}, np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="parameterization"):
        DSMMethod(SDE, {}, tiny_image(), parameterization="x0")
    with pytest.raises(ValueError, match="dsm times"):
        DSMMethod(SDE, {}, tiny_image(), times="random")
    with pytest.raises(ValueError, match="sampler.method"):
        DSMMethod(SDE, {"method": "euler"})
    net = tiny_net()
    with pytest.raises(ValueError, match="data: expected N x C x H x W"):
        dsm_loss(net, torch.zeros((1, 8, 8)), SDE, 2, torch.Generator())
    with pytest.raises(ValueError, match="parameterization"):
        dsm_loss(net, torch.zeros((1, 1, 8, 8)), SDE, 2, torch.Generator(), "x0")
    with pytest.raises(ValueError, match="levels"):
        dsm_loss(net, torch.zeros((1, 1, 8, 8)), SDE, 2, torch.Generator(), levels=torch.zeros((2, 2)))
    with pytest.raises(ValueError, match="dsm times"):
        method_from_description({**DSMMethod(SDE, {}).describe(), "times": "random"})
    with pytest.raises(ValueError, match="clock"):
        train(DSMMethod(SDE, {}, tiny_image()), net, tiny_image(), TrainSettings(), StopRule("steps", max_steps=1),
              progress=False, clock="sundial")

"""The authors' recipe as options (METHOD.md 8b): raw parameterisation, linear time embedding,
jittered training times, the unit sampler start, min-max SSIM; each against a closed form."""
import numpy as np
import pytest
import torch

from fpscore.diffusion.embedding import embed_scores
from fpscore.diffusion.losses import (DSM_TIMES, PARAMETERIZATIONS, TIME_SAMPLINGS, dsm_loss, jittered_embedding,
                                      jittered_times, level_bins, ours_loss, score_from_net)
from fpscore.diffusion.methods import DSMMethod, OursMethod, method_from_description
from fpscore.diffusion.sampling import start_std
from fpscore.diffusion.sde import VESDE
from fpscore.diffusion.unet import UNet, UNetConfig, linear_embedding
from fpscore.metrics import SSIM_MODES, mean_ssim_to_closest, ssim_to_closest, to_unit_range

pytestmark = pytest.mark.usefixtures("torch_one_thread")
SDE = VESDE(n_times=10)


class Recorder(torch.nn.Module):
    """Returns a fixed function of its inputs and records them."""

    def forward(self, y, t):
        self.y, self.t = y, t
        return 3.0 * y + t.reshape(-1, 1, 1, 1)


def test_raw_output_is_the_score_of_input_2x_minus_1_at_time_t():
    net = Recorder()
    x = torch.rand((3, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.1, 0.5, 0.9])
    s = score_from_net(net, x, t, SDE, "raw")
    assert torch.allclose(net.y, 2 * x - 1) and torch.equal(net.t, t)
    assert torch.allclose(s, 3.0 * (2 * x - 1) + t.reshape(-1, 1, 1, 1))
    assert PARAMETERIZATIONS == ("edm", "eps", "raw")


def test_unknown_parameterization_is_named():
    with pytest.raises(ValueError, match="'x0'"):
        score_from_net(Recorder(), torch.zeros(1, 1, 2, 2), torch.ones(1), SDE, "x0")
    with pytest.raises(ValueError, match="'x0'"):
        DSMMethod(SDE, {}, parameterization="x0")


def test_linear_time_embedding_copies_t_into_every_dimension():
    t = torch.tensor([0.25, 0.75])
    emb = linear_embedding(t, 6)
    assert emb.shape == (2, 6) and torch.equal(emb, t[:, None].repeat(1, 6))
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=(),
                          time_embedding="linear"))
    assert net(torch.zeros(2, 1, 8, 8), t).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="unet.time_embedding.*'fourier'"):
        UNetConfig(time_embedding="fourier")


def test_linear_embedding_makes_the_network_depend_on_t():
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=(),
                          time_embedding="linear"))
    torch.nn.init.normal_(net.conv_out.weight)  # the output layer starts at zero
    for block in net.modules():
        if hasattr(block, "conv2") and isinstance(block.conv2, torch.nn.Conv2d):
            torch.nn.init.normal_(block.conv2.weight, std=0.1)
    x = torch.rand(1, 1, 8, 8)
    assert not torch.allclose(net(x, torch.tensor([0.1])), net(x, torch.tensor([0.9])))


def test_jittered_times_stay_inside_their_bins_one_per_level():
    times = torch.as_tensor(SDE.times(), dtype=torch.float32)
    lo, hi = level_bins(times.double())
    assert torch.all(lo <= times.double()) and torch.all(times.double() <= hi)
    assert float(lo[0]) == pytest.approx(SDE.eps) and float(hi[-1]) == 1.0 and torch.allclose(lo[1:], hi[:-1])
    levels, t = jittered_times(30, times, torch.Generator().manual_seed(0))
    assert torch.equal(torch.bincount(levels), torch.full((10,), 3))
    assert torch.all(t >= lo[levels].float() - 1e-7) and torch.all(t <= hi[levels].float() + 1e-7)
    assert not torch.allclose(t, times[levels])  # really jittered


def test_jittered_batch_must_be_a_multiple_of_n():
    times = torch.as_tensor(SDE.times(), dtype=torch.float32)
    with pytest.raises(ValueError, match="multiple of the 10 time levels, got 12"):
        jittered_times(12, times, torch.Generator())


def test_embedding_at_a_jittered_time_is_section_7_at_that_time():
    rng = np.random.default_rng(0)
    img = rng.random((1, 1, 4, 4)).astype(np.float32)
    scores = rng.standard_normal((1, 1, 10, 4, 4))
    times = SDE.times()
    traj = torch.as_tensor(embed_scores(img, scores, times, SDE.g(times)))
    tt = torch.as_tensor(times, dtype=torch.float32)
    levels = torch.tensor([0, 1, 4, 9])
    t = torch.tensor([0.001, 0.12, 0.43, 0.97])
    got = jittered_embedding(traj, tt, SDE, torch.zeros(4, dtype=torch.long), levels, t)
    for k, (n, tk) in enumerate(zip(levels.tolist(), t.tolist())):
        expected = img[0] if n == 0 else traj[0, n - 1].numpy() - 0.5 * SDE.g(tk) ** 2 * scores[0, :, n] / 10
        np.testing.assert_allclose(got[k].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_jittered_loss_of_zero_scores_equals_dsm_jittered():
    img = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    traj = img[:, None].repeat(1, 10, 1, 1, 1)
    times = torch.as_tensor(SDE.times(), dtype=torch.float32)
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=()))
    a = ours_loss(net, traj, times, SDE, 20, torch.Generator().manual_seed(3), "raw", "jittered")
    b = dsm_loss(net, img, SDE, 20, torch.Generator().manual_seed(3), "raw", times, "jittered")
    assert torch.allclose(a, b)
    assert "jittered" in TIME_SAMPLINGS and "jittered" in DSM_TIMES
    with pytest.raises(ValueError, match="'random'"):
        OursMethod(SDE, {}, parameterization="raw", times="random")


def test_unit_start_draws_n01_and_is_recorded():
    assert start_std(SDE, "unit") == 1.0 and start_std(SDE, "lambda1") == SDE.prior_std()
    with pytest.raises(ValueError, match="sampler.start.*'zero'"):
        start_std(SDE, "zero")
    with pytest.raises(ValueError, match="sampler.start.*'zero'"):
        OursMethod(SDE, {"start": "zero"})

    class Zero(torch.nn.Module):
        def forward(self, y, t):
            return torch.zeros_like(y)

    # raw with a zero network: zero score, so the ODE leaves the start unchanged and x(eps) is the start itself
    sampler = {"method": "heun", "heun_steps": 3, "denoise": False, "start": "unit"}
    method = OursMethod(SDE, sampler, parameterization="raw", times="jittered")
    out = method.sample(Zero(), 4000, (1, 2, 2), torch.Generator().manual_seed(0)).final
    assert abs(out.std() - 1.0) < 0.03
    back = method_from_description(method.describe())
    assert back.sampler["start"] == "unit" and back.time_sampling == "jittered" and back.parameterization == "raw"


def test_minmax_ssim_of_an_affine_transform_is_one():
    ref = np.random.default_rng(0).random((1, 1, 16, 16))
    ref = (ref - ref.min()) / np.ptp(ref)  # spans [0, 1], so min-max normalising 3 ref - 1.2 gives ref back
    sample = 3.0 * ref - 1.2  # outside [0, 1]: clipping would ruin it
    assert mean_ssim_to_closest(sample, ref, "minmax") == pytest.approx(1.0, abs=1e-12)
    assert mean_ssim_to_closest(sample, ref, "clip") < 0.9
    assert mean_ssim_to_closest(ref, ref, "clip") == pytest.approx(1.0)
    np.testing.assert_allclose(to_unit_range(np.array([[2.0, 4.0, 3.0]]), "minmax"), [[0.0, 1.0, 0.5]])
    assert SSIM_MODES == ("clip", "minmax")
    with pytest.raises(ValueError, match="ssim_mode.*'zscore'"):
        ssim_to_closest(sample, ref, "zscore")


def test_tiny_run_of_the_authors_recipe_lowers_the_loss():
    from fpscore.diffusion.training import StopRule, TrainSettings, train

    yy, xx = np.mgrid[0:8, 0:8] / 7.0
    img = (0.2 + 0.6 * np.exp(-((yy - 0.5) ** 2 + (xx - 0.4) ** 2) / 0.08))[None, None].astype(np.float32)
    sde = VESDE(sigma=2.0, n_times=10)
    traj = embed_scores(img, np.zeros((1, 1, 10, 8, 8)), sde.times(), sde.g(sde.times()))
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=(),
                          time_embedding="linear"))
    method = OursMethod(sde, {"method": "heun", "heun_steps": 8, "denoise": False, "start": "unit"}, traj,
                        parameterization="raw", times="jittered")
    settings = TrainSettings(batch_size=10, lr=3e-3, grad_clip=0.0, eval_every_seconds=1e9)
    result = train(method, net, img, settings, StopRule("steps", max_steps=150), progress=False)
    losses = [row["loss"] for row in result.log if not np.isnan(row["loss"])]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:1]), losses
    with pytest.raises(ValueError, match="multiple of the 10 time levels, got 16"):
        train(method, net, img, TrainSettings(batch_size=16), StopRule("steps", max_steps=1), progress=False)

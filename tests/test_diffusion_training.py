"""The shared training loop: a tiny run learns, an interrupted run resumes to the same state, bad input fails."""
import numpy as np
import pytest
import torch

from fpscore.diffusion.ddpm import DDPMSchedule
from fpscore.diffusion.embedding import embed_scores
from fpscore.diffusion.methods import DDPMMethod, OursMethod, method_from_description
from fpscore.diffusion.sde import VESDE
from fpscore.diffusion.training import StopRule, TrainSettings, optimizer_state_equal, train
from fpscore.diffusion.unet import UNet, UNetConfig
from fpscore.metrics import mean_ssim_to_closest


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_image():
    yy, xx = np.mgrid[0:8, 0:8] / 7.0
    blob = np.exp(-((yy - 0.5) ** 2 + (xx - 0.4) ** 2) / 0.08) * (xx + 0.3) / 1.3
    return (0.2 + 0.6 * blob)[None, None].astype(np.float32)


def tiny_setup(n_times=10, scores=None):
    img = tiny_image()
    sde = VESDE(n_times=n_times)
    scores = np.zeros((1, 1, n_times, 8, 8)) if scores is None else scores
    traj = embed_scores(img, scores, sde.times(), sde.g(sde.times()))
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2),
                          attn_resolutions=(4,)))
    return img, OursMethod(sde, {"method": "rk45"}, traj), net


def test_tiny_run_lowers_loss_and_raises_ssim():
    img, method, net = tiny_setup()
    before = mean_ssim_to_closest(method.sample(net, 2, img.shape[1:], torch.Generator().manual_seed(1)).final, img)
    settings = TrainSettings(batch_size=16, lr=3e-3, eval_every_seconds=1e9, eval_samples=2)
    result = train(method, net, img, settings, StopRule("steps", max_steps=150), progress=False)
    losses = [row["loss"] for row in result.log if not np.isnan(row["loss"])]
    assert result.summary["steps"] == 150 and result.summary["stopped_by"] == "steps"
    assert np.mean(losses[-3:]) < 0.2 * np.mean(losses[:1])
    after = result.summary["final_ssim"]
    assert after > 0.6 and after > before + 0.4, (before, after)
    assert result.summary["train_seconds"] > 0 and result.summary["eval_seconds"] > 0


def test_ddpm_tiny_run_lowers_loss():
    img = tiny_image()
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, resolution=8, base_channels=8, channel_mults=(1, 2), attn_resolutions=()))
    method = DDPMMethod(DDPMSchedule(100), "ddim", 10, img)
    result = train(method, net, img, TrainSettings(batch_size=16, lr=3e-3, eval_every_seconds=1e9),
                   StopRule("steps", max_steps=60), progress=False)
    losses = [row["loss"] for row in result.log if not np.isnan(row["loss"])]
    assert np.mean(losses[-2:]) < 0.5 * losses[0]
    assert result.summary["eval_sampler"] == "ddim-10"


def run_steps(tmp_path, steps, callback=None):
    img, method, net = tiny_setup(n_times=4)
    settings = TrainSettings(batch_size=4, lr=1e-3, ema_decay=0.9, eval_every_seconds=1e9,
                             checkpoint_every_seconds=0.0)
    method.sampler.update(method="heun", heun_steps=2)
    result = train(method, net, img, settings, StopRule("steps", max_steps=steps),
                   checkpoint_path=tmp_path / "model.pt.ckpt", progress=False, callback=callback)
    return result


def test_interrupted_run_resumes_to_the_same_state(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = run_steps(tmp_path / "a", 10)

    def interrupt(step, state):
        if step == 5:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        run_steps(tmp_path / "b", 10, callback=interrupt)
    assert (tmp_path / "b" / "model.pt.ckpt").exists()
    resumed = run_steps(tmp_path / "b", 10)
    assert resumed.summary["resumed_from_step"] == 5
    assert resumed.summary["steps"] == full.summary["steps"] == 10
    assert optimizer_state_equal(full.optimizer_state, resumed.optimizer_state)
    assert full.optimizer_state["state"][0]["step"] == 10
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)  # the EMA weights
    assert [r["step"] for r in resumed.log] == [r["step"] for r in full.log]


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    img, method, net = tiny_setup(n_times=4)
    method.sampler.update(method="heun", heun_steps=2)
    ckpt = tmp_path / "model.pt.ckpt"

    def stop_at_2(step, state):
        if step == 2:
            raise RuntimeError("stop")

    settings = TrainSettings(batch_size=4, eval_every_seconds=1e9, checkpoint_every_seconds=0.0)
    with pytest.raises(RuntimeError):
        train(method, net, img, settings, StopRule("steps", max_steps=5), checkpoint_path=ckpt, progress=False,
              callback=stop_at_2)
    other = TrainSettings(batch_size=4, lr=1e-2, eval_every_seconds=1e9, checkpoint_every_seconds=0.0)
    result = train(method, net, img, other, StopRule("steps", max_steps=3), checkpoint_path=ckpt, progress=False)
    assert result.summary["resumed_from_step"] == 0 and result.summary["steps"] == 3


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "target_ssim", "target_ssim": 0.0}, "target_ssim"),
    ({"kind": "target_ssim", "target_ssim": 1.2}, "target_ssim"),
    ({"kind": "budget", "budget_seconds": 0}, "budget_seconds"),
    ({"kind": "budget", "budget_seconds": -5}, "budget_seconds"),
    ({"kind": "steps", "max_steps": 0}, "max_steps"),
    ({"kind": "forever"}, "stop"),
])
def test_bad_stop_rules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StopRule(**kwargs)


def test_bad_settings_and_methods():
    with pytest.raises(ValueError, match="train.batch_size"):
        TrainSettings(batch_size=0)
    with pytest.raises(ValueError, match="method"):
        method_from_description({"method": "vae"})
    with pytest.raises(ValueError, match="parameterization"):
        OursMethod(VESDE(), {}, parameterization="x0")
    with pytest.raises(ValueError, match="ddpm.sampler"):
        DDPMMethod(DDPMSchedule(10), "euler")

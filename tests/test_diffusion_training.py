"""The shared training loop: a tiny run learns, an interrupted run resumes to the same state, bad input fails."""
import numpy as np
import pytest
import torch

from fpscore.diffusion.ddpm import DDPMSchedule
from fpscore.diffusion.embedding import embed_scores
from fpscore.diffusion.methods import DDPMMethod, OursMethod, method_from_description
from fpscore.diffusion.sde import VESDE
from fpscore.diffusion.training import StopRule, TrainSettings, train


def optimizer_state_equal(a: dict, b: dict) -> bool:
    """Whether two optimizer state dicts hold identical tensors and settings."""
    def same(x, y):
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return isinstance(y, (list, tuple)) and len(x) == len(y) and all(map(same, x, y))
        return x == y
    return same(a, b)
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


def run_steps(tmp_path, steps, callback=None, ema_warmup=False, lr_warmup_steps=0):
    img, method, net = tiny_setup(n_times=4)
    settings = TrainSettings(batch_size=4, lr=1e-3, ema_decay=0.9, eval_every_seconds=1e9,
                             checkpoint_every_seconds=0.0, ema_warmup=ema_warmup, lr_warmup_steps=lr_warmup_steps)
    method.sampler.update(method="heun", heun_steps=2)
    result = train(method, net, img, settings, StopRule("steps", max_steps=steps),
                   checkpoint_path=tmp_path / "model.pt.ckpt", progress=False, callback=callback)
    return result


@pytest.mark.parametrize("ema_warmup,lr_warmup_steps", [(False, 0), (True, 0), (True, 20)])
def test_interrupted_run_resumes_to_the_same_state(tmp_path, ema_warmup, lr_warmup_steps):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    warmups = dict(ema_warmup=ema_warmup, lr_warmup_steps=lr_warmup_steps)
    full = run_steps(tmp_path / "a", 10, **warmups)

    def interrupt(step, state):
        if step == 5:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        run_steps(tmp_path / "b", 10, callback=interrupt, **warmups)
    assert (tmp_path / "b" / "model.pt.ckpt").exists()
    resumed = run_steps(tmp_path / "b", 10, **warmups)
    assert resumed.summary["resumed_from_step"] == 5
    assert resumed.summary["steps"] == full.summary["steps"] == 10
    assert optimizer_state_equal(full.optimizer_state, resumed.optimizer_state)
    assert full.optimizer_state["state"][0]["step"] == 10
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)  # the EMA weights
    assert [r["step"] for r in resumed.log] == [r["step"] for r in full.log]


def _interrupted_at_step_2(tmp_path):
    """A tiny run stopped by an error at step 2, its checkpoint left behind."""
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
    return img, method, net, settings, ckpt


def test_checkpoint_of_other_settings_is_ignored(tmp_path):
    img, method, net, settings, ckpt = _interrupted_at_step_2(tmp_path)
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


def test_ema_warmup_follows_the_closed_form():
    from fpscore.diffusion.ema import EMA

    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    ema = EMA(net, 0.999, warmup=True)
    expected, w = 0.0, 0.0
    for k in range(30):
        w = float(k + 1)  # the raw weight after step k
        net.weight.data.fill_(w)
        ema.update(net)
        d = min(0.999, (1 + k) / (10 + k))
        expected = d * expected + (1 - d) * w
        assert ema.decay_at(k) == d
        assert float(ema.model.weight) == pytest.approx(expected, rel=1e-6)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10 ** 6) == 0.999
    assert EMA(net, 0.999, warmup=False).decay_at(0) == 0.999


def test_lr_warmup_closed_form_and_first_step():
    from fpscore.diffusion.training import warmup_lr

    assert [warmup_lr(1e-3, 4, k) for k in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert warmup_lr(1e-3, 0, 0) == 1e-3
    # Adam's first update moves every parameter with a clear gradient by about lr: lr / 10 under a warm-up of 10
    moved = {}
    for steps in (0, 10):
        img, method, net = tiny_setup(n_times=4)
        init = [p.detach().clone() for p in net.parameters()]
        settings = TrainSettings(batch_size=4, lr=1e-3, grad_clip=0.0, lr_warmup_steps=steps, eval_every_seconds=1e9)
        train(method, net, img, settings, StopRule("steps", max_steps=1), progress=False)
        moved[steps] = max(float((p.detach() - p0).abs().max()) for p, p0 in zip(net.parameters(), init))
    assert moved[0] == pytest.approx(1e-3, rel=1e-3) and moved[10] == pytest.approx(1e-4, rel=1e-3)
    with pytest.raises(ValueError, match="train.lr_warmup_steps: expected an integer >= 0"):
        TrainSettings(lr_warmup_steps=-1)


@pytest.mark.parametrize("warmup", [True, False])
def test_tiny_run_ema_moves_off_the_initial_weights_only_with_warmup(warmup):
    img, method, net = tiny_setup(n_times=4)
    method.sampler.update(method="heun", heun_steps=2)
    init = [p.detach().clone() for p in net.parameters()]
    settings = TrainSettings(batch_size=4, lr=1e-3, ema_decay=0.9999, ema_warmup=warmup, eval_every_seconds=1e9)
    result = train(method, net, img, settings, StopRule("steps", max_steps=10), progress=False)
    moved = max(float((pe - p0).abs().max()) for pe, p0 in zip(result.net.parameters(), init))
    raw = max(float((p.detach() - p0).abs().max()) for p, p0 in zip(net.parameters(), init))
    if warmup:
        assert moved > 0.3 * raw  # decays 0.1 .. 0.5: most of the way to the trained weights
    else:
        assert moved < 0.01 * raw  # decay 0.9999: still at the initial weights


def test_geometric_schedule_evaluates_at_zero_then_doubling_capped():
    from fpscore.diffusion.training import next_eval_time

    times, t = [], None
    for _ in range(8):
        t = next_eval_time("geometric", 5.0, t)
        times.append(t)
    assert times == [0.0, 1.0, 2.0, 4.0, 8.0, 13.0, 18.0, 23.0]
    assert next_eval_time("uniform", 5.0, None) == 5.0 and next_eval_time("uniform", 5.0, 5.0) == 10.0
    with pytest.raises(ValueError, match="train.eval_schedule.*'log'"):
        TrainSettings(eval_schedule="log")


def test_geometric_run_logs_an_evaluation_at_time_zero():
    img, method, net = tiny_setup(n_times=4)
    method.sampler.update(method="heun", heun_steps=2)
    settings = TrainSettings(batch_size=4, eval_every_seconds=0.05, eval_schedule="geometric", time_cap_seconds=0.3)
    result = train(method, net, img, settings, StopRule("target_ssim", target_ssim=1.0), progress=False,
                   clock="cpu")
    ev = result.evaluations
    assert ev[0]["step"] == 0 and ev[0]["train_seconds"] == 0.0 and ev[0]["protocol"] == "generate"
    assert ev[0]["ssim_mode"] == "clip" and result.summary["ssim_mode"] == "clip"
    assert len(ev) >= 4 and result.summary["eval_seconds"] > 0


def test_every_setting_enters_the_checkpoint_fingerprint():
    from dataclasses import fields

    from fpscore.diffusion.training import RESUMABLE_KEYS

    base = TrainSettings()
    for f in fields(TrainSettings):
        if f.name in RESUMABLE_KEYS:
            continue
        assert f.name in base.trajectory_dict(), f.name
    assert set(RESUMABLE_KEYS) == {"checkpoint_every_seconds", "time_cap_seconds"}


def test_checkpoint_of_another_evaluator_or_time_sampling_is_ignored(tmp_path):
    from fpscore.diffusion.evaluation import Evaluator

    img, method, net, settings, ckpt = _interrupted_at_step_2(tmp_path)
    other = Evaluator("noisy_copy", 2, 1, "clip", 0.506)
    result = train(method, net, img, settings, StopRule("steps", max_steps=3), checkpoint_path=ckpt,
                   progress=False, evaluator=other)
    assert result.summary["resumed_from_step"] == 0 and result.summary["eval_protocol"] == "noisy_copy"

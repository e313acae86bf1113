"""Table 1's two protocols (METHOD.md section 10): generate and noisy_copy, for ours, dsm and DDPM alike."""
import numpy as np
import pytest
import torch

from fpscore.diffusion.ddpm import DDPMSchedule
from fpscore.diffusion.evaluation import PROTOCOLS, Evaluator, noisy_copies
from fpscore.diffusion.methods import DDPMMethod, DSMMethod, OursMethod
from fpscore.diffusion.sde import VESDE

pytestmark = pytest.mark.usefixtures("torch_one_thread")
SDE = VESDE(n_times=10)


class Zero(torch.nn.Module):
    def forward(self, y, t):
        return torch.zeros_like(y)


class Recorder(torch.nn.Module):
    """Zero output; records the first input it sees and its time."""

    def forward(self, y, t):
        if not hasattr(self, "first"):
            self.first, self.t = y.clone(), t.clone()
        return torch.zeros_like(y)


@pytest.mark.parametrize("sde", [VESDE(), VESDE(sigma=2.0, n_times=10)])
@pytest.mark.parametrize("std", [0.506, 1e-3, 0.9])
def test_t_star_has_lambda_equal_to_the_noise_std(sde, std):
    t_star = float(sde.time_of_std(std))
    assert abs(sde.marginal_std(t_star) - std) < 1e-9


def test_flow_denoising_starts_at_t_star_from_the_noisy_copy():
    img = np.random.default_rng(0).random((1, 1, 4, 4)).astype(np.float32)
    noisy, sources = noisy_copies(img, 2, 0.506, seed=7)
    method = OursMethod(SDE, {"method": "heun", "heun_steps": 4, "denoise": False}, parameterization="eps")
    net = Recorder()
    out = method.denoise(net, noisy, 0.506).final
    np.testing.assert_allclose(net.first.numpy(), noisy)  # eps: the network sees x itself
    assert float(net.t[0]) == pytest.approx(999 * SDE.time_of_std(0.506), rel=1e-6)
    np.testing.assert_allclose(out, noisy, atol=1e-6)  # zero score: nothing moves


def test_noisy_copy_with_the_exact_score_recovers_the_image():
    """The protocol itself works: the probability-flow ODE from t* with the exact score of the one-image
    distribution, (x0 - x) / lambda(t)^2, turns the noisy copy (SSIM ~0.25) back into the photo."""
    from fpscore.data import prepare
    from fpscore.diffusion.sampling import ode_sample
    from fpscore.metrics import ssim_to_own

    img = prepare("photos", 32, {"names": ["astronaut"], "channels": 1})[0].astype(np.float32)
    sde = VESDE(sigma=5.0, n_times=20)
    x0 = torch.as_tensor(img)
    noisy, sources = noisy_copies(img, 2, 0.506, seed=1)
    assert ssim_to_own(noisy, sources, "minmax").max() < 0.3

    def score(x, t):
        return (x0 - x) / sde.marginal_std(float(t)) ** 2

    t_star = float(sde.time_of_std(0.506))
    plain = ode_sample(score, torch.as_tensor(noisy), sde, method="heun", t_start=t_star, denoise=False).final
    assert ssim_to_own(plain, sources, "clip").min() > 0.98 and ssim_to_own(plain, sources, "minmax").min() > 0.96
    clean = ode_sample(score, torch.as_tensor(noisy), sde, method="heun", t_start=t_star, denoise=True).final
    ceiling = ssim_to_own(img, img, "minmax")[0]  # a perfect sample under min-max SSIM: 0.987 for this photo
    np.testing.assert_allclose(ssim_to_own(clean, sources, "minmax"), ceiling, atol=1e-3)


def test_ddpm_start_step_has_the_closest_ratio():
    schedule = DDPMSchedule()
    method = DDPMMethod(schedule, "ddim", 20)
    for std in (0.01, 0.1, 0.506, 2.0):
        step = method.start_step(std)
        ratios = np.sqrt(1 - schedule.alpha_bars) / np.sqrt(schedule.alpha_bars)
        assert np.abs(ratios[step] - 2 * std) == np.abs(ratios - 2 * std).min()  # [-1, 1] units: 2 std
        assert abs(ratios[step] - 2 * std) <= 0.5 * max(ratios[step + 1] - ratios[step], ratios[step] - ratios[step - 1])


@pytest.mark.parametrize("sampler", ["ddim", "ancestral"])
def test_ddpm_denoising_starts_from_sqrt_abar_times_the_noisy_copy(sampler):
    img = np.random.default_rng(1).random((1, 1, 4, 4)).astype(np.float32)
    noisy, _ = noisy_copies(img, 3, 0.506, seed=2)
    schedule = DDPMSchedule(100)
    method = DDPMMethod(schedule, sampler, 10)
    net = Recorder()
    result = method.denoise(net, noisy, 0.506, torch.Generator().manual_seed(0))
    step = method.start_step(0.506)
    assert float(net.t[0]) == step
    np.testing.assert_allclose(net.first.numpy(), np.sqrt(schedule.alpha_bars[step]) * (2 * noisy - 1), rtol=1e-6)
    assert result.nfe == (min(10, step + 1) if sampler == "ddim" else step + 1)


def test_noisy_copies_are_identical_across_methods_for_the_same_seed():
    img = np.random.default_rng(2).random((2, 1, 8, 8)).astype(np.float32)
    seen = {}
    for name, method in {"ours": OursMethod(SDE, {"method": "heun", "heun_steps": 2}),
                         "dsm": DSMMethod(SDE, {"method": "heun", "heun_steps": 2}),
                         "ddpm": DDPMMethod(DDPMSchedule(), "ddim", 5)}.items():
        captured = []
        method.denoise = lambda net, noisy, std, gen=None, steps=0, m=method, c=captured: (
            c.append(noisy.copy()) or type(m).denoise(m, net, noisy, std, gen, steps))
        Evaluator("noisy_copy", 3, 11, "clip", 0.506)(method, Zero(), img)
        seen[name] = captured[0]
    np.testing.assert_array_equal(seen["ours"], seen["dsm"])
    np.testing.assert_array_equal(seen["ours"], seen["ddpm"])
    a, src = noisy_copies(img, 3, 0.506, seed=11)
    np.testing.assert_array_equal(a, seen["ours"])
    np.testing.assert_array_equal(src, img[[0, 1, 0]])
    assert a.min() >= 0 and a.max() <= 1 and not np.array_equal(a, noisy_copies(img, 3, 0.506, seed=12)[0])


def test_noisy_copy_evaluation_scores_against_the_source_and_records_protocol():
    img = np.random.default_rng(3).random((1, 1, 8, 8)).astype(np.float32)
    method = OursMethod(SDE, {"method": "heun", "heun_steps": 2, "denoise": False})
    info = Evaluator("noisy_copy", 2, 0, "minmax", 0.05)(method, Zero(), img)
    assert info["protocol"] == "noisy_copy" and info["ssim_mode"] == "minmax" and info["noise_std"] == 0.05
    assert 0.5 < info["ssim"] < 1.0  # the noisy copy itself, a little noise
    gen = Evaluator("generate", 2, 0, "clip")(method, Zero(), img)
    assert gen["protocol"] == "generate" and gen["ssim"] < 0.5


@pytest.mark.parametrize("std", [0.0, -0.1, 1e9])
def test_bad_noise_std_is_named(std):
    img = np.zeros((1, 1, 4, 4), np.float32)
    method = OursMethod(SDE, {"method": "heun", "heun_steps": 2})
    with pytest.raises(ValueError, match=f"noise_std.*{std!r}"):
        Evaluator("noisy_copy", 1, 0, "clip", std).check(method) if std > 0 else Evaluator("noisy_copy", 1, 0,
                                                                                          "clip", std)
    if std > 0:
        with pytest.raises(ValueError, match=f"{SDE.prior_std():.6g}"):
            Evaluator("noisy_copy", 1, 0, "clip", std)(method, Zero(), img)


def test_noise_std_just_above_lambda_1_fails_and_at_it_passes():
    method = OursMethod(SDE, {"method": "heun", "heun_steps": 2})
    Evaluator("noisy_copy", 1, 0, "clip", SDE.prior_std()).check(method)
    with pytest.raises(ValueError, match="noise_std"):
        Evaluator("noisy_copy", 1, 0, "clip", SDE.prior_std() * 1.001).check(method)


def test_bad_protocol_and_mode_are_named():
    assert PROTOCOLS == ("generate", "noisy_copy")
    with pytest.raises(ValueError, match="protocol.*'noisy'"):
        Evaluator("noisy", 1, 0, "clip", 0.5)
    with pytest.raises(ValueError, match="ssim_mode.*'mean'"):
        Evaluator("generate", 1, 0, "mean")
    with pytest.raises(ValueError, match="noise_std.*None"):
        Evaluator("noisy_copy", 1, 0, "clip")

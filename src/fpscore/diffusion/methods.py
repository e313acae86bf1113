"""The training methods behind one interface: a loss on a random batch and a sampler.

``OursMethod`` trains on embedded trajectories (METHOD.md sections 7-8) and samples with
the probability-flow ODE (section 9); ``DSMMethod`` is the like-for-like baseline (plain
denoising score matching on the same SDE, parameterisation and sampler: only the training
targets differ); ``DDPMMethod`` is the paper's epsilon-prediction baseline.
All wrap the same U-Net; ``describe()`` is stored in model.pt so that
``method_from_description`` rebuilds the sampler without the training data.
Each samples from pure noise (``sample``) or denoises given noisy copies of images
(``denoise``: the "noisy copy" protocol of Table 1, ``fpscore.diffusion.evaluation``).
"""
from __future__ import annotations

import numpy as np
import torch

from fpscore.diffusion.ddpm import DDPMSchedule, ancestral_sample, ddim_sample
from fpscore.diffusion.embedding import LazyTrajectories
from fpscore.diffusion.losses import (DSM_TIMES, PARAMETERIZATIONS, TIME_SAMPLINGS, ddpm_loss, dsm_loss,
                                      ours_loss, score_from_net)
from fpscore.diffusion.sampling import SAMPLERS, STARTS, SampleResult, ode_sample, start_std
from fpscore.diffusion.sde import VESDE
from fpscore.config import schema_default
from fpscore.names import DDPM_SAMPLERS, METHODS



SAMPLER_KEYS = ("method", "rtol", "atol", "heun_steps", "denoise", "start")  # of learn.sampler: the ODE's


class _FlowMethod:
    """What ours and dsm share: the VE SDE, the score parameterisation and the probability-flow sampler.

    sampler: dict with method (rk45|heun), rtol, atol, heun_steps, denoise, start (lambda1|unit);
    parameterization: how the U-Net gives the score (``fpscore.diffusion.losses``: edm | eps | raw).
    """

    name = ""

    def __init__(self, sde: VESDE, sampler: dict, device: str | torch.device = "cpu",
                 parameterization: str = schema_default("learn.parameterization"),
                 times: str = schema_default("learn.train.times"), allowed_times: tuple[str, ...] = TIME_SAMPLINGS):
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization: expected one of {PARAMETERIZATIONS}, got {parameterization!r}")
        if times not in allowed_times:
            raise ValueError(f"{self.name} times: expected one of {allowed_times}, got {times!r}")
        self.sde, self.device, self.parameterization = sde, torch.device(device), parameterization
        self.time_sampling = times
        defaults = schema_default("learn.sampler")  # the keys not given: the schema's
        self.sampler = {**{k: defaults[k] for k in SAMPLER_KEYS}, **sampler}
        if self.sampler["method"] not in SAMPLERS:
            raise ValueError(f"sampler.method: expected one of {SAMPLERS}, got {self.sampler['method']!r}")
        if self.sampler["start"] not in STARTS:
            raise ValueError(f"sampler.start: expected one of {STARTS}, got {self.sampler['start']!r}")
        self.times = torch.as_tensor(sde.times(), dtype=torch.float32, device=self.device)

    def score_fn(self, net):
        def score(x: torch.Tensor, t: float) -> torch.Tensor:
            tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
            return score_from_net(net, x, tt, self.sde, self.parameterization)

        return score

    @torch.no_grad()
    def sample(self, net, n: int, image_shape: tuple, generator: torch.Generator,
               progression_steps: int = 0) -> SampleResult:
        std = start_std(self.sde, self.sampler["start"])
        x_init = (torch.randn((n, *image_shape), generator=generator) * std).to(self.device)
        return self._integrate(net, x_init, 1.0, progression_steps)

    def check_batch(self, batch: int) -> None:
        """Fail before training when the batch does not fit the time sampling (jittered: a multiple of N)."""
        if getattr(self, "time_sampling", None) == "jittered" and batch % self.sde.n_times:
            raise ValueError(f"batch_size: jittered training times need a multiple of the {self.sde.n_times} "
                             f"time levels, got {batch}")

    def max_noise_std(self) -> float:
        """The largest noise std a noisy copy may have: lambda(1)."""
        return self.sde.prior_std()

    @torch.no_grad()
    def denoise(self, net, noisy: np.ndarray, noise_std: float, generator: torch.Generator | None = None,
                progression_steps: int = 0) -> SampleResult:
        """The probability-flow ODE from the noisy copies (N x C x H x W in [0, 1]) at t* with lambda(t*) = noise_std."""
        t_star = float(self.sde.time_of_std(noise_std))
        x_init = torch.as_tensor(np.asarray(noisy, dtype=np.float32), device=self.device)
        return self._integrate(net, x_init, t_star, progression_steps)

    def _integrate(self, net, x_init: torch.Tensor, t_start: float, progression_steps: int) -> SampleResult:
        s = self.sampler
        return ode_sample(self.score_fn(net), x_init, self.sde, method=s["method"], rtol=s["rtol"], atol=s["atol"],
                          heun_steps=s["heun_steps"], progression_steps=progression_steps, denoise=s["denoise"],
                          t_start=t_start)

    def describe(self) -> dict:
        return {"method": self.name, "sde": self.sde.as_dict(), "sampler": dict(self.sampler),
                "parameterization": self.parameterization, "times": self.time_sampling}


class OursMethod(_FlowMethod):
    """Score embedding + section 8 loss + probability-flow ODE sampling.

    trajectories: N x T x C x H x W embedded images, an array or a
    ``fpscore.diffusion.embedding.LazyTrajectories`` (None when only sampling);
    sampler, parameterization: see ``_FlowMethod``;
    times: levels | jittered, how training times are drawn (``fpscore.diffusion.losses``).
    """

    name = "ours"

    def __init__(self, sde: VESDE, sampler: dict, trajectories: np.ndarray | None = None,
                 device: str | torch.device = "cpu", parameterization: str = schema_default("learn.parameterization"),
                 times: str = schema_default("learn.train.times")):
        super().__init__(sde, sampler, device, parameterization, times, TIME_SAMPLINGS)
        self.trajectories = None
        if trajectories is not None:
            if trajectories.ndim != 5 or trajectories.shape[1] != sde.n_times:
                raise ValueError(f"trajectories: expected N x {sde.n_times} x C x H x W, got {trajectories.shape}")
            self.trajectories = trajectories if isinstance(trajectories, LazyTrajectories) else \
                torch.as_tensor(trajectories, dtype=torch.float32, device=self.device)

    def loss(self, net, batch: int, generator: torch.Generator) -> torch.Tensor:
        if self.trajectories is None:
            raise RuntimeError("OursMethod was built without trajectories: it can sample but not train")
        return ours_loss(net, self.trajectories, self.times, self.sde, batch, generator, self.parameterization,
                         self.time_sampling)

class DSMMethod(_FlowMethod):
    """Denoising score matching on the images themselves: ours without the score embedding.

    Same SDE, parameterisation, loss weighting and probability-flow sampler as ``OursMethod``;
    the noise is added to the image x_0 instead of the embedded x^n, at times drawn as
    ``times`` says (``fpscore.diffusion.losses.dsm_loss``: uniform = stratified continuous
    times in [eps, 1], the standard choice; levels / jittered = ours' time levels, drawn as ours
    draws them, which makes dsm the same as ours with zero scores).
    images: N x C x H x W in [0, 1] (None when only sampling).
    """

    name = "dsm"

    def __init__(self, sde: VESDE, sampler: dict, images: np.ndarray | None = None,
                 device: str | torch.device = "cpu", parameterization: str = schema_default("learn.parameterization"),
                 times: str = schema_default("learn.dsm.times")):
        super().__init__(sde, sampler, device, parameterization, times, DSM_TIMES)
        self.data = None
        if images is not None:
            images = np.asarray(images, dtype=np.float32)
            if images.ndim != 4:
                raise ValueError(f"images: expected N x C x H x W, got shape {images.shape}")
            self.data = torch.as_tensor(images, device=self.device)

    def loss(self, net, batch: int, generator: torch.Generator) -> torch.Tensor:
        if self.data is None:
            raise RuntimeError("DSMMethod was built without images: it can sample but not train")
        levels = None if self.time_sampling == "uniform" else self.times
        sampling = "levels" if self.time_sampling == "uniform" else self.time_sampling
        return dsm_loss(net, self.data, self.sde, batch, generator, self.parameterization, levels, sampling)

class DDPMMethod:
    """Epsilon prediction on images mapped to [-1, 1]; ancestral (or DDIM) sampling.

    images: N x C x H x W in [0, 1] (None when only sampling).
    """

    name = "ddpm"

    def __init__(self, schedule: DDPMSchedule, sampler: str = schema_default("learn.ddpm.sampler"),
                 ddim_steps: int = schema_default("learn.ddpm.ddim_steps"),
                 images: np.ndarray | None = None, device: str | torch.device = "cpu"):
        if sampler not in DDPM_SAMPLERS:
            raise ValueError(f"ddpm.sampler: expected one of {DDPM_SAMPLERS}, got {sampler!r}")
        self.schedule, self.sampler, self.ddim_steps = schedule, sampler, int(ddim_steps)
        self.device = torch.device(device)
        self.data = None
        if images is not None:
            self.data = torch.as_tensor(2.0 * np.asarray(images, dtype=np.float32) - 1.0, device=self.device)

    def loss(self, net, batch: int, generator: torch.Generator) -> torch.Tensor:
        if self.data is None:
            raise RuntimeError("DDPMMethod was built without images: it can sample but not train")
        return ddpm_loss(net, self.data, self.schedule, batch, generator)

    @torch.no_grad()
    def sample(self, net, n: int, image_shape: tuple, generator: torch.Generator,
               progression_steps: int = 0) -> SampleResult:
        x_init = torch.randn((n, *image_shape), generator=generator).to(self.device)
        return self._run(net, x_init, generator, progression_steps, None)

    def max_noise_std(self) -> float:
        """The largest noise std (image units, [0, 1]) a noisy copy may have: that of the last step."""
        return float(self.schedule.noise_to_signal[-1]) / 2.0

    def start_step(self, noise_std: float) -> int:
        """The step whose noise-to-signal ratio is closest to noise_std in the network's [-1, 1] units (2 std)."""
        return self.schedule.closest_step(2.0 * noise_std)

    @torch.no_grad()
    def denoise(self, net, noisy: np.ndarray, noise_std: float, generator: torch.Generator | None = None,
                progression_steps: int = 0) -> SampleResult:
        """From the noisy copies (N x C x H x W in [0, 1]): x_s = sqrt(abar_s) (2 y - 1) at ``start_step``.

        In [-1, 1] units the copy is x_0 + 2 std z, and sqrt(abar_s) (x_0 + r_s z) is x_s exactly when the
        noise-to-signal ratio r_s = sqrt(1 - abar_s) / sqrt(abar_s) equals 2 std.
        """
        step = self.start_step(noise_std)
        y = torch.as_tensor(2.0 * np.asarray(noisy, dtype=np.float32) - 1.0, device=self.device)
        x_init = float(np.sqrt(self.schedule.alpha_bars[step])) * y
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        return self._run(net, x_init, generator, progression_steps, step)

    def _run(self, net, x_init, generator, progression_steps, start_step) -> SampleResult:
        if self.sampler == "ddim":
            return ddim_sample(net, x_init, self.schedule, self.ddim_steps, progression_steps, start_step=start_step)
        return ancestral_sample(net, x_init, self.schedule, generator, progression_steps, start_step=start_step)

    def describe(self) -> dict:
        return {"method": self.name, "schedule": self.schedule.as_dict(), "sampler": self.sampler,
                "ddim_steps": self.ddim_steps}


def method_from_description(desc: dict, device: str | torch.device = "cpu", **overrides):
    """Rebuild a sampling-only method from ``describe()`` (as stored in model.pt).

    overrides: for ours and dsm, sampler keys (method, rtol, ...); for ddpm, sampler / ddim_steps.
    """
    name = desc.get("method")
    if name == "ours":
        return OursMethod(VESDE(**desc["sde"]), {**desc["sampler"], **overrides}, device=device,
                          parameterization=desc.get("parameterization", "edm"), times=desc.get("times", "levels"))
    if name == "dsm":
        return DSMMethod(VESDE(**desc["sde"]), {**desc["sampler"], **overrides}, device=device,
                         parameterization=desc["parameterization"], times=desc["times"])
    if name == "ddpm":
        kw = {"sampler": desc["sampler"], "ddim_steps": desc["ddim_steps"], **overrides}
        return DDPMMethod(DDPMSchedule(**desc["schedule"]), kw["sampler"], kw["ddim_steps"], device=device)
    raise ValueError(f"method: expected one of {METHODS}, got {name!r}")

"""Evaluation protocols of Table 1 (METHOD.md section 10), written once for every method.

``generate``: samples from pure noise (the method's own sampler), each scored by its SSIM
against the closest training image. ``noisy_copy`` (the paper's released single-image
script): training image i (i = sample index modulo the number of images) plus Gaussian noise
of std ``noise_std``, clamped to [0, 1], is denoised by the method (``method.denoise``: the
VE ODE from t* with lambda(t*) = noise_std, DDPM from the step of the same noise-to-signal
ratio) and scored against its own source image. The noisy copies depend only on the images,
the std and the seed, so all methods denoise the very same copies.

An ``Evaluator`` is the function training's stopping rule calls and the CLI's sample / ssim
steps can call alike: ``evaluator(method, net) -> dict`` with the mean SSIM, the protocol,
the SSIM mode, the sampler and its network evaluations.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from fpscore.metrics import SSIM_MODES, ssim_to_closest, ssim_to_own
from fpscore.names import PROTOCOLS



def noisy_copies(images: np.ndarray, n: int, noise_std: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy n x C x H x W, sources n x C x H x W): image i mod N plus N(0, noise_std^2) noise, clamped to [0, 1].

    The noise comes from numpy's generator seeded with `seed` alone: identical for every method.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images: expected N x C x H x W, got shape {images.shape}")
    if not (np.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"noise_std: expected a number > 0, got {noise_std!r}")
    sources = images[np.arange(n) % len(images)]
    noise = np.random.default_rng(seed).standard_normal(sources.shape).astype(np.float32)
    return np.clip(sources + noise_std * noise, 0.0, 1.0), sources


def check_noise_std(method, noise_std: float) -> float:
    """noise_std must lie in (0, the method's largest noise level] (lambda(1) for ours and dsm)."""
    top = method.max_noise_std()
    if not (np.isfinite(noise_std) and 0 < noise_std <= top):
        raise ValueError(f"noise_std: expected a number in (0, {top:.6g}] (the largest noise level of "
                         f"{method.name}), got {noise_std!r}")
    return float(noise_std)


@dataclass(frozen=True)
class Evaluator:
    """protocol: generate | noisy_copy; samples per evaluation; seed of the sampler and the noisy copies;
    noise_std: of the noisy copies (noisy_copy only); ssim_mode: clip | minmax (``fpscore.metrics``)."""

    protocol: str
    samples: int
    seed: int
    ssim_mode: str
    noise_std: float | None = None

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {PROTOCOLS}, got {self.protocol!r}")
        if self.ssim_mode not in SSIM_MODES:
            raise ValueError(f"ssim_mode: expected one of {SSIM_MODES}, got {self.ssim_mode!r}")
        if not (isinstance(self.samples, (int, np.integer)) and self.samples >= 1):
            raise ValueError(f"eval samples: expected an integer >= 1, got {self.samples!r}")
        if self.protocol == "noisy_copy" and not (self.noise_std is not None and np.isfinite(self.noise_std)
                                                  and self.noise_std > 0):
            raise ValueError(f"noise_std: the noisy_copy protocol needs a number > 0, got {self.noise_std!r}")

    def check(self, method) -> None:
        """Fail before training when the protocol cannot run with `method`."""
        if self.protocol == "noisy_copy":
            check_noise_std(method, self.noise_std)

    def run(self, method, net, references: np.ndarray, progression_steps: int = 0):
        """(SampleResult, per-sample SSIM) of one evaluation of `net` (in eval mode) against `references`."""
        references = np.asarray(references, dtype=np.float32)
        generator = torch.Generator().manual_seed(self.seed)
        if self.protocol == "generate":
            result = method.sample(net, self.samples, tuple(references.shape[1:]), generator, progression_steps)
            return result, ssim_to_closest(result.final, references, self.ssim_mode)
        noisy, sources = noisy_copies(references, self.samples, check_noise_std(method, self.noise_std), self.seed)
        result = method.denoise(net, noisy, self.noise_std, generator, progression_steps)
        return result, ssim_to_own(result.final, sources, self.ssim_mode)

    def __call__(self, method, net, references: np.ndarray) -> dict:
        was_training = net.training
        net.eval()
        try:
            result, per_sample = self.run(method, net, references)
        finally:
            net.train(was_training)
        return {"ssim": float(per_sample.mean()), "nfe": result.nfe, "sampler": result.sampler,
                "protocol": self.protocol, "ssim_mode": self.ssim_mode, "noise_std": self.noise_std}

    def describe(self) -> dict:
        return asdict(self)

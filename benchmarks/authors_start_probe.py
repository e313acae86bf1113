"""Why the authors' recipe generates one face 16 times on the set part: its sampler's start, or its training?

The authors' sampler starts the probability-flow ODE from N(0, I) (METHOD.md 8b), the project's from
N(0, lambda(1)^2 I) (section 9); both are centred at 0, while the VE SDE never moves the data's mean
(0.43 here), so neither is the law of x(1). This probe integrates, with each recipe's sampler, from
those two starts and from two centred ones (``STARTS_PROBED``): first the exact score of the 16-face
training set (the score of the VE-perturbed empirical distribution, a softmax-weighted mean of the
faces: the reference no network can blur), then the same at larger sigma, then the networks given.
Each set of 16 samples (the run's sampling seed) is scored as the set part scores a run: mean SSIM
to the closest face in both modes, the pixels outside [0, 1], how many distinct faces the samples
are closest to (16 draws from the 16 faces cover about 10 of them; 1 = collapse) and which, by
brightness rank.

    python benchmarks/authors_start_probe.py [NET ...] > benchmarks/results/verdict/sets/authors_start_probe.log

NET: the final networks of authors'-recipe flow runs of part sets32 (``OUT/sets/nets/<key>.pt``) or
their training checkpoints (``OUT/sets/ckpt/<key>.ckpt``; a run deletes its own when it ends, so copy
one before: the probe reports the training seconds it holds). With no NET only the exact score is
sampled.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)
from verdict_benchmark import recipes  # noqa: E402
from verdict_sets import SET_PARTS, SetRun, build, load_set  # noqa: E402

from fpscore.config import schema_default, schema_defaults  # noqa: E402
from fpscore.diffusion.sde import VESDE  # noqa: E402
from fpscore.diffusion.sampling import ode_sample, start_std  # noqa: E402
from fpscore.metrics import memorisation, nearest_neighbours, ssim_to_closest  # noqa: E402

PART = SET_PARTS["sets32"]
KEY = re.compile(r"set(\d+)_([a-z]+?)(\d+)_([a-z-]+)_([a-z_]+)_s(\d+)$")


def exact_score(images: np.ndarray, sde):
    """The score of the training set perturbed by the VE SDE at t: (sum_i w_i x_i - x) / lambda(t)^2."""
    flat = torch.as_tensor(images.reshape(len(images), -1), dtype=torch.float64)

    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        lam2 = float(sde.marginal_std(t)) ** 2
        f = x.reshape(x.shape[0], -1).double()
        w = torch.softmax(-torch.cdist(f, flat) ** 2 / (2 * lam2), dim=1)
        return ((w @ flat - f) / lam2).reshape(x.shape).to(x.dtype)

    return score


#: unit: N(0, I) (the authors'); lambda1: N(0, lambda(1)^2 I) (METHOD.md 9); mean: the faces' mean pixel plus
#: lambda(1) z; marginal: a random training face plus lambda(1) z (exactly the perturbed set's law at t = 1).
STARTS_PROBED = ("unit", "lambda1", "mean", "marginal")
SIGMAS_PROBED = (5.0, 25.0, 100.0)


def start_state(start: str, images: np.ndarray, sde, generator: torch.Generator) -> torch.Tensor:
    n, shape = PART.final_samples, tuple(images.shape[1:])
    z = torch.randn((n, *shape), generator=generator)
    if start in ("unit", "lambda1"):
        return z * start_std(sde, start)
    lam = sde.prior_std()
    if start == "mean":
        return float(images.mean()) + lam * z
    faces = torch.randint(len(images), (n,), generator=generator)
    return torch.as_tensor(images)[faces] + lam * z


def integrate(score_fn, x0: torch.Tensor, sde, smp: dict):
    """The probability-flow ODE from x0 with a recipe's sampler settings ``smp``."""
    return ode_sample(score_fn, x0, sde, method=smp["method"], rtol=smp["rtol"], atol=smp["atol"],
                      heun_steps=smp["heun_steps"], denoise=smp["denoise"])


def row(label: str, samples: np.ndarray, images: np.ndarray) -> str:
    """One line: the set part's scores of ``samples``, and the faces they reach by brightness rank (0: darkest)."""
    mem = memorisation(samples, images)
    outside = float(np.mean((samples < 0) | (samples > 1)))
    rank = np.argsort(np.argsort(images.mean(axis=(1, 2, 3))))
    reached = sorted({int(rank[i]) for i in nearest_neighbours(samples, images)[2]})
    return (f"{label:<58} SSIM clip {ssim_to_closest(samples, images, 'clip').mean():.3f}  "
            f"minmax {ssim_to_closest(samples, images, 'minmax').mean():.3f}  "
            f"outside [0,1] {outside:6.1%}  distinct faces {mem['distinct_nearest']:2d}/16  "
            f"NN median {mem['nn_distance_median']:.3f}  brightness ranks reached {reached}")


def main(paths: list[str]) -> None:
    defaults = schema_defaults()
    recipe_of = recipes(defaults)
    images = load_set(PART.dataset, PART.n_images, PART.size)
    shape = tuple(images.shape[1:])
    print(f"{PART.n_images} faces {PART.size}x{PART.size}: mean pixel {images.mean():.3f}, pixel std {images.std():.3f}, "
          f"per-face mean pixel {images.mean(axis=(1, 2, 3)).min():.3f} to {images.mean(axis=(1, 2, 3)).max():.3f}; "
          f"{PART.final_samples} samples per row")
    seed = 10_000  # the sampling seed of a seed-0 run; every start below draws the same normals
    for recipe in ("default", "authors"):
        run = SetRun(PART.size, PART.dataset, PART.n_images, recipe, "dsm", 0)
        method = build(run, PART, recipe_of[recipe], defaults, images)[0]
        sde, smp = method.sde, method.sampler
        print(f"recipe {recipe}: sigma {sde.sigma:g}, lambda(1) {sde.prior_std():.3f}, sampler {smp['method']} "
              f"(rk45 rtol {smp['rtol']:g} atol {smp['atol']:g}; heun {smp['heun_steps']} steps), "
              f"start {smp['start']}, denoise {smp['denoise']}")
        for start in STARTS_PROBED:
            x0 = start_state(start, images, sde, torch.Generator().manual_seed(seed))
            res = integrate(exact_score(images, sde), x0, sde, smp)
            print(row(f"  exact score, start {start}", res.final, images), flush=True)
    flat = images.reshape(len(images), -1)
    print(f"larger sigma (Song & Ermon 2020, technique 1: lambda(1) about the largest distance between two training "
          f"images, here {np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(-1)).max():.1f}; the mean's norm is "
          f"{np.linalg.norm(flat.mean(0)):.1f}), exact score, the project's sampler:")
    smp = build(SetRun(PART.size, PART.dataset, PART.n_images, "default", "dsm", 0), PART, recipe_of["default"],
                defaults, images)[0].sampler
    for sigma in SIGMAS_PROBED:
        sde = VESDE(sigma=sigma, eps=schema_default("scores.eps"), n_times=schema_default("scores.n_times"))
        for start in ("lambda1", "mean"):
            x0 = start_state(start, images, sde, torch.Generator().manual_seed(seed))
            res = integrate(exact_score(images, sde), x0, sde, smp)
            print(row(f"  sigma {sigma:g} (lambda(1) {sde.prior_std():.2f}), start {start}", res.final, images),
                  flush=True)
    print("networks (the authors' recipe, its sampler; the run's sampling seed):")
    for path in paths:
        m = KEY.search(Path(path).stem)
        if m is None:
            raise SystemExit(f"{path}: expected a set-part network <key>.pt or checkpoint <key>.ckpt, e.g. "
                             f"set32_faces16_authors_ours_s0.ckpt")
        size, dataset, n, recipe, name, run_seed = m.groups()
        run = SetRun(int(size), dataset, int(n), recipe, name, int(run_seed))
        method, _, net, *_ = build(run, PART, recipe_of[recipe], defaults, images)
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if path.endswith(".pt"):  # a finished run's network (OUT/sets/nets/<key>.pt)
            net.load_state_dict(saved)
            held = "final"
        else:  # a run's training checkpoint
            net.load_state_dict(saved["ema"]["model"] if saved.get("ema") else saved["net"])
            held = f"{saved['state']['train_seconds']:.0f} s"
        net.eval()
        smp = method.sampler
        for start in STARTS_PROBED:
            x0 = start_state(start, images, method.sde, torch.Generator().manual_seed(seed + run.seed))
            res = integrate(method.score_fn(net), x0, method.sde, smp)
            print(row(f"  {run.key} ({held}), start {start}", res.final, images), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

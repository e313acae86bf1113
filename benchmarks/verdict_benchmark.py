"""The verdict benchmark: does score embedding speed up single-image learning (Table 1)?

Methods ours, ours_zero (ours' time levels, zero scores), dsm (denoising score matching on
the image, continuous times, otherwise = ours) and DDPM (epsilon prediction, T = 1000), each
trained on ONE image until its evaluation reaches SSIM 0.99 or its cap, under two recipes
(``recipes``: the project's default, edm; the authors' as a whole, raw, METHOD.md section 8b;
part 7: the authors' with DDPM's learning-rate warm-up of their DDPM code) and
both protocols of Table 1 (generate, noisy_copy with std 0.506), on 3 images (2 builtin
photos, 1 builtin face) x 3 seeds at 32 x 32, and 1 face x 2 seeds at 64 x 64 (target 0.90).

It calls the library directly. Training seconds are the process's CPU time of the training
loop (1 torch thread; evaluation excluded and logged). Evaluations follow the geometric
schedule (training time 0, 1, 2, 4 ... s, spacing capped), so the time to a target lies in
(previous evaluation, first evaluation >= target]. A run that never reaches a target counts
as "> cap"; a ratio that involves it is a bound. DDPM's evaluations use DDIM (its stopping
rule); ancestral sampling is run as well where DDIM first crosses a target and at the end.

Runs in parts, in the background, resumably: every run is saved as one JSON file under
OUT/runs/ the moment it ends (a run in progress checkpoints to OUT/ckpt/ and continues after
an interruption); a rerun skips saved runs. After every run OUT/runs.csv is rebuilt; after a
part (or with --report) OUT/summary.csv, OUT/summary.txt and OUT/time_to_target_*.png.

    python benchmarks/verdict_benchmark.py --list                   # the parts and their worst case
    nohup python benchmarks/verdict_benchmark.py --part 1 > OUT/part1.log 2>&1 &
    python benchmarks/verdict_benchmark.py --report                 # tables and figures from saved runs
    python benchmarks/verdict_benchmark.py --smoke                  # a tiny end-to-end check

The set part (``--part sets32`` / ``sets64``: the fixed-budget claim of Figures 4 and 5 on 16 faces, with
the controls) lives in verdict_sets.py and saves under OUT/sets/ (its docstring says what it records).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import verdict_sets
from verdict_sets import SET_PARTS

METHODS = ("ours", "ours_zero", "dsm", "ddpm")
PROTOCOLS_RUN = ("generate", "noisy_copy")
TARGETS = (0.90, 0.95, 0.99)
NOISE_STD = 0.506
#: Ratios reported per row: (numerator, denominator).
RATIOS = (("dsm", "ours"), ("ours_zero", "ours"), ("ddpm", "ours"))


@dataclass(frozen=True)
class Recipe:
    """Everything that differs between the project's default and the authors' recipe.

    batch None: batch = N (one sample per time level); sde None: the schema's scores settings;
    faces_sde: the SDE (sigma, N, Picard tol) used for faces (the authors' CelebA settings).
    """

    parameterization: str
    time_embedding: str
    times: str
    batch: int | None
    lr: float
    grad_clip: float
    sampler: str
    start: str
    denoise: bool
    ssim_mode: str
    ema_flow: float            # EMA decay of ours / ours_zero / dsm (0: none)
    ema_ddpm: float            # EMA decay of DDPM
    faces_sde: tuple | None    # (sigma, n_times, picard_tol) or None for the schema's
    lr_warmup_ddpm: int = 0    # DDPM's linear learning-rate warm-up steps (0: none)
    boundary: str = "zero"     # the scores' boundary and scheme (METHOD.md 2b): the paper's, with which parts
    scheme: str = "centred"    # 1-8 ran; part 9 reruns ours with the project's default (reflect + minimal)


def recipes(defaults: dict) -> dict[str, Recipe]:
    learn = defaults["learn"]
    tr, smp = learn["train"], learn["sampler"]
    authors = Recipe("raw", "linear", "jittered", None, 8e-5, 0.0, "rk45", "unit", False, "minmax", 0.0, 0.9999,
                     (2.0, 10, 1e-6))
    # The project's default (edm, sinusoidal, levels, schema batch / lr / clip / sampler), with the
    # same warmed-up EMA for every method (a fair DDPM).
    default = Recipe(learn["parameterization"], "sinusoidal", "levels", tr["batch_size"], tr["lr"],
                     tr["grad_clip"], smp["method"], "lambda1", smp["denoise"], "clip", 0.999, 0.999, None)
    return {
        "default": default,
        # The authors' code (METHOD.md 8b): raw, linear time embedding, jittered times, batch = N, Adam lr 8e-5
        # (CIFAR-10; faces: 1e-4 is theirs for CelebA, kept at 8e-5 here for one recipe), no clipping, no EMA for
        # ours, RK45 from N(0, 1), no final denoising, min-max SSIM; their DDPM baseline with a warmed-up EMA.
        "authors": authors,
        # The same, with DDPM trained as the authors' DDPM code trains it: a linear learning-rate warm-up of
        # 5000 steps, longer than these runs (and than theirs). Only DDPM is run: the other methods' settings
        # equal the authors' recipe, so their runs are shared (SHARED_RUNS).
        "authors-warmup": replace(authors, lr_warmup_ddpm=5000),
        # The project's default with the authors' raw parameterisation alone: what the parameterisation
        # does apart from the rest of their recipe. Only ours and dsm are run; DDPM does not use it, so its
        # default-recipe runs are shared (SHARED_RUNS).
        "default-raw": replace(default, parameterization="raw"),
        # The project's default with the scores of its default discretisation (reflect + minimal, METHOD.md 2b),
        # free of the zero-padding border layer. Only ours reads scores: the others' default runs are shared.
        "default-reflect": replace(default, boundary=defaults["scores"]["boundary"], scheme=defaults["scores"]["scheme"]),
    }


#: recipe -> (the recipe whose runs stand in, the methods they stand in for: their settings are identical)
SHARED_RUNS = {"authors-warmup": ("authors", ("ours", "ours_zero", "dsm")), "default-raw": ("default", ("ddpm",)),
               "default-reflect": ("default", ("ours_zero", "dsm", "ddpm"))}


@dataclass(frozen=True)
class Run:
    size: int
    dataset: str
    image: str
    recipe: str
    protocol: str
    method: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.size}_{self.dataset}-{self.image}_{self.recipe}_{self.protocol}_{self.method}_s{self.seed}"


@dataclass(frozen=True)
class Part:
    """One background job: the runs of a size / recipe / protocol, with its caps (CPU training seconds)."""

    size: int
    images: tuple                 # ((dataset, image name), ...)
    seeds: tuple
    recipe: str
    protocols: tuple
    targets: tuple
    cap_flow: float
    cap_ddpm: float
    eval_every: float             # cap of the geometric evaluation spacing (flow methods)
    eval_every_ddpm: float
    methods: tuple = METHODS

    def runs(self) -> list[Run]:
        return [Run(self.size, d, i, self.recipe, p, m, s)
                for (d, i), p, s, m in itertools.product(self.images, self.protocols, self.seeds, self.methods)]


IMAGES_32 = (("photos", "astronaut"), ("photos", "camera"), ("faces", "0"))
IMAGES_64 = (("faces", "0"),)
PARTS = {
    "1": Part(32, IMAGES_32, (0, 1, 2), "default", ("generate",), TARGETS, 120.0, 240.0, 10.0, 20.0),
    "2": Part(32, IMAGES_32, (0, 1, 2), "default", ("noisy_copy",), TARGETS, 120.0, 240.0, 10.0, 20.0),
    "3": Part(32, IMAGES_32, (0, 1, 2), "authors", ("generate",), TARGETS, 120.0, 240.0, 10.0, 20.0),
    "4": Part(32, IMAGES_32, (0, 1, 2), "authors", ("noisy_copy",), TARGETS, 120.0, 240.0, 10.0, 20.0),
    "5": Part(64, IMAGES_64, (0, 1), "default", PROTOCOLS_RUN, (0.90,), 300.0, 600.0, 20.0, 40.0),
    "6": Part(64, IMAGES_64, (0, 1), "authors", PROTOCOLS_RUN, (0.90,), 300.0, 600.0, 20.0, 40.0),
    "7": Part(32, IMAGES_32, (0, 1, 2), "authors-warmup", ("noisy_copy",), TARGETS, 120.0, 240.0, 10.0, 20.0,
              ("ddpm",)),
    "8": Part(32, IMAGES_32, (0, 1, 2), "default-raw", ("noisy_copy",), TARGETS, 120.0, 240.0, 10.0, 20.0,
              ("ours", "dsm")),
    "9": Part(32, IMAGES_32, (0, 1, 2), "default-reflect", PROTOCOLS_RUN, TARGETS, 120.0, 240.0, 10.0, 20.0,
              ("ours",)),
}
#: What the caps cut, printed with every plan.
CUTS = [
    "caps are CPU training seconds on 1 thread of a shared 2-core machine: 32x32 flow 120 s, DDPM 240 s; "
    "64x64 flow 300 s, DDPM 600 s (the paper's DDPM needs 1635 s on a GPU to 0.99 at 32x32): an unreached "
    "run is '> cap' and every ratio from it a bound",
    "64x64: target 0.90 only, 1 face x 2 seeds",
    "DDPM: DDIM (50 steps) drives the stopping rule; ancestral (1000 steps, ~25 s per evaluation here) "
    "only where DDIM first crosses a target and at the end",
    "evaluations: 2 samples each (schema eval_samples); the authors' recipe uses lr 8e-5 for faces too",
    "dsm draws continuous stratified times in both recipes (ours_zero is the one with ours' times); DDPM keeps "
    "its sinusoidal embedding, its DDIM/ancestral samplers and no sampler start / final-denoise options",
    "the default recipe with raw alone (part 8): ours and dsm, noisy copy only",
    "parts 1-8 pre-compute ours' scores with the paper's zero + centred; part 9 reruns ours alone with the "
    "default reflect + minimal (METHOD.md 2b) and pairs it with part 1-2's controls (their settings are equal)",
]


# ---------------------------------------------------------------------------------------------
def load_image(dataset: str, name: str, size: int) -> np.ndarray:
    from fpscore import data

    if dataset == "photos":
        images, _, _ = data.prepare("photos", size, {"names": [name], "channels": 1})
    else:
        images, _, _ = data.prepare("faces", size, {"count": None, "indices": [int(name)], "channels": 1})
    return images.astype(np.float32)


def sde_params(recipe: Recipe, dataset: str, defaults: dict):
    from fpscore.fokker_planck.params import FPParams

    sc = defaults["scores"]
    sigma, n_times, tol = sc["sigma"], sc["n_times"], sc["picard_tol"]
    if dataset == "faces" and recipe.faces_sde is not None:
        sigma, n_times, tol = recipe.faces_sde
    return FPParams(sigma=sigma, eps=sc["eps"], n_times=n_times, dh=sc["dh"], kde_bins=sc["kde_bins"],
                    picard_tol=tol, picard_max_iter=sc["picard_max_iter"], rtol=sc["rtol"],
                    boundary=recipe.boundary, scheme=recipe.scheme)


_SCORES: dict = {}


def trajectories(image: np.ndarray, params, key) -> tuple[np.ndarray, float]:
    """(embedded trajectory 1 x N x C x H x W, pre-computation CPU seconds), cached per process."""
    if key not in _SCORES:
        from fpscore.diffusion.embedding import embed_scores
        from fpscore.scores import compute_scores
        from fpscore.solvers import make_solver

        t0 = time.process_time()
        with make_solver("spsolve", rtol=params.rtol) as solver:
            ss = compute_scores(image, params, solver, progress=False)
        pre = time.process_time() - t0
        if not bool(ss.valid.all()):
            print(f"WARNING: no valid score (not converged or outside the bound) for {key}", flush=True)
        _SCORES[key] = (embed_scores(image, ss.scores, ss.times, ss.g), pre)
    return _SCORES[key]


class WithAncestral:
    """DDPM's evaluator: DDIM (the library Evaluator) drives the stopping rule; ancestral sampling is
    evaluated too where DDIM first reaches a target (recorded as ssim_ancestral)."""

    def __init__(self, base, ancestral_method, targets):
        self.base, self.ancestral, self.targets, self.crossed = base, ancestral_method, targets, set()

    def check(self, method):
        self.base.check(method)

    def describe(self):
        return {**self.base.describe(), "also": "ancestral where ddim first reaches a target"}

    def __call__(self, method, net, references):
        info = self.base(method, net, references)
        new = {t for t in self.targets if info["ssim"] >= t} - self.crossed
        if new:
            self.crossed |= new
            info["ssim_ancestral"] = self.base(self.ancestral, net, references)["ssim"]
        return info


def method_and_net(name: str, seed: int, size: int, recipe, params, images: np.ndarray, learn: dict, unet: dict,
                   traj: np.ndarray | None):
    """(training method, DDPM's ancestral sampler or None, UNet) of one run of ``name`` (ours, ours_zero, dsm,
    ddpm) on ``images``; ``traj``: ours' pre-computed trajectories. The net is drawn right after
    ``torch.manual_seed(seed)``, so a run's initial weights depend on its seed only."""
    import torch

    from fpscore.diffusion.ddpm import DDPMSchedule
    from fpscore.diffusion.methods import DDPMMethod, DSMMethod, OursMethod
    from fpscore.diffusion.sde import VESDE
    from fpscore.diffusion.unet import UNet, UNetConfig

    sde = VESDE(sigma=params.sigma, eps=params.eps, n_times=params.n_times)
    smp = learn["sampler"]
    sampler = {"method": recipe.sampler, "rtol": smp["rtol"], "atol": smp["atol"], "heun_steps": smp["heun_steps"],
               "denoise": recipe.denoise, "start": recipe.start}
    ancestral = None
    if name == "ours":
        method = OursMethod(sde, sampler, traj, parameterization=recipe.parameterization, times=recipe.times)
    elif name == "ours_zero":
        method = OursMethod(sde, sampler, np.repeat(images[:, None], sde.n_times, axis=1),
                            parameterization=recipe.parameterization, times=recipe.times)
    elif name == "dsm":
        method = DSMMethod(sde, sampler, images, parameterization=recipe.parameterization, times="uniform")
    else:
        dd = learn["ddpm"]
        schedule = DDPMSchedule(dd["timesteps"], dd["beta_start"], dd["beta_end"])
        method = DDPMMethod(schedule, "ddim", dd["ddim_steps"], images)
        ancestral = DDPMMethod(schedule, "ancestral", dd["ddim_steps"])  # the paper's DDPM sampler
    torch.manual_seed(seed)
    net = UNet(UNetConfig(in_channels=images.shape[1], resolution=size, base_channels=unet["base_channels"],
                          channel_mults=tuple(unet["channel_mults"]), num_res_blocks=unet["num_res_blocks"],
                          attn_resolutions=tuple(unet["attn_resolutions"]) if size <= 32 else (16,),
                          dropout=unet["dropout"],
                          # DDPM feeds its integer step 0..T-1: the sinusoidal embedding (Ho et al.) in every recipe
                          time_embedding="sinusoidal" if name == "ddpm" else recipe.time_embedding))
    return method, ancestral, net


def build(run: Run, part: Part, recipe: Recipe, defaults: dict, image: np.ndarray, out: Path):
    """(method, net, settings, evaluator, precompute seconds, extra) of one run."""
    from fpscore.diffusion.evaluation import Evaluator
    from fpscore.diffusion.training import TrainSettings

    learn = defaults["learn"]
    params = sde_params(recipe, run.dataset, defaults)
    traj, pre = trajectories(image, params, (run.size, run.dataset, run.image, params)) if run.method == "ours" \
        else (None, 0.0)
    method, ancestral, net = method_and_net(run.method, run.seed, run.size, recipe, params, image, learn,
                                            learn["unet"], traj)
    extra = {"sigma": params.sigma, "n_times": params.n_times, "picard_tol": params.picard_tol,
             "boundary": params.boundary, "scheme": params.scheme, "ancestral": ancestral}
    ddpm = run.method == "ddpm"
    settings = TrainSettings(
        batch_size=recipe.batch or params.n_times, lr=recipe.lr, grad_clip=recipe.grad_clip,
        lr_warmup_steps=recipe.lr_warmup_ddpm if ddpm else 0,
        ema_decay=recipe.ema_ddpm if ddpm else recipe.ema_flow, ema_warmup=True, seed=run.seed,
        eval_every_seconds=part.eval_every_ddpm if ddpm else part.eval_every, eval_samples=learn["train"]["eval_samples"],
        checkpoint_every_seconds=60.0, time_cap_seconds=part.cap_ddpm if ddpm else part.cap_flow,
        eval_schedule="geometric")
    evaluator = Evaluator(run.protocol, settings.eval_samples, run.seed + 1, recipe.ssim_mode,
                          NOISE_STD if run.protocol == "noisy_copy" else None)
    if ddpm:
        evaluator = WithAncestral(evaluator, extra["ancestral"], part.targets)
    return method, net, settings, evaluator, pre, extra


def crossing(evaluations: list[dict], target: float, key: str = "ssim") -> dict:
    """(prev, hit] training seconds of the first evaluation with SSIM >= target."""
    prev = None
    for ev in evaluations:
        if ev.get(key) is not None and ev[key] >= target:
            return {"reached": True, "hit": ev["train_seconds"], "prev": prev, "step": ev["step"]}
        prev = ev["train_seconds"]
    return {"reached": False, "hit": None, "prev": None, "step": None}


def execute(run: Run, part: Part, recipe: Recipe, defaults: dict, out: Path) -> dict:
    from fpscore.diffusion.training import StopRule, train
    from fpscore.diffusion.unet import count_parameters

    image = load_image(run.dataset, run.image, run.size)
    method, net, settings, evaluator, pre, extra = build(run, part, recipe, defaults, image, out)
    load0, wall0 = os.getloadavg()[0], time.perf_counter()
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    ckpt = out / "ckpt" / f"{run.key}.ckpt"
    result = train(method, net, image, settings, StopRule("target_ssim", target_ssim=max(part.targets)),
                   checkpoint_path=ckpt, progress=False, clock="cpu", evaluator=evaluator)
    s = result.summary
    record = dict(run.__dict__, key=run.key, cap=settings.time_cap_seconds, targets=list(part.targets),
                  precompute_seconds=pre, parameters=count_parameters(net), steps=s["steps"],
                  train_seconds=s["train_seconds"], eval_seconds=s["eval_seconds"], best_ssim=s["best_ssim"],
                  final_ssim=s["final_ssim"], eval_sampler=s["eval_sampler"], ssim_mode=s["ssim_mode"],
                  protocol_recorded=s["eval_protocol"], noise_std=s["noise_std"], batch_size=settings.batch_size,
                  lr=settings.lr, lr_warmup_steps=settings.lr_warmup_steps, grad_clip=settings.grad_clip,
                  ema_decay=settings.ema_decay,
                  parameterization=getattr(method, "parameterization", "ddpm-eps"),
                  sigma=extra["sigma"], n_times=extra["n_times"], picard_tol=extra["picard_tol"],
                  boundary=extra["boundary"], scheme=extra["scheme"],
                  load_before=load0, load_after=os.getloadavg()[0], wall_seconds=time.perf_counter() - wall0,
                  crossings={str(t): crossing(result.evaluations, t) for t in part.targets},
                  evaluations=result.evaluations)
    if run.method == "ddpm":
        base = evaluator.base
        record["final_ssim_ancestral"] = base(extra["ancestral"], result.net, image)["ssim"]
        record["crossings_ancestral"] = {str(t): crossing(result.evaluations, t, "ssim_ancestral")
                                         for t in part.targets}
    ckpt.unlink(missing_ok=True)
    return record


# ---------------------------------------------------------------------------------------------
def saved_runs(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


def write_runs_csv(out: Path) -> None:
    import pandas as pd

    rows = []
    for r in saved_runs(out):
        flat = {k: v for k, v in r.items() if k not in ("evaluations", "crossings", "crossings_ancestral", "targets")}
        for t, c in r["crossings"].items():
            flat[f"reached_{t}"], flat[f"time_{t}"], flat[f"prev_{t}"] = c["reached"], c["hit"], c["prev"]
        rows.append(flat)
    if rows:
        pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)


def time_or_cap(r: dict, t: str, precompute: bool = False) -> tuple[float, bool]:
    """(training seconds to target t, reached); the cap where unreached. precompute: add ours' score
    pre-computation seconds (the paper's Table 1 counts them)."""
    c = r["crossings"].get(t)
    extra = r.get("precompute_seconds", 0.0) if precompute else 0.0
    return (c["hit"] + extra, True) if c and c["reached"] else (r["cap"] + extra, False)


def fmt_time(values: list[tuple[float, bool]]) -> str:
    """median [min, max] of times to target; unreached runs count as '> cap' (infinite for the median)."""
    vals = sorted(v if ok else np.inf for v, ok in values)
    med = float(np.median(vals))
    cap = max(v for v, ok in values if not ok) if any(not ok for v, ok in values) else None
    lo, hi = vals[0], vals[-1]
    f = lambda x: f"> {cap:.0f}" if np.isinf(x) else f"{x:.1f}"  # noqa: E731
    return f"{f(med)} [{f(lo)}, {f(hi)}]"


@dataclass
class Ratios:
    """Paired ratios time_num / time_den (same image and seed) and what bounds them."""

    values: list            # one per usable pair
    lower: int = 0          # pairs where only the denominator reached: the ratio is a lower bound
    upper: int = 0          # only the numerator reached: an upper bound
    undefined: int = 0      # neither reached
    at_zero: int = 0        # the denominator met the target at time 0

    def text(self) -> str:
        notes = [f"{self.lower} lower bound(s)" if self.lower else "",
                 f"{self.upper} upper bound(s)" if self.upper else "",
                 f"{self.undefined} neither reached" if self.undefined else "",
                 f"{self.at_zero} with the denominator at the target at time 0" if self.at_zero else ""]
        note = ", ".join(x for x in notes if x)
        if not self.values:
            return f"n/a ({note})" if note else "n/a"
        v = np.array(self.values)
        return f"{np.median(v):.2f}x [{v.min():.2f}, {v.max():.2f}] n={len(v)}" + (f" ({note})" if note else "")


def paired_ratios(num: list[dict], den: list[dict], t: str, precompute: bool = False) -> Ratios:
    """time_num / time_den over paired runs (same image and seed); a pair with an unreached run is a bound
    (its cap used). precompute: ours' pre-computation seconds included (``time_or_cap``)."""
    by = {(r["dataset"], r["image"], r["seed"]): r for r in den}
    out = Ratios([])
    for r in num:
        d = by.get((r["dataset"], r["image"], r["seed"]))
        if d is None:
            continue
        (a, ra), (b, rb) = time_or_cap(r, t, precompute), time_or_cap(d, t, precompute)
        if not ra and not rb:
            out.undefined += 1
            continue
        if rb and b == 0:  # the denominator met the target before training: no ratio
            out.at_zero += 1
            continue
        out.values.append(a / b)
        out.lower += (not ra) and rb
        out.upper += ra and (not rb)
    return out


def paired_ratio(num: list[dict], den: list[dict], t: str) -> str:
    """Median [min, max] over paired runs of time_num / time_den, with how many pairs are bounds."""
    return paired_ratios(num, den, t).text()


def report(out: Path) -> None:
    import pandas as pd

    runs = saved_runs(out)
    write_runs_csv(out)
    if not runs:
        print("no saved runs yet")
        return
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["size"], r["recipe"], r["protocol"]), {}).setdefault(r["method"], []).append(r)
    for (size, recipe, protocol), by_method in groups.items():  # the methods a recipe shares with another
        source, shared = SHARED_RUNS.get(recipe, (None, ()))
        for m in shared:
            if m in groups.get((size, source, protocol), {}):
                by_method.setdefault(m, groups[(size, source, protocol)][m])
    rows, lines = [], []
    for (size, recipe, protocol), by_method in sorted(groups.items()):
        targets = next(iter(by_method.values()))[0]["targets"]
        for t in map(str, targets):
            row = dict(size=size, recipe=recipe, protocol=protocol, target=float(t),
                       ssim_mode=next(iter(by_method.values()))[0]["ssim_mode"])
            for m in METHODS:
                rs = by_method.get(m, [])
                row[f"{m}_reached"] = f"{sum(time_or_cap(r, t)[1] for r in rs)}/{len(rs)}"
                row[f"{m}_time_s"] = fmt_time([time_or_cap(r, t) for r in rs]) if rs else ""
            for a, b in RATIOS:
                row[f"{a}_over_{b}"] = paired_ratio(by_method.get(a, []), by_method.get(b, []), t)
            rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(out / "summary.csv", index=False)
    pre = [r["precompute_seconds"] for r in runs if r["method"] == "ours"]
    lines.append("time to target: median [min, max] CPU training seconds over images x seeds; '> c': not "
                 "reached within the cap c; reached = runs that reached / runs; ratios: median [min, max] over "
                 "paired runs (same image, seed), bounds where a run is '> cap'")
    if pre:
        lines.append(f"ours' score pre-computation (spsolve, CPU s, not in the times): median {np.median(pre):.2f}, "
                     f"max {max(pre):.2f}")
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 60):
        lines.append(df.to_string(index=False))
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    figure(runs, out)


def figure(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for size in sorted({r["size"] for r in runs}):
        rs = [r for r in runs if r["size"] == size]
        targets = sorted({t for r in rs for t in r["targets"]})
        panels = sorted({(r["recipe"], r["protocol"]) for r in rs})
        fig, axes = plt.subplots(len(targets), len(panels), figsize=(3.6 * len(panels), 2.8 * len(targets)),
                                 squeeze=False, sharey=True)
        rng = np.random.default_rng(0)
        for i, t in enumerate(map(str, targets)):
            for j, (recipe, protocol) in enumerate(panels):
                ax = axes[i, j]
                for k, m in enumerate(METHODS):
                    for r in (r for r in rs if r["recipe"] == recipe and r["protocol"] == protocol and r["method"] == m):
                        v, ok = time_or_cap(r, t)
                        ax.scatter(k + rng.uniform(-0.15, 0.15), v, marker="o" if ok else "^",
                                   facecolors=f"C{k}" if ok else "none", edgecolors=f"C{k}", s=22)
                ax.set_yscale("symlog", linthresh=1.0)  # a target met at the time-0 evaluation sits at 0
                ax.set(xticks=range(len(METHODS)), xticklabels=METHODS,
                       title=f"{recipe}, {protocol}, SSIM {float(t):.2f}")
                ax.tick_params(axis="x", labelsize=7)
                if j == 0:
                    ax.set_ylabel("CPU training s to target")
        fig.suptitle(f"{size}x{size}: time to target per run (open triangle: not reached, plotted at the cap)",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"time_to_target_{size}.png", dpi=110)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
def plan(parts: dict) -> None:
    for name, p in parts.items():
        runs = p.runs()
        n, ddpm = len(runs), sum(r.method == "ddpm" for r in runs)
        flow = n - ddpm
        print(f"part {name}: {p.size}x{p.size} {p.recipe} {'+'.join(p.protocols)}, {len(p.images)} image(s) x "
              f"{len(p.seeds)} seed(s) x {len(p.methods)} method(s) = {n} runs, targets {p.targets}; caps flow "
              f"{p.cap_flow:.0f} s, DDPM {p.cap_ddpm:.0f} s; worst case about "
              f"{(flow * p.cap_flow * 1.4 + ddpm * (p.cap_ddpm * 1.3 + 75)) / 3600:.1f} h CPU")
    print("cuts:\n  " + "\n  ".join(CUTS))


def run_set_part(args, out: Path) -> int:
    """--part sets32 | sets64 (verdict_sets.py): the runs not saved yet, then the report; --report: the report."""
    if args.report:
        verdict_sets.report(out)
        return 0
    import torch

    from fpscore.config import schema_defaults

    torch.set_num_threads(args.threads)
    defaults = schema_defaults()
    part = SET_PARTS[args.part]
    verdict_sets.plan(args.part, part)
    verdict_sets.run_part(args.part, part, out, recipes(defaults), defaults,
                          only=dict(f.split("=", 1) for f in args.only))
    verdict_sets.report(out)
    return 0


def main() -> int:
    from fpscore.config import schema_defaults

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=list(PARTS) + list(SET_PARTS),
                    help="run this part (skips runs already saved); sets32 / sets64: verdict_sets.py")
    ap.add_argument("--only", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="run only the runs whose field (dataset, image, protocol, method, seed) has this value")
    ap.add_argument("--list", action="store_true", help="print the parts and what the caps cut")
    ap.add_argument("--report", action="store_true", help="tables and figures from the saved runs")
    ap.add_argument("--smoke", action="store_true", help="a tiny end-to-end check (16x16, seconds-long caps)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/verdict",
                    help="where runs/*.json, the tables and figures go (tracked by git, so a later session resumes)")
    args = ap.parse_args()
    out = Path(args.out)
    if args.list:
        plan(PARTS)
        for name, part in SET_PARTS.items():
            verdict_sets.plan(name, part)
        return 0
    if args.part in SET_PARTS:
        return run_set_part(args, out / SET_PARTS[args.part].folder)
    if args.report:
        report(out)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    defaults = schema_defaults()
    rec = recipes(defaults)
    if args.smoke:
        parts = {r: Part(16, (("photos", "astronaut"),), (0,), r, PROTOCOLS_RUN, (0.3, 0.6), 6.0, 6.0, 2.0, 2.0)
                 for r in rec}
        out = out / "smoke"
        items = [(p, r) for p in parts.values() for r in p.runs()]
    elif args.part:
        plan({args.part: PARTS[args.part]})
        items = [(PARTS[args.part], r) for r in PARTS[args.part].runs()]
    else:
        ap.error("give --part, --list, --report or --smoke")
    filters = dict(f.split("=", 1) for f in args.only)
    items = [(p, r) for p, r in items if all(str(getattr(r, k)) == v for k, v in filters.items())]
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for i, (part, run) in enumerate(items):
        path = out / "runs" / f"{run.key}.json"
        if path.exists():
            print(f"[{i + 1}/{len(items)}] {run.key}: saved, skipped", flush=True)
            continue
        record = execute(run, part, rec[run.recipe], defaults, out)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, default=str))
        tmp.replace(path)
        write_runs_csv(out)
        cross = " ".join(f"{t}:{c['hit']:.1f}" if c["reached"] else f"{t}:>{record['cap']:.0f}"
                         for t, c in record["crossings"].items())
        print(f"[{i + 1}/{len(items)}] {run.key}: {record['steps']} steps, {record['train_seconds']:.1f} s train + "
              f"{record['eval_seconds']:.1f} s eval, best SSIM {record['best_ssim']:.4f} ({record['ssim_mode']}), "
              f"{cross}, wall {record['wall_seconds']:.0f} s, load {record['load_after']:.1f}", flush=True)
    report(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Single-image denoising, our method vs DDPM, side by side (METHOD.md section 10, Table 1).

Same image, same U-Net, same batch size and optimiser, same machine, one run:
pre-compute the image's scores (timed), train ours until the highest target SSIM
(or its cap), train DDPM the same way, and print for every target the training
seconds to reach it, ours with and without the pre-computation, and the ratio.

Time to a target is read at evaluations (every --eval-every-* training seconds):
"hit" is the first evaluation at or above the target; "prev" the one before it,
so the true time lies in (prev, hit]. The conservative ratio divides DDPM's prev
by our hit (plus pre-computation); a method that never reaches a target within
its cap is reported as "> cap" and any ratio from it as a lower bound.

Usage (defaults: the embedded config's network and training settings):
    python benchmarks/denoise_benchmark.py --targets 0.90 0.95 --cap-ours 600 --cap-ddpm 2400
Writes results/benchmarks/denoise/{curves.csv, summary.json, curves.png}.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


#: ours = the method; ours_eps = with the eps parameterisation (ablation of the preconditioning);
#: ours_zero = with zero scores, i.e. no score embedding (ablation of the pre-computed scores).
METHODS = ("ours", "ours_eps", "ours_zero", "ddpm")


def load_average() -> float:
    return os.getloadavg()[0]


def first_crossing(evaluations: list[dict], target: float, offset: float = 0.0) -> dict:
    """hit / prev training seconds of the first evaluation with SSIM >= target (None when never)."""
    prev = 0.0
    for ev in evaluations:
        if ev["ssim"] >= target:
            return {"reached": True, "hit": ev["train_seconds"] + offset, "prev": prev + offset, "step": ev["step"]}
        prev = ev["train_seconds"]
    return {"reached": False, "hit": None, "prev": None, "step": None}


def span(x: dict, cap: float) -> str:
    return f"({x['prev']:.1f}, {x['hit']:.1f}]" if x["reached"] else f"> {cap:.0f} (cap)"


def ratio_text(ours: dict, ddpm: dict, cap_ddpm: float) -> tuple[str, str]:
    """(nominal, conservative) DDPM / ours ratios as text; '>' marks a lower bound."""
    if not ours["reached"]:
        return "n/a (ours not reached)", "n/a"
    if ddpm["reached"]:
        return f"{ddpm['hit'] / ours['hit']:.1f}x", f"{ddpm['prev'] / ours['hit']:.1f}x"
    return f"> {cap_ddpm / ours['hit']:.1f}x (DDPM > cap)", f"> {cap_ddpm / ours['hit']:.1f}x"


def main() -> int:
    from fpscore import data
    from fpscore.config import schema_defaults
    from fpscore.diffusion.ddpm import DDPMSchedule
    from fpscore.diffusion.embedding import embed_scores
    from fpscore.diffusion.methods import DDPMMethod, OursMethod
    from fpscore.diffusion.sde import VESDE
    from fpscore.diffusion.training import StopRule, TrainSettings, train
    from fpscore.diffusion.unet import UNet, UNetConfig, count_parameters
    from fpscore.fokker_planck.params import FPParams
    from fpscore.scores import compute_scores
    from fpscore.solvers import make_solver

    d = schema_defaults()
    learn, sc = d["learn"], d["scores"]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=d["data"]["photos"]["names"][0], help="builtin photo (skimage.data name)")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--channels", type=int, default=d["data"]["photos"]["channels"])
    p.add_argument("--targets", type=float, nargs="+", default=[0.90, 0.95])
    p.add_argument("--methods", nargs="+", default=["ours", "ddpm"], help=f"among {METHODS}")
    p.add_argument("--cap-ours", type=float, default=600.0, help="training-seconds cap of ours")
    p.add_argument("--cap-ddpm", type=float, default=2400.0, help="training-seconds cap of DDPM")
    p.add_argument("--eval-every-ours", type=float, default=5.0)
    p.add_argument("--eval-every-ddpm", type=float, default=60.0)
    p.add_argument("--eval-samples", type=int, default=learn["train"]["eval_samples"])
    p.add_argument("--ddpm-sampler", choices=("ancestral", "ddim"), default="ancestral")
    p.add_argument("--parameterization", choices=("edm", "eps"), default=learn.get("parameterization", "edm"))
    p.add_argument("--solver", default="spsolve", help="score solver (spsolve | ksp | projection)")
    p.add_argument("--base-channels", type=int, default=learn["unet"]["base_channels"])
    p.add_argument("--batch-size", type=int, default=learn["train"]["batch_size"])
    p.add_argument("--lr", type=float, default=learn["train"]["lr"])
    p.add_argument("--threads", type=int, default=learn["train"]["threads"])
    p.add_argument("--seed", type=int, default=learn["train"]["seed"])
    p.add_argument("--out", default="results/benchmarks/denoise")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    images, names, _ = data.prepare("photos", args.resolution, {"names": [args.image], "channels": args.channels})
    c, h, w = images.shape[1:]
    params = FPParams(sigma=sc["sigma"], eps=sc["eps"], n_times=sc["n_times"], dh=sc["dh"], kde_bins=sc["kde_bins"],
                      picard_tol=sc["picard_tol"], picard_max_iter=sc["picard_max_iter"], rtol=sc["rtol"])
    t0 = time.perf_counter()
    with make_solver(args.solver, rtol=sc["rtol"]) as solver:
        score_set = compute_scores(images, params, solver, progress=False)
    precompute = time.perf_counter() - t0
    print(f"image {names[0]} {c} x {h} x {w}; scores ({args.solver}): {precompute:.2f} s wall, Picard iterations "
          f"{score_set.picard_iterations.ravel().tolist()}, converged {bool(score_set.converged.all())}")
    sde = VESDE(sigma=params.sigma, eps=params.eps, n_times=params.n_times)
    traj = embed_scores(images, score_set.scores, score_set.times, score_set.g)

    u = learn["unet"]
    unet = UNetConfig(in_channels=c, resolution=h, base_channels=args.base_channels,
                      channel_mults=tuple(u["channel_mults"]), num_res_blocks=u["num_res_blocks"],
                      attn_resolutions=tuple(u["attn_resolutions"]), dropout=u["dropout"])
    smp = learn["sampler"]
    runs, curves = {}, []
    for name in args.methods:
        if name not in METHODS:
            raise SystemExit(f"--methods: expected names among {METHODS}, got {name!r}")
        ours = name.startswith("ours")
        cap, every = (args.cap_ours, args.eval_every_ours) if ours else (args.cap_ddpm, args.eval_every_ddpm)
        if ours:
            sampler = {"method": smp["method"], "rtol": smp["rtol"], "atol": smp["atol"],
                       "heun_steps": smp["heun_steps"], "denoise": smp.get("denoise", True)}
            param = "eps" if name == "ours_eps" else args.parameterization
            trajectories = np.repeat(images[:, None], sde.n_times, axis=1) if name == "ours_zero" else traj
            method = OursMethod(sde, sampler, trajectories, parameterization=param)
        else:
            dd = learn["ddpm"]
            method = DDPMMethod(DDPMSchedule(dd["timesteps"], dd["beta_start"], dd["beta_end"]), args.ddpm_sampler,
                                dd["ddim_steps"], images)
        torch.manual_seed(args.seed)
        net = UNet(unet)
        tr = learn["train"]
        settings = TrainSettings(batch_size=args.batch_size, lr=args.lr, grad_clip=tr["grad_clip"],
                                 ema_decay=tr["ema_decay"], seed=args.seed, eval_every_seconds=every,
                                 eval_samples=args.eval_samples, checkpoint_every_seconds=1e9, time_cap_seconds=cap)
        load0, wall0 = load_average(), time.perf_counter()
        result = train(method, net, images, settings, StopRule("target_ssim", target_ssim=max(args.targets)))
        s = result.summary
        runs[name] = dict(summary=s, load_before=load0, load_after=load_average(),
                          wall_seconds=time.perf_counter() - wall0, parameters=count_parameters(net),
                          crossings={str(t): first_crossing(result.evaluations, t) for t in args.targets})
        curves += [dict(method=name, **ev) for ev in result.evaluations]
        print(f"{name}: {s['steps']} steps, {s['train_seconds']:.1f} s training, {s['eval_seconds']:.1f} s "
              f"evaluation ({s['eval_sampler']}), best SSIM {s['best_ssim']:.4f}, "
              f"load average {load0:.1f} -> {load_average():.1f}")

    sampler = {name: run["summary"]["eval_sampler"] for name, run in runs.items()}
    lines = [f"single-image denoising: {names[0]} {c}x{h}x{w}, U-Net {count_parameters(UNet(unet)):,} parameters, "
             f"batch {args.batch_size}, lr {args.lr}, {args.threads} thread(s), {args.eval_samples} eval sample(s)",
             f"pre-computation ({args.solver}): {precompute:.2f} s; evaluation samplers: {sampler}",
             "time to target = training seconds at the first evaluation >= target, (previous evaluation, hit]",
             f"{'target':>6} | {'ours s (prev, hit]':>20} | {'ours+pre s':>10} | {'steps':>5} | "
             f"{'DDPM s (prev, hit]':>20} | {'steps':>6} | {'ratio (hit)':>20} | {'conservative':>12} | step ratio"]
    table = []
    for t in args.targets:
        o = runs.get("ours", {}).get("crossings", {}).get(str(t), {"reached": False, "step": None})
        g = runs.get("ddpm", {}).get("crossings", {}).get(str(t), {"reached": False, "step": None})
        o_total = dict(o, hit=o["hit"] + precompute, prev=o["prev"] + precompute) if o["reached"] else o
        nominal, conservative = ratio_text(o_total, g, args.cap_ddpm) if "ddpm" in runs else ("-", "-")
        steps_ddpm = g["step"] if g["reached"] else runs.get("ddpm", {}).get("summary", {}).get("steps")
        step_ratio = "-"
        if o["reached"] and steps_ddpm:
            step_ratio = f"{'' if g['reached'] else '> '}{steps_ddpm / o['step']:.1f}x"
        total = f"{o_total['hit']:.1f}" if o["reached"] else "-"
        ddpm_steps = str(g["step"]) if g["reached"] else f"> {steps_ddpm}"
        lines.append(f"{t:>6.2f} | {span(o, args.cap_ours):>20} | {total:>10} | {o['step'] or '-':>5} | "
                     f"{span(g, args.cap_ddpm):>20} | {ddpm_steps:>6} | {nominal:>20} | "
                     f"{conservative:>12} | {step_ratio}")
        table.append(dict(target=t, ours=o, ours_with_precompute=o_total, ddpm=g, ratio=nominal,
                          conservative_ratio=conservative, step_ratio=step_ratio))
    for name in runs:
        if name.startswith("ours_"):
            cross = runs[name]["crossings"]
            lines.append(f"ablation {name}: " + ", ".join(
                f"SSIM {t:.2f} at {span(cross[str(t)], args.cap_ours)} s" for t in args.targets)
                + f" (best SSIM {runs[name]['summary']['best_ssim']:.4f})")
    print("\n".join(lines))

    import pandas as pd

    pd.DataFrame(curves).to_csv(out / "curves.csv", index=False)
    (out / "summary.json").write_text(json.dumps(dict(image=names[0], shape=[c, h, w], precompute_seconds=precompute,
                                                      solver=args.solver, args=vars(args), runs=runs, table=table,
                                                      report=lines), indent=1, default=str))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    frame = pd.DataFrame(curves)
    for name, grp in frame.groupby("method"):
        ax.plot(grp["train_seconds"], grp["ssim"], marker="o", ms=3, label=name)
    for t in args.targets:
        ax.axhline(t, color="grey", lw=0.5, ls="--")
    ax.set(xscale="log", xlabel="training seconds", ylabel="SSIM (eval samples vs the image)",
           title=f"{names[0]} {h}x{w}: SSIM over training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    print(f"wrote {out / 'curves.csv'}, {out / 'summary.json'}, {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

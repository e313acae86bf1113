"""Single-image denoising: ours, its ablations, the like-for-like DSM baseline and DDPM, side by side.

Same image, same U-Net, same batch size and optimiser, same machine, one run (METHOD.md
section 10, Table 1). The methods (see METHODS) differ in one thing at a time:

    ours       score embedding (section 7-8), edm parameterisation, probability-flow ODE
    ours_zero  ours with zero scores (trajectories stay at the image, ours' time levels)
    dsm        denoising score matching on the image, continuous times, otherwise = ours
    ours_eps   ours with Song et al.'s eps output scaling (s = output / lambda)
    dsm_eps    dsm with the eps parameterisation
    ddpm       the paper's baseline: epsilon prediction, T = 1000, ancestral sampling

so dsm / ours is what score embedding buys at equal preconditioning, dsm_eps / ours_eps
the same at the eps scaling (the authors' own code uses raw: see
benchmarks/verdict_benchmark.py), and ddpm / ours the paper's headline ratio.

Training seconds are the process's CPU time of the training loop by default (--clock cpu:
the machine is shared, CPU time is steadier than wall time with one torch thread);
evaluation time is kept out of them. Time to a target is read at evaluations (every
--eval-every-* training seconds): "hit" is the first evaluation at or above the target,
"prev" the one before it, so the true time lies in (prev, hit]. A method that never reaches
a target within its cap is reported as "> cap" and any ratio from it as a bound.

Usage (defaults: the embedded config's network and training settings):
    python benchmarks/denoise_benchmark.py --cap-flow 300 --cap-ddpm 1500 --threads 1
Writes results/benchmarks/denoise/{curves.csv, summary.json, curves.png} (after every method too).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

#: name -> (kind, parameterisation or None for the CLI default); "flow" methods sample with the ODE.
METHODS = {"ours": ("ours", None), "ours_zero": ("ours_zero", None), "dsm": ("dsm", None),
           "ours_eps": ("ours", "eps"), "dsm_eps": ("dsm", "eps"), "ddpm": ("ddpm", None)}
#: (numerator, denominator, what the ratio isolates)
RATIOS = (("dsm", "ours", "score embedding at equal (edm) preconditioning"),
          ("dsm_eps", "ours_eps", "score embedding at the eps output scaling"),
          ("ours_zero", "ours", "zero scores at ours' time levels"),
          ("ours_eps", "ours", "eps vs edm parameterisation"),
          ("ddpm", "ours", "the paper's headline comparison"),
          ("ddpm", "ours+pre", "the same, pre-computation included"))


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


def ratio_text(a: dict, cap_a: float, b: dict, cap_b: float) -> str:
    """a / b of two crossings as text: hit ratio [bounds from (prev, hit]], or a bound when one is > cap."""
    if a["reached"] and b["reached"]:
        lo = a["prev"] / b["hit"]
        hi = f"{a['hit'] / b['prev']:.2f}" if b["prev"] > 0 else "inf"
        return f"{a['hit'] / b['hit']:.2f}x [{lo:.2f}, {hi}]"
    if b["reached"]:
        return f"> {cap_a / b['hit']:.1f}x (numerator > cap)"
    if a["reached"]:
        return f"< {a['hit'] / cap_b:.2f}x (denominator > cap)"
    return "n/a (neither reached)"


def main() -> int:
    from fpscore import data
    from fpscore.config import schema_defaults
    from fpscore.diffusion.ddpm import DDPMSchedule
    from fpscore.diffusion.losses import PARAMETERIZATIONS
    from fpscore.diffusion.embedding import embed_scores
    from fpscore.diffusion.methods import DDPM_SAMPLERS, DDPMMethod, DSMMethod, OursMethod
    from fpscore.diffusion.sampling import SAMPLERS
    from fpscore.diffusion.sde import VESDE
    from fpscore.diffusion.training import CLOCKS, StopRule, TrainSettings, train
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
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--cap-flow", type=float, default=300.0,
                   help="training-seconds cap of ours, ours_zero, dsm, ours_eps, dsm_eps")
    p.add_argument("--cap-ddpm", type=float, default=1500.0, help="training-seconds cap of DDPM")
    p.add_argument("--eval-every-flow", type=float, default=5.0)
    p.add_argument("--eval-every-ddpm", type=float, default=75.0)
    p.add_argument("--eval-samples", type=int, default=learn["train"]["eval_samples"])
    p.add_argument("--flow-sampler", choices=SAMPLERS, default="rk45",
                   help="probability-flow sampler of ours/dsm evaluations (rk45: the paper's)")
    p.add_argument("--ddpm-sampler", choices=DDPM_SAMPLERS, default="ancestral")
    p.add_argument("--parameterization", choices=PARAMETERIZATIONS, default=learn.get("parameterization", "edm"),
                   help="of ours, ours_zero and dsm (the *_eps methods always use eps)")
    p.add_argument("--clock", choices=tuple(CLOCKS), default="cpu", help="clock of the training seconds")
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
    clock = CLOCKS[args.clock]
    t0, wall0 = clock(), time.perf_counter()
    with make_solver(args.solver, rtol=sc["rtol"]) as solver:
        score_set = compute_scores(images, params, solver, progress=False)
    precompute, precompute_wall = clock() - t0, time.perf_counter() - wall0
    print(f"image {names[0]} {c} x {h} x {w}; scores ({args.solver}): {precompute:.2f} s ({args.clock} clock), "
          f"{precompute_wall:.2f} s wall, Picard iterations {score_set.picard_iterations.ravel().tolist()}, "
          f"converged {bool(score_set.converged.all())}", flush=True)
    sde = VESDE(sigma=params.sigma, eps=params.eps, n_times=params.n_times)
    traj = embed_scores(images, score_set.scores, score_set.times, score_set.g)

    u = learn["unet"]
    unet = UNetConfig(in_channels=c, resolution=h, base_channels=args.base_channels,
                      channel_mults=tuple(u["channel_mults"]), num_res_blocks=u["num_res_blocks"],
                      attn_resolutions=tuple(u["attn_resolutions"]), dropout=u["dropout"])
    smp = learn["sampler"]
    sampler = {"method": args.flow_sampler, "rtol": smp["rtol"], "atol": smp["atol"],
               "heun_steps": smp["heun_steps"], "denoise": smp.get("denoise", True)}
    caps = {name: args.cap_ddpm if name == "ddpm" else args.cap_flow for name in METHODS}
    runs, curves = {}, []

    def save(lines=(), table=()):
        import pandas as pd

        pd.DataFrame(curves).to_csv(out / "curves.csv", index=False)
        (out / "summary.json").write_text(json.dumps(dict(
            image=names[0], shape=[c, h, w], clock=args.clock, precompute_seconds=precompute,
            precompute_wall_seconds=precompute_wall, solver=args.solver, args=vars(args), runs=runs,
            table=list(table), report=list(lines)), indent=1, default=str))

    for name in args.methods:
        kind, param = METHODS[name]
        param = param or args.parameterization
        if kind == "ours":
            method = OursMethod(sde, sampler, traj, parameterization=param)
        elif kind == "ours_zero":
            method = OursMethod(sde, sampler, np.repeat(images[:, None], sde.n_times, axis=1), parameterization=param)
        elif kind == "dsm":
            method = DSMMethod(sde, sampler, images, parameterization=param)
        else:
            dd = learn["ddpm"]
            method = DDPMMethod(DDPMSchedule(dd["timesteps"], dd["beta_start"], dd["beta_end"]), args.ddpm_sampler,
                                dd["ddim_steps"], images)
            param = "ddpm-eps"
        torch.manual_seed(args.seed)
        net = UNet(unet)
        tr = learn["train"]
        every = args.eval_every_ddpm if name == "ddpm" else args.eval_every_flow
        settings = TrainSettings(batch_size=args.batch_size, lr=args.lr, grad_clip=tr["grad_clip"],
                                 ema_decay=tr["ema_decay"], seed=args.seed, eval_every_seconds=every,
                                 eval_samples=args.eval_samples, checkpoint_every_seconds=1e9,
                                 time_cap_seconds=caps[name])
        load0, wall0 = load_average(), time.perf_counter()
        result = train(method, net, images, settings, StopRule("target_ssim", target_ssim=max(args.targets)),
                       progress=False, clock=args.clock)
        s = result.summary
        runs[name] = dict(summary=s, parameterization=param, load_before=load0, load_after=load_average(),
                          wall_seconds=time.perf_counter() - wall0, parameters=count_parameters(net),
                          crossings={str(t): first_crossing(result.evaluations, t) for t in args.targets})
        curves.extend(dict(method=name, **ev) for ev in result.evaluations)
        print(f"{name} ({param}): {s['steps']} steps, {s['train_seconds']:.1f} s training, {s['eval_seconds']:.1f} s "
              f"evaluation ({args.clock} clock; {s['eval_sampler']}), best SSIM {s['best_ssim']:.4f}, "
              f"{runs[name]['wall_seconds']:.0f} s wall, load average {load0:.1f} -> {load_average():.1f}", flush=True)
        save()

    if "ours" in runs:  # ours with the pre-computation added to every evaluation time
        evals = [ev for ev in curves if ev["method"] == "ours"]
        pre = dict(runs["ours"], crossings={str(t): first_crossing(evals, t, offset=precompute) for t in args.targets})
        runs = {k: v for name, run in runs.items()
                for k, v in ([(name, run), ("ours+pre", pre)] if name == "ours" else [(name, run)])}
        caps["ours+pre"] = caps["ours"] + precompute
    lines = [f"single-image denoising: {names[0]} {c}x{h}x{w}, U-Net {count_parameters(UNet(unet)):,} parameters, "
             f"batch {args.batch_size}, lr {args.lr}, Adam, {args.threads} torch thread(s), "
             f"{args.eval_samples} eval sample(s) per evaluation",
             f"training seconds: {'process CPU time' if args.clock == 'cpu' else 'wall time'} of the training loop "
             f"(evaluation excluded); pre-computation ({args.solver}): {precompute:.2f} s ({args.clock}), "
             f"{precompute_wall:.2f} s wall",
             "time to target: (previous evaluation, first evaluation >= target], training seconds; "
             "'> cap': not reached",
             f"{'method':<10} | {'param':<8} | {'evaluation sampler':<35} | "
             + " | ".join(f"{'SSIM ' + format(t, '.2f') + ' s':>16} | {'steps':>6}" for t in args.targets)
             + f" | {'best SSIM':>9} | {'cap s':>6}"]
    table = []
    for name, run in runs.items():
        cross = run["crossings"]
        cells = []
        for t in args.targets:
            x = cross[str(t)]
            steps = str(x["step"]) if x["reached"] else f"> {run['summary']['steps']}"
            cells.append(f"{span(x, caps[name]):>16} | {steps:>6}")
        sampler_name = run["summary"]["eval_sampler"] if name != "ours+pre" else "(ours + pre-computation)"
        lines.append(f"{name:<10} | {run['parameterization']:<8} | {sampler_name:<35} | " + " | ".join(cells)
                     + f" | {run['summary']['best_ssim']:>9.4f} | {caps[name]:>6.0f}")
        table.append(dict(method=name, parameterization=run["parameterization"], cap=caps[name],
                          sampler=run["summary"]["eval_sampler"], crossings=cross))
    lines.append("ratios of times to target, a / b: hit / hit [bounds from the (prev, hit] intervals]")
    lines.append(f"{'a / b':<20} | " + " | ".join(f"{'SSIM ' + format(t, '.2f'):>26}" for t in args.targets)
                 + " | what it isolates")
    ratios = []
    for a, b, what in RATIOS:
        if a in runs and b in runs:
            texts = [ratio_text(runs[a]["crossings"][str(t)], caps[a], runs[b]["crossings"][str(t)], caps[b])
                     for t in args.targets]
            lines.append(f"{a + ' / ' + b:<20} | " + " | ".join(f"{x:>26}" for x in texts) + f" | {what}")
            ratios.append(dict(numerator=a, denominator=b, isolates=what,
                               ratios={str(t): x for t, x in zip(args.targets, texts)}))
    print("\n".join(lines))
    save(lines, table + [dict(ratios=ratios)])

    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, grp in pd.DataFrame(curves).groupby("method", sort=False):
        ax.plot(grp["train_seconds"], grp["ssim"], marker="o", ms=2.5, lw=1,
                label=f"{name} ({runs[name]['parameterization']})")
    for t in args.targets:
        ax.axhline(t, color="grey", lw=0.5, ls="--")
    ax.set(xscale="log", xlabel=f"training seconds ({args.clock} clock)", ylabel="SSIM (eval samples vs the image)",
           title=f"{names[0]} {h}x{w}: SSIM over training", ylim=(min(0.0, ax.get_ylim()[0]), 1.0))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    print(f"wrote {out / 'curves.csv'}, {out / 'summary.json'}, {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

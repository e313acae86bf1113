"""`fpscore train` (our method, the DSM or DDPM baseline -> model.pt, train_log.csv, summary JSON)
and `fpscore sample` (model.pt -> samples.npz with progression states).

Option defaults come from the schema section `learn` (the dsm SDE: `scores`; fpscore.config.schema_defaults),
so a command typed by hand does what the workflow does with the embedded config.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

METHODS = ("ours", "dsm", "ddpm")


def _defaults(section: str = "learn") -> dict:
    from fpscore.config import schema_defaults

    return schema_defaults().get(section, {})


def _device(name: str, threads: int) -> torch.device:
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"--threads: expected a positive integer, got {threads!r}")
    torch.set_num_threads(threads)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_sampler_options(p: argparse.ArgumentParser, d: dict, suppress: bool = False) -> None:
    sampler, ddpm = d.get("sampler", {}), d.get("ddpm", {})
    default = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)  # noqa: E731
    g = p.add_argument_group("sampling (ours, dsm: probability-flow ODE; ddpm: ancestral or DDIM)")
    g.add_argument("--sampler", choices=("rk45", "heun"), default=default(sampler.get("method", "rk45")))
    g.add_argument("--rtol", type=float, default=default(sampler.get("rtol", 1e-3)))
    g.add_argument("--atol", type=float, default=default(sampler.get("atol", 1e-3)))
    g.add_argument("--heun-steps", type=int, default=default(sampler.get("heun_steps", 50)))
    g.add_argument("--denoise", type=_bool, default=default(sampler.get("denoise", True)),
                   help="final Tweedie step x + lambda(eps)^2 s(x, eps) (true/false)")
    g.add_argument("--ddpm-sampler", choices=("ancestral", "ddim"), default=default(ddpm.get("sampler", "ancestral")))
    g.add_argument("--ddim-steps", type=int, default=default(ddpm.get("ddim_steps", 50)))


def register(subparsers) -> None:
    d = _defaults()
    unet, tr, ddpm = d.get("unet", {}), d.get("train", {}), d.get("ddpm", {})
    sde = _defaults("scores")

    p = subparsers.add_parser("train", help="train our method or a baseline (dsm, ddpm) to a target SSIM or a budget",
                              description=__doc__.splitlines()[0])
    p.add_argument("--method", required=True, help="ours | dsm | ddpm")
    p.add_argument("--images", required=True, help="images.npz of the data step")
    p.add_argument("--scores", help="scores.npz of the score step (method ours)")
    p.add_argument("--solve-log", help="solve_log.csv beside scores.npz: adds the pre-computation time (ours)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--indices", type=int, nargs="+", help="train on these image indices")
    sel.add_argument("--count", type=int, help="train on the first COUNT images (default: all)")
    p.add_argument("--out", required=True, help="model.pt to write")
    p.add_argument("--log", required=True, help="train_log.csv to write")
    p.add_argument("--summary", help="summary JSON to write (default: the log path with .json)")
    p.add_argument("--checkpoint", help="resumable checkpoint (default: OUT.ckpt beside the model)")
    s = p.add_argument_group("stopping")
    s.add_argument("--stop", default="target_ssim", help="target_ssim | budget | steps")
    s.add_argument("--target-ssim", type=float, default=0.9)
    s.add_argument("--budget-seconds", type=float)
    s.add_argument("--max-steps", type=int)
    s.add_argument("--time-cap", type=float, default=tr.get("time_cap_seconds", 300.0), help="training seconds")
    n = p.add_argument_group("network (learn.unet)")
    n.add_argument("--base-channels", type=int, default=unet.get("base_channels", 32))
    n.add_argument("--channel-mults", type=int, nargs="+", default=unet.get("channel_mults", [1, 2, 2]))
    n.add_argument("--num-res-blocks", type=int, default=unet.get("num_res_blocks", 1))
    n.add_argument("--attn-resolutions", type=int, nargs="*", default=unet.get("attn_resolutions", [8]))
    n.add_argument("--dropout", type=float, default=unet.get("dropout", 0.0))
    n.add_argument("--parameterization", choices=("edm", "eps"), default=d.get("parameterization", "edm"),
                   help="how the U-Net gives the score (ours, dsm): edm = Karras et al. preconditioning, "
                   "eps = output / lambda")
    v = p.add_argument_group("VE SDE of dsm (ours reads it from --scores; defaults: config section scores)")
    v.add_argument("--sigma", type=float, default=sde.get("sigma", 5.0))
    v.add_argument("--sde-eps", type=float, default=sde.get("eps", 1e-3), help="first time level")
    v.add_argument("--n-times", type=int, default=sde.get("n_times", 20), help="time levels (dsm --dsm-times levels)")
    v.add_argument("--dsm-times", choices=("uniform", "levels"), default=d.get("dsm", {}).get("times", "uniform"),
                   help="training times of dsm: uniform = stratified continuous in [eps, 1]; levels = ours' levels")
    t = p.add_argument_group("training (learn.train)")
    t.add_argument("--batch-size", type=int, default=tr.get("batch_size", 32))
    t.add_argument("--lr", type=float, default=tr.get("lr", 5e-4))
    t.add_argument("--grad-clip", type=float, default=tr.get("grad_clip", 1.0))
    t.add_argument("--ema-decay", type=float, default=tr.get("ema_decay", 0.0))
    t.add_argument("--seed", type=int, default=tr.get("seed", 0))
    t.add_argument("--eval-every", type=float, default=tr.get("eval_every_seconds", 10.0), help="training seconds")
    t.add_argument("--eval-samples", type=int, default=tr.get("eval_samples", 2))
    t.add_argument("--checkpoint-every", type=float, default=tr.get("checkpoint_every_seconds", 120.0),
                   help="wall seconds")
    t.add_argument("--threads", type=int, default=tr.get("threads", 2))
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--no-progress", action="store_true")
    b = p.add_argument_group("DDPM schedule (learn.ddpm)")
    b.add_argument("--timesteps", type=int, default=ddpm.get("timesteps", 1000))
    b.add_argument("--beta-start", type=float, default=ddpm.get("beta_start", 1e-4))
    b.add_argument("--beta-end", type=float, default=ddpm.get("beta_end", 0.02))
    _add_sampler_options(p, d)
    p.set_defaults(func=run_train)

    q = subparsers.add_parser("sample", help="generate images (and progression states) from a trained model.pt")
    q.add_argument("--model", required=True)
    q.add_argument("--out", required=True, help="samples.npz to write")
    q.add_argument("--n", type=int, default=d.get("sampler", {}).get("n_samples", 8))
    q.add_argument("--progression-steps", type=int, default=d.get("sampler", {}).get("progression_steps", 6))
    q.add_argument("--seed", type=int, default=tr.get("seed", 0))
    q.add_argument("--threads", type=int, default=tr.get("threads", 2))
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    _add_sampler_options(q, d, suppress=True)  # given: override what model.pt recorded
    q.set_defaults(func=run_sample)


def build_method(args, images: np.ndarray, chosen: list[int], device):
    """The training method and its data fingerprint from the parsed options."""
    from fpscore.diffusion.ddpm import DDPMSchedule
    from fpscore.diffusion.embedding import embed_scores
    from fpscore.diffusion.io import load_scores
    from fpscore.diffusion.methods import DDPMMethod, DSMMethod, OursMethod
    from fpscore.diffusion.sde import VESDE
    from fpscore.diffusion.training import fingerprint

    sampler = {"method": args.sampler, "rtol": args.rtol, "atol": args.atol, "heun_steps": args.heun_steps,
               "denoise": args.denoise}

    if args.method == "ours":
        if not args.scores:
            raise ValueError("--method ours needs --scores (scores.npz of the score step)")
        from fpscore.data import load_dataset

        all_names = load_dataset(args.images)[1]
        scores, times, g, sde = load_scores(args.scores, all_names, images.shape[1:], chosen)
        traj = embed_scores(images, scores, times, g)
        method = OursMethod(sde, sampler, traj, device=device, parameterization=args.parameterization)
        return method, fingerprint(traj)
    if args.method == "dsm":
        sde = VESDE(sigma=args.sigma, eps=args.sde_eps, n_times=args.n_times)
        method = DSMMethod(sde, sampler, images, device=device, parameterization=args.parameterization,
                           times=args.dsm_times)
        return method, fingerprint(images)
    if args.method == "ddpm":
        schedule = DDPMSchedule(args.timesteps, args.beta_start, args.beta_end)
        return DDPMMethod(schedule, args.ddpm_sampler, args.ddim_steps, images, device=device), fingerprint(images)
    raise ValueError(f"--method: expected one of {METHODS}, got {args.method!r}")


def run_train(args: argparse.Namespace) -> int:
    from fpscore.diffusion.io import load_images, precompute_seconds, save_model, write_json, write_log_csv
    from fpscore.diffusion.training import LOG_COLUMNS, StopRule, TrainSettings, train
    from fpscore.diffusion.unet import UNet, UNetConfig, count_parameters

    if args.method not in METHODS:
        raise ValueError(f"--method: expected one of {METHODS}, got {args.method!r}")
    stop = StopRule(args.stop, target_ssim=args.target_ssim if args.stop == "target_ssim" else None,
                    budget_seconds=args.budget_seconds if args.stop == "budget" else None,
                    max_steps=args.max_steps if args.stop == "steps" else None)
    settings = TrainSettings(batch_size=args.batch_size, lr=args.lr, grad_clip=args.grad_clip,
                             ema_decay=args.ema_decay, seed=args.seed, eval_every_seconds=args.eval_every,
                             eval_samples=args.eval_samples, checkpoint_every_seconds=args.checkpoint_every,
                             time_cap_seconds=args.time_cap)
    if stop.kind == "budget" and stop.budget_seconds > settings.time_cap_seconds:
        raise ValueError(f"--budget-seconds {stop.budget_seconds:g} exceeds --time-cap {settings.time_cap_seconds:g}: "
                         "raise learn.train.time_cap_seconds above every budget")
    device = _device(args.device, args.threads)
    images, names, chosen = load_images(args.images, args.indices, args.count)
    c, h, w = images.shape[1:]
    if h != w:
        raise ValueError(f"{args.images}: the U-Net expects square images, got {h} x {w}")
    method, data_fp = build_method(args, images, chosen, device)
    pre = precompute_seconds(args.solve_log, chosen) if (args.method == "ours" and args.solve_log) else None
    torch.manual_seed(args.seed)
    net = UNet(UNetConfig(in_channels=c, resolution=h, base_channels=args.base_channels,
                          channel_mults=tuple(args.channel_mults), num_res_blocks=args.num_res_blocks,
                          attn_resolutions=tuple(args.attn_resolutions), dropout=args.dropout)).to(device)
    checkpoint = Path(args.checkpoint or f"{args.out}.ckpt")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    print(f"train {args.method}: {len(chosen)} image(s) {c} x {h} x {w}, U-Net {count_parameters(net):,} "
          f"parameters, device {device}, {torch.get_num_threads()} thread(s), stop {stop.kind}")
    wall0 = time.perf_counter()
    result = train(method, net, images, settings, stop, checkpoint_path=checkpoint, data_fingerprint=data_fp,
                   progress=not args.no_progress)
    summary = dict(result.summary, images=args.images, image_indices=chosen, image_names=names,
                   scores=args.scores, precompute_seconds=pre, parameters=count_parameters(net),
                   wall_seconds_this_run=time.perf_counter() - wall0, unet=net.config.as_dict(),
                   method_description=method.describe())
    t = summary["time_to_target_seconds"]
    summary["time_to_target_with_precompute_seconds"] = (t + pre) if (t is not None and pre is not None) else None
    save_model(args.out, result.net, method.describe(), images.shape[1:], summary)
    write_log_csv(result.log, args.log, LOG_COLUMNS)
    write_json(summary, args.summary or Path(args.log).with_suffix(".json"))
    checkpoint.unlink(missing_ok=True)
    state = {True: "reached", False: "NOT reached", None: "-"}[summary["reached"]]
    print(f"done: {summary['steps']} steps, {summary['train_seconds']:.1f} s training + "
          f"{summary['eval_seconds']:.1f} s evaluation, final SSIM {summary['final_ssim']:.4f} "
          f"({summary['eval_sampler']}), target {state}"
          + (f" at {t:.1f} s" if t is not None else "") + (f", pre-computation {pre:.1f} s" if pre else ""))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from fpscore.diffusion.io import load_model, write_samples
    from fpscore.diffusion.methods import method_from_description

    if args.n < 1:
        raise ValueError(f"--n: expected a positive number of samples, got {args.n}")
    device = _device(args.device, args.threads)
    net, method, shape, _ = load_model(args.model, device)
    if method.name in ("ours", "dsm"):  # options given on the command line override what model.pt recorded
        keys = {"sampler": "method", "rtol": "rtol", "atol": "atol", "heun_steps": "heun_steps", "denoise": "denoise"}
        overrides = {key: getattr(args, opt) for opt, key in keys.items() if hasattr(args, opt)}
    else:
        overrides = {key: getattr(args, opt) for key, opt in (("sampler", "ddpm_sampler"), ("ddim_steps", "ddim_steps"))
                     if hasattr(args, opt)}
    method = method_from_description(method.describe(), device=device, **overrides)
    t0 = time.perf_counter()
    result = method.sample(net, args.n, shape, torch.Generator().manual_seed(args.seed),
                           progression_steps=args.progression_steps)
    write_samples(args.out, result, method.name)
    print(f"wrote {args.out}: {args.n} samples ({result.sampler}, {result.nfe} network evaluations, "
          f"{time.perf_counter() - t0:.1f} s)")
    return 0


# ---- helpers for workflow/rules/learn.smk (command lines from the config) -----------------
def train_options(learn: dict) -> str:
    """The `fpscore train` options of config section `learn` (network, training, samplers, DDPM)."""
    unet, tr, smp, ddpm = learn["unet"], learn["train"], learn["sampler"], learn["ddpm"]
    opts = [
        f"--base-channels {unet['base_channels']}", "--channel-mults " + " ".join(map(str, unet["channel_mults"])),
        f"--num-res-blocks {unet['num_res_blocks']}",
        "--attn-resolutions" + "".join(f" {r}" for r in unet["attn_resolutions"]), f"--dropout {unet['dropout']}",
        f"--batch-size {tr['batch_size']}", f"--lr {tr['lr']}", f"--grad-clip {tr['grad_clip']}",
        f"--ema-decay {tr['ema_decay']}", f"--seed {tr['seed']}", f"--eval-every {tr['eval_every_seconds']}",
        f"--eval-samples {tr['eval_samples']}", f"--checkpoint-every {tr['checkpoint_every_seconds']}",
        f"--time-cap {tr['time_cap_seconds']}",
        f"--sampler {smp['method']}", f"--rtol {smp['rtol']}", f"--atol {smp['atol']}",
        f"--heun-steps {smp['heun_steps']}",
        f"--timesteps {ddpm['timesteps']}", f"--beta-start {ddpm['beta_start']}", f"--beta-end {ddpm['beta_end']}",
        f"--ddpm-sampler {ddpm['sampler']}", f"--ddim-steps {ddpm['ddim_steps']}",
    ]
    if "denoise" in smp:
        opts.append(f"--denoise {str(smp['denoise']).lower()}")
    if "parameterization" in learn:
        opts.append(f"--parameterization {learn['parameterization']}")
    if "dsm" in learn:
        opts.append(f"--dsm-times {learn['dsm']['times']}")
    return " ".join(opts)


def sde_options(scores: dict) -> str:
    """The VE SDE options of `fpscore train --method dsm` from config section `scores` (ours' SDE)."""
    return f"--sigma {scores['sigma']} --sde-eps {scores['eps']} --n-times {scores['n_times']}"


def stop_options(spec: dict) -> str:
    """Image selection and stopping rule of one experiment spec (kind denoise | budget | generation)."""
    if spec["kind"] == "denoise":
        return f"--indices {spec['image']} --stop target_ssim --target-ssim {spec['target_ssim']}"
    if spec["kind"] in ("budget", "generation"):
        return f"--count {spec['images']} --stop budget --budget-seconds {spec['budget_seconds']}"
    raise ValueError(f"experiment kind: expected denoise, budget or generation, got {spec['kind']!r}")


def runtime_minutes(spec: dict, learn: dict) -> int:
    """A generous wall-time estimate of one training job (training + evaluations + start-up)."""
    seconds = spec["budget_seconds"] if spec["kind"] != "denoise" else learn["train"]["time_cap_seconds"]
    return int(3 * seconds / 60) + 15

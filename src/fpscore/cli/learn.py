"""`fpscore train` (our method, the DSM or DDPM baseline -> model.pt, train_log.csv, summary JSON)
and `fpscore sample` (model.pt -> samples.npz with progression states).

Every option of a config key is generated from the schema (sections learn.*; the dsm SDE from
scores.sigma/eps/n_times as --sde-*), so a command typed by hand does what the workflow does with
the embedded config. Torch is imported by the commands, not by the parser.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from fpscore.cli.metrics import SSIM_MODE
from fpscore.config import schema_default
from fpscore.names import DEVICES, METHODS, PROTOCOLS, STOP_RULES
from fpscore.options import Group, add_group, group_values

UNET = Group("learn.unet")
TRAIN = Group("learn.train", exclude=("threads", "times"))  # TrainSettings
TIMES = Group("learn.train", keys=("times",))  # how ours draws training times
THREADS = Group("learn.train", keys=("threads",))  # a rule passes its own threads
PARAMETERIZATION = Group("learn", keys=("parameterization",))
SKIP = Group("learn", keys=("skip_invalid",))  # every method: only images whose channels all have a valid score
SAMPLER = Group("learn.sampler", prefix="sampler-", exclude=("n_samples", "progression_steps"))
DDPM = Group("learn.ddpm", prefix="ddpm-")
DSM = Group("learn.dsm", prefix="dsm-", exclude=("train",))  # train: which jobs the workflow runs
SDE = Group("scores", prefix="sde-", keys=("sigma", "eps", "n_times"))  # dsm's VE SDE (ours: from --scores)
TRAIN_GROUPS = (UNET, TRAIN, TIMES, PARAMETERIZATION, SKIP, SAMPLER, DDPM, DSM, SDE, SSIM_MODE)  # and THREADS
SAMPLE_COUNTS = Group("learn.sampler", prefix="sampler-", keys=("n_samples", "progression_steps"))
SEED = Group("learn.train", keys=("seed",))
DDPM_SAMPLER = Group("learn.ddpm", prefix="ddpm-", keys=("sampler", "ddim_steps"))
SAMPLE_GROUPS = (SAMPLE_COUNTS, SEED)  # and THREADS, and overrides of SAMPLER, DDPM_SAMPLER (absent unless given)


def _device(args):
    """The torch device of --device, with --threads (checked against learn.train.threads) set."""
    import torch

    name = args.device
    torch.set_num_threads(group_values(args, THREADS)["threads"])
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _add_protocol_options(p) -> None:
    """Table 1's protocol of an experiment (experiments.denoise[].protocol, noise_std)."""
    p.add_argument("--eval-protocol", choices=PROTOCOLS, default=schema_default("experiments.denoise[].protocol"),
                   help="generate = samples from pure noise; noisy_copy = denoise the training image plus Gaussian "
                   "noise of --eval-noise (default: %(default)s)")
    p.add_argument("--eval-noise", type=float, default=schema_default("experiments.denoise[].noise_std"),
                   help="std of the noisy copy (default: %(default)s)")


def evaluator_from_args(args):
    """The evaluation protocol of training's stopping rule (its samples and noise seeded by seed + 1)."""
    from fpscore.diffusion.evaluation import Evaluator

    noise = args.eval_noise if args.eval_protocol == "noisy_copy" else None
    return Evaluator(args.eval_protocol, args.eval_samples, args.seed + 1, group_values(args, SSIM_MODE)["ssim_mode"],
                     noise)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train our method or a baseline (dsm, ddpm) to a target SSIM or a budget",
                              description=__doc__.splitlines()[0])
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--images", required=True, help="images.npz of the data step")
    p.add_argument("--scores", help="the score set of the score step, a directory or .npz (method ours; every "
                   "method with --skip-invalid, the default)")
    p.add_argument("--score-log", help="solve_log.csv of the score set: adds the pre-computation time (ours); "
                   "not --solve-log, which is the score step's option scores.solve_log")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--indices", type=int, nargs="+", help="train on these image indices")
    sel.add_argument("--count", type=int, help="train on the first COUNT images (default: all)")
    p.add_argument("--out", required=True, help="model.pt to write")
    p.add_argument("--log", required=True, help="train_log.csv to write")
    p.add_argument("--summary", help="summary JSON to write (default: the log path with .json)")
    p.add_argument("--checkpoint", help="resumable checkpoint (default: OUT.ckpt beside the model)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--experiment", help="the experiment this run belongs to (recorded in the summary, with the "
                   "dataset and the image size, for the tables and figures)")
    p.add_argument("--dataset", help="the dataset of --images (recorded in the summary)")
    s = p.add_argument_group("stopping (the experiment's: experiments.denoise / budget / generation)")
    s.add_argument("--stop", required=True, choices=STOP_RULES)
    s.add_argument("--target-ssim", type=float, help="--stop target_ssim: the SSIM to reach")
    s.add_argument("--budget-seconds", type=float, help="--stop budget: training seconds")
    s.add_argument("--max-steps", type=int, help="--stop steps: optimizer steps")
    _add_protocol_options(s)
    add_group(p, UNET, title="network (learn.unet)")
    add_group(p, PARAMETERIZATION, title="score parameterisation of ours and dsm (learn)")
    add_group(p, SKIP, title="images left out of training, for every method (learn)")
    add_group(p, TRAIN, title="training (learn.train)")
    add_group(p, TIMES)
    add_group(p, SSIM_MODE)
    add_group(p, THREADS)
    add_group(p, SAMPLER, title="evaluation sampler of ours and dsm (learn.sampler)")
    add_group(p, DDPM, title="DDPM baseline (learn.ddpm)")
    add_group(p, DSM, title="dsm baseline (learn.dsm)")
    add_group(p, SDE, title="VE SDE of dsm (scores; ours reads its SDE from --scores)")
    p.set_defaults(func=run_train)

    q = subparsers.add_parser("sample", help="generate images (and progression states) from a trained model.pt")
    q.add_argument("--model", required=True)
    q.add_argument("--out", required=True, help="samples.npz to write")
    q.add_argument("--device", choices=DEVICES, default="auto")
    add_group(q, SAMPLE_COUNTS, title="samples (learn.sampler)")
    add_group(q, SEED)
    add_group(q, THREADS)
    _add_protocol_options(q)
    q.add_argument("--references", help="--eval-protocol noisy_copy: the training images.npz")
    q.add_argument("--reference-index", type=int, help="--eval-protocol noisy_copy: denoise noisy copies of this "
                   "image only (default: of all, in turn)")
    add_group(q, SAMPLER, defaults="suppress", title="sampler of ours and dsm: given, overrides what model.pt "
              "recorded (learn.sampler)")
    add_group(q, DDPM_SAMPLER, defaults="suppress", title="sampler of ddpm: given, overrides what model.pt "
              "recorded (learn.ddpm)")
    q.set_defaults(func=run_sample)


def build_method(args, images: np.ndarray, chosen: list[int], device):
    """The training method and its data fingerprint from the parsed options."""
    from fpscore.diffusion.ddpm import DDPMSchedule
    from fpscore.diffusion.embedding import LazyTrajectories, trajectories_of
    from fpscore.diffusion.io import load_scores
    from fpscore.diffusion.methods import DDPMMethod, DSMMethod, OursMethod
    from fpscore.diffusion.sde import VESDE
    from fpscore.diffusion.checkpoint import fingerprint

    sampler = group_values(args, SAMPLER)

    if args.method == "ours":
        if not args.scores:
            raise ValueError("--method ours needs --scores (the score set of the score step)")
        from fpscore.data import read_images

        all_names = [str(n) for n in read_images(args.images)[1]]
        scores, times, g, sde = load_scores(args.scores, all_names, images.shape[1:], chosen)
        traj = trajectories_of(images, scores, times, g, device)
        method = OursMethod(sde, sampler, traj, device=device, parameterization=args.parameterization,
                            times=group_values(args, TIMES)["times"])
        lazy = isinstance(traj, LazyTrajectories)
        discretisation = score_discretisation(args.scores)  # named too, so scores of two schemes never mix
        return method, fingerprint(discretisation, *((images, scores, times, g) if lazy else (traj,)))
    if args.method == "dsm":
        sde = VESDE(**group_values(args, SDE))
        method = DSMMethod(sde, sampler, images, device=device, parameterization=args.parameterization,
                           times=args.dsm_times)
        return method, fingerprint(images)
    if args.method == "ddpm":
        schedule = DDPMSchedule(args.ddpm_timesteps, args.ddpm_beta_start, args.ddpm_beta_end)
        method = DDPMMethod(schedule, args.ddpm_sampler, args.ddpm_ddim_steps, images, device=device)
        return method, fingerprint(images)
    raise ValueError(f"--method: expected one of {METHODS}, got {args.method!r}")


def score_discretisation(scores_path) -> dict:
    """The boundary and scheme (METHOD.md 2b) a score set was computed with, from its recorded parameters."""
    import json

    from fpscore.score_store import read_scores

    fp = json.loads(str(read_scores(scores_path)["params"]))["fp"]
    return {"boundary": fp["boundary"], "scheme": fp["scheme"]}


def keep_valid(args, images, names, chosen):
    """The selected images whose channels all have a valid score in ``--scores`` (converged and within
    the maximum-principle bound; every method: the flags pick the same images for ours and the
    baselines); returns (images, names, chosen, skipped: one record per left-out image with its
    invalid channels and why). ValueError without --scores, for another image set, or when no
    selected image is valid."""
    import numpy as np

    from fpscore.data import read_images
    from fpscore.score_store import read_scores

    if not args.scores:
        raise ValueError("--skip-invalid (the default, learn.skip_invalid) needs --scores, the score set whose valid "
                         "flags pick the images; --no-skip-invalid trains on every selected image")
    flags = read_scores(args.scores)
    all_names = [str(n) for n in read_images(args.images)[1]]
    if [str(n) for n in flags["names"]] != all_names:
        raise ValueError(f"{args.scores}: image names differ from those of {args.images}: the valid flags "
                         "belong to another image set")
    n = len(all_names)
    valid, converged, within = (np.asarray(flags[k]).reshape(n, -1) for k in ("valid", "converged", "within_bound"))
    keep = [k for k, i in enumerate(chosen) if valid[i].all()]
    skipped = [{"image": int(i), "name": all_names[i], "channels": np.flatnonzero(~valid[i]).tolist(),
                "not_converged": np.flatnonzero(~converged[i]).tolist(),
                "outside_bound": np.flatnonzero(converged[i] & ~within[i]).tolist()}
               for i in chosen if not valid[i].all()]
    if not keep:
        raise ValueError(f"--skip-invalid: none of the {len(chosen)} selected image(s) has a valid score in every "
                         f"channel in {args.scores}")
    if skipped:
        shown = [s["image"] for s in skipped[:10]]
        print(f"skip-invalid: {len(skipped)} of {len(chosen)} image(s) left out (a channel not converged or outside "
              f"the maximum-principle bound in {args.scores}): {shown}{' ...' if len(skipped) > 10 else ''}")
    return images[keep], [names[k] for k in keep], [chosen[k] for k in keep], skipped


def run_train(args: argparse.Namespace) -> int:
    import torch

    from fpscore.diffusion.io import load_images, precompute_seconds, save_model, write_json, write_log_csv
    from fpscore.diffusion.training import LOG_COLUMNS, StopRule, TrainSettings, train
    from fpscore.diffusion.unet import UNet, UNetConfig, count_parameters

    stop = StopRule(args.stop, target_ssim=args.target_ssim if args.stop == "target_ssim" else None,
                    budget_seconds=args.budget_seconds if args.stop == "budget" else None,
                    max_steps=args.max_steps if args.stop == "steps" else None)
    settings = TrainSettings(**group_values(args, TRAIN))
    if stop.kind == "budget" and stop.budget_seconds > settings.time_cap_seconds:
        raise ValueError(f"--budget-seconds {stop.budget_seconds:g} exceeds --time-cap {settings.time_cap_seconds:g}: "
                         "raise learn.train.time_cap_seconds above every budget")
    device = _device(args)
    images, names, chosen = load_images(args.images, args.indices, args.count)
    skipped = []
    if group_values(args, SKIP)["skip_invalid"]:
        images, names, chosen, skipped = keep_valid(args, images, names, chosen)
    c, h, w = images.shape[1:]
    if h != w:
        raise ValueError(f"{args.images}: the U-Net expects square images, got {h} x {w}")
    method, data_fp = build_method(args, images, chosen, device)
    pre = precompute_seconds(args.score_log, chosen) if (args.method == "ours" and args.score_log) else None
    torch.manual_seed(args.seed)
    unet = {k: tuple(v) if isinstance(v, list) else v for k, v in group_values(args, UNET).items()}
    net = UNet(UNetConfig(in_channels=c, resolution=h, **unet)).to(device)
    checkpoint = Path(args.checkpoint or f"{args.out}.ckpt")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    print(f"train {args.method}: {len(chosen)} image(s) {c} x {h} x {w}, U-Net {count_parameters(net):,} "
          f"parameters, device {device}, {torch.get_num_threads()} thread(s), stop {stop.kind}")
    wall0 = time.perf_counter()
    result = train(method, net, images, settings, stop, checkpoint_path=checkpoint, data_fingerprint=data_fp,
                   progress=not args.no_progress, evaluator=evaluator_from_args(args))
    summary = dict(result.summary, experiment=args.experiment, dataset=args.dataset, resolution=h,
                   images=args.images, image_indices=chosen, image_names=names,
                   skipped_invalid=skipped,
                   score_discretisation=score_discretisation(args.scores) if args.scores else None,
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
    import torch

    from fpscore.diffusion.io import load_model, write_samples
    from fpscore.diffusion.methods import method_from_description

    if args.sampler_n_samples < 1:
        raise ValueError(f"--sampler-n-samples: expected a positive number of samples, got {args.sampler_n_samples}")
    device = _device(args)
    net, method, shape, summary = load_model(args.model, device)
    # options given on the command line override what model.pt recorded
    overrides = group_values(args, SAMPLER if method.name in ("ours", "dsm") else DDPM_SAMPLER)
    method = method_from_description(method.describe(), device=device, **overrides)
    t0 = time.perf_counter()
    if args.eval_protocol == "noisy_copy":  # denoise noisy copies of the training image(s), as training evaluated
        from fpscore.diffusion.evaluation import Evaluator
        from fpscore.diffusion.io import load_images

        if not args.references:
            raise ValueError("--eval-protocol noisy_copy needs --references (the training images.npz)")
        indices = None if args.reference_index is None else [args.reference_index]
        references = load_images(args.references, indices)[0]
        result, _ = Evaluator("noisy_copy", args.sampler_n_samples, args.seed, "clip", args.eval_noise).run(
            method, net, references, progression_steps=args.sampler_progression_steps)
    else:
        result = method.sample(net, args.sampler_n_samples, shape, torch.Generator().manual_seed(args.seed),
                               progression_steps=args.sampler_progression_steps)
    write_samples(args.out, result, method.name, summary)
    print(f"wrote {args.out}: {args.sampler_n_samples} samples ({result.sampler}, {result.nfe} network evaluations, "
          f"{time.perf_counter() - t0:.1f} s)")
    return 0

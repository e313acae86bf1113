"""The score pre-computation at CIFAR-10 scale: shards -> memory-mapped merge, measured.

Builds a CIFAR-10-sized stand-in set (default 2,000 of the 50,000 images; 3 x 32 x 32) from
random 32 x 32 crops and horizontal flips of the builtin photos (colour, at 96 x 96) and
faces (grey, copied to 3 channels, at 64 x 64); computes the scores shard by shard, each
shard in its own process (a workflow job: ``--solver`` and ``--nonlinear``, default the
schema's, one thread), writes the shard files, merges them into the memory-mapped score directory
(``fpscore.score_store``), reads one training batch back, and prints: channels per second,
the peak resident memory of every shard job and of the merge (getrusage), the output size,
and the extrapolation to the full set on ``--cores`` cores (wall time scales with
images / cores, the measured per-job rate held fixed; the machine's other load is not
modelled). Channels whose fixed point diverges (low-contrast crops, as the "moon" photo)
are counted, flagged in the files and cost up to newton_max_iter solves per level.

With ``--workflow`` the same stand-in set goes through the workflow itself instead: written as
a CIFAR-10 archive (the python version's format and layout, its md5 in the config), then
``snakemake --cores N`` runs download check -> prepare_data -> scores_shard jobs ->
scores_merge on it, for real, whatever the size (no extrapolation). It prints the wall time
of the data step and of the score jobs, channels per second, the peak resident memory of every
job (the last line of its log, ``fpscore <step>: peak memory N MB``; median and largest per
kind of job: download, data, shard, merge) and of any process of the run (getrusage of the
children, snakemake included), the output size and the solve-log rows. With ``--archive PATH`` the real cifar-10-python.tar.gz
is used instead of the stand-in. After the run it solves a sample of the images again with the
per-channel reference (spsolve, the run's parameters; ``--check-images``) and compares m and the
flags with the merged score files.

With ``--process`` it measures the whole ``fpscore scores`` process (start-up, reading the images,
the KDE, the solves, the log and the score file: what a shard job pays) on the stand-in set (8-bit,
as the archive stores it) on one thread, per channel, in wall and CPU seconds, alternating with the
same command of another checkout (``--baseline DIR``, e.g. a ``git worktree`` of an earlier commit:
its ``src`` first on the path) and with spsolve-Picard, the paper's reference, on the first
``--spsolve-images`` images; each ``--repeats`` times, with the load average around every run.

    python benchmarks/cifar_scale_benchmark.py                       # 2,000 images, shards of 250
    python benchmarks/cifar_scale_benchmark.py --images 500 --workers 2 --shard-size 125
    python benchmarks/cifar_scale_benchmark.py --workflow --images 50000 --shard-size 1000 --cores 2
    python benchmarks/cifar_scale_benchmark.py --images 50000 --shard-size 50000 --solver batched --device cuda \
        --batch-size 50000
    git worktree add --detach /tmp/base f9c2d76
    python benchmarks/cifar_scale_benchmark.py --process --images 500 --baseline /tmp/base --repeats 3
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import multiprocessing as mp  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from fpscore.config import schema_default  # noqa: E402
from fpscore.names import NEWTON_STOPS, NONLINEAR  # noqa: E402

FULL_SET = 50_000
SOLVER_OPTIONS = {"ksp": {}, "spsolve": {}, "batched": {"batched": {"threads": 1}}}  # + --device for batched


def stand_in_set(n: int, seed: int = 0) -> np.ndarray:
    """n x 3 x 32 x 32 float32 images: random crops and flips of the builtin photos and faces."""
    from fpscore.data import PHOTOS, prepare

    photos, _, _ = prepare("photos", 96, {"names": list(PHOTOS)[:8], "channels": 3})
    faces, _, _ = prepare("faces", 64, {"count": 50, "indices": []})
    pool = [p for p in photos] + [np.repeat(f, 3, axis=0) for f in faces]
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, 32, 32), dtype=np.float32)
    for k in range(n):
        img = pool[rng.integers(len(pool))]
        a, b = rng.integers(0, img.shape[1] - 32 + 1, 2)
        crop = img[:, a:a + 32, b:b + 32]
        out[k] = crop[:, :, ::-1] if rng.random() < 0.5 else crop
    return out


def write_cifar_archive(images: np.ndarray, path: Path) -> str:
    """``images`` (n, 3, 32, 32) in [0, 1] as cifar-10-python.tar.gz (uint8 rows, 5 training batches, a
    1-image test batch); returns the archive's md5."""
    rows = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8).reshape(len(images), 3072)
    path.parent.mkdir(parents=True, exist_ok=True)

    def add(tar, name, obj):
        payload = pickle.dumps(obj, protocol=2)
        info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))

    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        add(tar, "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)]})
        for i, part in enumerate(np.array_split(np.arange(len(rows)), 5), start=1):
            add(tar, f"data_batch_{i}", {b"data": rows[part], b"labels": [int(k % 10) for k in part]})
        add(tar, "test_batch", {b"data": rows[:1], b"labels": [0]})
    return hashlib.md5(path.read_bytes()).hexdigest()


def _commit(repo: Path) -> str:
    """HEAD of the checkout the run used, with "+dirty" when it has uncommitted changes."""
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return (head.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")


JOB_KINDS = {"download": r"data/download_\w+\.log", "data": r"data/\w+_[0-9]+\.log",
             "shard": r"scores/\w+_shard[0-9]+\.log", "merge": r"scores/\w+_merge\.log"}
PEAK_LINE = re.compile(r"fpscore [\w-]+: peak memory ([0-9.]+) MB")


def job_peaks(logs: Path) -> dict[str, float]:
    """Peak memory (MB) of every job of a workflow run, by log path relative to ``logs``, read from
    the line each ``fpscore`` step ends its log with; a log without one (the job failed, or is not
    an ``fpscore`` step) is a ValueError naming it."""
    peaks = {}
    for path in sorted(logs.rglob("*.log")):
        found = PEAK_LINE.findall(path.read_text(errors="replace"))
        if not found:
            raise ValueError(f"job log {path} has no 'fpscore <step>: peak memory N MB' line")
        peaks[path.relative_to(logs).as_posix()] = float(found[-1])
    return peaks


def peaks_by_kind(peaks: dict[str, float]) -> dict[str, dict]:
    """Jobs, median and largest peak memory (MB) per kind of job (``JOB_KINDS``; others: "other")."""
    groups: dict[str, list[float]] = {}
    for name, mb in peaks.items():
        kind = next((k for k, pattern in JOB_KINDS.items() if re.fullmatch(pattern, name)), "other")
        groups.setdefault(kind, []).append(mb)
    return {k: {"jobs": len(v), "median_mb": float(np.median(v)), "max_mb": max(v)} for k, v in groups.items()}


def workflow_run(args, work: Path) -> dict:
    """The set through ``snakemake --cores``: the data step, then the score jobs and the merge, each timed."""
    from fpscore.data import archive_path
    from fpscore.score_store import read_scores

    repo = Path(__file__).resolve().parents[1]
    archive = archive_path("cifar10", work / "resources")
    if args.archive:
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.archive, archive)
        md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    else:
        md5 = write_cifar_archive(stand_in_set(args.images), archive)
    overlay = work / "scale.yaml"
    overlay.write_text(json.dumps({  # JSON is YAML
        "data": {"datasets": ["cifar10"], "resolutions": [32], "resources_dir": str(work / "resources"),
                 "cifar10": {"count": args.images, "indices": [], "md5": md5, "split": "train", "classes": []}},
        "scores": {"shard_size": args.shard_size, "solver": args.solver, "nonlinear": args.nonlinear,
                   "batched": {"device": args.device, "batch_size": args.batch_size},
                   "newton_stop": args.newton_stop, "benchmark_solvers": []}}))
    snakemake = Path(sys.executable).with_name("snakemake")
    load_before = _load()
    base = [str(snakemake), "-s", str(repo / "Snakefile"), "--directory", str(work), "--cores", str(args.cores),
            "--configfile", str(repo / "config" / "config.yaml"), str(overlay)]
    times, cpu = {}, {}
    for step, target in (("data", "results/data/cifar10/32/images.npz"),
                         ("scores", f"results/scores/cifar10/32/{args.solver}/scores")):
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # every job snakemake waited for, snakemake too
        done = subprocess.run([*base[:1], target, *base[1:]], capture_output=True, text=True)
        times[step] = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[step] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        (work / f"snakemake_{step}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"snakemake {target} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        print(f"{step}: {times[step]:.1f} s", flush=True)
    out = work / "results" / "scores" / "cifar10" / "32" / args.solver
    load_after = _load()
    got = read_scores(out / "scores")
    batch = np.asarray(got["scores"][np.sort(np.random.default_rng(0).choice(args.images, min(128, args.images),
                                                                            replace=False))])
    import pandas as pd

    log = pd.read_csv(out / "solve_log.csv")
    log_rows = len(log)
    solves = int(log["solves"].sum()) if "solves" in log.columns else log_rows  # per-level or per-solve log
    startup = log["startup_seconds"] if "startup_seconds" in log.columns else pd.Series([np.nan])
    channels = 3 * args.images
    peaks = job_peaks(work / "results" / "logs")
    sample = (check_sample(work / "results" / "data" / "cifar10" / "32" / "images.npz", out / "scores",
                           {"nonlinear": args.nonlinear, "newton_stop": args.newton_stop}, args.check_images)
              if args.check_images else {})
    return {
        "commit": _commit(repo), "images": args.images, "channels": channels, "shard_size": args.shard_size,
        "cores": args.cores,
        "solver": args.solver, "device": args.device, "nonlinear": args.nonlinear, "newton_stop": args.newton_stop,
        "archive": str(args.archive or "stand-in"),
        "data_wall_s": times["data"], "scores_wall_s": times["scores"], "total_wall_s": sum(times.values()),
        "data_cpu_s": cpu["data"], "scores_cpu_s": cpu["scores"],
        "channels_per_s": channels / times["scores"],
        "max_process_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "job_peak_mb": peaks_by_kind(peaks), "job_peak_mb_each": peaks,
        "output_bytes": sum(f.stat().st_size for f in (out / "scores").iterdir()),
        "solve_log_rows": log_rows, "solves_per_channel": solves / channels,
        "startup_s_per_job_median": float(startup[startup > 0].median()) if (startup > 0).any() else float("nan"),
        "channels_not_converged": int((~np.asarray(got["converged"])).sum()),
        "channels_outside_bound": int((~np.asarray(got["within_bound"])).sum()),
        "batch_read_shape": list(batch.shape), "memmapped": isinstance(got["scores"], np.memmap),
        "load_before": load_before, "load_after": load_after, "sample_check": sample,
    }


def check_sample(images_path: Path, scores_dir: Path, overlay_scores: dict, count: int, seed: int = 1) -> dict:
    """``count`` images of the set solved again by the per-channel reference (spsolve, the run's
    parameters) and compared with the merged score files: max |m - m_ref| (the files hold float32),
    relative to max |m_ref|, and whether converged and within_bound agree."""
    from fpscore.data import read_images
    from fpscore.fokker_planck.params import FPParams
    from fpscore.score_store import read_scores
    from fpscore.scores import compute_scores
    from fpscore.solvers import make_solver

    images, _ = read_images(images_path)
    idx = np.sort(np.random.default_rng(seed).choice(len(images), min(count, len(images)), replace=False))
    keys = {k: v for k, v in overlay_scores.items() if k in ("nonlinear", "newton_stop")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = compute_scores(images[idx], FPParams(**keys), make_solver("spsolve"), progress=False)
    got = read_scores(scores_dir)
    m = np.asarray(got["m"][idx], dtype=np.float64)
    ok = ref.converged
    diff = np.abs(m - ref.m)[ok]
    return {"images": idx.tolist(), "max_abs_dm": float(diff.max()) if diff.size else float("nan"),
            "max_abs_m": float(np.abs(ref.m[ok]).max()) if diff.size else float("nan"),
            "same_converged": bool(np.array_equal(np.asarray(got["converged"])[idx], ref.converged)),
            "same_within_bound": bool(np.array_equal(np.asarray(got["within_bound"])[idx], ref.within_bound))}


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def process_run(args, work: Path) -> dict:
    """``fpscore scores`` as a process on one thread, this checkout against ``--baseline`` (alternating,
    ``--repeats`` times each) and spsolve-Picard on the first ``--spsolve-images`` images."""
    from fpscore.data.images import write_dataset

    repo = Path(__file__).resolve().parents[1]
    images = np.round(stand_in_set(args.images) * 255) / 255  # 8-bit, as the archive stores them
    full, few = work / "images.npz", work / "few.npz"
    names = np.array([f"img{i}" for i in range(args.images)])
    write_dataset(images.astype(np.float32), names, {}, full, work / "m.json")
    k = min(args.spsolve_images, args.images)
    write_dataset(images[:k].astype(np.float32), names[:k], {}, few, work / "m2.json")
    one = work / "one.npz"
    write_dataset(images[:1].astype(np.float32), names[:1], {}, one, work / "m1.json")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    trees = {"this": repo} | ({"baseline": Path(args.baseline).resolve()} if args.baseline else {})

    def run(tree: Path, images_file: Path, *options) -> dict:
        cmd = [sys.executable, "-c", "import sys; from fpscore.cli import main; sys.exit(main())", "scores",
               "--images", str(images_file), "--out", str(work / "out.npz"), "--log", str(work / "out.csv"),
               "--no-progress", *options]
        before, load0 = resource.getrusage(resource.RUSAGE_CHILDREN), _load()
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=dict(env, PYTHONPATH=str(tree / "src")), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} (PYTHONPATH {tree / 'src'}) failed:\n{done.stderr[-3000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        with open(work / "out.csv") as f:  # the start-up the process logged (its first row)
            header, first = f.readline().strip().split(","), f.readline().strip().split(",")
        startup = float(first[header.index("startup_seconds")]) if "startup_seconds" in header else float("nan")
        return {"wall_s": wall, "cpu_s": cpu, "startup_s": startup, "load_before": load0, "load_after": _load(),
                "commit": _commit(tree)}

    for tree in trees.values():  # numba's cache, imports: once, untimed
        run(tree, one, "--solver", "batched")
    runs: dict[str, list] = {name: [] for name in [*trees, "spsolve-picard"]}
    channels = {name: 3 * args.images for name in trees} | {"spsolve-picard": 3 * k}
    for rep in range(args.repeats):
        order = list(trees) if rep % 2 == 0 else list(trees)[::-1]
        for name in order:
            runs[name].append(run(trees[name], full, "--solver", "batched"))
            print(f"{name} {rep}: {runs[name][-1]}", flush=True)
        runs["spsolve-picard"].append(run(repo, few, "--solver", "spsolve", "--nonlinear", "picard"))
        print(f"spsolve-picard {rep}: {runs['spsolve-picard'][-1]}", flush=True)

    def per_channel(name, key):
        return np.array([r[key] for r in runs[name]]) / channels[name] * 1e3

    summary = {"images": args.images, "repeats": args.repeats, "spsolve_images": k, "threads": 1}
    for name in runs:
        for key in ("wall_s", "cpu_s"):
            v = per_channel(name, key)
            summary[f"{name}_{key[:-2]}_ms_per_channel"] = {"median": float(np.median(v)), "min": float(v.min()),
                                                             "max": float(v.max())}
        summary[f"{name}_commit"] = runs[name][0]["commit"]
    def stats(v):
        return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}

    for other in [n for n in runs if n != "this"]:
        for key in ("wall_s", "cpu_s"):
            ratio = per_channel(other, key) / per_channel("this", key)  # paired by repeat
            summary[f"speedup_over_{other}_{key[:-2]}"] = stats(ratio)
    # spsolve-Picard on a few channels pays its process's start-up over those few: also without it (its
    # logged startup_seconds), against this whole process, start-up included
    solve_only = (np.array([r["wall_s"] - r["startup_s"] for r in runs["spsolve-picard"]])
                  / channels["spsolve-picard"] * 1e3)
    summary["spsolve-picard_wall_without_startup_ms_per_channel"] = stats(solve_only)
    summary["speedup_over_spsolve-picard_without_its_startup_wall"] = stats(solve_only / per_channel("this", "wall_s"))
    summary["this_startup_s"] = stats(np.array([r["startup_s"] for r in runs["this"]]))
    return {"summary": summary, "runs": runs}


def _options(solver: str, device: str, batch_size: int) -> dict:
    """make_solver keyword arguments of a shard job: the batched engine on ``device``, one thread."""
    opts = SOLVER_OPTIONS.get(solver, {})
    if solver != "batched":
        return opts
    return {"batched": opts["batched"] | {"device": device, "batch_size": batch_size}}


def shard_job(task) -> dict:
    """One shard in its own process: scores with ``solver``, written as a shard file."""
    path, images_path, start, stop, nonlinear, solver, device, batch_size = task
    import torch

    from fpscore.fokker_planck.params import FPParams
    from fpscore.score_files import score_arrays, write_npz
    from fpscore.scores import compute_scores
    from fpscore.solvers import make_solver

    torch.set_num_threads(1)
    images = np.load(images_path, mmap_mode="r")[start:stop]
    idx = np.arange(start, stop)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # non-converged channels are counted below, not printed
        warnings.simplefilter("ignore", RuntimeWarning)
        res = compute_scores(np.asarray(images), FPParams(nonlinear=nonlinear),
                             make_solver(solver, **_options(solver, device, batch_size)), progress=False,
                             image_indices=idx, dtype=np.float32)
    solve_s = time.perf_counter() - t0
    write_npz(path, score_arrays(res, np.array([f"img{i}" for i in idx]), json.dumps({"nonlinear": nonlinear}),
                                 indices=idx))
    return {"shard": str(path), "images": stop - start, "seconds": time.perf_counter() - t0, "solve_s": solve_s,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "not_converged": int((~res.converged).sum()), "solves": int(res.solves.sum()),
            "max_residual": float(res.log.columns["final_residual"].max())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000, help="images of the stand-in set (default %(default)s)")
    p.add_argument("--shard-size", type=int, default=250, help="images per shard job (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="shard jobs at once (default %(default)s)")
    p.add_argument("--cores", type=int, default=2, help="cores of the extrapolation (default %(default)s)")
    p.add_argument("--nonlinear", default=schema_default("scores.nonlinear"), choices=NONLINEAR)
    p.add_argument("--newton-stop", default=schema_default("scores.newton_stop"), choices=NEWTON_STOPS,
                   help="with --workflow: scores.newton_stop of the run (default: the schema's, %(default)s)")
    p.add_argument("--solver", default=schema_default("scores.solver"), choices=sorted(SOLVER_OPTIONS),
                   help="the shard jobs' solver (default: the schema's scores.solver, %(default)s)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                   help="the batched engine's device (scores.batched.device; default %(default)s)")
    p.add_argument("--batch-size", type=int, default=schema_default("scores.batched.batch_size"),
                   help="channels the batched engine solves together (scores.batched.batch_size; default "
                   "%(default)s; larger on a GPU)")
    p.add_argument("--workflow", action="store_true",
                   help="run the set through snakemake (the workflow's own jobs) instead of a process pool")
    p.add_argument("--archive", type=Path, default=None,
                   help="with --workflow: the real cifar-10-python.tar.gz instead of the stand-in")
    p.add_argument("--check-images", type=int, default=4,
                   help="with --workflow: images solved again by the per-channel reference and compared (0: none)")
    p.add_argument("--process", action="store_true",
                   help="measure the whole `fpscore scores` process on one thread, this checkout against "
                        "--baseline and spsolve-Picard (see above)")
    p.add_argument("--baseline", type=Path, default=None, help="with --process: another checkout (its src/ is used)")
    p.add_argument("--repeats", type=int, default=3, help="with --process: runs of each (default %(default)s)")
    p.add_argument("--spsolve-images", type=int, default=2,
                   help="with --process: images spsolve-Picard solves (default %(default)s)")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = p.parse_args(argv)
    if min(args.images, args.shard_size, args.workers, args.cores, args.batch_size) < 1:
        p.error("--images, --shard-size, --workers, --cores and --batch-size take positive integers")
    from fpscore.score_store import merge_shards_to_dir, read_scores

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fpscore-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.process:
            out = process_run(args, work)
            print(json.dumps(out["summary"], indent=1))
            if args.json:
                args.json.write_text(json.dumps(out, indent=1))
            return 0
        if args.workflow:
            out = workflow_run(args, work)
            for k, v in out.items():
                if k == "job_peak_mb_each":  # one entry per job: in --json only
                    continue
                print(f"{k:>26}: {v:.4g}" if isinstance(v, float) else f"{k:>26}: {v}")
            if args.json:
                args.json.write_text(json.dumps({"summary": out}, indent=1))
                # the snakemake log (every job's start and end) is the evidence of the shard and merge phases
                log = args.json.with_name(args.json.stem + "_snakemake.log")
                log.write_text((work / "snakemake_data.log").read_text() + (work / "snakemake_scores.log").read_text())
            return 0
        t_start = time.perf_counter()
        images = stand_in_set(args.images)
        np.save(work / "images.npy", images)
        tasks = [(work / f"shard{i}.npz", work / "images.npy", s, min(s + args.shard_size, args.images),
                  args.nonlinear, args.solver, args.device, args.batch_size)
                 for i, s in enumerate(range(0, args.images, args.shard_size))]
        t0 = time.perf_counter()
        with mp.get_context("fork").Pool(args.workers, maxtasksperchild=1) as pool:
            jobs = pool.map(shard_job, tasks, chunksize=1)
        shards_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        merged = merge_shards_to_dir([t[0] for t in tasks], args.images, work / "scores")
        merge_s = time.perf_counter() - t1
        merge_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        got = read_scores(merged)
        batch = np.asarray(got["scores"][np.sort(np.random.default_rng(0).choice(args.images, min(128, args.images), replace=False))])
        size = sum(f.stat().st_size for f in merged.iterdir())
        channels = 3 * args.images
        per_job = sum(j["seconds"] for j in jobs) / args.images  # job seconds per image
        full_s = per_job * FULL_SET / args.cores
        out = {
            "images": args.images, "channels": channels, "shard_size": args.shard_size, "workers": args.workers,
            "nonlinear": args.nonlinear, "solver": args.solver, "device": args.device, "shards_wall_s": shards_s,
            "merge_s": merge_s,
            "channels_per_s": channels / shards_s, "channels_per_job_s": 3 / per_job,
            "job_peak_mb_max": max(j["peak_mb"] for j in jobs), "merge_peak_mb": merge_peak,
            "output_bytes": size, "output_bytes_full": size / args.images * FULL_SET,
            "full_set_minutes_on_cores": full_s / 60, "cores": args.cores,
            "channels_not_converged": sum(j["not_converged"] for j in jobs),
            "max_residual": max(j["max_residual"] for j in jobs),
            "solves_per_channel": sum(j["solves"] for j in jobs) / channels,
            "batch_read_shape": list(batch.shape), "memmapped": isinstance(got["scores"], np.memmap),
            "total_wall_s": time.perf_counter() - t_start,
        }
        for k, v in out.items():
            print(f"{k:>26}: {v:.4g}" if isinstance(v, float) else f"{k:>26}: {v}")
        if args.json:
            args.json.write_text(json.dumps({"summary": out, "jobs": jobs}, indent=1))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

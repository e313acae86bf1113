"""The allowed names of every concept, read from the schema's ``$defs`` (defined once there).

The CLI takes its choices from here, the Snakefile its wildcard constraints, and the
code its checks; the schema (fpscore/config.schema.yaml) is the one list, so a new
solver or method is added there and nowhere else. Light on purpose: the Snakefile and
the CLI import it at start-up (the schema is read once, with libyaml where there is one).
"""
from __future__ import annotations

from fpscore.config import enum

DATASETS = enum("dataset")
ARCHIVE_FILENAMES = {"cifar10": "cifar-10-python.tar.gz", "celeba": "img_align_celeba.zip"}  # downloaded sets
SOLVERS = enum("solver")
NONLINEAR = enum("nonlinear")  # Algorithm 1 sweeps (§5), per-level Newton (§5b)
BOUNDARIES = enum("boundary")  # ghost cells: m = 0 (the paper), or the boundary pixel's value (§2b)
SCHEMES = enum("scheme")  # the discretisation of (D m)^2 (§2b)
NEWTON_STOPS = enum("newton_stop")  # Newton's stopping test: the last change, the predicted next change
SOLVE_LOGS = enum("solve_log")  # rows of the solve log: one per time level (of a channel), one per linear solve
METHODS = enum("method")  # what `fpscore train` trains (the workflow's {method} wildcard)
PARAMETERIZATIONS = enum("parameterization")  # raw: the authors' (output = score)
TIME_EMBEDDINGS = enum("time_embedding")
TIME_SAMPLINGS = enum("time_sampling")  # how ours draws training times
SAMPLERS = enum("sampler")
DDPM_SAMPLERS = enum("ddpm_sampler")
DSM_TIMES = enum("dsm_times")  # uniform, and ours' TIME_SAMPLINGS
STARTS = enum("start")  # the sampler's start: N(0, lambda(1)^2) or N(0, 1)
SSIM_MODES = enum("ssim_mode")
PROTOCOLS = enum("protocol")  # Table 1's evaluation protocols
FID_NETWORKS = enum("fid_network")  # where FID's Inception-v3 comes from (fpscore.fid)
EVAL_SCHEDULES = enum("eval_schedule")
DEVICES = enum("device")
KRYLOV_KERNELS = enum("krylov_kernel")  # the batched engine's BiCGStab: auto = numba on CPU, torch on CUDA
SEED_CHOICES = enum("seed_choice")  # the projection solver's seed images
PROJECTION_VARIANTS = enum("projection_variant")
PROJECTION_BASES = enum("projection_basis")
GUESS_METHODS = enum("projection_guess")
CHANNELS = enum("channels")
CIFAR10_SPLITS = enum("cifar10_split")
STOP_RULES = enum("stop_rule")  # `fpscore train --stop`


def wildcard_pattern(names: tuple[str, ...]) -> str:
    """A Snakemake wildcard constraint matching exactly one of ``names``."""
    return "|".join(names)

"""The allowed names of every concept, defined once.

The CLI takes its choices from here, the Snakefile its wildcard constraints, and a
test checks that the schema's enums (workflow/schemas/config.schema.yaml) list the
same names, so a new solver or method is added in one place and the check points
at every other. Light on purpose: the Snakefile and the CLI import it at start-up.
"""
from __future__ import annotations

DATASETS = ("photos", "faces", "cifar10", "celeba")
ARCHIVE_FILENAMES = {"cifar10": "cifar-10-python.tar.gz", "celeba": "img_align_celeba.zip"}  # downloaded sets
SOLVERS = ("spsolve", "ksp", "projection", "batched")
NONLINEAR = ("picard", "newton")  # Algorithm 1 sweeps (§5), per-level Newton (§5b)
BOUNDARIES = ("zero", "reflect")  # ghost cells: m = 0 (the paper), or the boundary pixel's value (§2b)
SCHEMES = ("centred", "minimal", "monotone", "upwind")  # the discretisation of (D m)^2 (§2b)
NEWTON_STOPS = ("change", "predicted")  # Newton's stopping test: the last change, the predicted next change
METHODS = ("ours", "dsm", "ddpm")
PARAMETERIZATIONS = ("edm", "eps", "raw")  # raw: the authors' (output = score)
TIME_EMBEDDINGS = ("sinusoidal", "linear")
TIME_SAMPLINGS = ("levels", "jittered")  # how ours draws training times
SAMPLERS = ("rk45", "heun")
DDPM_SAMPLERS = ("ancestral", "ddim")
DSM_TIMES = ("uniform",) + TIME_SAMPLINGS
STARTS = ("lambda1", "unit")  # the sampler's start: N(0, lambda(1)^2) or N(0, 1)
SSIM_MODES = ("clip", "minmax")
PROTOCOLS = ("generate", "noisy_copy")  # Table 1's evaluation protocols
EVAL_SCHEDULES = ("uniform", "geometric")
DEVICES = ("auto", "cpu", "cuda")
KRYLOV_KERNELS = ("auto", "torch", "numba")  # the batched engine's BiCGStab: auto = numba on CPU, torch on CUDA
SEED_CHOICES = ("first", "medoid")  # the projection solver's seed images
PROJECTION_VARIANTS = ("guess", "pc", "both")
PROJECTION_BASES = ("krylov", "solutions", "both")
GUESS_METHODS = ("minres", "galerkin")
STOP_RULES = ("target_ssim", "budget", "steps")

# Schema keys whose enum must equal a name list (key path -> names); "[]" marks the items of a list.
SCHEMA_ENUMS = {
    "data.datasets[]": DATASETS,
    "scores.solver": SOLVERS,
    "scores.benchmark_solvers[]": SOLVERS,
    "scores.nonlinear": NONLINEAR,
    "scores.boundary": BOUNDARIES,
    "scores.scheme": SCHEMES,
    "scores.newton_stop": NEWTON_STOPS,
    "scores.batched.device": DEVICES,
    "scores.batched.kernel": KRYLOV_KERNELS,
    "scores.projection.seed_choice": SEED_CHOICES,
    "scores.projection.variant": PROJECTION_VARIANTS,
    "scores.projection.basis": PROJECTION_BASES,
    "scores.projection.guess": GUESS_METHODS,
    "learn.parameterization": PARAMETERIZATIONS,
    "learn.sampler.method": SAMPLERS,
    "learn.ddpm.sampler": DDPM_SAMPLERS,
    "learn.dsm.times": DSM_TIMES,
    "learn.unet.time_embedding": TIME_EMBEDDINGS,
    "learn.train.times": TIME_SAMPLINGS,
    "learn.train.eval_schedule": EVAL_SCHEDULES,
    "learn.sampler.start": STARTS,
    "evaluate.ssim_mode": SSIM_MODES,
    "experiments.denoise[].protocol": PROTOCOLS,
    "experiments.denoise[].dataset": DATASETS,
    "experiments.budget[].dataset": DATASETS,
    "experiments.generation[].dataset": DATASETS,
}


def wildcard_pattern(names: tuple[str, ...]) -> str:
    """A Snakemake wildcard constraint matching exactly one of ``names``."""
    return "|".join(names)

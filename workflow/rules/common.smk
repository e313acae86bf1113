# Config helpers, target lists and wildcard constraints: the only Python in the rules.
from pathlib import Path


# Software of every rule for `--sdm conda` (the default route is `make setup`, .venv);
# a path relative to the rule files in workflow/rules/.
CONDA_ENV = "../../envs/conda.yaml"

DATASETS = config["data"]["datasets"]
RESOLUTIONS = config["data"]["resolutions"]


def data_targets():
    return expand("results/data/{dataset}/{res}/images.npz", dataset=DATASETS, res=RESOLUTIONS)


# ---- experiments: stable names <-> specs --------------------------------------------------
def _denoise_name(spec):
    return f"denoise_{spec['dataset']}{spec['resolution']}_img{spec['image']}_ssim{spec['target_ssim']:.2f}"


def _budget_name(spec):
    return f"budget_{spec['dataset']}{spec['resolution']}_n{spec['images']}"


def _generation_name(spec):
    return f"generate_{spec['dataset']}{spec['resolution']}_n{spec['images']}"


EXPERIMENTS = {}
for _kind, _namer in (("denoise", _denoise_name), ("budget", _budget_name), ("generation", _generation_name)):
    for _spec in config["experiments"][_kind]:
        EXPERIMENTS[_namer(_spec)] = dict(_spec, kind=_kind)


def experiment(name):
    """The spec (dataset, resolution, ... and kind) of an experiment named in the config."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(f"unknown experiment {name!r}; the config defines {sorted(EXPERIMENTS)}") from None


def reference_option(spec):
    """The training images an experiment's samples are compared with (fpscore ssim/fid option)."""
    if spec["kind"] == "denoise":
        return f"--reference-index {spec['image']}"
    return f"--reference-count {spec['images']}"


def experiments_of(kind):
    return [name for name, spec in EXPERIMENTS.items() if spec["kind"] == kind]


def all_targets():
    """The inputs of the all target - the prepared data, samples of every experiment,
    every table and figure (learn_targets and EVALUATE_TARGETS live in their rule files)."""
    return data_targets() + learn_targets() + EVALUATE_TARGETS


# ---- learning: inputs of train/sample, their targets ------------------------------------
from fpscore.cli.learn import runtime_minutes, sde_options, stop_options, train_options


def _learn_images(wildcards):
    spec = experiment(wildcards.experiment)
    return f"results/data/{spec['dataset']}/{spec['resolution']}/images.npz"


def _learn_scores(kind):
    """scores.npz / solve_log.csv of the configured solver (our method only)."""

    def files(wildcards):
        if wildcards.method != "ours":
            return []
        spec = experiment(wildcards.experiment)
        name = "scores.npz" if kind == "scores" else "solve_log.csv"
        return f"results/scores/{spec['dataset']}/{spec['resolution']}/{config['scores']['solver']}/{name}"

    return files


def learn_targets():
    """Samples of every experiment: ours and DDPM, and dsm where learn.dsm.train (generation: ours only,
    as in Figure 3)."""
    methods = ("ours", "ddpm", "dsm") if config["learn"]["dsm"]["train"] else ("ours", "ddpm")
    pairs = [(name, method) for name in experiments_of("denoise") + experiments_of("budget")
             for method in methods]
    pairs += [(name, "ours") for name in experiments_of("generation")]
    return [f"results/samples/{name}/{method}/samples.npz" for name, method in pairs]


def timed_cpus(wildcards, threads):
    """Resource of timed rules: their threads, at most the machine's CPUs (see the Snakefile)."""
    return min(threads, MACHINE_CPUS)

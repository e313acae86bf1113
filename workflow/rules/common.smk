# Config helpers, target lists and wildcard constraints: the only Python in the rules.
from pathlib import Path


wildcard_constraints:
    dataset="photos|faces|cifar10|celeba",
    res=r"[1-9][0-9]*",
    solver="spsolve|ksp|projection",
    method="ours|ddpm",
    experiment=r"[a-z]+_[A-Za-z0-9_.]+",


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


def experiments_of(kind):
    return [name for name, spec in EXPERIMENTS.items() if spec["kind"] == kind]


def all_targets():
    """Everything `rule all` requires: the prepared data, samples of every experiment,
    every table and figure (learn_targets and EVALUATE_TARGETS live in their rule files)."""
    return data_targets() + learn_targets() + EVALUATE_TARGETS

"""The conda environment (envs/conda.yaml, for `--sdm conda`) must carry every runtime package of
envs/requirements.txt (the .venv route): conda is not on the CI machine, so drift is caught here."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: requirements that are not runtime packages of the rules, or have another conda name
NOT_IN_CONDA = {"pytest", "snakemake", "snakemake-executor-plugin-slurm"}
CONDA_NAME = {"torch": "pytorch", "matplotlib": "matplotlib-base"}


def _requirement_names() -> set[str]:
    names = set()
    for line in (ROOT / "envs" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[=<>!~\[ ]", line, maxsplit=1)[0].lower())
    return names


def test_conda_env_has_every_runtime_requirement():
    env = yaml.safe_load((ROOT / "envs" / "conda.yaml").read_text())
    conda = {re.split(r"[=<>! ]", dep, maxsplit=1)[0].lower() for dep in env["dependencies"] if isinstance(dep, str)}
    wanted = {CONDA_NAME.get(n, n) for n in _requirement_names() - NOT_IN_CONDA}
    assert wanted <= conda, f"envs/conda.yaml lacks {sorted(wanted - conda)} (listed in envs/requirements.txt)"
    assert {"petsc", "petsc4py"} <= conda

# fpscore: score pre-computation via the log-density Fokker-Planck equation and
# cross-matrix Krylov projection (Lau, Na, Wan 2025), from data to the paper's
# figures. Run: `snakemake --cores 8 all` (see README.md).
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

import fpscore.config
from fpscore import names

min_version("9.0")


envvars:
    "PATH",


# Jobs call the `fpscore` command installed beside this Python (.venv/bin), also
# when snakemake runs as .venv/bin/snakemake without an activated environment.
_search_path = os.environ["PATH"]
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + _search_path


configfile: "config/config.yaml"


# The report's front page (`snakemake --report`): the findings and links to the tables.
report: "workflow/report/workflow.rst"


# Validate against the package's own schema, fpscore/config.schema.yaml (draft 2020-12,
# fpscore.config.schema_path()), and fill defaults before any job runs; a bad value stops
# the run naming its key.
try:
    _validated = fpscore.config.validate(config, source="workflow config")
except ValueError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)


# Timed work (score shards and their preparation, the solver benchmark, training) reports
# seconds, so a local run never gives it more CPUs at once than this machine has, whatever
# --cores says: `--cores 8` on 2 CPUs would otherwise train four 2-thread models side by side,
# each ~4x slower in wall time. Those rules take `timed_cpus` = their threads (capped at the
# machine's CPUs); `--resources timed_cpus=N` overrides the limit. On a cluster every job has
# its own allocation, so no limit is set.
MACHINE_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
if workflow.local_exec and "timed_cpus" not in workflow.global_resources:
    workflow.register_resource("timed_cpus", MACHINE_CPUS)


wildcard_constraints:
    dataset=names.wildcard_pattern(names.DATASETS),
    res=r"[1-9][0-9]*",
    solver=names.wildcard_pattern(names.SOLVERS),
    stage=r"scores|scores_subset",
    method=names.wildcard_pattern(names.METHODS),
    experiment=r"[a-z]+_[A-Za-z0-9_.]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/learn.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    default_target: True
    input:
        PLAN.all_targets(),

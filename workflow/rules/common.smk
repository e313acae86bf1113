# The only Python in the rules: thin adapters from wildcards to the package's plan of the
# workflow (fpscore.experiments.Plan: experiment names, the runs each table and figure
# compares, input files and every rule's `fpscore` options, unit-tested there).
import shlex

from fpscore.experiments import Plan, table_stem as _table_stem

PLAN = Plan(config)

# Software of every rule for `--sdm conda` (the default route is `make setup`, .venv);
# a path relative to the rule files in workflow/rules/.
CONDA_ENV = "../../envs/conda.yaml"


def timed_cpus(wildcards, threads):
    """Resource of timed rules: their threads, at most the machine's CPUs (see the Snakefile)."""
    return min(threads, MACHINE_CPUS)


def table_stem(wildcards, output):
    """A table's output stem (<stem>.csv, .md, .tex)."""
    return _table_stem(output.csv)


# ---- data -------------------------------------------------------------------------------------
def prepare_archive(wildcards):
    return PLAN.prepare_archive(wildcards.dataset)


def data_options(wildcards, input):
    return PLAN.data_options(wildcards.dataset, input.archive)


# ---- scores -----------------------------------------------------------------------------------
def stage_images(wildcards):
    return PLAN.images_of(wildcards.stage, wildcards.dataset, wildcards.res)


def scores_options(wildcards):
    # scores_prepare has no {solver} wildcard: it is the projection's
    return PLAN.scores_options(wildcards.dataset, wildcards.stage, wildcards.res,
                               getattr(wildcards, "solver", "projection"))


def shard_files(suffix):
    def files(w):
        return PLAN.shard_files(w.stage, w.dataset, w.res, w.solver, suffix)

    return files


def projection_file(name):
    def files(w):
        return PLAN.projection_file(w.stage, w.dataset, w.res, w.solver, name)

    return files


def optional_option(flag, key):
    """Params function: `flag input.<key>` where that input is there, nothing otherwise."""

    def option(wildcards, input):
        value = getattr(input, key)
        return shlex.join([flag, value]) if value else ""

    return option


# ---- learning ---------------------------------------------------------------------------------
def experiment_images(wildcards):
    return PLAN.experiment_images(wildcards.experiment)


def learn_scores(what):
    def files(w):
        return PLAN.learn_scores(w.experiment, w.method, what)

    return files


def train_options(wildcards):
    return PLAN.train_options(wildcards.experiment)


def train_runtime(wildcards):
    return PLAN.train_runtime(wildcards.experiment)


def sample_options(wildcards, input):
    return PLAN.sample_options(wildcards.experiment, input.images)


# ---- evaluation -------------------------------------------------------------------------------
def reference_option(wildcards):
    return PLAN.reference_option(wildcards.experiment)


def compared_scores(wildcards):
    return PLAN.compared_scores(wildcards.dataset, wildcards.res)


def budget_files(pattern):
    def files(w):
        return PLAN.budget_files(w.res, pattern)

    return files

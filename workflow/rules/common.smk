# Config helpers, input and params functions, target lists: the only Python in the rules.
# Rules pass files as declared inputs and outputs and labels as lists; the command-line
# options of config keys come from the package (fpscore.options, generated from the schema).
import math
import shlex

from fpscore.cli import data as data_cli
from fpscore.cli import metrics as metrics_cli
from fpscore.cli import learn as learn_cli
from fpscore.cli import scores as scores_cli
from fpscore.cli import table as table_cli
from fpscore.data import archive_path
from fpscore.names import ARCHIVE_FILENAMES
from fpscore.options import command_line, command_text


# Software of every rule for `--sdm conda` (the default route is `make setup`, .venv);
# a path relative to the rule files in workflow/rules/.
CONDA_ENV = "../../envs/conda.yaml"

DATASETS = config["data"]["datasets"]


def resolutions_of(dataset):
    """The image sizes of a dataset: data.dataset_resolutions.<dataset>, else data.resolutions."""
    return config["data"]["dataset_resolutions"].get(dataset) or config["data"]["resolutions"]


def data_targets():
    return [f"results/data/{d}/{r}/images.npz" for d in DATASETS for r in resolutions_of(d)]


# ---- data -------------------------------------------------------------------------------------
def download_target(dataset):
    """The archive path the download of `dataset` writes (<resources_dir>/<dataset>/<archive name>)."""
    return str(archive_path(dataset, config["data"]["resources_dir"]))


def prepare_archive(wildcards):
    """The archive the prepare rule reads ([] for the builtin sets; a local_path where one is given)."""
    if wildcards.dataset not in ARCHIVE_FILENAMES:
        return []
    section = config["data"][wildcards.dataset]
    return str(archive_path(wildcards.dataset, config["data"]["resources_dir"], section.get("local_path") or None))


def data_options(wildcards, input):
    """`fpscore data` options of data.<dataset>, and the archive input where there is one."""
    words = data_cli.rule_options(wildcards.dataset, config["data"])
    words += command_line(config["data"], data_cli.RESOURCES)
    if input.archive:
        words += ["--archive", input.archive]
    return shlex.join(words)


# ---- scores -----------------------------------------------------------------------------------
def dataset_config(dataset):
    """The config with scores.per_dataset.<dataset>'s settings (those given) in place of the global ones."""
    overrides = {k: v for k, v in config["scores"]["per_dataset"][dataset].items() if v is not None}
    return dict(config, scores=dict(config["scores"], **overrides))


def scores_options(wildcards):
    """`fpscore scores` options of config section scores for the dataset (the solver is the rule's wildcard)."""
    return command_text(dataset_config(wildcards.dataset), scores_cli.RULE_GROUPS)


def n_images(dataset):
    """Images the data step makes for `dataset` (an upper bound is enough: extra shards are empty)."""
    section = config["data"][dataset]
    if dataset == "photos":
        return len(section["names"])
    return len(section.get("indices") or []) or int(section["count"])


# The solver comparison runs on the first experiments.solver_images images of each set (stage
# scores_subset) or, when that is null, shares the production scores of the whole set (stage scores).
SOLVER_IMAGES = config["experiments"].get("solver_images")  # null: not filled in
COMPARE_STAGE = "scores" if SOLVER_IMAGES is None else "scores_subset"


def images_of(stage, dataset, res):
    """The images file a score stage computes: the whole set, or the comparison's subset of it."""
    folder = f"results/data/{dataset}/{res}"
    return f"{folder}/images.npz" if stage == "scores" else f"{folder}/solver_subset/images.npz"


def stage_images(wildcards):
    """Input function: the images of a score job's stage."""
    return images_of(wildcards.stage, wildcards.dataset, wildcards.res)


def n_shards(dataset, stage="scores"):
    count = n_images(dataset) if stage == "scores" else min(SOLVER_IMAGES, n_images(dataset))
    return max(1, math.ceil(count / config["scores"]["shard_size"]))


def shard_files(suffix):
    """Input function: every shard file (`suffix` npz or csv) of a (dataset, res, solver)."""

    def files(wildcards):
        stem = f"results/{wildcards.stage}/{wildcards.dataset}/{wildcards.res}/{wildcards.solver}/shards"
        return [f"{stem}/{i}.{suffix}" for i in range(n_shards(wildcards.dataset, wildcards.stage))]

    return files


def projection_file(name):
    """Input function: a file of the projection solver's preparation (nothing for the other solvers)."""

    def files(wildcards):
        if wildcards.solver != "projection":
            return []
        return f"results/{wildcards.stage}/{wildcards.dataset}/{wildcards.res}/projection/{name}"

    return files


def optional_option(flag, key):
    """Params function: `flag input.<key>` where that input is there, nothing otherwise."""

    def option(wildcards, input):
        value = getattr(input, key)
        return shlex.join([flag, value]) if value else ""

    return option


# ---- experiments: stable names <-> specs --------------------------------------------------
def _denoise_name(spec):
    noisy = f"_noisy{spec['noise_std']:g}" if spec["protocol"] == "noisy_copy" else ""
    return f"denoise_{spec['dataset']}{spec['resolution']}_img{spec['image']}_ssim{spec['target_ssim']:.2f}{noisy}"


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


def experiment_images(wildcards):
    """Input function: the images.npz an experiment trains on."""
    spec = experiment(wildcards.experiment)
    return f"results/data/{spec['dataset']}/{spec['resolution']}/images.npz"


def reference_option(wildcards):
    """The training images an experiment's samples are compared with (fpscore ssim/fid option)."""
    spec = experiment(wildcards.experiment)
    if spec["kind"] == "denoise":
        return f"--reference-index {spec['image']}"
    return f"--reference-count {spec['images']}"


# ---- learning ---------------------------------------------------------------------------------
DENOISE = experiments_of("denoise")
BUDGET = experiments_of("budget")
# Methods T1, T4, F4 and F10 compare: ours and DDPM, and the like-for-like dsm baseline where it is
# trained (learn.dsm.train); its logs and metrics are inputs only then.
COMPARED = ["ours", "ddpm"] + (["dsm"] if config["learn"]["dsm"]["train"] else [])


def learn_scores(name):
    """Input function: the score directory / solve_log.csv of the configured solver (our method; the
    directory for every method with learn.skip_unconverged, whose converged flags pick the images)."""

    def files(wildcards):
        skip = config["learn"]["skip_unconverged"] and name == "scores"
        if wildcards.method != "ours" and not skip:
            return []
        spec = experiment(wildcards.experiment)
        return f"results/scores/{spec['dataset']}/{spec['resolution']}/{config['scores']['solver']}/{name}"

    return files


def train_scores_option(wildcards, input):
    """`--scores ... --solve-log ...` for our method; `--scores ...` for a baseline with
    learn.skip_unconverged; nothing otherwise."""
    words = (["--scores", input.scores] if input.scores else []) + (
        ["--solve-log", input.solve_log] if input.solve_log else [])
    return shlex.join(words)


def train_options(wildcards):
    """`fpscore train` options of config sections learn and (dsm's SDE) scores, for the experiment's dataset."""
    return command_text(dataset_config(experiment(wildcards.experiment)["dataset"]), learn_cli.TRAIN_GROUPS)


def sample_options():
    """`fpscore sample` options of config section learn (the sampler itself is what model.pt recorded)."""
    return command_text(config, learn_cli.SAMPLE_GROUPS)


def stop_options(wildcards):
    """Image selection and stopping rule of an experiment (kind denoise | budget | generation)."""
    spec = experiment(wildcards.experiment)
    if spec["kind"] == "denoise":
        return (f"--indices {spec['image']} --stop target_ssim --target-ssim {spec['target_ssim']} "
                f"{protocol_options(wildcards)}")
    return f"--count {spec['images']} --stop budget --budget-seconds {spec['budget_seconds']}"


def protocol_options(wildcards):
    """Table 1's protocol of a denoise experiment (fpscore train / sample options; the others generate)."""
    spec = experiment(wildcards.experiment)
    if spec["kind"] != "denoise":
        return "--eval-protocol generate"
    return f"--eval-protocol {spec['protocol']} --eval-noise {spec['noise_std']}"


def sample_protocol_options(wildcards, input):
    """`fpscore sample` options of the experiment's protocol: noisy_copy denoises copies of its image."""
    spec = experiment(wildcards.experiment)
    if spec["kind"] == "denoise" and spec["protocol"] == "noisy_copy":
        return f"{protocol_options(wildcards)} --references {shlex.quote(input.images)} --reference-index {spec['image']}"
    return ""


def train_runtime(wildcards):
    """A generous wall-time estimate (minutes) of one training job: training + evaluations + start-up."""
    spec = experiment(wildcards.experiment)
    seconds = spec["budget_seconds"] if spec["kind"] != "denoise" else config["learn"]["train"]["time_cap_seconds"]
    return int(3 * seconds / 60) + 15


def learn_targets():
    """Samples of every experiment: ours and DDPM, and dsm where learn.dsm.train (generation: ours only,
    as in Figure 3)."""
    pairs = [(name, method) for name in DENOISE + BUDGET for method in COMPARED]
    pairs += [(name, "ours") for name in experiments_of("generation")]
    return [f"results/samples/{name}/{method}/samples.npz" for name, method in pairs]


def timed_cpus(wildcards, threads):
    """Resource of timed rules: their threads, at most the machine's CPUs (see the Snakefile)."""
    return min(threads, MACHINE_CPUS)


# ---- evaluation -------------------------------------------------------------------------------
SOLVE_SIZES = config["experiments"]["solver_sizes"]
# spsolve is the reference every reduction and score error is measured against.
T2_SOLVERS = ["spsolve"] + [s for s in config["scores"]["benchmark_solvers"] if s != "spsolve"]
SOLVE_RUNS = [(d, r, s) for d in DATASETS for r in SOLVE_SIZES if r in resolutions_of(d) for s in T2_SOLVERS]
SOLVE_LOGS = [f"results/{COMPARE_STAGE}/{d}/{r}/{s}/solve_log.csv" for d, r, s in SOLVE_RUNS]
PROJECTION_RUNS = [(d, r) for d in DATASETS for r in SOLVE_SIZES if r in resolutions_of(d)]
# Figure f4_budget_{res} shows the first budget experiment at that resolution.
BUDGET_AT = {str(experiment(name)["resolution"]): name for name in reversed(BUDGET)}
DENOISE_RUNS = [(name, method) for name in DENOISE for method in COMPARED]
BUDGET_RUNS = [(name, method) for name in BUDGET for method in COMPARED]


def solve_labels():
    """--datasets/--resolutions/--solvers of SOLVE_LOGS, in the same order."""
    return {"datasets": [d for d, _, _ in SOLVE_RUNS], "resolutions": [r for _, r, _ in SOLVE_RUNS],
            "solvers": [s for _, _, s in SOLVE_RUNS]}


def ssim_mode_option():
    """`fpscore ssim` option of evaluate.ssim_mode."""
    return command_text(config, [metrics_cli.SSIM_MODE])


def fid_options():
    """`fpscore fid` options of config section evaluate.fid."""
    return command_text(config, [metrics_cli.FID])


def rank_option():
    """`fpscore table t3` option of scores.projection.rank."""
    return command_text(config, [table_cli.RANK])


def table_stem(wildcards, output):
    """A table's output stem (<stem>.csv, .md, .tex)."""
    return output.csv.removesuffix(".csv")


def budget_res(key):
    """Input function of figure f4_budget_{res}: the samples or SSIM files of that resolution's experiment."""
    name = "samples/{experiment}/{method}/samples.npz" if key == "samples" else "metrics/{experiment}/{method}/ssim.csv"

    def files(wildcards):
        return expand(f"results/{name}", experiment=BUDGET_AT[wildcards.res], method=COMPARED)

    return files


def budget_seconds_of(wildcards):
    return experiment(BUDGET_AT[wildcards.res])["budget_seconds"]


def all_targets():
    """The inputs of the all target: the prepared data, samples of every experiment, every table and figure."""
    return data_targets() + learn_targets() + EVALUATE_TARGETS


# Every table and figure, for the all target (f9 from the solver benchmark's rank sweep).
EVALUATE_TARGETS = (
    expand("results/tables/{name}.{ext}", ext=["csv", "md", "tex"],
           name=["t1_time_to_ssim", "t2_solvers", "t3_systems", "t4_budget"])
    + expand("results/figures/{name}.png",
             name=["f1_schematic", "f2_denoising", "f3_generation", "f6_solver_time", "f7_picard",
                   "f8_projection_residual", "f9_rank_sweep", "f10_ssim_curves"])
    + expand("results/figures/f4_budget_{res}.png", res=sorted(BUDGET_AT, key=int))
)

"""The experiments of a workflow config: their names, the runs each table and figure compares,
the files between the steps and the command-line options of every rule.

``Plan(config)`` reads a validated config (``fpscore.config.validate``) once; the workflow's
rules (workflow/rules/*.smk, through the thin adapters of common.smk) ask it for their input
files and for the options of the one `fpscore` command each runs, so that the same logic is
unit-tested here and the rules only declare inputs, outputs, params and a command.

Experiments (config section ``experiments``) have stable names built from their settings:
``denoise_<dataset><res>_img<i>_ssim<target>[_noisy<std>]``, ``budget_<dataset><res>_n<images>``
and ``generate_<dataset><res>_n<images>``; results/train/<name>/<method>/ holds each run.
"""
from __future__ import annotations

import math
import shlex
from pathlib import Path

from fpscore.options import command_line, command_text

KINDS = ("denoise", "budget", "generation")
# spsolve is the reference every reduction and score error is measured against.
REFERENCE_SOLVER = "spsolve"


def experiment_name(kind: str, spec: dict) -> str:
    """The stable name of an experiment of ``kind`` (denoise | budget | generation) from its settings."""
    where = f"{spec['dataset']}{spec['resolution']}"
    if kind == "denoise":
        noisy = f"_noisy{spec['noise_std']:g}" if spec["protocol"] == "noisy_copy" else ""
        return f"denoise_{where}_img{spec['image']}_ssim{spec['target_ssim']:.2f}{noisy}"
    if kind == "budget":
        return f"budget_{where}_n{spec['images']}"
    if kind == "generation":
        return f"generate_{where}_n{spec['images']}"
    raise ValueError(f"experiment kind: expected one of {KINDS}, got {kind!r}")


def _words(*words) -> str:
    return shlex.join(str(w) for w in words)


class Plan:
    """What the workflow runs for a validated config, and how (see the module docstring)."""

    def __init__(self, config: dict):
        self.config = config
        self.datasets = list(config["data"]["datasets"])
        self.experiments: dict[str, dict] = {}
        for kind in KINDS:
            for spec in config["experiments"][kind]:
                self.experiments[experiment_name(kind, spec)] = dict(spec, kind=kind)
        # the solver comparison runs on the first experiments.solver_images images of each set (stage
        # scores_subset) or, when that is null, shares the production scores of the whole set (stage scores)
        self.solver_images = config["experiments"].get("solver_images")  # null: not filled in
        self.compare_stage = "scores" if self.solver_images is None else "scores_subset"
        # methods T1, T4, F4 and F10 compare: ours, DDPM, and dsm where it is trained (learn.dsm.train)
        self.compared = ["ours", "ddpm"] + (["dsm"] if config["learn"]["dsm"]["train"] else [])
        solvers = config["scores"]["benchmark_solvers"]
        self.t2_solvers = [REFERENCE_SOLVER] + [s for s in solvers if s != REFERENCE_SOLVER]

    # ---- experiments -----------------------------------------------------------------------
    def experiment(self, name: str) -> dict:
        """The spec (dataset, resolution, ... and kind) of an experiment named in the config."""
        try:
            return self.experiments[name]
        except KeyError:
            raise ValueError(f"unknown experiment {name!r}; the config defines {sorted(self.experiments)}") from None

    def of_kind(self, kind: str) -> list[str]:
        return [name for name, spec in self.experiments.items() if spec["kind"] == kind]

    def runs(self, kind: str) -> list[tuple[str, str]]:
        """(experiment, method) of every compared run of the denoise or budget experiments."""
        return [(name, method) for name in self.of_kind(kind) for method in self.compared]

    # ---- data ------------------------------------------------------------------------------
    def resolutions_of(self, dataset: str) -> list[int]:
        """The image sizes of a dataset: data.dataset_resolutions.<dataset>, else data.resolutions."""
        return self.config["data"]["dataset_resolutions"].get(dataset) or self.config["data"]["resolutions"]

    def data_targets(self) -> list[str]:
        return [f"results/data/{d}/{r}/images.npz" for d in self.datasets for r in self.resolutions_of(d)]

    def download_target(self, dataset: str) -> str:
        """The archive path the download of `dataset` writes (<resources_dir>/<dataset>/<archive name>)."""
        from fpscore.data import archive_path

        return str(archive_path(dataset, self.config["data"]["resources_dir"]))

    def prepare_archive(self, dataset: str) -> str | list:
        """The archive `fpscore data` reads ([] for the builtin sets; a local_path where one is given)."""
        from fpscore.data import archive_path
        from fpscore.names import ARCHIVE_FILENAMES

        if dataset not in ARCHIVE_FILENAMES:
            return []
        local = self.config["data"][dataset].get("local_path") or None
        return str(archive_path(dataset, self.config["data"]["resources_dir"], local))

    def data_options(self, dataset: str, archive: str = "") -> str:
        """`fpscore data` options of data.<dataset> and data.resources_dir, and the archive where there is one."""
        from fpscore.cli import data as data_cli

        words = data_cli.rule_options(dataset, self.config["data"])
        words += command_line(self.config["data"], data_cli.RESOURCES)
        return shlex.join(words + (["--archive", archive] if archive else []))

    def n_images(self, dataset: str) -> int:
        """Images the data step makes for `dataset` (an upper bound is enough: extra shards are empty)."""
        section = self.config["data"][dataset]
        if dataset == "photos":
            return len(section["names"])
        return len(section.get("indices") or []) or int(section["count"])

    # ---- scores ----------------------------------------------------------------------------
    def dataset_config(self, dataset: str) -> dict:
        """The config with scores.per_dataset.<dataset>'s settings (those given) in place of the global ones."""
        scores = self.config["scores"]
        overrides = {k: v for k, v in scores["per_dataset"][dataset].items() if v is not None}
        return dict(self.config, scores=dict(scores, **overrides))

    def scores_options(self, dataset: str, stage: str = "scores", res=None, solver: str | None = None) -> str:
        """`fpscore scores` options of every key of config section scores for the dataset (the solver is the
        rule's wildcard): a new key of the section passes through with no code here. A run the solver
        comparison reads (``is_compared``) logs every linear solve (scores.solve_log: solve; T2, T3, F7, F8)."""
        from fpscore.cli import scores as scores_cli

        config = self.dataset_config(dataset)
        if self.is_compared(stage, dataset, res, solver):
            config = dict(config, scores=dict(config["scores"], solve_log="solve"))
        return command_text(config, scores_cli.RULE_GROUPS)

    def is_compared(self, stage: str, dataset: str, res, solver: str | None) -> bool:
        """Whether the score run (stage, dataset, res, solver) is one of the solver comparison's (``solve_runs``)."""
        if res is None or solver is None or stage != self.compare_stage:
            return False
        return (dataset, int(res), solver) in self.solve_runs()

    def images_of(self, stage: str, dataset: str, res) -> str:
        """The images file a score stage computes: the whole set, or the comparison's subset of it."""
        folder = f"results/data/{dataset}/{res}"
        return f"{folder}/images.npz" if stage == "scores" else f"{folder}/solver_subset/images.npz"

    def n_shards(self, dataset: str, stage: str = "scores") -> int:
        count = self.n_images(dataset) if stage == "scores" else min(self.solver_images, self.n_images(dataset))
        return max(1, math.ceil(count / self.config["scores"]["shard_size"]))

    def shard_files(self, stage: str, dataset: str, res, solver: str, suffix: str) -> list[str]:
        """Every shard file (`suffix` npz or csv) of a (stage, dataset, res, solver)."""
        stem = f"results/{stage}/{dataset}/{res}/{solver}/shards"
        return [f"{stem}/{i}.{suffix}" for i in range(self.n_shards(dataset, stage))]

    def projection_file(self, stage: str, dataset: str, res, solver: str, name: str) -> str | list:
        """A file of the projection solver's preparation ([] for the other solvers)."""
        return f"results/{stage}/{dataset}/{res}/projection/{name}" if solver == "projection" else []

    # ---- learning --------------------------------------------------------------------------
    def experiment_images(self, name: str) -> str:
        """The images.npz an experiment trains on."""
        spec = self.experiment(name)
        return f"results/data/{spec['dataset']}/{spec['resolution']}/images.npz"

    def learn_scores(self, name: str, method: str, what: str) -> str | list:
        """The score directory or solve_log.csv (``what``) of the configured solver a training run reads:
        our method's; the directory also for every method with learn.skip_invalid (its valid flags
        pick the images); [] otherwise."""
        skip = self.config["learn"]["skip_invalid"] and what == "scores"
        if method != "ours" and not skip:
            return []
        spec = self.experiment(name)
        return f"results/scores/{spec['dataset']}/{spec['resolution']}/{self.config['scores']['solver']}/{what}"

    def train_options(self, name: str) -> str:
        """`fpscore train` options of an experiment: its name and dataset (recorded in the summary), its
        images and stopping rule, Table 1's protocol, and config sections learn and (dsm's SDE) scores
        for its dataset."""
        from fpscore.cli import learn as learn_cli

        spec = self.experiment(name)
        if spec["kind"] == "denoise":
            stop = _words("--indices", spec["image"], "--stop", "target_ssim", "--target-ssim", spec["target_ssim"])
            stop += " " + self.protocol_options(name)
        else:
            stop = _words("--count", spec["images"], "--stop", "budget", "--budget-seconds", spec["budget_seconds"])
        config = command_text(self.dataset_config(spec["dataset"]), learn_cli.TRAIN_GROUPS)
        return " ".join([_words("--experiment", name, "--dataset", spec["dataset"]), stop, config])

    def protocol_options(self, name: str) -> str:
        """Table 1's protocol of a denoise experiment (fpscore train / sample options; the others generate)."""
        spec = self.experiment(name)
        if spec["kind"] != "denoise":
            return "--eval-protocol generate"
        return _words("--eval-protocol", spec["protocol"], "--eval-noise", spec["noise_std"])

    def sample_options(self, name: str, images: str) -> str:
        """`fpscore sample` options: config section learn (the sampler itself is what model.pt recorded) and
        the experiment's protocol (noisy_copy denoises copies of its image)."""
        from fpscore.cli import learn as learn_cli

        words = command_text(self.config, learn_cli.SAMPLE_GROUPS)
        spec = self.experiment(name)
        if spec["kind"] == "denoise" and spec["protocol"] == "noisy_copy":
            words += " " + self.protocol_options(name) + " " + _words("--references", images,
                                                                        "--reference-index", spec["image"])
        return words

    def train_runtime(self, name: str) -> int:
        """A generous wall-time estimate (minutes) of one training job: training + evaluations + start-up."""
        spec = self.experiment(name)
        seconds = spec["budget_seconds"] if spec["kind"] != "denoise" else \
            self.config["learn"]["train"]["time_cap_seconds"]
        return int(3 * seconds / 60) + 15

    def learn_targets(self) -> list[str]:
        """Samples of every experiment: the compared methods, generation ours only (as in Figure 3)."""
        pairs = self.runs("denoise") + self.runs("budget") + [(n, "ours") for n in self.of_kind("generation")]
        return [f"results/samples/{name}/{method}/samples.npz" for name, method in pairs]

    # ---- evaluation ------------------------------------------------------------------------
    def reference_option(self, name: str) -> str:
        """The training images an experiment's samples are compared with (fpscore ssim / fid option)."""
        spec = self.experiment(name)
        if spec["kind"] == "denoise":
            return _words("--reference-index", spec["image"])
        return _words("--reference-count", spec["images"])

    def metric_options(self, group_name: str) -> str:
        """`fpscore ssim` (ssim) or `fpscore fid` (fid) options of config section evaluate."""
        from fpscore.cli import metrics as metrics_cli

        return command_text(self.config, [{"ssim": metrics_cli.SSIM_MODE, "fid": metrics_cli.FID}[group_name]])

    def rank_option(self) -> str:
        """`fpscore table t3` option of scores.projection.rank."""
        from fpscore.cli import table as table_cli

        return command_text(self.config, [table_cli.RANK])

    def solve_runs(self) -> list[tuple[str, int, str]]:
        """(dataset, resolution, solver) of every solve log the solver comparison writes."""
        sizes = self.config["experiments"]["solver_sizes"]
        return [(d, r, s) for d in self.datasets for r in sizes if r in self.resolutions_of(d) for s in self.t2_solvers]

    def solve_logs(self) -> list[str]:
        return [f"results/{self.compare_stage}/{d}/{r}/{s}/solve_log.csv" for d, r, s in self.solve_runs()]

    def solve_labels(self) -> str:
        """--datasets/--resolutions/--solvers of ``solve_logs`` (solve logs do not record them), in order."""
        runs = self.solve_runs()
        return _words("--datasets", *(d for d, _, _ in runs), "--resolutions", *(r for _, r, _ in runs),
                      "--solvers", *(s for _, _, s in runs))

    def projection_runs(self) -> list[tuple[str, int]]:
        sizes = self.config["experiments"]["solver_sizes"]
        return [(d, r) for d in self.datasets for r in sizes if r in self.resolutions_of(d)]

    def projection_files(self, name: str) -> list[str]:
        """Figure F8's inputs of every projecting run: solve_log.csv, prepared.npz or images.npz (``name``)."""
        if name == "images.npz":
            return [self.images_of(self.compare_stage, d, r) for d, r in self.projection_runs()]
        return [f"results/{self.compare_stage}/{d}/{r}/projection/{name}" for d, r in self.projection_runs()]

    def projection_labels(self) -> str:
        return _words("--labels", *(f"{d} {r}x{r}" for d, r in self.projection_runs()))

    def score_errors(self) -> list[str]:
        return [f"results/metrics/scores/{d}/{r}/score_error.csv" for d, r in self.projection_runs()]

    def compared_scores(self, dataset: str, res) -> list[str]:
        """The score sets fpscore score-error compares (the reference first, as ``t2_solvers``)."""
        return [f"results/{self.compare_stage}/{dataset}/{res}/{s}/scores" for s in self.t2_solvers]

    def budget_at(self) -> dict[str, str]:
        """Figure f4_budget_{res}: the first budget experiment at each resolution."""
        return {str(self.experiment(n)["resolution"]): n for n in reversed(self.of_kind("budget"))}

    def run_files(self, kind: str, pattern: str, methods: list[str] | None = None) -> list[str]:
        """``pattern`` ("results/train/{experiment}/{method}/train_log.json") of every compared run of
        ``kind`` (denoise | budget), or of ``methods`` only."""
        return [pattern.format(experiment=name, method=method)
                for name in self.of_kind(kind) for method in (methods or self.compared)]

    def budget_files(self, res, pattern: str) -> list[str]:
        """``pattern`` of every compared method of figure f4_budget_{res}'s experiment."""
        name = self.budget_at()[str(res)]
        return [pattern.format(experiment=name, method=method) for method in self.compared]

    def evaluate_targets(self) -> list[str]:
        """Every table and figure (f9 from the solver benchmark's rank sweep)."""
        tables = ["t1_time_to_ssim", "t2_solvers", "t3_systems", "t4_budget"]
        figures = ["f1_schematic", "f2_denoising", "f3_generation", "f6_solver_time", "f7_picard",
                   "f8_projection_residual", "f9_rank_sweep", "f10_ssim_curves"]
        return ([f"results/tables/{name}.{ext}" for ext in ("csv", "md", "tex") for name in tables]
                + [f"results/figures/{name}.png" for name in figures]
                + [f"results/figures/f4_budget_{res}.png" for res in sorted(self.budget_at(), key=int)])

    def all_targets(self) -> list[str]:
        """The inputs of the all target: the prepared data, samples of every experiment, every table and figure."""
        return self.data_targets() + self.learn_targets() + self.evaluate_targets()


def table_stem(path: str | Path) -> str:
    """A table's output stem (<stem>.csv, .md, .tex) from its CSV path."""
    return str(path).removesuffix(".csv")

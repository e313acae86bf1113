"""The verdict table of docs/results/verdict.md is the one the saved verdict-benchmark runs give, and its verdict rule
reads paired time-to-target intervals as documented."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import verdict_table  # noqa: E402


def _run(method, seed, prev, hit, cap=120.0, pre=0.0):
    reached = hit is not None
    return {"size": 32, "recipe": "default", "protocol": "generate", "method": method, "dataset": "photos",
            "image": "camera", "seed": seed, "cap": cap, "precompute_seconds": pre,
            "crossings": {"0.9": {"reached": reached, "hit": hit, "prev": prev, "step": 1 if reached else None}},
            "evaluations": []}


def test_docs_table_matches_the_saved_runs():
    assert verdict_table.TARGET == REPO / "docs" / "results" / "verdict.md"
    assert verdict_table.main(["--check"]) == 0


def test_outcomes_compare_intervals_and_count_pre_computation():
    ours = [_run("ours", 0, 10.0, 20.0, pre=0.5), _run("ours", 1, 10.0, 20.0), _run("ours", 2, 30.0, 40.0),
            _run("ours", 3, None, None)]
    ddpm = [_run("ddpm", 0, 20.0, 30.0), _run("ddpm", 1, 15.0, 25.0), _run("ddpm", 2, 10.0, 20.0),
            _run("ddpm", 3, None, None, cap=240.0)]
    # seed 0: ours (10.5, 20.5] overlaps (20, 30] only because of the pre-computation -> tied
    assert verdict_table.outcomes(ddpm, ours, "0.9") == {"faster": 0, "slower": 1, "tied": 2, "neither": 1}
    ddpm[0] = _run("ddpm", 0, 21.0, 30.0)
    ddpm[1] = _run("ddpm", 1, None, None, cap=240.0)  # not reached: ours (reached at 20) is faster
    assert verdict_table.outcomes(ddpm, ours, "0.9") == {"faster": 2, "slower": 1, "tied": 0, "neither": 1}


@pytest.mark.parametrize("count, word", [
    ({"faster": 3, "slower": 0, "tied": 0, "neither": 1}, "confirmed"),
    ({"faster": 0, "slower": 2, "tied": 0, "neither": 0}, "contradicted"),
    ({"faster": 2, "slower": 0, "tied": 1, "neither": 0}, "not confirmed"),
    ({"faster": 0, "slower": 0, "tied": 0, "neither": 4}, "not testable"),
    ({"faster": 0, "slower": 0, "tied": 0, "neither": 0}, "not measured yet"),
])
def test_direction_words(count, word):
    assert verdict_table.direction(count, "speed-up").removeprefix("speed-up ").startswith(word)


def test_warmup_claim_pairs_warmup_ddpm_with_the_authors_ours():
    def run(recipe, method, seed, prev, hit):
        return _run(method, seed, prev, hit) | {"recipe": recipe, "protocol": "noisy_copy"}

    runs = [run("authors", "ours", 0, 10.0, 20.0), run("authors", "ddpm", 0, 5.0, 8.0),
            run("authors-warmup", "ddpm", 0, 30.0, 40.0)]
    claim = next(c for c in verdict_table.CLAIMS if c.ddpm_recipe == "authors-warmup" and c.target == "0.9")
    cells = verdict_table.row(runs, claim)
    assert cells[2].startswith("ddpm/ours 2.00x") and cells[3] == "not run"  # 40 / 20, not 8 / 20
    assert "speed-up confirmed: ours faster in 1" in cells[5]


def test_raw_alone_compares_raw_with_edm_pairwise():
    def run(recipe, seed, prev, hit):
        return _run("ours", seed, prev, hit) | {"recipe": recipe, "protocol": "noisy_copy"}

    runs = [run("default-raw", 0, 30.0, 40.0), run("default-raw", 1, None, None), run("default", 0, 10.0, 20.0),
            run("default", 1, 10.0, 20.0)]
    text = verdict_table.raw_alone(runs)
    assert "ours with raw reached 0.90 in 1 of 2 runs" in text
    assert "raw / edm 4.00x [2.00, 6.00] n=2 (1 lower bound(s))" in text  # median of 40 / 20 and > 120 / 20
    assert verdict_table.raw_alone([r for r in runs if r["recipe"] == "default"]) == ""

"""The scheme benchmark (benchmarks/scheme_benchmark.py): its table in docs/results/scheme.md is the one
its saved parts give; a tiny run writes every part and resumes; its study set is seeded and natural."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import scheme_benchmark  # noqa: E402


def test_docs_table_matches_the_saved_parts():
    assert scheme_benchmark.TARGET == REPO / "docs" / "results" / "scheme.md"
    assert scheme_benchmark.main(["--summary", "--check"]) == 0


def test_study_set_is_seeded_and_outside_the_stand_in(torch_one_thread):
    a, low_a = scheme_benchmark.study_set(6, seed=3)
    b, low_b = scheme_benchmark.study_set(6, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(low_a, low_b)
    assert a.shape == (6, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert np.allclose(a * 255, np.round(a * 255))  # 8 bits, as an archive stores them
    from cifar_scale_benchmark import stand_in_set  # noqa: F401  (the stand-in's photos: the first 8)
    from fpscore.data import PHOTOS

    assert not set(scheme_benchmark.STUDY_PHOTOS) & set(list(PHOTOS)[:8])


def test_tiny_run_writes_every_part_and_resumes(tmp_path, capsys, torch_one_thread):
    args = ["--images", "2", "--sample", "0", "--sets", "study", "--out", str(tmp_path)]
    assert scheme_benchmark.main(args) == 0
    parts = sorted((tmp_path / "parts").glob("*.csv"))
    assert len(parts) == 8
    paper = pd.read_csv(tmp_path / "parts" / "study__zero__centred.csv")
    minimal = pd.read_csv(tmp_path / "parts" / "study__reflect__minimal.csv")
    assert len(paper) == len(minimal) == 6
    assert minimal.valid.all()  # the default gives every channel a valid score
    assert {"diff_paper", "diff_paper_inside", "nu_active", "border_abs_s"} <= set(minimal.columns)
    capsys.readouterr()
    assert scheme_benchmark.main(args) == 0
    assert capsys.readouterr().out.count("saved, skipped") == 7  # the paper's part is solved again (its scores)

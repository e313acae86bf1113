"""The table of the paper's claims in docs/results/claims.md is the one the saved timed `make all` gives, and a
missing table or marker is a clear error."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import claims_table  # noqa: E402


def test_docs_block_matches_the_saved_run():
    assert claims_table.TARGET == REPO / "docs" / "results" / "claims.md"
    assert claims_table.main(["--check"]) == 0


def test_the_block_names_the_run_and_every_table_row():
    import pandas as pd

    text = claims_table.block()
    tables = claims_table.RUN / "tables"
    t2 = pd.read_csv(tables / "t2_solvers.csv")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    expected = (len(pd.read_csv(tables / "t1_time_to_ssim.csv")) + 2 * t2.groupby(["dataset", "resolution"]).ngroups
                + len(pd.read_csv(tables / "t4_budget.csv")))
    assert len(rows) == expected
    assert all(solver in text for solver in set(t2["solver"]) - {"spsolve"})


def test_a_missing_run_or_marker_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="run.json is missing"):
        claims_table.block(tmp_path)
    shutil.copytree(claims_table.RUN, tmp_path / "run")
    doc = tmp_path / "claims.md"
    doc.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="no generated-block markers"):
        claims_table.main(["--run", str(tmp_path / "run"), "--write", str(doc)])

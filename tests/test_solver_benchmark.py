"""The solver benchmark runs on a machine without PETSc (a lent GPU machine) with --without-petsc:
no ksp or projection row, no rank sweep, the spsolve reference and the batched rows computed."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import solver_benchmark as bench  # noqa: E402


def test_without_petsc_needs_no_petsc4py(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "petsc4py", None)  # any import of it raises ImportError
    out = tmp_path / "solver.csv"
    rc = bench.main(["--sets", "photos", "--sizes", "8", "--only", "batched cpu newton$", "--without-petsc",
                     "--spsolve-images", "1", "--out", str(out), "--rank-sweep-out", str(tmp_path / "sweep.csv"),
                     "--dissimilarity-out", str(tmp_path / "dissim.csv")])
    assert rc == 0
    rows = pd.read_csv(out)
    assert list(rows["solver"]) == ["spsolve", "batched cpu newton"]
    assert "error" not in rows and (rows["max_final_residual"] <= 1e-10).all()
    assert rows["speedup_ksp"].isna().all() and rows["speedup"].iloc[1] > 0
    assert not (tmp_path / "sweep.csv").exists()


def test_without_petsc_leaves_out_the_rank_sweep():
    assert bench.parse_args(["--without-petsc"]).ranks == []
    assert bench.parse_args([]).ranks == list(bench.RANKS)


def test_the_package_entry_point_runs_the_benchmark(tmp_path, monkeypatch, capsys):
    """`fpscore solver-benchmark` (what the workflow's rule calls) passes its options on to the benchmark."""
    from fpscore.cli import main

    monkeypatch.setitem(sys.modules, "petsc4py", None)
    out = tmp_path / "solver.csv"
    assert main(["solver-benchmark", "--sets", "faces", "--sizes", "8", "--only", "batched cpu newton$",
                 "--without-petsc", "--spsolve-images", "1", "--out", str(out)]) == 0
    assert list(pd.read_csv(out)["solver"]) == ["spsolve", "batched cpu newton"]
    try:  # another step keeps refusing options it does not declare
        main(["table", "t1", "--out", str(tmp_path / "t"), "--bogus"])
    except SystemExit as err:
        assert err.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    else:
        raise AssertionError("an unknown option of another step was accepted")

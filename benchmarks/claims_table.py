"""The table of the paper's claims beside this project's embedded default (docs/results/claims.md),
written from a timed `make all` (``benchmarks/first_run_benchmark.py``: ``run.json`` and the run's tables).

Rows: T1 (time to the target SSIM, ours vs DDPM, dsm where present), T2 (time reduction of
every solver vs ``spsolve``, and the largest final residual and score error) and T4 (mean
SSIM after a fixed budget); the paper's column holds its published values (``fpscore.tables``).

    python benchmarks/claims_table.py                  # print the block
    python benchmarks/claims_table.py --write          # replace the block in docs/results/claims.md
    python benchmarks/claims_table.py --check          # exit 1 when the block there is stale
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import add_output_options, emit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "benchmarks" / "results" / "first_run"
TARGET = REPO / "docs" / "results" / "claims.md"
BEGIN, END = "<!-- claims-table:begin -->", "<!-- claims-table:end -->"


def _seconds(value: float, reached: bool) -> str:
    return f"{value:.1f} s" if reached else f"not reached in {value:.0f} s"


def _where(row) -> str:
    return f"{row['dataset']} {int(row['resolution'])}×{int(row['resolution'])}"


def t1_rows(t1: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in t1.iterrows():
        protocol = f", {r['protocol']}" if "protocol" in r and isinstance(r["protocol"], str) else ""
        paper = (f"{r['paper_ours_s']:.2f} s vs {r['paper_ddpm_s']:.2f} s ({r['paper_speedup']:.1f}x, "
                 f"{r['paper_dataset']} to {r['paper_target_ssim']:g})" if not pd.isna(r.get("paper_ours_s"))
                 else "not reported")
        ours = (f"{_seconds(r['ours_total_s'], r['ours_reached'])} (pre-computation {r['ours_precompute_s']:.2g} s)"
                f" vs DDPM {_seconds(r['ddpm_s'], r['ddpm_reached'])}: {r['speedup_text']}")
        if "dsm_s" in r and not pd.isna(r["dsm_s"]):
            ours += f"; dsm {_seconds(r['dsm_s'], r['dsm_reached'])}: {r['dsm_over_ours_text']}"
        rows.append([f"time to SSIM {r['target_ssim']:g}, ours vs DDPM ({_where(r)}{protocol})", paper, ours])
    return rows


def t2_rows(t2: pd.DataFrame) -> list[list[str]]:
    rows = []
    for (dataset, res), g in t2.groupby(["dataset", "resolution"], sort=False):
        where = _where({"dataset": dataset, "resolution": res})
        others = g[g["solver"] != "spsolve"]
        cut = ", ".join(f"{s} {p:.1f} %" for s, p in zip(others["solver"], others["reduction_pct"]))
        rows.append([f"time reduction vs spsolve ({where}, assembly + solve seconds of the solve logs)",
                     str(g["paper_reduction"].iloc[0]).replace("-", "–"), cut])
        error = others["score_rel_error"].max() if "score_rel_error" in others else math.nan
        rows.append([f"max final residual / score error vs spsolve ({where})", "not reported",
                     f"{g['max_final_residual'].max():.1e} / {error:.1e}"])
    return rows


def t4_rows(t4: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in t4.iterrows():
        paper = (f"{r['paper_ours_ssim']:.4f} vs {r['paper_ddpm_ssim']:.4f} after {r['paper_budget_s']:.0f} s"
                 if not pd.isna(r.get("paper_ours_ssim")) else "not reported")
        ours = f"{r['ours_ssim']:.4f} vs {r['ddpm_ssim']:.4f}"
        if "dsm_ssim" in r and not pd.isna(r["dsm_ssim"]):
            ours += f" (dsm {r['dsm_ssim']:.4f})"
        rows.append([f"fixed budget, mean SSIM ours vs DDPM ({_where(r)})", paper, f"{ours} after {r['budget_s']:.0f} s"])
    return rows


def block(run_dir: Path = RUN) -> str:
    """The block of docs/results/claims.md: the run's facts, then the table."""
    try:
        run = json.loads((run_dir / "run.json").read_text())
        tables = {name: pd.read_csv(run_dir / "tables" / f"{name}.csv")
                  for name in ("t1_time_to_ssim", "t2_solvers", "t4_budget")}
    except FileNotFoundError as err:
        raise SystemExit(f"{err.filename} is missing: run benchmarks/first_run_benchmark.py first") from None
    minutes, seconds = divmod(round(run["wall_s"]), 60)
    head = (f"`make all` (`snakemake --cores {run['cores']} all`) from a fresh clone of commit "
            f"`{run['commit'][:7]}`: {run['jobs']} jobs in {minutes} min {seconds} s on {run['cpus']} cores "
            f"(load average {run['load_before'][0]:.2f} before, {run['load_after'][0]:.2f} after; the "
            f"one-time environment build excluded; largest process {run['max_process_rss_mb']} MB).")
    lines = ["| claim | paper | this project, embedded default |", "|---|---|---|"]
    for cells in (t1_rows(tables["t1_time_to_ssim"]) + t2_rows(tables["t2_solvers"])
                  + t4_rows(tables["t4_budget"])):
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n\n" + "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=RUN, help="the first-run folder (default %(default)s)")
    add_output_options(p, TARGET)
    args = p.parse_args(argv)
    return emit(args, block(args.run), BEGIN, END, str(args.run))


if __name__ == "__main__":
    sys.exit(main())

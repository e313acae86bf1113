"""`make all` on the embedded default from a fresh clone, timed: every user's first impression.

Clones the committed HEAD of this repository into a scratch folder, runs
``snakemake --cores N all`` there with this checkout's environment (the one-time
environment build is excluded, as the README's 30-minute target states), and saves in
``--out`` (default ``benchmarks/results/first_run``): ``run.json`` (commit, wall seconds,
jobs run, cores, load averages before and after, the largest resident memory of any
process of the run) and a copy of the run's ``results/tables/*.csv``, from which
``benchmarks/claims_table.py`` writes the README's table of the paper's claims.

    python benchmarks/first_run_benchmark.py --cores 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DONE = re.compile(r"(\d+) of (\d+) steps \(100%\) done")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores (default %(default)s)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "first_run",
                   help="where run.json and the tables go (default %(default)s)")
    p.add_argument("--keep", type=Path, default=None, help="clone here and keep it (default: a temporary folder)")
    args = p.parse_args(argv)
    if git("status", "--porcelain", "--untracked-files=no"):
        print("note: the checkout has uncommitted changes; the clone runs the committed HEAD", file=sys.stderr)
    snakemake = Path(sys.executable).with_name("snakemake")
    work = args.keep or Path(tempfile.mkdtemp(prefix="fpscore-first-run-"))
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True, capture_output=True,
                                text=True).stdout.strip()
        env = dict(os.environ, PATH=f"{snakemake.parent}{os.pathsep}{os.environ.get('PATH', '')}")
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        with open(work / "snakemake.log", "w") as log:
            done = subprocess.run([str(snakemake), "--cores", str(args.cores), "all"], cwd=clone, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
        text = (work / "snakemake.log").read_text()
        if done.returncode != 0:
            raise SystemExit(f"snakemake all failed (exit {done.returncode}); its log: {work / 'snakemake.log'}\n"
                             f"{text[-3000:]}")
        steps = DONE.findall(text)
        if not steps:
            raise SystemExit(f"no '... steps (100%) done' line in {work / 'snakemake.log'}")
        tables = sorted((clone / "results" / "tables").glob("*.csv"))
        out_tables = args.out / "tables"
        if out_tables.exists():
            shutil.rmtree(out_tables)
        out_tables.mkdir(parents=True)
        for table in tables:
            shutil.copyfile(table, out_tables / table.name)
        run = {"commit": commit, "cores": args.cores, "wall_s": round(wall, 1), "jobs": int(steps[-1][1]),
               "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
               "max_process_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
               "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
               "tables": [t.name for t in tables]}
        (args.out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
        print(json.dumps(run, indent=1))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

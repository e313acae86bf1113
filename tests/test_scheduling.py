"""Timed work (score shards and their preparation, the solver benchmark, training) never runs
on more CPUs at once than the machine has, whatever --cores says: those rules take the
`timed_cpus` resource, which the Snakefile limits to the machine's CPUs on local runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMED_RULES = {"scores_prepare", "scores_shard", "solver_benchmark", "train"}


def _dry_run_resources(tmp_path) -> dict[str, set[int | None]]:
    """rule -> the timed_cpus values of its jobs in a dry run of `all` with --cores 8 (None: not set)."""
    exe = Path(sys.executable).with_name("snakemake")
    result = subprocess.run([str(exe), "-n", "all", "--cores", "8", "--directory", str(tmp_path),
                             "--configfile", str(REPO / "config" / "config.yaml")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    found: dict[str, set[int | None]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule and rule.group(1) != "all":
            value = re.search(r"timed_cpus=(\d+)", block)
            found.setdefault(rule.group(1), set()).add(int(value.group(1)) if value else None)
    return found


def test_timed_rules_take_timed_cpus_capped_at_the_machine(tmp_path):
    found = _dry_run_resources(tmp_path)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert TIMED_RULES <= set(found), sorted(found)
    for rule, values in found.items():
        if rule in TIMED_RULES:
            assert None not in values and all(1 <= v <= cpus for v in values), (rule, values)
        else:
            assert values == {None}, (rule, values)  # untimed work is not held back

"""The Slurm profile: plans with the intended resources, and runs the workflow on a real Slurm.

The cluster test (marker `slurm`, `make test-slurm`) installs Debian's Slurm and
munge packages if missing, starts a single-node cluster as root
(tests/slurm_cluster.py), runs a miniature workflow through
workflow/profiles/slurm, checks that the jobs went through Slurm, and compares
the outputs with those of a local run. It only runs when selected with
`-m slurm` (it changes /etc/slurm while it runs) and is skipped, with the
reason, where it cannot run (not root, no apt-get, Slurm does not start).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import SlurmCluster, SlurmUnavailable  # noqa: E402
from fpscore.config import schema_default  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
CONFIGS = [REPO / "tests" / "configs" / "tiny.yaml", REPO / "tests" / "configs" / "slurm.yaml"]
# What the miniature run builds: data, the sharded scores of 4 faces (2 shards),
# and a tiny training + sampling run (budget_faces16_n2 of tests/configs/tiny.yaml).
DATA = "results/data/faces/16/images.npz"
SCORES = f"results/scores/faces/16/{schema_default('scores.solver')}/scores"
SAMPLES = "results/samples/budget_faces16_n2/ours/samples.npz"
TARGETS = [DATA, SCORES, SAMPLES]
COMPARED = [DATA, SCORES]  # deterministic; training stops on a wall-clock budget
# Rules that must run as Slurm jobs for TARGETS, and how many jobs each.
SLURM_JOBS = {"prepare_data": 1, "scores_shard": 2, "scores_merge": 1, "train": 1, "sample": 1}
GPU_RULES = {"train", "sample"}
PARTITIONS = {"partitions": {"cpu": {"max_runtime": 1440, "max_mem_mb": 32768},
                             "gpu": {"max_runtime": 1440, "max_mem_mb": 32768, "max_gpu": 1}}}
RUN_TIMEOUT_S = 900  # a hung Snakemake ignores SIGTERM: `timeout -s INT` stops it


def _env() -> dict[str, str]:
    """The environment of a workflow run: the venv's bin first, so rules find `fpscore`."""
    venv_bin = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""))


def _snakemake(workdir: Path, options: list[str], targets: list[str] = (), timeout: float = RUN_TIMEOUT_S):
    cmd = ["timeout", "-s", "INT", "-k", "30", str(int(timeout)), sys.executable, "-m", "snakemake",
           "-s", str(REPO / "Snakefile"), "-d", str(workdir), *options,
           "--configfile", *map(str, CONFIGS), "--", *targets]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout + 60)
    return res, res.stdout + res.stderr


def _profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


# ---- the profile file itself (run by `make test`) ------------------------------------------

def test_profile_entries_are_commented():
    """Every top-level entry of the profile has a comment right above it saying why."""
    lines = (PROFILE / "config.yaml").read_text().splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"^[a-z][\w-]*:", line)]
    assert keys, "profile has no entries"
    uncommented = [lines[i] for i in keys if i == 0 or not lines[i - 1].lstrip().startswith("#")]
    assert not uncommented, f"profile entries without a comment above: {uncommented}"


def test_profile_leaves_account_and_partition_to_the_user():
    text = yaml.safe_dump(_profile())
    assert "slurm_account" not in text and "slurm_partition" not in text
    assert _profile()["slurm-status-command"] == "squeue"  # sacct hangs without slurmdbd


def test_profile_dry_run_plans_with_profile_resources(tmp_path):
    """`snakemake --profile ... -n` plans the miniature run; every job shows the profile's resources."""
    res, log = _snakemake(tmp_path, ["--profile", str(PROFILE), "-n"], TARGETS, timeout=120)
    assert res.returncode == 0, log[-3000:]
    planned = dict(re.findall(r"^(?:local)?rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", res.stdout, re.M))
    assert set(planned) == set(SLURM_JOBS), planned
    profile = _profile()
    for rule, line in planned.items():
        resources = dict(kv.split("=", 1) for kv in line.split(", "))
        # a rule's own value beats default-resources, set-resources beats both
        assert set(profile["default-resources"]) <= set(resources), f"rule {rule}: {resources}"
        for key, value in profile["set-resources"].get(rule, {}).items():
            assert resources.get(key) == str(value), f"rule {rule}: {key}={resources.get(key)}, profile says {value}"
    assert {r for r in planned if "gpu" in dict(kv.split("=", 1) for kv in planned[r].split(", "))} == GPU_RULES


def test_profile_names_only_rules_of_the_workflow(tmp_path):
    """A rule name misspelt in set-resources or set-threads is silently ignored by Snakemake."""
    res, log = _snakemake(tmp_path, ["--list-rules"], timeout=120)
    assert res.returncode == 0, log[-3000:]
    rules = set(res.stdout.split())
    profile = _profile()
    named = set(profile["set-resources"]) | set(profile["set-threads"])
    assert named <= rules, f"profile names rules the workflow lacks: {sorted(named - rules)}"


# ---- a real single-node Slurm ----------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    markexpr = request.config.getoption("markexpr") or ""
    if "slurm" not in markexpr or "not slurm" in markexpr:
        pytest.skip("installs and starts Slurm daemons as root: run it with `-m slurm` (make test-slurm)")
    c = SlurmCluster(tmp_path_factory.mktemp("slurm_state"))
    try:
        c.start()
    except SlurmUnavailable as err:
        c.stop()
        pytest.skip(f"cannot bring up a test Slurm: {err}")
    except BaseException:
        c.stop()
        raise
    print(f"\nSlurm: install {c.install_seconds:.1f} s, start {c.start_seconds:.1f} s", file=sys.stderr)
    try:
        yield c
    finally:
        c.stop()


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file or of a directory of .npy files (a score set)."""
    if path.is_dir():
        return {f.stem: np.load(f, allow_pickle=False) for f in sorted(path.glob("*.npy"))}
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.slurm
def test_workflow_runs_through_slurm_and_matches_local(cluster, tmp_path):
    t0 = time.perf_counter()
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    res, log = _snakemake(local, ["--cores", "2"], COMPARED)
    assert res.returncode == 0, f"local run failed:\n{log[-3000:]}"
    t_local = time.perf_counter() - t0

    # The profile as the README runs it on a cluster with a GPU partition; the test
    # only shortens the first status delay (seconds matter here, not on a cluster)
    # and keeps the logs of successful jobs.
    partitions = tmp_path / "partitions.yaml"
    partitions.write_text(yaml.safe_dump(PARTITIONS))
    options = ["--profile", str(PROFILE), "--slurm-partition-config", str(partitions),
               "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]
    res, log = _snakemake(slurm, options, TARGETS)
    t_slurm = time.perf_counter() - t0 - t_local
    assert res.returncode == 0, f"Slurm run failed (exit {res.returncode}):\n{log[-3000:]}\n{cluster.log_tails()}"

    # Jobs went through Slurm: Snakemake reports a Slurm job id per job, Slurm's
    # completion log lists the same ids under the run's job name, completed.
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", log))
    completed = {j["JobId"]: j for j in cluster.completed_jobs() if j.get("Name") == run_id}
    assert submitted, f"no job was submitted to Slurm:\n{log[-3000:]}"
    assert submitted == set(completed), f"snakemake submitted {submitted}, slurm completed {sorted(completed)}"
    assert {j["JobState"] for j in completed.values()} == {"COMPLETED"}, completed
    # squeue still lists them (MinJobAge): the comment names the rule, and GPU
    # jobs ran in the GPU partition with a GPU, the others in the CPU partition.
    queue = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%j|%k|%T|%P"],
                           capture_output=True, text=True, timeout=30).stdout
    jobs = [line.split("|") for line in queue.splitlines()]
    per_rule: dict[str, list[str]] = {}
    for jobid, name, comment, state, partition in jobs:
        if name == run_id:
            assert state == "COMPLETED", (jobid, comment, state)
            rule = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", comment).group(1)
            per_rule.setdefault(rule, []).append(partition)
    assert {r: len(p) for r, p in per_rule.items()} == SLURM_JOBS, per_rule
    for rule, parts in per_rule.items():
        assert set(parts) == {"gpu" if rule in GPU_RULES else "cpu"}, (rule, parts)
    slurm_logs = list((slurm / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in slurm_logs} >= submitted, "a Slurm job has no log under .snakemake/slurm_logs"
    assert _arrays(slurm / SAMPLES)["images"].shape[0] > 0

    # Same outputs as the local run.
    for target in COMPARED:
        a, b = _arrays(local / target), _arrays(slurm / target)
        assert a.keys() == b.keys(), target
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{target}:{key}")
    print(f"local {t_local:.1f} s, slurm {t_slurm:.1f} s, {len(submitted)} Slurm jobs", file=sys.stderr)

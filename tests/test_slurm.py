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

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"
CONFIGS = [REPO / "tests" / "configs" / "tiny.yaml", REPO / "tests" / "configs" / "slurm.yaml"]
# What the miniature run builds: the data stage and the sharded scores of 4 faces.
TARGETS = [
    "results/data/faces/16/images.npz",
]
# Rules that must have run as Slurm jobs (not on the submit host) for TARGETS.
SLURM_RULES = {"prepare_data"}
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
    """`snakemake --profile ... -n` plans the miniature run; each job shows the profile's resources."""
    res, log = _snakemake(tmp_path, ["--profile", str(PROFILE), "-n"], TARGETS, timeout=120)
    assert res.returncode == 0, log[-3000:]
    planned = dict(re.findall(r"^(?:local)?rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", res.stdout, re.M))
    assert set(planned) >= SLURM_RULES, planned
    profile = _profile()
    for rule, line in planned.items():
        resources = dict(kv.split("=", 1) for kv in line.split(", "))
        wanted = {**profile["default-resources"], **profile.get("set-resources", {}).get(rule, {})}
        for key, value in wanted.items():
            assert resources.get(key) == str(value), f"rule {rule}: {key}={resources.get(key)}, profile says {value}"


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
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.slurm
def test_workflow_runs_through_slurm_and_matches_local(cluster, tmp_path):
    t0 = time.perf_counter()
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    res, log = _snakemake(local, ["--cores", "2"], TARGETS)
    assert res.returncode == 0, f"local run failed:\n{log[-3000:]}"
    t_local = time.perf_counter() - t0

    # The profile as a user would run it; the test only shortens the first status
    # delay (seconds matter here, not on a cluster) and keeps successful job logs.
    options = ["--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "2",
               "--slurm-keep-successful-logs"]
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
    # squeue still shows them (MinJobAge); their comments name the rules that ran there.
    queue = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%j|%k|%T"],
                           capture_output=True, text=True, timeout=30).stdout
    ran = {re.match(r"rule_(.+?)(?:_wildcards_.*)?$", comment).group(1)
           for jobid, name, comment, state in (line.split("|") for line in queue.splitlines())
           if name == run_id and state == "COMPLETED"}
    assert ran >= SLURM_RULES, f"rules run through Slurm: {ran}, expected at least {SLURM_RULES}"
    slurm_logs = list((slurm / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert {p.stem for p in slurm_logs} >= submitted, "a Slurm job has no log under .snakemake/slurm_logs"

    # Same outputs as the local run.
    for target in TARGETS:
        a, b = _arrays(local / target), _arrays(slurm / target)
        assert a.keys() == b.keys(), target
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{target}:{key}")
    print(f"local {t_local:.1f} s, slurm {t_slurm:.1f} s, {len(submitted)} Slurm jobs", file=sys.stderr)

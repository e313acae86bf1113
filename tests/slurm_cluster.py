"""A throwaway single-node Slurm cluster on this machine, for tests.

Brings up munged, slurmctld and slurmd (Debian's 22.05 packages, installed with
apt-get when missing) as root, with all state, logs and PID files in a private
folder, and tears down only the daemons it started, by PID.  Why each setting:

* the config must live at /etc/slurm/slurm.conf: the jobstep plugin drops
  SLURM_CONF before its inner srun, so a config elsewhere breaks every job.
  An existing /etc/slurm/slurm.conf (or gres.conf) is restored on stop.
* no systemd here: munged runs as user munge after /run/munge is created;
  proctrack/linuxproc and task/none need no cgroups.
* no slurmdbd: completed jobs are recorded with jobcomp/filetxt, so a test can
  prove which jobs ran through Slurm; MinJobAge stays at 300 s so squeue (the
  profile's status command) still sees finished jobs.
* one GPU is advertised as a GRES on /dev/null so rules asking for `gpu: 1`
  are scheduled (they run on the CPU); partitions `cpu` (default) and `gpu`
  share the node, so GPU routing can be tested.

Use as a context manager (``with SlurmCluster(folder) as cluster: ...``) or run
``python tests/slurm_cluster.py up FOLDER`` to keep one up by hand (Ctrl-C or
SIGTERM to that process stops it and the daemons).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("slurmctld", "slurmd", "slurmstepd", "munged")
SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")
MUNGE_RUN = Path("/run/munge")
MUNGE_SOCKET = MUNGE_RUN / "munge.socket.2"
MUNGE_KEY = Path("/etc/munge/munge.key")
START_TIMEOUT_S = 30.0
ADVERTISED_MEM_MB = 32768


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be brought up here; the message says why (a skip reason)."""


def _run(cmd, timeout=60.0, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def running_daemons() -> dict[str, list[int]]:
    """PIDs of Slurm/munge daemons running on this machine, by name (from /proc)."""
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if name in DAEMONS:
            found.setdefault(name, []).append(int(entry.name))
    return found


def ensure_installed() -> float:
    """Install the Slurm and munge packages with apt-get if missing; return seconds spent.

    Raises SlurmUnavailable when not root, without apt-get, or when the install fails.
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("needs root to install and start Slurm daemons")
    tools = ("slurmctld", "slurmd", "sbatch", "squeue", "munged")
    if all(shutil.which(t) or Path("/usr/sbin", t).exists() for t in tools):
        return 0.0
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"Slurm is not installed and there is no apt-get to install {PACKAGES}")
    t0 = time.perf_counter()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    res = _run(install, timeout=600, env=env)
    if res.returncode != 0:  # stale or missing package lists: update once, retry
        _run(["apt-get", "update"], timeout=600, env=env)
        res = _run(install, timeout=600, env=env)
    if res.returncode != 0:
        raise SlurmUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {res.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def node_line(gpus: int) -> str:
    """The NodeName line for this machine: `slurmd -C`'s CPUs, renamed localhost."""
    res = _run(["slurmd", "-C"], timeout=30)
    first = res.stdout.splitlines()[0] if res.returncode == 0 and res.stdout else ""
    if not first.startswith("NodeName="):
        raise SlurmUnavailable(f"`slurmd -C` did not describe this node: {res.stdout!r} {res.stderr!r}")
    fields = [f for f in first.split()[1:] if not f.startswith(("UpTime", "RealMemory"))]
    real_mb = int(re.search(r"RealMemory=(\d+)", first).group(1))
    # Advertise at least ADVERTISED_MEM_MB (with SlurmdParameters=config_overrides)
    # so jobs sized for a cluster node (training asks 16 GB) are accepted on a small
    # machine; task/none enforces no limit, so nothing is really reserved.
    fields.append(f"RealMemory={max(real_mb, ADVERTISED_MEM_MB)}")
    gres = [f"Gres=gpu:{gpus}"] if gpus else []
    return " ".join(["NodeName=localhost", *fields, *gres, "State=UNKNOWN"])


def render_conf(state: Path, node: str, gpus: int) -> str:
    """slurm.conf text for a single node with all state under `state`."""
    lines = [
        "# Written by tests/slurm_cluster.py for a throwaway test cluster; restored on stop.",
        "ClusterName=fpscoretest",
        "SlurmctldHost=localhost",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={state}/ctld",
        f"SlurmdSpoolDir={state}/spool",
        f"SlurmctldPidFile={state}/slurmctld.pid",
        f"SlurmdPidFile={state}/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log",
        f"SlurmdLogFile={state}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "MpiDefault=none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=1",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={state}/jobcomp.log",
        "MinJobAge=300",
        "SlurmdParameters=config_overrides",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
        "InactiveLimit=0",
        "KillWait=5",
        "Waittime=0",
    ]
    if gpus:
        lines.append("GresTypes=gpu")
    # Two partitions on the one node, so a test can check that GPU jobs are routed
    # to the GPU partition (the plugin's --slurm-partition-config) and others are not.
    lines += [node, "PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP"]
    if gpus:
        lines.append("PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP")
    lines.append("")
    return "\n".join(lines)


class SlurmCluster:
    """A single-node Slurm cluster whose state lives in `state`; see the module docstring."""

    def __init__(self, state: Path, gpus: int = 1):
        self.state = Path(state).resolve()
        self.gpus = gpus
        self.install_seconds = 0.0
        self.start_seconds = 0.0
        self._procs: dict[str, subprocess.Popen] = {}
        self._saved: dict[Path, bytes | None] = {}
        self._made_munge_run = False

    # paths a test reads
    @property
    def jobcomp_log(self) -> Path:
        return self.state / "jobcomp.log"

    @property
    def slurmctld_log(self) -> Path:
        return self.state / "slurmctld.log"

    def __enter__(self) -> "SlurmCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Install if needed, write the config, start the daemons, wait for an idle node."""
        self.install_seconds = ensure_installed()
        busy = {k: v for k, v in running_daemons().items() if k != "munged"}
        if busy:
            raise SlurmUnavailable(f"Slurm daemons already run on this machine ({busy}); not touching them")
        t0 = time.perf_counter()
        for sub in ("ctld", "spool"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self._start_munge()
        self._write(SLURM_CONF, render_conf(self.state, node_line(self.gpus), self.gpus))
        if self.gpus:
            self._write(GRES_CONF, f"NodeName=localhost Name=gpu Count={self.gpus} File=/dev/null\n")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait(lambda: _run(["scontrol", "ping"], timeout=10).stdout.count("UP") > 0, "slurmctld to answer ping")
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost"])
        self._wait(self._node_idle, "node localhost to become idle")
        self.start_seconds = time.perf_counter() - t0

    def _node_idle(self) -> bool:
        out = _run(["sinfo", "-h", "-n", "localhost", "-o", "%T"], timeout=10).stdout.strip()
        return out.startswith("idle")

    def _start_munge(self) -> None:
        if MUNGE_SOCKET.exists() and _run(["sh", "-c", "munge -n | unmunge"], timeout=10).returncode == 0:
            return  # a working munged is already here: use it, leave it alone
        munge = pwd.getpwnam("munge")
        if not MUNGE_RUN.exists():
            MUNGE_RUN.mkdir(mode=0o755)
            self._made_munge_run = True
        os.chown(MUNGE_RUN, munge.pw_uid, munge.pw_gid)
        if not MUNGE_KEY.exists():
            raise SlurmUnavailable(f"{MUNGE_KEY} is missing (the munge package creates it on install)")
        self._spawn("munged", ["munged", "--foreground"], user=munge.pw_uid, group=munge.pw_gid)
        self._wait(lambda: _run(["sh", "-c", "munge -n | unmunge"], timeout=10).returncode == 0, "munged")

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        log = open(self.state / f"{name}.out", "ab")
        self._procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        log.close()

    def _write(self, path: Path, text: str) -> None:
        if path not in self._saved:
            self._saved[path] = path.read_bytes() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [n for n, p in self._procs.items() if p.poll() is not None]
            if dead:
                raise SlurmUnavailable(f"{dead} exited while waiting for {what}:\n{self.log_tails()}")
            if ready():
                return
            time.sleep(0.3)
        raise SlurmUnavailable(f"timed out after {START_TIMEOUT_S:.0f} s waiting for {what}:\n{self.log_tails()}")

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every daemon log, for error messages."""
        out = []
        for log in sorted(self.state.glob("*.log")) + sorted(self.state.glob("*.out")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def completed_jobs(self) -> list[dict[str, str]]:
        """Jobs Slurm recorded as finished (jobcomp/filetxt): one dict of KEY=value fields each."""
        if not self.jobcomp_log.exists():
            return []
        jobs = []
        for line in self.jobcomp_log.read_text().splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if fields:
                jobs.append(fields)
        return jobs

    def stop(self) -> None:
        """Cancel remaining jobs, stop the daemons this object started (by PID), restore configs."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            ids = _run(["squeue", "-h", "-o", "%i"], timeout=10).stdout.split()
            if ids:
                _run(["scancel", *ids], timeout=10)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and _run(["squeue", "-h", "-t", "R,CG"], timeout=10).stdout.strip():
                    time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for path, content in self._saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        self._saved.clear()
        if self._made_munge_run:
            shutil.rmtree(MUNGE_RUN, ignore_errors=True)
            self._made_munge_run = False


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "up":
        print(f"usage: {argv[0]} up STATE_FOLDER", file=sys.stderr)
        return 2
    # A background job started from a script ignores SIGINT: stop on SIGTERM too.
    signal.signal(signal.SIGTERM, _interrupt)
    with SlurmCluster(Path(argv[2])) as cluster:
        print(f"Slurm up in {cluster.start_seconds:.1f} s (install {cluster.install_seconds:.1f} s); "
              f"state in {cluster.state}. Ctrl-C stops it.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

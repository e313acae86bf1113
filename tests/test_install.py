"""The package stands alone: `pip install .` (not editable) into a fresh virtual environment outside the
repository, then `fpscore --help` and `fpscore scores` on a tiny images file (the schema is package data)."""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv in a temporary folder with fpscore installed from a copy of the sources; the
    dependencies (and pip, setuptools) come from this environment's site-packages, so nothing is downloaded."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    # appended after the venv's own site-packages: the installed fpscore wins over this environment's
    # editable one (whose .pth hooks are not run for a directory added by a plain path line)
    (purelib / "zz_dependencies.pth").write_text("\n".join(sorted(p for p in ours if Path(p).is_dir())) + "\n")
    result = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                             "--quiet", str(source)], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, venv


def test_fresh_install_runs_outside_the_repository(installed):
    root, venv = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # only what was installed
    run = dict(capture_output=True, text=True, cwd=root, timeout=600, env=env)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import fpscore, fpscore.config as c; "
                            "print(fpscore.__file__); print(c.schema_path())"], **run)
    assert where.returncode == 0, where.stderr
    module, schema = where.stdout.split()
    assert Path(module).is_relative_to(venv) and Path(schema).is_file() and Path(schema).is_relative_to(venv)
    assert not Path(module).is_relative_to(REPO)

    help_ = subprocess.run([str(venv / "bin" / "fpscore"), "--help"], **run)
    assert help_.returncode == 0 and "scores" in help_.stdout, help_.stderr

    images = root / "images.npz"
    rng = np.random.default_rng(0)
    np.savez(images, images=rng.uniform(0.2, 0.8, (2, 1, 8, 8)).astype(np.float32), names=np.array(["a", "b"]))
    out, log = root / "scores.npz", root / "solve_log.csv"
    scores = subprocess.run([str(venv / "bin" / "fpscore"), "scores", "--images", str(images), "--solver", "spsolve",
                             "--n-times", "3", "--kde-bins", "16", "--no-progress", "--out", str(out), "--log", str(log)],
                            **run)
    assert scores.returncode == 0, scores.stdout + scores.stderr
    with np.load(out) as f:
        assert f["scores"].shape == (2, 1, 3, 8, 8) and np.isfinite(f["scores"]).all()
    assert log.read_text().count("\n") > 1

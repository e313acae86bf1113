"""The scale benchmark reads every job's peak memory from the line each `fpscore` step ends
its log with, grouped by kind of job; a log without it is an error naming the file."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import cifar_scale_benchmark as scale  # noqa: E402

from fpscore.cli import main  # noqa: E402


def _step_log(tmp_path, capsys) -> str:
    """The stderr of a real step (``fpscore data-subset``), as its workflow log would hold it."""
    images = tmp_path / "images.npz"
    np.savez(images, images=np.zeros((3, 1, 4, 4), np.float32), names=np.array(["a", "b", "c"]))
    rc = main(["data-subset", "--images", str(images), "--count", "2", "--out", str(tmp_path / "sub.npz"),
               "--manifest", str(tmp_path / "sub.json")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out + captured.err


def test_job_peaks_by_kind(tmp_path, capsys):
    real = _step_log(tmp_path, capsys)
    logs = tmp_path / "logs"
    (logs / "data").mkdir(parents=True)
    (logs / "scores").mkdir()
    (logs / "data" / "cifar10_32.log").write_text(real)
    for i, mb in enumerate((650, 700, 640)):
        (logs / "scores" / f"cifar10_32_batched_shard{i}.log").write_text(
            f"warning: ...\nfpscore scores: peak memory {mb} MB\n")
    (logs / "scores" / "cifar10_32_batched_merge.log").write_text("fpscore scores-merge: peak memory 1200 MB\n")
    peaks = scale.job_peaks(logs)
    assert len(peaks) == 5 and peaks["scores/cifar10_32_batched_shard1.log"] == 700
    assert peaks["data/cifar10_32.log"] > 0  # the real step's line parses
    kinds = scale.peaks_by_kind(peaks)
    assert kinds["shard"] == {"jobs": 3, "median_mb": 650.0, "max_mb": 700.0}
    assert kinds["merge"]["max_mb"] == 1200 and kinds["data"]["jobs"] == 1 and "other" not in kinds


def test_a_log_without_the_line_is_named(tmp_path):
    (tmp_path / "scores").mkdir()
    bad = tmp_path / "scores" / "cifar10_32_ksp_shard0.log"
    bad.write_text("fpscore scores: error: images.npz is not a valid .npz file\n")
    with pytest.raises(ValueError, match="cifar10_32_ksp_shard0.log has no"):
        scale.job_peaks(tmp_path)


def test_process_mode_measures_both_and_the_ratio(tmp_path):
    """--process: the whole `fpscore scores` process per channel, spsolve-Picard beside it with and without
    its start-up, medians and ranges over the repeats, the load around every run."""
    out = tmp_path / "process.json"
    assert scale.main(["--process", "--images", "2", "--repeats", "1", "--spsolve-images", "1", "--json", str(out),
                       "--workdir", str(tmp_path / "work")]) == 0
    import json

    summary = json.loads(out.read_text())["summary"]
    assert summary["this_cpu_ms_per_channel"]["median"] > 0
    assert summary["speedup_over_spsolve-picard_wall"]["median"] > 1
    assert 0 < summary["spsolve-picard_wall_without_startup_ms_per_channel"]["median"] < \
        summary["spsolve-picard_wall_ms_per_channel"]["median"]
    assert summary["this_startup_s"]["median"] > 0

"""`fpscore train` / `fpscore sample` end to end on an 8x8 image set, and their input errors."""
import json

import numpy as np
import pandas as pd
import pytest

from fpscore.cli import main
from fpscore.diffusion.sde import VESDE

TINY = ["--base-channels", "8", "--channel-mults", "1", "2", "--attn-resolutions", "--batch-size", "4",
        "--threads", "1", "--device", "cpu", "--no-progress", "--sampler-method", "heun", "--sampler-heun-steps", "4",
        "--ddpm-timesteps", "20", "--ddpm-sampler", "ddim", "--ddpm-ddim-steps", "4", "--eval-samples", "1"]
NO_SKIP = [*TINY, "--no-skip-invalid"]  # the baselines by hand, without a score set (learn.skip_invalid is on)
pytestmark = pytest.mark.usefixtures("torch_one_thread")  # and restores the thread count fpscore sets


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((3, 1, 8, 8)).astype(np.float32)
    names = np.array(["a", "b", "c"])
    np.savez(tmp_path / "images.npz", images=images, names=names)
    sde = VESDE(n_times=5)
    params = json.dumps({"fp": {"sigma": 5.0, "eps": 1e-3, "n_times": 5, "boundary": "reflect", "scheme": "minimal"},
                         "solver": {"solver": "spsolve"}})
    np.savez(tmp_path / "scores.npz", m=np.zeros((3, 1, 5, 8, 8), np.float32),
             scores=0.01 * rng.standard_normal((3, 1, 5, 8, 8)).astype(np.float32), times=sde.times(),
             g=sde.g(sde.times()), names=names, params=np.array(params),
             picard_iterations=np.full((3, 1), 2), converged=np.ones((3, 1), bool),
             within_bound=np.ones((3, 1), bool), nu_active=np.zeros((3, 1)), valid=np.ones((3, 1), bool))
    pd.DataFrame({"image": [0, 0, 1, 2], "channel": 0, "assemble_seconds": [0.5, 0.25, 9.0, 9.0],
                  "solve_seconds": [1.0, 0.25, 9.0, 9.0]}).to_csv(tmp_path / "solve_log.csv", index=False)
    return tmp_path


def test_train_and_sample_ours(inputs, capsys):
    d = inputs
    rc = main(["train", "--method", "ours", "--images", str(d / "images.npz"), "--scores", str(d / "scores.npz"),
               "--score-log", str(d / "solve_log.csv"), "--indices", "0", "--stop", "steps", "--max-steps", "3",
               "--out", str(d / "model.pt"), "--log", str(d / "train_log.csv"), *TINY])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((d / "train_log.json").read_text())
    assert summary["steps"] == 3 and summary["method"] == "ours" and summary["image_indices"] == [0]
    assert summary["precompute_seconds"] == pytest.approx(2.0)  # image 0's rows of the solve log only
    log = pd.read_csv(d / "train_log.csv")
    assert list(log.columns) == ["step", "train_seconds", "eval_seconds", "loss", "ssim"]
    assert log["ssim"].notna().sum() == 1  # the final evaluation
    assert not (d / "model.pt.ckpt").exists()
    rc = main(["sample", "--model", str(d / "model.pt"), "--out", str(d / "samples.npz"), "--sampler-n-samples", "2",
               "--sampler-progression-steps", "3", "--threads", "1", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    with np.load(d / "samples.npz") as s:
        assert s["images"].shape == (2, 1, 8, 8) and s["states"].shape == (3, 2, 1, 8, 8)
        assert s["times"][0] == 1.0 and str(s["sampler"]).startswith("heun(4)") and str(s["method"]) == "ours"
        assert s["images"].min() >= 0 and s["images"].max() <= 1


def test_train_and_sample_ddpm_with_target(inputs, capsys):
    d = inputs
    rc = main(["train", "--method", "ddpm", "--images", str(d / "images.npz"), "--count", "2",
               "--stop", "target_ssim", "--target-ssim", "0.99", "--time-cap-seconds", "0.5", "--eval-every-seconds", "0.2",
               "--experiment", "denoise_x", "--dataset", "faces",
               "--out", str(d / "model.pt"), "--log", str(d / "log.csv"), "--summary", str(d / "s.json"), *NO_SKIP])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((d / "s.json").read_text())
    assert (summary["experiment"], summary["dataset"], summary["resolution"]) == ("denoise_x", "faces", 8)
    assert summary["reached"] is False and summary["time_to_target_seconds"] is None  # "> cap"
    assert summary["stopped_by"] == "time_cap" and summary["train_seconds"] >= 0.5
    assert summary["evaluations"] >= 2 and summary["eval_sampler"] == "ddim-4"
    rc = main(["sample", "--model", str(d / "model.pt"), "--out", str(d / "samples.npz"), "--sampler-n-samples", "1",
               "--ddpm-sampler", "ancestral", "--threads", "1", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    with np.load(d / "samples.npz") as s:
        assert str(s["sampler"]) == "ddpm-ancestral" and s["states"].shape[0] == 6
        # what the figures label the samples by, from the model's summary
        assert (str(s["experiment"]), str(s["dataset"]), str(s["method"])) == ("denoise_x", "faces", "ddpm")
        assert np.isnan(s["budget_seconds"])


def test_train_and_sample_dsm(inputs, capsys):
    d = inputs
    rc = main(["train", "--method", "dsm", "--images", str(d / "images.npz"), "--indices", "1", "--stop", "steps",
               "--max-steps", "3", "--parameterization", "eps", "--sde-sigma", "4", "--sde-n-times", "7",
               "--out", str(d / "model.pt"), "--log", str(d / "train_log.csv"), *NO_SKIP])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((d / "train_log.json").read_text())
    assert summary["method"] == "dsm" and summary["steps"] == 3 and summary["precompute_seconds"] is None
    desc = summary["method_description"]
    assert desc["parameterization"] == "eps" and desc["times"] == "uniform"
    assert desc["sde"] == {"sigma": 4.0, "eps": 1e-3, "n_times": 7}
    rc = main(["sample", "--model", str(d / "model.pt"), "--out", str(d / "samples.npz"), "--sampler-n-samples", "2",
               "--sampler-progression-steps", "3", "--sampler-heun-steps", "2", "--threads", "1", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    with np.load(d / "samples.npz") as s:
        assert s["images"].shape == (2, 1, 8, 8) and str(s["method"]) == "dsm"
        assert str(s["sampler"]).startswith("heun(2)")  # the command line overrides model.pt's sampler


@pytest.mark.parametrize("extra,match", [
    (["--method", "ours", "--stop", "steps", "--max-steps", "1"], "needs --scores"),
    (["--method", "dsm", "--stop", "steps", "--max-steps", "1", "--sde-sigma", "1"],
     "--sde-sigma: expected a number > 1, got 1.0 (config key scores.sigma)"),
    (["--method", "ddpm", "--stop", "target_ssim", "--target-ssim", "1.5"], "target_ssim: expected a number in"),
    (["--method", "ddpm", "--stop", "target_ssim", "--target-ssim", "0"], "target_ssim: expected a number in"),
    (["--method", "ddpm", "--stop", "budget", "--budget-seconds", "0"], "budget_seconds: expected a number > 0"),
    (["--method", "ddpm", "--stop", "budget", "--budget-seconds", "-3"], "budget_seconds: expected a number > 0"),
    (["--method", "ddpm", "--stop", "steps", "--max-steps", "1", "--indices", "7"], "out of range"),
])
def test_bad_train_inputs(inputs, capsys, extra, match):
    d = inputs
    rc = main(["train", "--images", str(d / "images.npz"), "--out", str(d / "m.pt"), "--log", str(d / "l.csv"),
               *NO_SKIP, *extra])
    assert rc == 2
    assert match in capsys.readouterr().err
    assert not (d / "m.pt").exists()


def test_mismatched_scores_are_a_clear_error(inputs, capsys):
    d = inputs
    with np.load(d / "scores.npz") as f:
        arrays = dict(f)
    np.savez(d / "bad.npz", **{**arrays, "scores": arrays["scores"][:, :, :, :4]})
    rc = main(["train", "--method", "ours", "--images", str(d / "images.npz"), "--scores", str(d / "bad.npz"),
               "--stop", "steps", "--max-steps", "1", "--out", str(d / "m.pt"), "--log", str(d / "l.csv"), *TINY])
    assert rc == 2 and "do not match the images" in capsys.readouterr().err
    np.savez(d / "bad.npz", **{**arrays, "names": np.array(["x", "y", "z"])})
    rc = main(["train", "--method", "ours", "--images", str(d / "images.npz"), "--scores", str(d / "bad.npz"),
               "--stop", "steps", "--max-steps", "1", "--out", str(d / "m.pt"), "--log", str(d / "l.csv"), *TINY])
    assert rc == 2 and "another image set" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["ours", "dsm", "ddpm"])
def test_skip_invalid_leaves_the_same_images_out_of_every_method(inputs, capsys, method):
    """By default (learn.skip_invalid) every method trains on the selected images whose channels all
    have a valid score (converged and within the bound); the summary lists the others and why."""
    d = inputs
    with np.load(d / "scores.npz") as f:
        arrays = dict(f)
    converged, within = np.array([[True], [False], [True]]), np.array([[True], [True], [False]])
    np.savez(d / "flagged.npz", **{**arrays, "converged": converged, "within_bound": within,
                                   "valid": converged & within})
    rc = main(["train", "--method", method, "--images", str(d / "images.npz"), "--scores", str(d / "flagged.npz"),
               "--stop", "steps", "--max-steps", "1", "--out", str(d / "m.pt"), "--log", str(d / "l.csv"), *TINY])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "2 of 3 image(s) left out" in out.out
    summary = json.loads((d / "l.json").read_text())
    assert summary["image_indices"] == [0] and summary["image_names"] == ["a"]
    assert [(s["image"], s["not_converged"], s["outside_bound"]) for s in summary["skipped_invalid"]] == [
        (1, [0], []), (2, [], [0])]
    assert summary["score_discretisation"] == {"boundary": "reflect", "scheme": "minimal"}


def test_skip_invalid_errors_name_the_option(inputs, capsys):
    d = inputs
    base = ["train", "--method", "ddpm", "--images", str(d / "images.npz"), "--stop", "steps",
            "--max-steps", "1", "--out", str(d / "m.pt"), "--log", str(d / "l.csv"), *TINY]
    assert main(base) == 2 and "--skip-invalid (the default, learn.skip_invalid) needs --scores" in \
        capsys.readouterr().err
    assert main([*base, "--no-skip-invalid", "--out", str(d / "all.pt")]) == 0  # every image, no score set needed
    with np.load(d / "scores.npz") as f:
        arrays = dict(f)
    np.savez(d / "none.npz", **{**arrays, "valid": np.zeros((3, 1), bool)})
    assert main([*base, "--scores", str(d / "none.npz"), "--indices", "0", "1"]) == 2
    assert "none of the 2 selected image(s) has a valid score" in capsys.readouterr().err
    np.savez(d / "other.npz", **{**arrays, "names": np.array(["x", "y", "z"])})
    assert main([*base, "--scores", str(d / "other.npz")]) == 2
    assert "belong to another image set" in capsys.readouterr().err
    assert not (d / "m.pt").exists()


def test_unknown_method_is_refused_by_the_parser(inputs, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--method", "gan", "--images", "i.npz", "--out", "m.pt", "--log", "l.csv", "--stop", "steps"])
    assert "invalid choice: 'gan'" in capsys.readouterr().err


def test_noisy_copy_protocol_train_and_sample(inputs, capsys):
    d = inputs
    rc = main(["train", "--method", "dsm", "--images", str(d / "images.npz"), "--indices", "1", "--stop", "steps",
               "--max-steps", "2", "--eval-protocol", "noisy_copy", "--eval-noise", "0.3", "--ssim-mode", "minmax",
               "--out", str(d / "model.pt"), "--log", str(d / "train_log.csv"), *NO_SKIP])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((d / "train_log.json").read_text())
    assert (summary["eval_protocol"], summary["ssim_mode"]) == ("noisy_copy", "minmax")
    rc = main(["sample", "--model", str(d / "model.pt"), "--out", str(d / "samples.npz"), "--sampler-n-samples", "2",
               "--eval-protocol", "noisy_copy", "--eval-noise", "0.3", "--references", str(d / "images.npz"),
               "--reference-index", "1", "--threads", "1", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    with np.load(d / "samples.npz") as s:
        assert s["images"].shape == (2, 1, 8, 8) and s["times"][0] < 1.0  # starts at t* < 1, not from noise
    rc = main(["train", "--method", "ddpm", "--images", str(d / "images.npz"), "--stop", "steps", "--max-steps", "1",
               "--eval-protocol", "noisy_copy", "--eval-noise", "-1", "--out", str(d / "m2.pt"), "--log",
               str(d / "l2.csv"), *NO_SKIP])
    assert rc == 2 and "noise_std" in capsys.readouterr().err

"""`fpscore scores` / `scores-merge`: files, parameters, sharding, and bad input
(each with its message, nothing written)."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from skimage import data, transform

from fpscore.cli import main
from fpscore.score_files import SCORE_KEYS
from fpscore.score_store import read_scores
from fpscore.solvers.base import LEVEL_COLUMNS, LOG_COLUMNS

FAST = ["--n-times", "4", "--kde-bins", "64", "--no-progress", "--nonlinear", "picard"]  # Algorithm 1


def _images(n=3, H=8):
    base = [data.camera() / 255.0, data.moon() / 255.0, data.coins() / 255.0, data.text() / 255.0]
    imgs = np.stack([transform.resize(base[i % 4], (H, H), anti_aliasing=True) for i in range(n)])[:, None]
    return imgs.astype(np.float32)


@pytest.fixture
def images_file(tmp_path):
    path = tmp_path / "images.npz"
    np.savez(path, images=_images(), names=np.array(["a", "b", "c"]))
    return path


def _run(tmp_path, images, *extra, name="scores"):
    out, log = tmp_path / f"{name}.npz", tmp_path / f"{name}.csv"
    rc = main(["scores", "--images", str(images), "--out", str(out), "--log", str(log), *FAST, *extra])
    return rc, out, log


def test_scores_file_and_log(tmp_path, images_file):
    rc, out, log = _run(tmp_path, images_file, "--solver", "spsolve")
    assert rc == 0
    with np.load(out) as f:
        assert f["m"].shape == f["scores"].shape == (3, 1, 4, 8, 8)
        assert f["m"].dtype == f["scores"].dtype == np.float32
        np.testing.assert_allclose(f["times"], np.linspace(1e-3, 1, 4))
        np.testing.assert_allclose(f["g"], 5.0 ** f["times"])
        assert list(f["names"]) == ["a", "b", "c"]
        params = json.loads(str(f["params"]))
        assert params["fp"]["n_times"] == 4 and params["solver"]["solver"] == "spsolve"
        assert f["converged"].all() and f["picard_iterations"].min() >= 2
        iters = f["picard_iterations"]
    df = pd.read_csv(log)  # the default: one row per image, channel and time level
    assert list(df.columns) == list(LEVEL_COLUMNS)
    assert len(df) == 3 * 3 and df["solves"].sum() == 3 * iters.sum()  # 3 time levels, one solve per sweep
    assert (df.groupby("image")["picard_iter"].max().to_numpy() == iters[:, 0]).all()
    assert (df["final_residual"] <= 1e-10).all() and (df["max_iterations"] <= df["iterations"]).all()
    assert df["startup_seconds"].iloc[0] > 0 and (df["startup_seconds"].iloc[1:] == 0).all()
    rc, _, log = _run(tmp_path, images_file, "--solver", "spsolve", "--solve-log", "solve", name="per_solve")
    assert rc == 0
    per_solve = pd.read_csv(log)
    assert list(per_solve.columns) == list(LOG_COLUMNS)
    assert len(per_solve) == 3 * iters.sum()  # 3 time levels per Picard sweep
    assert (per_solve["final_residual"] <= 1e-10).all()


def test_every_step_logs_its_peak_memory(tmp_path, images_file, capsys):
    """The last stderr line of a step (a job's log) is its peak memory; a failed step has none."""
    rc, _, _ = _run(tmp_path, images_file, "--solver", "spsolve")
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 0
    assert re.fullmatch(r"fpscore scores: peak memory [0-9]+ MB", last), last
    assert float(last.split()[-2]) > 50  # python, numpy and scipy are loaded: tens of MB at least
    rc, _, _ = _run(tmp_path, tmp_path / "missing.npz")
    assert rc == 2 and "peak memory" not in capsys.readouterr().err


def test_shards_merge_byte_identical(tmp_path, images_file):
    rc, whole, _ = _run(tmp_path, images_file, "--solver", "ksp", name="whole")
    assert rc == 0
    shards, logs = [], []
    for i in range(3):  # shard size 2: shards {0,1}, {2}, {} (past the end: empty)
        rc, s, lg = _run(tmp_path, images_file, "--solver", "ksp", "--shard", str(i), "--shard-size", "2",
                         name=f"shard{i}")
        assert rc == 0
        shards.append(str(s))
        logs.append(str(lg))
    merged, mlog = tmp_path / "merged", tmp_path / "merged.csv"
    rc = main(["scores-merge", "--images", str(images_file), "--shards", *shards[::-1], "--logs", *logs,
               "--out", str(merged), "--log", str(mlog)])
    assert rc == 0
    got, ref = read_scores(merged), read_scores(whole)
    assert isinstance(got["scores"], np.memmap)
    assert got.keys() == ref.keys()
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert len(pd.read_csv(mlog)) == len(pd.read_csv(tmp_path / "whole.csv"))


def test_merge_rejects_incomplete_cover(tmp_path, images_file, capsys):
    _, s, _ = _run(tmp_path, images_file, "--solver", "spsolve", "--shard", "0", "--shard-size", "2")
    rc = main(["scores-merge", "--images", str(images_file), "--shards", str(s),
               "--out", str(tmp_path / "m.npz"), "--log", str(tmp_path / "m.csv")])
    assert rc == 2 and "missing [2]" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.csv").exists()


def test_non_convergence_is_flagged(tmp_path, images_file):
    """Once, at the end: how many channels, which, and why; the flags in the file and the log."""
    with pytest.warns(RuntimeWarning, match="did not converge") as caught:
        rc, out, log = _run(tmp_path, images_file, "--solver", "spsolve", "--picard-max-iter", "1")
    assert rc == 0
    flagged = [w for w in caught if "flagged" in str(w.message)]
    assert len(flagged) == 1 and len(caught) == 1
    assert "3 channel(s) flagged as not converged (Picard iteration did not converge for image 0, channel 0" in str(
        flagged[0].message)
    with np.load(out) as f:
        assert not f["converged"].any()
    assert not pd.read_csv(log)["converged"].any()


def _bad(tmp_path, images, extra, message, capsys):
    rc, out, log = _run(tmp_path, images, *extra)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err, err
    assert not out.exists() and not log.exists()


@pytest.mark.parametrize("arrays,message", [
    ({"pixels": np.zeros((1, 1, 4, 4))}, "missing key(s) images, names"),
    ({"images": np.zeros((1, 1, 4, 5)), "names": np.array(["x"])}, "expected square images"),
    ({"images": np.full((1, 1, 4, 4), np.nan), "names": np.array(["x"])}, "NaN/inf pixel"),
    ({"images": np.full((1, 1, 4, 4), 1.5), "names": np.array(["x"])}, "expected pixel values in [0, 1]"),
    ({"images": np.zeros((2, 1, 4, 4)), "names": np.array(["x"])}, "'names' has shape (1,), expected (2,)"),
])
def test_bad_images(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    _bad(tmp_path, path, ["--solver", "spsolve"], message, capsys)


def test_missing_images_file(tmp_path, capsys):
    _bad(tmp_path, tmp_path / "nope.npz", ["--solver", "spsolve"], "does not exist", capsys)


def test_unknown_solver(tmp_path, images_file, capsys):
    with pytest.raises(SystemExit):
        main(["scores", "--images", str(images_file), "--out", str(tmp_path / "o.npz"), "--log",
              str(tmp_path / "o.csv"), "--solver", "cholesky"])
    assert "invalid choice: 'cholesky'" in capsys.readouterr().err


def test_rejected_petsc_option(tmp_path, images_file, capsys):
    _bad(tmp_path, images_file, ["--solver", "ksp", "--ksp-options", "-ksp_type gmres -pc_type nosuchpc"],
         "PETSc rejected '-pc_type nosuchpc'", capsys)


def test_unused_petsc_option(tmp_path, images_file, capsys):
    _bad(tmp_path, images_file, ["--solver", "ksp", "--ksp-options", "-ksp_type gmres -ksp_gmres_restrat 20"],
         "PETSc did not use -ksp_gmres_restrat", capsys)


def test_bad_parameter(tmp_path, images_file, capsys):
    _bad(tmp_path, images_file, ["--solver", "spsolve", "--picard-tol", "0"],
         "--picard-tol: expected a number in (0, 1), got 0.0 (config key scores.picard_tol)", capsys)


def test_projection_prepared_shards_byte_identical(tmp_path, images_file):
    """scores-prepare once, then shards of size 2 or 3 with --prepared: the same merged file."""
    opts = [*FAST, "--solver", "projection", "--rank", "4"]
    prepared, plog = tmp_path / "prepared.npz", tmp_path / "prepare.csv"
    assert main(["scores-prepare", "--images", str(images_file), "--out", str(prepared), "--log", str(plog),
                 *[o for o in opts if o != "--no-progress"]]) == 0
    merged = []
    for size, count in ((2, 2), (3, 1)):
        shards, logs = [], []
        for i in range(count):
            rc, s, lg = _run(tmp_path, images_file, *opts[len(FAST):], "--prepared", str(prepared), "--shard", str(i),
                             "--shard-size", str(size), name=f"p{size}_{i}")
            assert rc == 0
            shards.append(str(s))
            logs.append(str(lg))
        out, log = tmp_path / f"merged{size}", tmp_path / f"merged{size}.csv"
        assert main(["scores-merge", "--images", str(images_file), "--shards", *shards, "--logs", *logs,
                     "--prepare-log", str(plog), "--out", str(out), "--log", str(log)]) == 0
        merged.append({f.name: f.read_bytes() for f in sorted(out.iterdir())})
        assert json.loads(str(np.load(out / "params.npy")))["solver"]["rank"] == 4
    assert merged[0] == merged[1] and len(merged[0]) == len(SCORE_KEYS)  # byte-identical whatever the shard size


def test_too_many_seeds(tmp_path, images_file, capsys):
    _bad(tmp_path, images_file, ["--solver", "projection", "--n-seeds", "5"], "larger than the set", capsys)


def test_merge_logs_streams_rows_and_names_bad_files(tmp_path):
    from fpscore.solve_logs import merge_logs
    from fpscore.solvers.base import LOG_COLUMNS

    header = ",".join(LOG_COLUMNS)
    row = ",".join(str(i) for i in range(len(LOG_COLUMNS)))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(f"{header}\n{row}\n{row}\n")
    b.write_text(f"{header}\n")  # an empty shard (past the end of the set)
    out = tmp_path / "merged.csv"
    assert merge_logs([a, b, a], out) == 4
    assert out.read_text() == f"{header}\n" + f"{row}\n" * 4
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image,channel\n{row}\n")
    with pytest.raises(ValueError, match=r"solve log .*bad.csv has columns \['image', 'channel'\]"):
        merge_logs([a, bad], tmp_path / "m2.csv")
    bad.write_text(f"{header}\n{row}\n1,2\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 3: 2 fields"):
        merge_logs([bad], tmp_path / "m3.csv")
    short, long = row.rsplit(",", 1)[0], row + ",x"  # their commas add up to two good rows
    bad.write_text(f"{header}\n{row}\n{short}\n{long}\n")
    with pytest.raises(ValueError, match=rf"bad.csv, line 3: {len(LOG_COLUMNS) - 1} fields"):
        merge_logs([bad], tmp_path / "m3.csv")
    quoted = tmp_path / "quoted.csv"  # a field with a comma in it: parsed, written back quoted
    quoted_row = '"a,b",' + row.split(",", 1)[1]
    quoted.write_bytes(f"{header}\r\n{row}\r\n{quoted_row}\r\n".encode())
    assert merge_logs([quoted, a], out) == 4
    assert out.read_text() == f"{header}\n{row}\n{quoted_row}\n{row}\n{row}\n"
    quoted.write_text(f'{header}\n"a\nb",' + row.split(",", 1)[1] + "\n")  # one row over two lines
    assert merge_logs([quoted], out) == 1
    with pytest.raises(ValueError, match=r"cannot read solve log .*missing.csv"):
        merge_logs([tmp_path / "missing.csv"], tmp_path / "m4.csv")
    assert not any((tmp_path / f"m{i}.csv").exists() for i in (2, 3, 4))


def test_merge_logs_of_either_kind(tmp_path):
    """Level logs merge as per-solve logs do; the kind is the first file's; a mixed merge is an error
    naming the file and the option."""
    from fpscore.solve_logs import merge_logs

    level = tmp_path / "level.csv"
    level.write_text(",".join(LEVEL_COLUMNS) + "\n" + ",".join(str(i) for i in range(len(LEVEL_COLUMNS))) + "\n")
    solve = tmp_path / "solve.csv"
    solve.write_text(",".join(LOG_COLUMNS) + "\n")
    out = tmp_path / "merged.csv"
    assert merge_logs([level, level], out) == 2
    assert out.read_text().splitlines()[0] == ",".join(LEVEL_COLUMNS)
    with pytest.raises(ValueError, match=r"solve.csv has columns .* one row per linear solve: every log of a merge "
                                         r"must be of one kind, scores.solve_log"):
        merge_logs([level, solve], tmp_path / "mixed.csv")
    assert merge_logs([], out, kind="level") == 0 and out.read_text() == ",".join(LEVEL_COLUMNS) + "\n"


def test_npz_in_place_is_an_npz(tmp_path):
    """Large members filled in place, then the small ones: zipfile and np.load read it, its members are
    write_npz's bytes; an error inside the block leaves no file."""
    import zipfile

    from fpscore.score_files import npz_in_place, write_npz

    m = np.random.default_rng(0).random((3, 2, 4, 5, 5), dtype=np.float32)
    small = {"times": np.linspace(0, 1, 4), "names": np.array(["a", "b", "c"]), "params": np.array("{}"),
             "converged": np.ones((3, 2), bool)}
    path = tmp_path / "in_place.npz"
    with npz_in_place(path, {"m": (m.shape, np.float32), "scores": (m.shape, np.float32)}) as npz:
        npz.arrays["m"][...] = m
        npz.arrays["scores"][...] = -m
        npz.finish(small)
    write_npz(tmp_path / "ref.npz", {"m": m, "scores": -m, **small})
    with zipfile.ZipFile(path) as got, zipfile.ZipFile(tmp_path / "ref.npz") as ref:
        assert got.testzip() is None and got.namelist() == ref.namelist()
        assert all(got.read(name) == ref.read(name) for name in ref.namelist())
    with pytest.raises(RuntimeError, match="boom"):
        with npz_in_place(tmp_path / "never.npz", {"m": (m.shape, np.float32)}):
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in_place.npz", "ref.npz"]

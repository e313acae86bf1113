"""Table builders fed small synthetic logs: the ratios, reductions and statistics they must produce."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fpscore import tables


def _solve_log(solver, seconds, iterations, picard=3, images=2, levels=4, res=8, proj=None):
    """Every (image, channel 0, k, n) solve takes `seconds` (half assembly, half solve)."""
    rows = []
    for image in range(images):
        for k in range(1, picard + image + 1):  # image i runs picard + i fixed-point iterations
            for n in range(1, levels + 1):
                rows.append(dict(dataset="photos", resolution=res, image=image, channel=0, picard_iter=k,
                                 time_level=n, solver=solver, iterations=iterations, initial_residual=1.0,
                                 final_residual=1e-11 * k, projection_residual=np.nan if proj is None else proj * n,
                                 assemble_seconds=seconds / 2, solve_seconds=seconds / 2, converged=True))
    return pd.DataFrame(rows)


def _log():
    return pd.concat([_solve_log("spsolve", 0.01, 1), _solve_log("ksp", 0.006, 12),
                      _solve_log("projection", 0.008, 5, proj=0.1)], ignore_index=True)


def test_t2_reductions_times_and_iterations():
    t2 = tables.t2_solvers(_log()).set_index("solver")
    systems = (3 + 4) * 4  # image 0: 3 Picard iterations, image 1: 4; 4 time levels each
    assert t2.loc["spsolve", "systems"] == systems
    assert t2.loc["spsolve", "total_s"] == pytest.approx(0.01 * systems)
    assert t2.loc["ksp", "ms_per_solve"] == pytest.approx(3.0)
    assert t2.loc["ksp", "reduction_pct"] == pytest.approx(40.0)
    assert t2.loc["projection", "reduction_pct"] == pytest.approx(20.0)
    assert t2.loc["projection", "solve_reduction_pct"] == pytest.approx(20.0)
    assert t2.loc["spsolve", "reduction_pct"] == pytest.approx(0.0)
    assert t2.loc["ksp", "mean_iterations"] == 12
    assert t2.loc["ksp", "outer_iterations"] == pytest.approx(3.5)
    assert t2.loc["ksp", "solves_per_channel"] == pytest.approx(systems / 2)  # 2 image channels
    assert t2.loc["ksp", "max_final_residual"] == pytest.approx(4e-11)
    assert (t2["paper_reduction"] == "15.8-43.7%").all()


def test_t2_is_the_same_from_a_per_level_log():
    """T2 from the per-level log (scores.solve_log: level) equals T2 from the per-solve one; T3 and F8's
    points need the per-solve log and say which option writes it."""
    per_solve = _log().assign(startup_seconds=0.0)
    per_solve.loc[0, "startup_seconds"] = 2.5
    levels = tables.per_level(per_solve)
    assert tables.is_per_level(levels) and len(levels) == per_solve.groupby(
        ["solver", "image", "time_level"]).ngroups
    pd.testing.assert_frame_equal(tables.t2_solvers(levels), tables.t2_solvers(per_solve))
    t2 = tables.t2_solvers(levels).set_index("solver")
    assert t2.loc["spsolve", "startup_s"] == 2.5 and t2.loc["ksp", "startup_s"] == 0.0
    with pytest.raises(ValueError, match=r"T3 needs a solve log with one row per linear solve.*--solve-log solve"):
        tables.t3_systems(levels)
    with pytest.raises(ValueError, match=r"one row per linear solve"):
        tables.projection_vs_dissimilarity(levels, np.ones((2, 1)))


def test_t2_joins_score_errors_and_needs_the_reference():
    errors = pd.DataFrame(dict(dataset="photos", resolution=8, solver=["ksp", "projection"],
                               score_rel_error=[1e-9, 2e-9]))
    t2 = tables.t2_solvers(_log(), errors).set_index("solver")
    assert t2.loc["projection", "score_rel_error"] == 2e-9 and np.isnan(t2.loc["spsolve", "score_rel_error"])
    with pytest.raises(ValueError, match="spsolve"):
        tables.t2_solvers(_solve_log("ksp", 0.01, 3))


def test_score_errors_relative_l2():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2, 1, 3, 4, 4)).astype(np.float32)
    worse = ref.copy()
    worse[1] *= 1.1  # image 1 off by 10%, image 0 exact
    out = tables.score_errors(ref, {"spsolve": ref, "ksp": worse}).set_index("solver")
    assert out.loc["spsolve", "score_rel_error"] == 0.0
    expected = 0.1 * np.linalg.norm(ref[1]) / np.linalg.norm(ref)
    assert out.loc["ksp", "score_rel_error"] == pytest.approx(expected, rel=1e-6)
    assert out.loc["ksp", "max_image_rel_error"] == pytest.approx(0.1, rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        tables.score_errors(ref, {"bad": ref[:1]})


def test_stencil_nnz_matches_an_assembled_five_point_matrix():
    for h, w in [(3, 3), (4, 7), (32, 32)]:
        lap = sp.kronsum(sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(w, w)),
                         sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(h, h)))
        assert tables.stencil_nnz(h, w) == lap.nnz


def test_t3_system_facts():
    t3 = tables.t3_systems(_log(), ranks={"projection": 8}).set_index("solver")
    assert t3.loc["ksp", "unknowns"] == 64 and t3.loc["ksp", "nnz"] == 5 * 64 - 32
    assert (t3.loc["ksp", "picard_min"], t3.loc["ksp", "picard_max"]) == (3, 4)
    assert t3.loc["projection", "rank"] == 8 and pd.isna(t3.loc["ksp", "rank"])
    assert t3.loc["projection", "proj_residual_max"] == pytest.approx(0.4)
    assert t3.loc["projection", "proj_residual_median"] == pytest.approx(0.25)
    assert t3.loc["projection", "projected_systems"] == 28 and t3.loc["ksp", "projected_systems"] == 0


def test_projection_vs_dissimilarity_points():
    log = _solve_log("projection", 0.01, 5, proj=0.1)  # residual 0.1 n at time level n = 1..4
    log.loc[log["image"] == 0, "projection_residual"] = np.nan  # image 0 is the seed: nothing projected
    distance = np.array([[0.0], [2.5]])
    points = tables.projection_vs_dissimilarity(log, distance)
    assert len(points) == 1 and points.iloc[0]["image"] == 1 and points.iloc[0]["dissimilarity"] == 2.5
    assert (points.iloc[0]["residual_min"], points.iloc[0]["residual_max"]) == pytest.approx((0.1, 0.4))
    assert points.iloc[0]["solves"] == 4 * 4
    with pytest.raises(ValueError, match="do not cover"):
        tables.projection_vs_dissimilarity(log, distance[:1])


def _runs(ddpm_reached=True):
    return pd.DataFrame([
        dict(experiment="denoise_a", dataset="photos", resolution=32, target_ssim=0.99, method="ours",
             reached=True, train_seconds=20.0, precompute_seconds=5.0),
        dict(experiment="denoise_a", dataset="photos", resolution=32, target_ssim=0.99, method="ddpm",
             reached=ddpm_reached, train_seconds=500.0, precompute_seconds=0.0),
    ])


def test_t1_speedup_and_paper_columns():
    row = tables.t1_time_to_ssim(_runs()).iloc[0]
    assert row["ours_total_s"] == 25.0 and row["ours_train_s"] == 20.0
    assert row["speedup"] == pytest.approx(20.0) and row["speedup_text"] == "20.0x"
    assert row["paper_dataset"] == "CIFAR-10" and row["paper_ours_s"] == 60.27 and row["paper_speedup"] == 27.1


def test_t1_lower_bound_when_ddpm_hits_the_cap():
    row = tables.t1_time_to_ssim(_runs(ddpm_reached=False)).iloc[0]
    assert row["speedup_text"] == "> 20.0x" and not row["ddpm_reached"]


def _dsm_run(experiment="denoise_a", reached=True, train_seconds=25.0):
    return dict(experiment=experiment, dataset="photos", resolution=32, target_ssim=0.99, method="dsm",
                reached=reached, train_seconds=train_seconds, precompute_seconds=0.0)


def test_t1_without_dsm_has_no_dsm_columns():
    assert not [c for c in tables.t1_time_to_ssim(_runs()).columns if c.startswith("dsm")]


def test_t1_dsm_columns_beside_ddpm_and_their_bounds():
    runs = pd.concat([_runs(), pd.DataFrame([_dsm_run()])], ignore_index=True)
    t1 = tables.t1_time_to_ssim(runs)
    columns = list(t1.columns)
    # dsm follows the DDPM columns, the paper's come last; the DDPM columns are as without dsm
    assert columns[columns.index("speedup_text") + 1:columns.index("paper_dataset")] == \
        ["dsm_s", "dsm_reached", "dsm_over_ours", "dsm_over_ours_text"]
    assert [c for c in columns if not c.startswith("dsm")] == list(tables.t1_time_to_ssim(_runs()).columns)
    row = t1.iloc[0]
    assert row["dsm_s"] == 25.0 and row["dsm_reached"]
    assert row["dsm_over_ours"] == pytest.approx(1.0) and row["dsm_over_ours_text"] == "1.0x"  # over ours_total_s
    assert row["speedup_text"] == "20.0x"
    capped = tables.t1_time_to_ssim(pd.concat([_runs(), pd.DataFrame([_dsm_run(reached=False, train_seconds=300.0)])],
                                              ignore_index=True)).iloc[0]
    assert capped["dsm_over_ours_text"] == "> 12.0x" and not capped["dsm_reached"]  # a lower bound, as for DDPM


def test_t1_dsm_must_be_in_every_experiment():
    other = _runs().assign(experiment="denoise_b")
    runs = pd.concat([_runs(), other, pd.DataFrame([_dsm_run()])], ignore_index=True)
    with pytest.raises(ValueError, match="denoise_b.*ours and ddpm and dsm"):
        tables.t1_time_to_ssim(runs)
    t1 = tables.t1_time_to_ssim(pd.concat([runs, pd.DataFrame([_dsm_run("denoise_b", train_seconds=50.0)])],
                                          ignore_index=True)).set_index("experiment")
    assert t1.loc["denoise_b", "dsm_over_ours"] == pytest.approx(2.0)


def _budget_metrics(dsm=False):
    rows = [dict(experiment="budget_a", dataset="faces", resolution=32, budget_seconds=120, method="ours",
                 mean_ssim=0.8, fid=np.nan, fid_status="unavailable: no weights"),
            dict(experiment="budget_a", dataset="faces", resolution=32, budget_seconds=120, method="ddpm",
                 mean_ssim=0.5, fid=np.nan, fid_status="unavailable: no weights")]
    if dsm:
        rows.append(dict(experiment="budget_a", dataset="faces", resolution=32, budget_seconds=120, method="dsm",
                         mean_ssim=0.75, fid=12.5, fid_status="ok"))
    return pd.DataFrame(rows)


def test_t4_budget_with_dsm():
    plain, with_dsm = tables.t4_budget(_budget_metrics()), tables.t4_budget(_budget_metrics(dsm=True))
    assert not [c for c in plain.columns if c.startswith("dsm")]
    assert list(with_dsm.columns) == [
        "experiment", "dataset", "resolution", "budget_s", "ours_ssim", "ddpm_ssim", "dsm_ssim", "ssim_difference",
        "dsm_ssim_difference", "ours_fid", "ddpm_fid", "dsm_fid", "fid_status", "paper_budget_s", "paper_ours_ssim",
        "paper_ddpm_ssim"]
    row = with_dsm.iloc[0]
    assert row["ssim_difference"] == pytest.approx(0.3) and row["dsm_ssim_difference"] == pytest.approx(0.05)
    assert row["dsm_fid"] == 12.5 and np.isnan(row["ours_fid"])
    assert row["fid_status"] == ("ours: unavailable: no weights; ddpm: unavailable: no weights; dsm: ok")
    same = plain.columns.drop("fid_status")  # the rest of ours and DDPM is as without dsm
    pd.testing.assert_frame_equal(with_dsm[same], plain[same])


def test_t4_budget_with_unavailable_fid():
    metrics = pd.DataFrame([
        dict(experiment="budget_a", dataset="faces", resolution=32, budget_seconds=120, method="ours",
             mean_ssim=0.8, fid=np.nan, fid_status="unavailable: no weights"),
        dict(experiment="budget_a", dataset="faces", resolution=32, budget_seconds=120, method="ddpm",
             mean_ssim=0.5, fid=np.nan, fid_status="unavailable: no weights"),
    ])
    row = tables.t4_budget(metrics).iloc[0]
    assert row["ssim_difference"] == pytest.approx(0.3)
    assert (row["paper_ours_ssim"], row["paper_ddpm_ssim"], row["paper_budget_s"]) == (0.8991, 0.8517, 4155.17)
    assert np.isnan(row["ours_fid"]) and row["fid_status"] == "unavailable: no weights"
    with pytest.raises(ValueError, match="ours and ddpm"):
        tables.t4_budget(metrics.iloc[:1])


def test_t4_budget_with_kid_counts_and_floor():
    ssim = pd.DataFrame([dict(experiment="budget_a", method=m, mean_ssim=v, ssim_mode="clip")
                         for m, v in (("ours", 0.8), ("ddpm", 0.5))])
    fid = pd.DataFrame([dict(experiment="budget_a", method=m, fid=f, fid_status="ok", kid=k, kid_std=0.01,
                             n_generated=8, n_reference=8, fid_floor=90.0, kid_floor=0.02, n_floor="4 vs 4",
                             network="archive") for m, f, k in (("ours", 120.0, 0.05), ("ddpm", 200.0, 0.2))])
    runs = pd.DataFrame([dict(experiment="budget_a", dataset="faces", resolution=32, budget_seconds=120)])
    row = tables.t4_budget(tables.budget_metrics(ssim, fid, runs)).iloc[0]
    assert (row["ours_fid"], row["ddpm_fid"], row["ours_kid"], row["ddpm_kid"]) == (120.0, 200.0, 0.05, 0.2)
    assert (row["n_generated"], row["n_reference"], row["n_floor"]) == (8, 8, "4 vs 4")
    assert (row["fid_floor"], row["kid_floor"], row["fid_status"]) == (90.0, 0.02, "ok")
    old = tables.budget_metrics(ssim, fid[["experiment", "method", "fid", "fid_status"]], runs)
    assert np.isnan(tables.t4_budget(old).iloc[0]["ours_kid"])  # files written before KID: NaN, no error


# ---- the command line: logs on disk in, CSV + Markdown + LaTeX out -------------------------------

def _write_scores_tree(root):
    paths = []
    for solver, seconds, iters in (("spsolve", 0.01, 1), ("ksp", 0.006, 12)):
        path = root / "scores" / "photos" / "8" / solver / "solve_log.csv"
        path.parent.mkdir(parents=True)
        _solve_log(solver, seconds, iters).drop(columns=["dataset", "resolution"]).to_csv(path, index=False)
        paths.append(str(path))
    return paths


def test_table_command_writes_csv_markdown_latex(tmp_path):
    from fpscore.cli import main

    logs = _write_scores_tree(tmp_path)
    stem = tmp_path / "tables" / "t2_solvers"
    labels = ["--datasets", "photos", "photos", "--resolutions", "8", "8", "--solvers", "spsolve", "ksp"]
    assert main(["table", "t2", "--solve-logs", *logs, *labels, "--out", str(stem)]) == 0
    csv = pd.read_csv(stem.with_suffix(".csv")).set_index("solver")
    assert csv.loc["ksp", "reduction_pct"] == pytest.approx(40.0) and csv.loc["ksp", "resolution"] == 8
    assert "reduction_pct" in stem.with_suffix(".md").read_text()
    tex = stem.with_suffix(".tex").read_text()
    assert "\\begin{tabular}" in tex and "reduction\\_pct" in tex
    assert sorted(p.name for p in stem.parent.iterdir()) == ["t2_solvers.csv", "t2_solvers.md", "t2_solvers.tex"]


def test_table_command_fails_whole_on_bad_input(tmp_path):
    from fpscore.cli import main

    logs = _write_scores_tree(tmp_path)
    stem = tmp_path / "tables" / "t2_solvers"
    labels = ["--datasets", "photos", "--resolutions", "8", "--solvers", "ksp"]
    assert main(["table", "t2", "--solve-logs", logs[1], *labels, "--out", str(stem)]) == 2  # no spsolve reference
    assert main(["table", "t2", "--solve-logs", *logs, *labels, "--out", str(stem)]) == 2  # labels of one log only
    assert not stem.parent.exists() or not list(stem.parent.iterdir())


def _summary(path, **kw):
    """A training summary as `fpscore train` writes it: its experiment and method from the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = dict(experiment=path.parent.parent.name, method=path.parent.name, dataset="photos", resolution=8)
    path.write_text(json.dumps(dict(dict(stop="target_ssim", target_ssim=0.9, precompute_seconds=None, **labels),
                                    **kw)))
    return str(path)


def test_t1_command_from_training_summaries(tmp_path):
    from fpscore.cli import main

    exp = "denoise_photos8_img1_ssim0.90"
    ours = _summary(tmp_path / exp / "ours" / "train_log.json", reached=True, time_to_target_seconds=7.5,
                    train_seconds=8.0, precompute_seconds=2.5)
    ddpm = _summary(tmp_path / exp / "ddpm" / "train_log.json", reached=False, time_to_target_seconds=None,
                    train_seconds=300.0)
    stem = tmp_path / "t1"
    assert main(["table", "t1", "--summaries", ours, ddpm, "--out", str(stem)]) == 0
    row = pd.read_csv(stem.with_suffix(".csv")).iloc[0]
    assert (row["ours_train_s"], row["ours_precompute_s"], row["ours_total_s"]) == (7.5, 2.5, 10.0)
    assert row["ddpm_s"] == 300.0 and row["speedup_text"] == "> 30.0x" and row["resolution"] == 8
    _summary(tmp_path / exp / "ours" / "train_log.json", reached=True, time_to_target_seconds=7.5, train_seconds=8.0)
    assert main(["table", "t1", "--summaries", ours, ddpm,
                 "--out", str(tmp_path / "t1b")]) == 2  # ours without its pre-computation time is refused
    _summary(tmp_path / exp / "ours" / "train_log.json", reached=True, time_to_target_seconds=7.5, train_seconds=8.0,
             precompute_seconds=2.5, dataset=None)
    assert main(["table", "t1", "--summaries", ours, ddpm, "--out", str(tmp_path / "t1c")]) == 2  # no dataset


def test_t1_and_t4_commands_with_dsm(tmp_path):
    from fpscore.cli import main

    exp = "denoise_photos8_img1_ssim0.90"
    summaries = [_summary(tmp_path / exp / "ours" / "train_log.json", reached=True, time_to_target_seconds=7.5,
                          train_seconds=8.0, precompute_seconds=2.5),
                 _summary(tmp_path / exp / "ddpm" / "train_log.json", reached=False, time_to_target_seconds=None,
                          train_seconds=300.0),
                 _summary(tmp_path / exp / "dsm" / "train_log.json", reached=True, time_to_target_seconds=15.0,
                          train_seconds=16.0)]
    assert main(["table", "t1", "--summaries", *summaries, "--out", str(tmp_path / "t1")]) == 0
    row = pd.read_csv(tmp_path / "t1.csv").iloc[0]
    assert row["dsm_s"] == 15.0 and row["dsm_over_ours_text"] == "1.5x" and row["speedup_text"] == "> 30.0x"
    assert "dsm\\_over\\_ours" in (tmp_path / "t1.tex").read_text()
    assert "like-for-like" in (tmp_path / "t1.tex").read_text()

    metrics, files = tmp_path / "metrics", {}
    for method, ssim in (("ours", 0.8), ("ddpm", 0.5), ("dsm", 0.7)):
        (metrics / method).mkdir(parents=True)
        files[method] = (metrics / method / "ssim.csv", metrics / method / "fid.csv")
        pd.DataFrame([dict(experiment="budget_a", method=method, mean_ssim=ssim)]).to_csv(files[method][0],
                                                                                         index=False)
        pd.DataFrame([dict(experiment="budget_a", method=method, fid=np.nan, fid_status="unavailable: no weights")]
                     ).to_csv(files[method][1], index=False)

    runs = {m: _summary(tmp_path / "train" / "budget_a" / m / "train_log.json", stop="budget", target_ssim=None,
                        budget_seconds=120, dataset="faces", resolution=32) for m in ("ours", "ddpm", "dsm")}

    def t4(methods, out):
        return main(["table", "t4", "--ssim", *(str(files[m][0]) for m in methods),
                     "--fid", *(str(files[m][1]) for m in methods), "--summaries", *(runs[m] for m in methods),
                     "--out", str(out)])

    assert t4(["ours", "ddpm"], tmp_path / "t4") == 0
    plain = pd.read_csv(tmp_path / "t4.csv")
    assert (plain["dataset"].iloc[0], plain["resolution"].iloc[0], plain["budget_s"].iloc[0]) == ("faces", 32, 120)
    assert "dsm_ssim" not in plain.columns and "like-for-like" not in (tmp_path / "t4.tex").read_text()
    assert t4(["ours", "ddpm", "dsm"], tmp_path / "t4_dsm") == 0
    row = pd.read_csv(tmp_path / "t4_dsm.csv").iloc[0]
    assert row["dsm_ssim"] == 0.7 and row["dsm_ssim_difference"] == pytest.approx(0.1)


def test_score_error_command(tmp_path):
    from fpscore.cli import main

    ref = np.random.default_rng(0).normal(size=(2, 1, 3, 4, 4)).astype(np.float32)
    paths = []
    for solver, scale in (("spsolve", 1.0), ("projection", 1.001)):
        path = tmp_path / "photos" / "4" / solver / "scores.npz"
        path.parent.mkdir(parents=True)
        np.savez(path, m=ref, scores=ref * np.float32(scale), times=np.linspace(1e-3, 1, 3), g=np.ones(3),
                 names=np.array(["a", "b"]), params=np.array("{}"), picard_iterations=np.ones((2, 1), int),
                 converged=np.ones((2, 1), bool), within_bound=np.ones((2, 1), bool), nu_active=np.zeros((2, 1)),
                 valid=np.ones((2, 1), bool))  # every key of a score file (fpscore.score_files.SCORE_KEYS)
        paths.append(str(path))
    out = tmp_path / "err.csv"
    assert main(["score-error", "--scores", *paths, "--solvers", "spsolve", "projection", "--dataset", "photos",
                 "--resolution", "4", "--out", str(out)]) == 0
    err = pd.read_csv(out).set_index("solver")
    assert err.loc["projection", "score_rel_error"] == pytest.approx(1e-3, rel=1e-3)
    assert err.loc["projection", "dataset"] == "photos" and err.loc["projection", "resolution"] == 4


def test_rendered_tables_keep_published_values_and_bounds(tmp_path):
    from fpscore.rendering import format_number, write_table

    assert (format_number(1634.93), format_number(0.89912), format_number(3e-11), format_number(np.nan)) == \
        ("1634.93", "0.8991", "3e-11", "--")
    stem = tmp_path / "t1"
    write_table(tables.t1_time_to_ssim(_runs(ddpm_reached=False)), stem)
    md, tex = stem.with_suffix(".md").read_text(), stem.with_suffix(".tex").read_text()
    assert "1634.93" in md and "14131.53" not in md  # the 32x32 paper row only
    assert "$>$ 20.0x" in tex and "> 20.0x" in md

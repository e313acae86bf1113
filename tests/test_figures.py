"""Each figure renders from synthetic data to a non-empty PNG of the size its Figure declares."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fpscore import figures

DPI = 50
RNG = np.random.default_rng(0)


def _render(fig):
    """PNG pixels of a Figure at DPI, checking the size and that something was drawn."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    image = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"), dtype=float)
    width, height = fig.get_size_inches() * DPI
    assert abs(image.shape[0] - height) <= 1 and abs(image.shape[1] - width) <= 1  # matplotlib truncates
    assert image.std() > 5.0, "figure is blank"
    return image


def _solve_log():
    rows = [dict(solver=s, resolution=r, picard_iter=k, time_level=n, iterations=12 - k,
                 final_residual=10.0 ** (-9 - k))
            for s in ("spsolve", "ksp") for r in (8, 16) for k in range(1, 5) for n in range(1, 4)]
    return pd.DataFrame(rows)


CASES = {
    "f1": lambda: figures.schematic(n_times=4, n_targets=3),
    "f2": lambda: figures.denoising_progression(
        [dict(label="8x8", states=RNG.random((7, 1, 8, 8)), times=np.linspace(1, 1e-3, 7)),
         dict(label="16x16", states=RNG.random((5, 3, 16, 16)), times=np.linspace(1, 1e-3, 5))]),
    "f3": lambda: figures.generation_progression(RNG.random((9, 3, 3, 8, 8)), np.linspace(1, 1e-3, 9)),
    "f4": lambda: figures.budget_grid([dict(method="ours", images=RNG.random((6, 1, 8, 8)), mean_ssim=0.9),
                                       dict(method="ddpm", images=RNG.random((6, 1, 8, 8)), mean_ssim=0.4)],
                                      budget_seconds=120, resolution=8),
    "f6": lambda: figures.solver_times(pd.DataFrame(dict(dataset="photos", resolution=[8, 8, 16, 16],
                                                         solver=["spsolve", "ksp"] * 2, total_s=[2.0, 1, 8, 5]))),
    "f7": lambda: figures.picard_convergence(_solve_log()),
    "f8": lambda: figures.projection_residual(pd.DataFrame(dict(
        dissimilarity=RNG.random(6) * 5, residual_median=[1e-3] * 6, residual_min=[1e-5] * 6,
        residual_max=[1e-1] * 6, label=["photos 8x8"] * 3 + ["faces 8x8"] * 3))),
    "f9": lambda: figures.rank_sweep(pd.DataFrame(dict(rank=[1, 2, 4, 8], seconds=[4.0, 3, 2, 2.5],
                                                       iterations=[20, 14, 9, 8]))),
    "f9_sets": lambda: figures.rank_sweep(pd.DataFrame(dict(
        set=["photos"] * 2 + ["faces"] * 2, resolution=32, rank=[1, 2] * 2, seconds=[4.0, 3, 2, 2.5],
        iterations=[20, 14, 9, 8]))),
    "f10": lambda: figures.ssim_curves(pd.DataFrame(dict(
        experiment="denoise_a", method=["ours"] * 3 + ["ddpm"] * 3, train_seconds=[10, 20, 30] * 2,
        ssim=[0.5, 0.8, 0.95, 0.1, np.nan, 0.3])), targets={"denoise_a": 0.9}),
    "f4_dsm": lambda: figures.budget_grid([dict(method=m, images=RNG.random((6, 1, 8, 8)), mean_ssim=0.5)
                                           for m in ("ours", "ddpm", "dsm")], budget_seconds=120, resolution=8),
    "f10_dsm": lambda: figures.ssim_curves(pd.DataFrame(dict(
        experiment="denoise_a", method=["ours"] * 3 + ["ddpm"] * 3 + ["dsm"] * 3, train_seconds=[10, 20, 30] * 3,
        ssim=[0.5, 0.8, 0.95, 0.1, np.nan, 0.3, 0.4, 0.7, 0.9])), targets={"denoise_a": 0.9}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figure_renders(name):
    _render(CASES[name]())


def test_progression_shows_the_first_and_last_state():
    # A white first state and a black last state must both appear in the rendered row.
    states = np.concatenate([np.ones((1, 1, 8, 8)), np.full((4, 1, 8, 8), 0.5), np.zeros((1, 1, 8, 8))])
    image = _render(figures.denoising_progression([dict(label="8x8", states=states,
                                                        times=np.linspace(1, 0, 6))], columns=3))
    assert image.max() == 255 and image.min() == 0


def test_budget_grid_mosaic_and_titles():
    images = np.stack([np.full((1, 2, 2), v) for v in (0.0, 1.0, 0.5)])
    mosaic = figures._grid(images, ncols=2)
    assert mosaic.shape == (1, 5, 5)
    assert mosaic[0, 0, 0] == 0.0 and mosaic[0, 0, 3] == 1.0 and mosaic[0, 3, 0] == 0.5 and mosaic[0, 3, 3] == 1.0
    fig = figures.budget_grid([dict(method="ours", images=images, mean_ssim=0.87654)], 60, 2)
    assert "mean SSIM 0.8765" in fig.axes[0].get_title()


def test_dsm_is_drawn_apart_from_ours_and_ddpm():
    ax = CASES["f10_dsm"]().axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    dsm, ours = lines[figures.METHOD_LABELS["dsm"]], lines[figures.METHOD_LABELS["ours"]]
    assert (dsm.get_linestyle(), dsm.get_marker()) == ("-.", "s") and (ours.get_linestyle(), ours.get_marker()) == \
        ("-", "o")
    assert len({line.get_color() for label, line in lines.items() if label != "target"}) == 3
    titles = [ax.get_title() for ax in CASES["f4_dsm"]().axes]
    assert titles[2].startswith(figures.METHOD_LABELS["dsm"])


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match="C x H x W"):
        figures.to_display(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="K x N x C x H x W"):
        figures.generation_progression(np.zeros((3, 1, 4, 4)), np.arange(3))


def test_figure_command_writes_png_and_pdf(tmp_path):
    from fpscore.cli import main

    out = tmp_path / "figures" / "f1_schematic.png"
    assert main(["figure", "f1", "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in out.parent.iterdir()) == ["f1_schematic.pdf", "f1_schematic.png"]


def test_budget_grid_titles_carry_fid_kid_and_counts():
    panels = [dict(method="ours", images=RNG.random((4, 1, 8, 8)), mean_ssim=0.9, fid=123.4, kid=0.056,
                   n_generated=4, n_reference=8),
              dict(method="ddpm", images=RNG.random((4, 1, 8, 8)), mean_ssim=0.4)]
    titles = [ax.get_title() for ax in figures.budget_grid(panels, budget_seconds=120, resolution=8).axes]
    assert "FID 123.4, KID 0.056 (4 vs 8 images)" in titles[0] and "KID" not in titles[1]

"""The paper's figures as matplotlib Figures, drawn from data (no file I/O, no pyplot state).

Every function returns a ``matplotlib.figure.Figure`` built inside one shared
style (``STYLE``); ``fpscore.rendering`` saves it as PNG and PDF. Images are
N x C x H x W (or C x H x W) arrays in [0, 1] with C = 1 (grey) or 3 (RGB).
Table-like inputs are the DataFrames of :mod:`fpscore.tables` or the logs it
documents; benchmark inputs are documented per function.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import MaxNLocator

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "standard",
    "image.interpolation": "nearest",
}
METHOD_COLORS = {"ours": "#1b6ca8", "ddpm": "#c0392b", "dsm": "#2e7d32"}
METHOD_LABELS = {"ours": "ours (pre-computed scores)", "ddpm": "DDPM",
                 "dsm": "dsm (like-for-like baseline)"}
# Line and marker of each method's curves; dsm (the like-for-like baseline) is set apart by a
# dash-dot line and square markers besides its colour.
METHOD_LINES = {"dsm": dict(linestyle="-.", marker="s")}


@contextmanager
def _styled():
    with rc_context(STYLE):
        yield


def _new(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def to_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """C x H x W in [0, 1] -> (H x W [x 3] array clipped to [0, 1], colormap or None)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"images must be C x H x W with C in (1, 3), got shape {image.shape}")
    image = np.clip(image, 0.0, 1.0)
    if image.shape[0] == 1:
        return image[0], "gray"
    return np.moveaxis(image, 0, -1), None


def _show(ax, image: np.ndarray) -> None:
    data, cmap = to_display(image)
    ax.imshow(data, cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_axis_off()


# ---- F1 ------------------------------------------------------------------------------------

def schematic(n_times: int = 4, n_targets: int = 3) -> Figure:
    """F1: time-wise seed/target projection: per time level n, the seed's systems A^n_seed
    give a basis V_n, reused to project the target systems A^n_i of the same level."""
    if n_times < 2 or n_targets < 1:
        raise ValueError(f"schematic needs n_times >= 2 and n_targets >= 1, got {n_times}, {n_targets}")
    with _styled():
        fig = _new(1.6 + 1.5 * n_times, 1.6 + 0.75 * n_targets)
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_xlim(-1.4, 1.5 * n_times - 0.2)
        ax.set_ylim(-0.9 * (n_targets + 1.5), 1.2)
        levels = [str(n) for n in range(1, n_times)] + ["N-1"]
        box = dict(boxstyle="round,pad=0.08", linewidth=0.8)
        for col, level in enumerate(levels):
            x = 1.5 * col
            ax.add_patch(FancyBboxPatch((x, 0.2), 1.0, 0.6, facecolor="#d6e6f4", edgecolor="#1b6ca8", **box))
            ax.text(x + 0.5, 0.5, f"$A^{{{level}}}_{{seed}}$", ha="center", va="center")
            ax.add_patch(FancyBboxPatch((x + 0.15, -0.75), 0.7, 0.45, facecolor="#f9e0b0", edgecolor="#b9770e",
                                        **box))
            ax.text(x + 0.5, -0.52, f"$V_{{{level}}}$", ha="center", va="center")
            ax.add_patch(FancyArrowPatch((x + 0.5, 0.18), (x + 0.5, -0.28), arrowstyle="-|>", mutation_scale=9,
                                         color="#1b6ca8"))
            # V_n feeds every target of the same level: a bus right of the column.
            y_last = -1.6 - 0.9 * (n_targets - 1) + 0.27
            ax.plot([x + 0.87, x + 1.18, x + 1.18], [-0.52, -0.52, y_last], color="#b9770e", linewidth=0.9)
            for t in range(n_targets):
                y = -1.6 - 0.9 * t
                ax.add_patch(FancyBboxPatch((x, y), 1.0, 0.55, facecolor="#e8f4e4", edgecolor="#2e7d32", **box))
                ax.text(x + 0.5, y + 0.27, f"$A^{{{level}}}_{{{t + 1}}}$", ha="center", va="center")
                ax.add_patch(FancyArrowPatch((x + 1.18, y + 0.27), (x + 1.03, y + 0.27), arrowstyle="-|>",
                                             mutation_scale=8, color="#b9770e", linewidth=0.9))
            if col < len(levels) - 1:
                ax.add_patch(FancyArrowPatch((x + 1.02, 0.5), (x + 1.48, 0.5), arrowstyle="-|>",
                                             mutation_scale=8, color="0.4"))
        ax.text(-0.2, 0.5, "seed\nimage", ha="right", va="center")
        ax.text(-0.2, -0.52, "basis\nper level", ha="right", va="center")
        for t in range(n_targets):
            ax.text(-0.2, -1.32 - 0.9 * t, f"target {t + 1}", ha="right", va="center")
        ax.set_title("Time-wise cross-matrix projection: solve the seed image, keep a basis $V_n$ per time\n"
                     "level, project every target system of that level onto it, then correct with a Krylov solve")
    return fig


# ---- F2, F3: progressions ------------------------------------------------------------------

def _pick(times: np.ndarray, count: int) -> np.ndarray:
    return np.unique(np.linspace(0, len(times) - 1, min(count, len(times))).round().astype(int))


def denoising_progression(rows: list[dict], columns: int = 6) -> Figure:
    """F2: one row per resolution: ``dict(label, states K x C x H x W, times K)`` of our sampler,
    ``columns`` states evenly spaced in the progression (first = noise, last = result)."""
    if not rows:
        raise ValueError("denoising_progression needs at least one row")
    with _styled():
        fig = _new(1.3 * columns + 0.6, 1.45 * len(rows) + 0.3)
        axes = fig.subplots(len(rows), columns, squeeze=False)
        for r, row in enumerate(rows):
            states, times = np.asarray(row["states"]), np.asarray(row["times"])
            if states.ndim != 4 or len(states) != len(times):
                raise ValueError(f"row {row.get('label')!r}: states must be K x C x H x W with K = len(times), "
                                 f"got {states.shape} and {len(times)} times")
            picks = _pick(times, columns)
            for c in range(columns):
                ax = axes[r, c]
                if c < len(picks):
                    _show(ax, states[picks[c]])
                    ax.set_title(f"t = {times[picks[c]]:.3g}")
                else:
                    ax.set_axis_off()
            axes[r, 0].text(-0.08, 0.5, str(row["label"]), transform=axes[r, 0].transAxes, rotation=90,
                            ha="right", va="center")
        fig.suptitle("Denoising with pre-computed scores")
    return fig


def generation_progression(states: np.ndarray, times: np.ndarray, n_times: int = 6, n_samples: int = 4) -> Figure:
    """F3: generation at ``n_times`` sampling times (columns) for ``n_samples`` samples (rows);
    states K x N x C x H x W along the probability-flow ODE, times K."""
    states, times = np.asarray(states), np.asarray(times)
    if states.ndim != 5 or len(states) != len(times):
        raise ValueError(f"states must be K x N x C x H x W with K = len(times), got {states.shape}, "
                         f"{len(times)} times")
    picks = _pick(times, n_times)
    n_samples = min(n_samples, states.shape[1])
    with _styled():
        fig = _new(1.3 * len(picks), 1.3 * n_samples + 0.4)
        axes = fig.subplots(n_samples, len(picks), squeeze=False)
        for c, k in enumerate(picks):
            for r in range(n_samples):
                _show(axes[r, c], states[k, r])
            axes[0, c].set_title(f"t = {times[k]:.3g}")
        fig.suptitle("Generation along the probability-flow ODE")
    return fig


# ---- F4/F5: fixed-budget grids -------------------------------------------------------------

def _grid(images: np.ndarray, ncols: int) -> np.ndarray:
    """N x C x H x W -> C x (rows H) x (ncols W) mosaic with 1-pixel white gutters."""
    n, c, h, w = images.shape
    rows = -(-n // ncols)
    out = np.ones((c, rows * (h + 1) - 1, ncols * (w + 1) - 1))
    for i, img in enumerate(np.clip(images, 0, 1)):
        r, k = divmod(i, ncols)
        out[:, r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = img
    return out


def budget_grid(panels: list[dict], budget_seconds: float, resolution: int, ncols: int = 4) -> Figure:
    """F4/F5: sample grids after the same training budget, one panel per method:
    ``dict(method, images N x C x H x W, mean_ssim[, fid, kid, n_generated, n_reference])`` (ours, DDPM,
    and dsm where it was trained); mean SSIM in each title, and FID and KID with their sample counts
    where given."""
    if not panels:
        raise ValueError("budget_grid needs at least one panel")
    with _styled():
        mosaics = []
        for panel in panels:
            images = np.asarray(panel["images"])
            if images.ndim != 4:
                raise ValueError(f"panel {panel.get('method')!r}: images must be N x C x H x W, got {images.shape}")
            mosaics.append(_grid(images, min(ncols, len(images))))
        aspect = max(m.shape[1] / m.shape[2] for m in mosaics)
        fig = _new(3.0 * len(panels), 3.0 * aspect + 0.9)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel, mosaic in zip(axes, panels, mosaics):
            _show(ax, mosaic)
            label = METHOD_LABELS.get(panel["method"], panel["method"])
            title = f"{label}\nmean SSIM {panel['mean_ssim']:.4f}"
            if "kid" in panel and np.isfinite(panel["kid"]):
                title += (f"\nFID {panel['fid']:.1f}, KID {panel['kid']:.3f} "
                          f"({panel['n_generated']:.0f} vs {panel['n_reference']:.0f} images)")
            ax.set_title(title)
        fig.suptitle(f"{resolution}x{resolution}, identical training budget {budget_seconds:.0f} s")
    return fig


# ---- F6-F9: solvers ------------------------------------------------------------------------

def solver_times(t2: pd.DataFrame) -> Figure:
    """F6: total pre-computation seconds (assembly + solve) per solver, grouped by resolution (T2 table)."""
    solvers = list(dict.fromkeys(t2["solver"]))
    groups = list(dict.fromkeys(zip(t2["dataset"], t2["resolution"])))
    with _styled():
        fig = _new(1.2 + 1.1 * len(groups) * max(1, len(solvers)) * 0.5, 3.0)
        ax = fig.add_subplot()
        width = 0.8 / len(solvers)
        for s, solver in enumerate(solvers):
            sub = t2[t2["solver"] == solver].set_index(["dataset", "resolution"])
            values = [sub["total_s"].get(g, np.nan) for g in groups]
            ax.bar(np.arange(len(groups)) + (s - (len(solvers) - 1) / 2) * width, values, width, label=solver)
        ax.set_xticks(np.arange(len(groups)), [f"{d} {r}x{r}" for d, r in groups])
        ax.set_ylabel("total seconds (assembly + solve)")
        ax.set_title("Score pre-computation time per solver")
        ax.legend()
    return fig


def picard_convergence(log: pd.DataFrame) -> Figure:
    """F7: mean Krylov iterations and median final residual per fixed-point iteration, per solver (solve log)."""
    with _styled():
        fig = _new(7.0, 2.8)
        ax_it, ax_res = _integer_x_panels(fig, "fixed-point iteration k",
                                          ("mean iterations per solve", "median relative residual"))
        for (solver, res), g in log.groupby(["solver", "resolution"], sort=False):
            per = g.groupby("picard_iter")
            label = f"{solver} {res}x{res}"
            ax_it.plot(per["iterations"].mean(), marker="o", ms=3, label=label)
            ax_res.semilogy(per["final_residual"].median(), marker="o", ms=3, label=label)
        ax_it.legend()
        fig.suptitle("Linear solves per fixed-point iteration")
    return fig


def _integer_x_panels(fig: Figure, xlabel: str, ylabels: tuple[str, str]):
    """Two side-by-side axes over an integer x (iteration, rank), labelled."""
    axes = fig.subplots(1, 2)
    for ax, ylabel in zip(axes, ylabels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return axes


def projection_residual(df: pd.DataFrame) -> Figure:
    """F8: projection residual ||b - A x0|| / ||b|| of each target image channel against its pixel L2
    distance to its seed: median over its solves, bars from min to max.

    ``df`` columns: dissimilarity, residual_median, residual_min, residual_max, optional
    label (one colour each; e.g. dataset and size). See ``tables.projection_vs_dissimilarity``.
    """
    groups = df.groupby("label", sort=False) if "label" in df.columns else [(None, df)]
    with _styled():
        fig = _new(4.4, 3.3)
        ax = fig.add_subplot()
        for label, g in groups:
            med = g["residual_median"].to_numpy(float)
            bars = np.vstack([med - g["residual_min"].to_numpy(float), g["residual_max"].to_numpy(float) - med])
            ax.errorbar(g["dissimilarity"], med, yerr=bars, fmt="o", ms=4, capsize=2, elinewidth=0.8, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("pixel L2 distance to the seed")
        ax.set_ylabel("projection residual (median, min-max)")
        ax.set_title("Projected initial guess against dissimilarity to the seed")
        if "label" in df.columns:
            ax.legend()
    return fig


def rank_sweep(df: pd.DataFrame) -> Figure:
    """F9: solve time and iterations against the subspace rank r.

    ``df`` columns: rank, seconds, iterations, optional set and resolution (one line each).
    """
    with _styled():
        fig = _new(7.0, 2.8)
        ax_t, ax_i = _integer_x_panels(fig, "subspace rank r", ("seconds", "mean iterations per solve"))
        keys = [k for k in ("set", "resolution") if k in df.columns]
        groups = df.groupby(keys, sort=False) if keys else [((), df)]
        for key, g in groups:
            g = g.sort_values("rank")
            values = key if isinstance(key, tuple) else (key,)
            label = " ".join(f"{v}x{v}" if k == "resolution" else str(v) for k, v in zip(keys, values)) or None
            ax_t.plot(g["rank"], g["seconds"], marker="o", ms=3, label=label)
            ax_i.plot(g["rank"], g["iterations"], marker="o", ms=3, label=label)
        if keys:
            ax_t.legend()
        fig.suptitle("Sensitivity to the subspace rank")
    return fig


# ---- F10 -----------------------------------------------------------------------------------

def ssim_curves(logs: pd.DataFrame, targets: dict[str, float] | None = None) -> Figure:
    """F10: SSIM at each evaluation against training seconds, ours vs DDPM (and dsm where its logs are
    given, dash-dot), one panel per experiment.

    ``logs`` columns: experiment, method, train_seconds, ssim (rows without ssim are skipped);
    ``targets`` maps experiment to its target SSIM (a dashed line).
    """
    logs = logs.dropna(subset=["ssim"])
    experiments = list(dict.fromkeys(logs["experiment"]))
    if not experiments:
        raise ValueError("ssim_curves: no SSIM evaluations in the training logs")
    targets = targets or {}
    with _styled():
        fig = _new(3.4 * len(experiments), 3.0)
        axes = fig.subplots(1, len(experiments), squeeze=False)[0]
        for ax, exp in zip(axes, experiments):
            for method, g in logs[logs["experiment"] == exp].groupby("method", sort=False):
                line = dict(dict(marker="o", linestyle="-"), **METHOD_LINES.get(method, {}))
                ax.plot(g["train_seconds"], g["ssim"], ms=3, color=METHOD_COLORS.get(method),
                        label=METHOD_LABELS.get(method, method), **line)
            if exp in targets:
                ax.axhline(targets[exp], color="0.3", linestyle="--", linewidth=0.8, label="target")
            ax.set_xlabel("training seconds")
            ax.set_ylabel("SSIM")
            ax.set_title(exp)
            ax.legend()
        fig.suptitle("SSIM against training time")
    return fig

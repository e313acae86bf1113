"""The verdict table of docs/results/verdict.md: one row per learning claim, from the verdict benchmark's runs.

Every cell is computed from the saved runs of ``verdict_benchmark.py`` (OUT/runs/*.json): time-to-target
ratios over paired runs (same image and seed; median [min, max], bounds where a run did not reach the
target within its cap), and fixed-budget SSIM (the last evaluation at or before the budget). The verdict
words follow one rule: a speed-up is "confirmed" when ours is faster in every pair, "contradicted" when
slower in every pair, "not confirmed" when the pairs disagree; a budget claim is confirmed when ours'
SSIM is higher in every pair. Columns: the authors' recipe and the project's default recipe
(``verdict_benchmark.RECIPES``); the like-for-like control is the project's recipe with only the
training targets changed (dsm: denoising score matching on the image; ours_zero: ours' time levels with
zero scores).

    python benchmarks/verdict_table.py           # print the table (markdown)
    python benchmarks/verdict_table.py --write   # replace the table between its markers in docs/results/verdict.md
    python benchmarks/verdict_table.py --check   # exit 1 when the table there is stale
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_block import add_output_options, emit  # noqa: E402
from verdict_benchmark import (IMAGES_32, IMAGES_64, SHARED_RUNS, fmt_time, load_image, paired_ratios,  # noqa: E402
                               saved_runs, time_or_cap)

BEGIN, END = "<!-- verdict-table:begin -->", "<!-- verdict-table:end -->"
TARGET = Path(__file__).resolve().parents[1] / "docs" / "results" / "verdict.md"
RECIPE_COLUMNS = (("authors", "authors' recipe"), ("default", "project's recipe"))
PROTOCOL_TEXT = {"noisy_copy": "noisy copy (the authors' script)", "generate": "generate (the paper's text)"}


@dataclass(frozen=True)
class Claim:
    text: str              # the claim as the paper states it
    paper: str             # the paper's number
    kind: str              # ddpm_speedup | budget_ssim | embedding_speedup | untestable
    size: int = 32
    target: str = "0.9"    # SSIM target (the saved runs' key) for speed-ups
    protocol: str = "generate"
    budget: float = 0.0    # training seconds for budget claims
    why: str = ""          # untestable: why
    ddpm_recipe: str = ""  # DDPM's runs from this recipe (paired with ours of the recipe it shares runs with)


CLAIMS = [
    *(Claim(f"CIFAR-10 32×32, {PROTOCOL_TEXT[p]}: 27.1x faster than DDPM to SSIM {t}", "27.1x (to 0.99)",
            "ddpm_speedup", 32, t, p) for p in ("noisy_copy", "generate") for t in ("0.99", "0.9")),
    *(Claim(f"CIFAR-10 32×32, noisy copy, DDPM with the 5000-step learning-rate warm-up of the authors' DDPM code: "
            f"27.1x faster than DDPM to SSIM {t}", "27.1x (to 0.99)", "ddpm_speedup", 32, t, "noisy_copy",
            ddpm_recipe="authors-warmup") for t in ("0.99", "0.9")),
    *(Claim(f"CelebA 64×64, {PROTOCOL_TEXT[p]}: 115.4x faster than DDPM (paper: to 0.99; here: to 0.90)",
            "115.4x (to 0.99)", "ddpm_speedup", 64, "0.9", p) for p in ("noisy_copy", "generate")),
    Claim("CelebA 128×128: 60.8x faster than DDPM to SSIM 0.90", "60.8x", "untestable", 128,
          why="128×128 training to 0.90 does not fit the CPU caps of this 2-core machine (not run)"),
    *(Claim(f"32×32, equal training budget, {PROTOCOL_TEXT[p]}: SSIM of ours vs DDPM (paper: sets of "
            f"images, 4155 s; here: one image, 120 s)", "0.8991 vs 0.8517", "budget_ssim", 32,
            protocol=p, budget=120.0) for p in ("noisy_copy", "generate")),
    Claim("32×32, equal training budget, noisy copy, DDPM with the authors' learning-rate warm-up: SSIM of ours vs "
          "DDPM (paper: sets of images, 4155 s; here: one image, 120 s)", "0.8991 vs 0.8517", "budget_ssim", 32,
          protocol="noisy_copy", budget=120.0, ddpm_recipe="authors-warmup"),
    *(Claim(f"64×64, equal training budget, {PROTOCOL_TEXT[p]}: SSIM of ours vs DDPM (paper: sets of "
            f"images, 6388 s; here: one face, 300 s)", "0.6302 vs 0.4446", "budget_ssim", 64,
            protocol=p, budget=300.0) for p in ("noisy_copy", "generate")),
    *(Claim(f"Score embedding accelerates training, 32×32, {PROTOCOL_TEXT[p]}: dsm / ours to SSIM {t}",
            "claimed, no control", "embedding_speedup", 32, t, p) for p in ("noisy_copy", "generate")
      for t in ("0.9", "0.95")),
]


def select(runs: list[dict], size: int, recipe: str, protocol: str, method: str) -> list[dict]:
    return [r for r in runs if (r["size"], r["recipe"], r["protocol"], r["method"]) == (size, recipe, protocol,
                                                                                       method)]


def ssim_at(run: dict, budget: float) -> float:
    """SSIM of the last evaluation at or before ``budget`` training seconds (ours' pre-computation counted)."""
    spent = run.get("precompute_seconds", 0.0) if run["method"] == "ours" else 0.0
    best = [e["ssim"] for e in run["evaluations"] if e["train_seconds"] + spent <= budget]
    return best[-1] if best else float("nan")


def interval(run: dict, target: str) -> tuple[float, float]:
    """(prev, hit]: the time to target lies after the last evaluation below it and at the first at or above
    it (ours' pre-computation added); (cap, inf) when the target was not reached within the cap."""
    c = run["crossings"][target]
    spent = run.get("precompute_seconds", 0.0) if run["method"] == "ours" else 0.0
    if not c["reached"]:
        return run["cap"] + spent, np.inf
    return (c["prev"] if c["prev"] is not None else -np.inf) + spent, c["hit"] + spent


def outcomes(others: list[dict], ours: list[dict], target: str) -> dict:
    """Per paired run (same image and seed): ours faster (its interval ends before the other's begins),
    slower (the reverse), tied (the intervals overlap: within the evaluation spacing) or neither reached."""
    by = {(r["dataset"], r["image"], r["seed"]): r for r in ours}
    count = dict(faster=0, slower=0, tied=0, neither=0)
    for r in others:
        o = by.get((r["dataset"], r["image"], r["seed"]))
        if o is None:
            continue
        (o_prev, o_hit), (r_prev, r_hit) = interval(o, target), interval(r, target)
        if np.isinf(o_hit) and np.isinf(r_hit):
            count["neither"] += 1
        elif o_hit <= r_prev:
            count["faster"] += 1
        elif r_hit <= o_prev:
            count["slower"] += 1
        else:
            count["tied"] += 1
    return count


def direction(count: dict, claim: str) -> str:
    """The verdict words for 'ours is faster' from the paired outcomes."""
    decided = count["faster"] + count["slower"] + count["tied"]
    if not decided:
        return ("not testable: neither method reached the target within the caps" if count["neither"]
                else "not measured yet")
    tally = (f"ours faster in {count['faster']}, slower in {count['slower']}, tied within the evaluation "
             f"spacing in {count['tied']} of {decided} pairs" + (f" ({count['neither']} more: neither reached)"
                                                                  if count["neither"] else ""))
    if count["faster"] == decided:
        return f"{claim} confirmed: {tally}"
    if count["slower"] == decided:
        return f"{claim} contradicted: {tally}"
    return f"{claim} not confirmed: {tally}"


def ddpm_recipe(claim: Claim, recipe: str) -> str | None:
    """The recipe of the DDPM runs paired with ours of ``recipe`` (None: the claim's DDPM is not run there)."""
    if not claim.ddpm_recipe:
        return recipe
    return claim.ddpm_recipe if SHARED_RUNS.get(claim.ddpm_recipe, (None,))[0] == recipe else None


def budget_cell(runs: list[dict], claim: Claim, recipe: str) -> tuple[str, list[float]]:
    ours = {(r["dataset"], r["image"], r["seed"]): ssim_at(r, claim.budget)
            for r in select(runs, claim.size, recipe, claim.protocol, "ours")}
    ddpm = {(r["dataset"], r["image"], r["seed"]): ssim_at(r, claim.budget)
            for r in select(runs, claim.size, ddpm_recipe(claim, recipe), claim.protocol, "ddpm")}
    pairs = [k for k in ours if k in ddpm and np.isfinite(ours[k]) and np.isfinite(ddpm[k])]
    if not pairs:
        return "not measured yet", []
    a, b = np.array([ours[k] for k in pairs]), np.array([ddpm[k] for k in pairs])
    return (f"{np.median(a):.4f} vs {np.median(b):.4f} (medians, n={len(pairs)}; ours "
            f"[{a.min():.3f}, {a.max():.3f}], DDPM [{b.min():.3f}, {b.max():.3f}])", list(a - b))


def row(runs: list[dict], claim: Claim) -> list[str]:
    if claim.kind == "untestable":
        return [claim.text, claim.paper, "not run", "not run", "not run", f"not testable here: {claim.why}"]
    cells, verdicts = [], []
    if claim.kind == "budget_ssim":
        for recipe, label in RECIPE_COLUMNS:
            if ddpm_recipe(claim, recipe) is None:
                cells.append("not run")
                continue
            cell, diffs = budget_cell(runs, claim, recipe)
            cells.append(cell)
            if diffs:
                d = np.array(diffs)
                word = ("confirmed: ours higher in every pair" if d.min() > 0 else
                        "contradicted: ours lower in every pair" if d.max() < 0 else "not confirmed: pairs disagree")
                verdicts.append(f"{label}: {word}")
        dsm = [ssim_at(r, claim.budget) for r in select(runs, claim.size, "default", claim.protocol, "dsm")]
        dsm = [x for x in dsm if np.isfinite(x)]
        control = f"dsm {np.median(dsm):.4f} [{min(dsm):.3f}, {max(dsm):.3f}] n={len(dsm)}" if dsm else \
            "not measured yet"
    else:
        other = "ddpm" if claim.kind == "ddpm_speedup" else "dsm"
        for recipe, label in RECIPE_COLUMNS:
            other_recipe = ddpm_recipe(claim, recipe) if other == "ddpm" else recipe
            if other_recipe is None:
                cells.append("not run")
                continue
            r = paired_ratios(select(runs, claim.size, other_recipe, claim.protocol, other),
                              select(runs, claim.size, recipe, claim.protocol, "ours"), claim.target,
                              precompute=True)
            cells.append(f"{other}/ours {r.text()}" if (r.values or r.undefined) else "not measured yet")
            count = outcomes(select(runs, claim.size, other_recipe, claim.protocol, other),
                             select(runs, claim.size, recipe, claim.protocol, "ours"), claim.target)
            verdicts.append(f"{label}: {direction(count, 'speed-up')}")
        ref = [paired_ratios(select(runs, claim.size, "default", claim.protocol, m),
                             select(runs, claim.size, "default", claim.protocol, "ours"), claim.target,
                             precompute=True) for m in ("dsm", "ours_zero")]
        control = "; ".join(f"{m}/ours {r.text()}" for m, r in zip(("dsm", "ours_zero"), ref)
                            if r.values or r.undefined) or "not measured yet"
        if claim.kind == "embedding_speedup":
            control = next((f"ours_zero/ours {r.text()}" for r in ref[1:] if r.values or r.undefined),
                           "not measured yet")
    return [claim.text, claim.paper, *cells, control, "; ".join(verdicts) or "not measured yet"]


def raw_alone(runs: list[dict]) -> str:
    """The parameterisation on its own (part 8): ours and dsm under the project's recipe with raw instead
    of edm, noisy copy, 32x32: time to SSIM 0.90, and the paired ratio raw / edm."""
    cells = []
    for m in ("ours", "dsm"):
        raw, edm = (select(runs, 32, r, "noisy_copy", m) for r in ("default-raw", "default"))
        if not raw:
            continue
        reached = sum(time_or_cap(r, "0.9")[1] for r in raw)
        ratio = paired_ratios(raw, edm, "0.9")
        cells.append(f"{m} with raw reached 0.90 in {reached} of {len(raw)} runs, "
                     f"{fmt_time([time_or_cap(r, '0.9') for r in raw])} s (with edm: "
                     f"{fmt_time([time_or_cap(r, '0.9') for r in edm])} s), raw / edm {ratio.text()}")
    if not cells:
        return ""
    return ("The parameterisation alone (the project's recipe with the authors' raw instead of edm, noisy copy, "
            "32×32, clipped SSIM): " + "; ".join(cells) + ".")


def minmax_ceilings() -> str:
    """What a perfect sample scores under the authors' min-max SSIM: the training image itself, min-max
    normalised, against the image (below 1 wherever the image does not span [0, 1])."""
    from fpscore.metrics import ssim_to_own

    cells = []
    for size, images in ((32, IMAGES_32), (64, IMAGES_64)):
        for dataset, name in images:
            image = load_image(dataset, name, size)
            cells.append(f"{dataset} {name} {size}×{size}: {ssim_to_own(image, image, 'minmax')[0]:.4f}")
    return ("A perfect sample scores below 1 under the authors' min-max SSIM wherever the image does not span "
            "[0, 1] (the image itself, normalised, against the image): " + "; ".join(cells) + ".")


def table(runs: list[dict]) -> str:
    head = ["Claim", "Paper", "Authors' recipe", "Project's recipe", "Like-for-like control (project's recipe)",
            "Verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row(runs, c)) + " |" for c in CLAIMS]
    per_part: dict = {}
    for r in runs:
        key = (r["size"], r["recipe"], r["protocol"])
        per_part[key] = per_part.get(key, 0) + 1
    counts = ", ".join(f"{size}×{size} {recipe} {protocol}: {n}" for (size, recipe, protocol), n in sorted(per_part.items()))
    caps = ", ".join(f"{size}×{size} {kind} {cap:.0f} s" for size, kind, cap in sorted(
        {(r["size"], "DDPM" if r["method"] == "ddpm" else "flow", r["cap"]) for r in runs}))
    pre = [r["precompute_seconds"] for r in runs if r["method"] == "ours"]
    pre_text = f"ours' score pre-computation median {np.median(pre):.2f} s, max {max(pre):.2f} s; " if pre else ""
    raw = raw_alone(runs)
    lines += ["", f"Saved runs: {len(runs)} ({counts}); caps {caps}; {pre_text}{minmax_ceilings()}"]
    lines += ["", raw] if raw else []
    return "\n".join(lines)



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path(__file__).resolve().parent / "results" / "verdict",
                    help="the verdict benchmark's output folder (default: %(default)s)")
    add_output_options(ap, TARGET)
    args = ap.parse_args(argv)
    return emit(args, table(saved_runs(args.runs)), BEGIN, END, "the saved runs")


if __name__ == "__main__":
    raise SystemExit(main())

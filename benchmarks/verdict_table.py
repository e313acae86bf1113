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
    ours_recipe: str = ""  # ours' runs from this recipe, paired with the project's recipe's others (part 9)


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
    *(Claim(f"Score embedding accelerates training, with the default scores (reflect + minimal, no border layer; "
            f"part 9), 32×32, {PROTOCOL_TEXT[p]}: dsm / ours to SSIM {t}", "claimed, no control",
            "embedding_speedup", 32, t, p, ours_recipe="default-reflect") for p in ("noisy_copy", "generate")
      for t in ("0.9", "0.95")),
    *(Claim(f"With the default scores (reflect + minimal; part 9), 32×32, {PROTOCOL_TEXT[p]}: 27.1x faster than "
            f"DDPM to SSIM {t}", "27.1x (to 0.99)", "ddpm_speedup", 32, t, p, ours_recipe="default-reflect")
      for p in ("noisy_copy", "generate") for t in ("0.9",)),
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


def ours_of(claim: Claim, recipe: str) -> str | None:
    """The recipe of the ours runs of a column (None: the claim does not run ours there)."""
    if not claim.ours_recipe:
        return recipe
    return claim.ours_recipe if SHARED_RUNS.get(claim.ours_recipe, (None,))[0] == recipe else None


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
            ours_recipe = ours_of(claim, recipe)
            if other_recipe is None or ours_recipe is None:
                cells.append("not run")
                continue
            r = paired_ratios(select(runs, claim.size, other_recipe, claim.protocol, other),
                              select(runs, claim.size, ours_recipe, claim.protocol, "ours"), claim.target,
                              precompute=True)
            cells.append(f"{other}/ours {r.text()}" if (r.values or r.undefined) else "not measured yet")
            count = outcomes(select(runs, claim.size, other_recipe, claim.protocol, other),
                             select(runs, claim.size, ours_recipe, claim.protocol, "ours"), claim.target)
            verdicts.append(f"{label}: {direction(count, 'speed-up')}")
        ours_default = ours_of(claim, "default")
        ref = [paired_ratios(select(runs, claim.size, "default", claim.protocol, m),
                             select(runs, claim.size, ours_default, claim.protocol, "ours"), claim.target,
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


def steps_to(run: dict, target: str):
    """Training steps at the first evaluation at or above ``target`` (None: not reached)."""
    c = run["crossings"][target]
    return c["step"] if c["reached"] else None


def part9_steps(runs: list[dict]) -> str:
    """Part 9 against the project's recipe's runs in training steps to SSIM 0.90 (its runs trained at
    another pace in steps per CPU second, which the seconds of its rows mix in): median paired ratios
    other / ours with the default scores, the pairs only one of them reached, and each part's pace."""
    new = [r for r in runs if r["recipe"] == "default-reflect" and r["size"] == 32]
    if not new:
        return ""
    cells = []
    for protocol in ("noisy_copy", "generate"):
        ours = {(r["dataset"], r["image"], r["seed"]): r for r in new if r["protocol"] == protocol}
        if not ours:
            continue
        pace = np.median([r["steps"] / r["train_seconds"] for r in ours.values()])
        parts = []
        for m in ("dsm", "ours_zero", "ddpm", "ours"):
            other = {(r["dataset"], r["image"], r["seed"]): r for r in select(runs, 32, "default", protocol, m)}
            pairs = [(steps_to(ours[k], "0.9"), steps_to(other[k], "0.9")) for k in ours if k in other]
            both = [b / a for a, b in pairs if a and b]
            only_new = sum(1 for a, b in pairs if a and not b)
            only_other = sum(1 for a, b in pairs if b and not a)
            label = "ours with the paper's scores" if m == "ours" else m
            ratio = f"{np.median(both):.2f} [{min(both):.2f}, {max(both):.2f}]" if both else "n/a"
            pace_other = np.median([r["steps"] / r["train_seconds"] for r in other.values()]) if other else np.nan
            parts.append(f"{label} {ratio} n={len(both)} (only ours reached: {only_new}, only {label}: "
                         f"{only_other}; {pace_other:.1f} steps/s)")
        cells.append(f"{PROTOCOL_TEXT[protocol]} (part 9 at {pace:.1f} steps/s): " + "; ".join(parts))
    return ("Part 9 in training steps to SSIM 0.90 (median paired ratio other / ours with the default "
            "reflect + minimal scores, [min, max]; steps at the first evaluation at or above the target): "
            + " — ".join(cells) + ".")


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


# ---- the set part (verdict_sets.py): fixed budget on 16 faces, with the controls -------------------

SET_SIZE = 32


def _by_seed(runs: list[dict], recipe: str, method: str, size: int = SET_SIZE) -> dict:
    return {r["seed"]: r for r in runs if (r["size"], r["recipe"], r["method"]) == (size, recipe, method)}


def _set_recipe(recipe: str, method: str) -> str:
    """The recipe whose runs stand for ``method`` under ``recipe`` (SHARED_RUNS: authors-warmup takes ours,
    dsm and ours_zero from authors)."""
    source, shared = SHARED_RUNS.get(recipe, (None, ()))
    return source if method in shared else recipe


def set_pairs(runs: list[dict], recipe: str, other: str, other_recipe: str | None = None) -> list[tuple]:
    """(ours, other) run pairs of the same seed; ours from ``recipe`` (or the recipe it shares), the other
    method from ``other_recipe`` (default: ``recipe``)."""
    ours = _by_seed(runs, _set_recipe(recipe, "ours"), "ours")
    others = _by_seed(runs, _set_recipe(other_recipe or recipe, other), other)
    return [(ours[s], others[s]) for s in sorted(ours) if s in others]


def _spread(values) -> str:
    v = np.asarray(values, float)
    return f"{np.median(v):.3f} [{v.min():.3f}, {v.max():.3f}]"


def set_cell(pairs: list[tuple], other: str) -> tuple[str, str]:
    """(cell, verdict word) of ours vs ``other`` over seed pairs: medians and [min, max] of the mean SSIM to the
    closest training image (each run's recipe mode), KID and FID with the sample counts, the floor, near copies
    and the training images covered (a high SSIM with one face covered is a collapse, not a success)."""
    if not pairs:
        return "not measured yet", ""
    a, b = (np.array([p[i]["mean_ssim"] for p in pairs]) for i in (0, 1))
    d = a - b
    first = pairs[0][0]
    cell = (f"SSIM {np.median(a):.4f} vs {np.median(b):.4f} (medians, n={len(pairs)} seeds; ours "
            f"[{a.min():.3f}, {a.max():.3f}], {other} [{b.min():.3f}, {b.max():.3f}], {first['ssim_mode']}); "
            f"KID {_spread([p[0]['kid'] for p in pairs])} vs {_spread([p[1]['kid'] for p in pairs])}, "
            f"FID {np.median([p[0]['fid'] for p in pairs]):.0f} vs {np.median([p[1]['fid'] for p in pairs]):.0f} "
            f"({first['n_generated']} samples vs {first['n_reference']} training images; floor, "
            f"{first['n_floor']}: KID {first['kid_floor']:.3f}, FID {first['fid_floor']:.0f}); near copies "
            f"{np.median([p[0]['copy_fraction'] for p in pairs]):.2f} vs "
            f"{np.median([p[1]['copy_fraction'] for p in pairs]):.2f}; faces covered "
            f"{np.median([p[0]['distinct_nearest'] for p in pairs]):.0f} vs "
            f"{np.median([p[1]['distinct_nearest'] for p in pairs]):.0f} of {first['n_reference']}")
    word = ("ours higher in every pair" if d.min() > 0 else "ours lower in every pair" if d.max() < 0 else
            "pairs disagree")
    return cell, word


def set_rows(runs: list[dict]) -> list[list[str]]:
    """The set rows: fixed budget ours vs DDPM (and DDPM with the authors' warm-up), and the score embedding
    controls (dsm vs ours, ours_zero vs ours), per recipe, paired by seed."""
    if not runs:
        return []
    budget = runs[0]["part_budget"]
    n = runs[0]["n_images"]
    where = f"{n} faces {SET_SIZE}×{SET_SIZE}, {budget:.0f} CPU s each (ours' pre-computation inside)"
    scores = "ours with the default scores (reflect + minimal)"
    # (claim, paper, other method, the other's recipe if not the column's, ours' recipe if not the column's)
    specs = [
        (f"Fixed budget on sets: ours vs DDPM ({where}; paper: 32×32, 4155 s)", "0.8991 vs 0.8517", "ddpm", None,
         None),
        (f"Fixed budget on sets: ours vs DDPM with the authors' learning-rate warm-up ({where})", "0.8991 vs 0.8517",
         "ddpm", "authors-warmup", None),
        (f"Score embedding on sets: dsm vs ours ({where})", "claimed, no control", "dsm", None, None),
        (f"Score embedding on sets: ours_zero vs ours ({where})", "claimed, no control", "ours_zero", None, None),
        (f"Fixed budget on sets, {scores}: ours vs DDPM ({where})", "0.8991 vs 0.8517", "ddpm", None,
         "default-reflect"),
        (f"Score embedding on sets, {scores}: dsm vs ours ({where})", "claimed, no control", "dsm", None,
         "default-reflect"),
        (f"Score embedding on sets, {scores}: ours_zero vs ours ({where})", "claimed, no control", "ours_zero", None,
         "default-reflect"),
    ]
    rows = []
    for text, paper, other, other_recipe, ours_recipe in specs:
        cells, verdicts = [], []
        for recipe, label in RECIPE_COLUMNS:
            if (other_recipe and _set_recipe(other_recipe, "ours") != recipe) or \
                    (ours_recipe and SHARED_RUNS[ours_recipe][0] != recipe):
                cells.append("not run")
                continue
            cell, word = set_cell(set_pairs(runs, ours_recipe or recipe, other, other_recipe), other)
            cells.append(cell)
            if word:
                claim = "score embedding helps" if other in ("dsm", "ours_zero") else "ours better"
                verdict = {"ours higher in every pair": "confirmed", "ours lower in every pair": "contradicted"}.get(
                    word, "not confirmed")
                verdicts.append(f"{label}: {claim} {verdict} ({word})")
        if other == "ddpm" and not other_recipe and not ours_recipe:
            ctrl = [f"{m} SSIM {_spread([r['mean_ssim'] for r in _by_seed(runs, 'default', m).values()])}"
                    for m in ("dsm", "ours_zero") if _by_seed(runs, "default", m)]
            control = "; ".join(ctrl) or "not measured yet"
        else:
            control = ("(this row is the control)" if other in ("dsm", "ours_zero") else
                       "see the next two rows" if ours_recipe else "see the row above")
        rows.append([text, paper, *cells, control, "; ".join(verdicts) or "not measured yet"])
    return rows


def set_note(runs: list[dict]) -> str:
    if not runs:
        return ""
    per = {}
    for r in runs:
        per.setdefault((r["recipe"], r["method"]), []).append(r)
    counts = ", ".join(f"{recipe} {m}: {len(rs)}" for (recipe, m), rs in sorted(per.items()))
    first = runs[0]
    return (f"Set runs saved: {len(runs)} ({counts}); seeds paired; SSIM of each sample to its closest training image "
            f"in the recipe's mode (the project's: clip, the authors': minmax); DDPM samples ancestrally (1000 steps), "
            f"the others with their recipe's ODE sampler; {first['n_generated']} samples per run; KID and FID from the "
            "offline FID Inception-v3 against the training set, floor = one half of the training set against the other; "
            "near copies = samples closer to one training image than 1/3 of their distance to the second "
            f"(the training images' own median nearest distance: {first['train_nn_distance_median']:.3f} RMS); "
            "faces covered = how many distinct training images the samples are closest to (median over seeds). "
            "Runs, summary and figures: benchmarks/results/verdict/sets/.")


def table(runs: list[dict], set_runs: list[dict] | None = None) -> str:
    head = ["Claim", "Paper", "Authors' recipe", "Project's recipe", "Like-for-like control (project's recipe)",
            "Verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row(runs, c)) + " |" for c in CLAIMS]
    lines += ["| " + " | ".join(r) + " |" for r in set_rows(set_runs or [])]
    per_part: dict = {}
    for r in runs:
        key = (r["size"], r["recipe"], r["protocol"])
        per_part[key] = per_part.get(key, 0) + 1
    counts = ", ".join(f"{size}×{size} {recipe} {protocol}: {n}" for (size, recipe, protocol), n in sorted(per_part.items()))
    caps = ", ".join(f"{size}×{size} {kind} {cap:.0f} s" for size, kind, cap in sorted(
        {(r["size"], "DDPM" if r["method"] == "ddpm" else "flow", r["cap"]) for r in runs}))
    pre = [r["precompute_seconds"] for r in runs if r["method"] == "ours"]
    pre_text = f"ours' score pre-computation median {np.median(pre):.2f} s, max {max(pre):.2f} s; " if pre else ""
    raw, steps = raw_alone(runs), part9_steps(runs)
    lines += ["", f"Saved runs: {len(runs)} ({counts}); caps {caps}; {pre_text}{minmax_ceilings()}"]
    lines += ["", raw] if raw else []
    lines += ["", steps] if steps else []
    note = set_note(set_runs or [])
    lines += ["", note] if note else []
    return "\n".join(lines)



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path(__file__).resolve().parent / "results" / "verdict",
                    help="the verdict benchmark's output folder (default: %(default)s)")
    add_output_options(ap, TARGET)
    args = ap.parse_args(argv)
    import verdict_sets

    return emit(args, table(saved_runs(args.runs), verdict_sets.saved(args.runs / "sets")), BEGIN, END,
                "the saved runs")


if __name__ == "__main__":
    raise SystemExit(main())

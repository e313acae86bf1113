"""Files of the learning step: training inputs, the pre-computation time, model.pt, logs.

Inputs: images.npz (images N x C x H x W in [0, 1], names) of the data step and
the score set (a directory of .npy files or a .npz: m, scores N x C x T x H x W, times,
g: T, params: JSON; ``fpscore.score_store``) plus solve_log.csv of the score step. Every output is written whole or not at all
(fpscore.fileio.atomic_outputs: a temporary file beside it, then a rename).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fpscore.fileio import atomic_outputs
from fpscore.diffusion.methods import method_from_description
from fpscore.diffusion.sde import VESDE
from fpscore.diffusion.unet import UNet, UNetConfig

MODEL_FORMAT = "fpscore-model/1"


def load_images(path: str | Path, indices: Sequence[int] | None = None, count: int | None = None):
    """(images n x C x H x W float32 in [0, 1], names, selected indices) from images.npz: explicit
    `indices`, else the first `count`, else all (``fpscore.data.read_images``, ``select_indices``)."""
    from fpscore.data import read_images, select_indices

    images, names = read_images(path)
    chosen = select_indices(images.shape[0], count, indices, "", pool=str(path), names=("--indices", "--count"))
    return images[chosen].astype(np.float32), [str(names[i]) for i in chosen], chosen


def load_scores(path: str | Path, names: Sequence[str], image_shape: tuple, indices: Sequence[int]):
    """(scores n x C x T x H x W, times, g, sde) of the selected images, checked against the images.

    path: a score directory (``fpscore.score_store``) or a scores .npz file; names: the names of
    ALL images of images.npz (the score set must cover the same set, in order). When every image
    is selected, in order, the scores of a directory stay memory-mapped (nothing is loaded until
    a batch indexes them); otherwise only the selected images are read.
    """
    from fpscore.score_store import read_scores

    n_images = len(names)
    path = Path(path)
    try:
        arrays = read_scores(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"scores {path} do not exist; run `fpscore scores` or the scores rule") from None
    scores, times, g = arrays["scores"], arrays["times"].astype(np.float64), arrays["g"].astype(np.float64)
    params = json.loads(str(arrays["params"]))
    c, h, w = image_shape
    if scores.shape[0] != n_images or scores.shape[1] != c or scores.shape[3:] != (h, w):
        raise ValueError(f"{path}: scores of shape {scores.shape} do not match the images: expected "
                         f"({n_images}, {c}, T, {h}, {w}) (N x C x T x H x W)")
    score_names = [str(n) for n in arrays["names"]]
    if score_names != list(names):
        raise ValueError(f"{path}: image names {score_names[:3]}... differ from those of the images file "
                         f"{list(names)[:3]}...: the scores belong to another image set")
    indices = list(indices)
    if indices != list(range(n_images)):
        scores = np.asarray(scores[indices])
    for start in range(0, scores.shape[0], 256):  # in blocks: a memory-mapped set is never loaded whole
        if not np.isfinite(scores[start:start + 256]).all():
            raise ValueError(f"{path}: scores hold NaN or inf values (image(s) {start}..{start + 255})")
    fp = params.get("fp", params) if isinstance(params, dict) else {}
    sigma = float(fp["sigma"]) if "sigma" in fp else float(g[-1] ** (1 / times[-1]))
    sde = VESDE(sigma=sigma, eps=float(times[0]), n_times=int(times.size))
    if not (np.allclose(times, sde.times(), rtol=1e-9, atol=1e-12) and np.allclose(g, sde.g(times), rtol=1e-6)):
        raise ValueError(f"{path}: times and g are not t_n = linspace(eps, 1, N) and g = sigma**t with "
                         f"sigma = {sigma}, as METHOD.md section 1 defines them")
    return scores, times, g, sde


def precompute_seconds(solve_log: str | Path, indices: Sequence[int]) -> float:
    """Score pre-computation time of the selected images: their assemble + solve seconds in solve_log.csv."""
    import pandas as pd

    wanted = ["image", "assemble_seconds", "solve_seconds"]
    try:
        missing = set(wanted) - set(pd.read_csv(solve_log, nrows=0).columns)
        if missing:
            raise ValueError(f"{solve_log}: missing column(s) {sorted(missing)}")
        log = pd.read_csv(solve_log, usecols=wanted)  # a whole set's log has millions of rows
    except FileNotFoundError:
        raise FileNotFoundError(f"solve log {solve_log} does not exist") from None
    rows = log[log["image"].isin(list(indices))]
    if rows.empty:
        raise ValueError(f"{solve_log}: no rows for image(s) {list(indices)}")
    return float(rows["assemble_seconds"].sum() + rows["solve_seconds"].sum())


def _atomic(path: Path, write) -> None:
    with atomic_outputs(path) as (tmp,):
        write(Path(tmp))


def write_log_csv(rows: list[dict], path: str | Path, columns: Sequence[str]) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(columns))
            out.writeheader()
            for row in rows:
                out.writerow({k: "" if isinstance(row.get(k), float) and math.isnan(row[k]) else row.get(k, "")
                              for k in columns})
    _atomic(path, write)


def write_json(obj: dict, path: str | Path) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1, default=_jsonable) + "\n"))


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def save_model(path: str | Path, net: UNet, method_desc: dict, image_shape: tuple, summary: dict) -> None:
    payload = {"format": MODEL_FORMAT, "method": method_desc, "unet": net.config.as_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
               "image_shape": list(image_shape), "summary": summary}
    _atomic(path, lambda tmp: torch.save(payload, tmp))


def load_model(path: str | Path, device: str | torch.device = "cpu", **sampler_overrides):
    """(net in eval mode, sampling-only method, image_shape, summary) from model.pt."""
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {path} does not exist; run `fpscore train` first") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a model written by `fpscore train` (format {MODEL_FORMAT})")
    net = UNet(UNetConfig(**payload["unet"])).to(device)
    net.load_state_dict(payload["state_dict"])
    method = method_from_description(payload["method"], device=device, **sampler_overrides)
    return net.eval(), method, tuple(payload["image_shape"]), payload["summary"]


def write_samples(path: str | Path, result, method: str, summary: dict | None = None) -> None:
    """samples.npz: images N x C x H x W, states K x N x C x H x W at times K, sampler, method, nfe, and
    from the model's training summary the experiment, dataset and budget_seconds ('' and NaN where it
    has none), so that the figures label samples from the file."""
    summary = summary or {}
    budget = summary.get("budget_seconds")

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, images=np.clip(result.final, 0, 1).astype(np.float32), raw=result.final.astype(np.float32),
                     states=result.states.astype(np.float32), times=np.asarray(result.times, np.float64),
                     sampler=np.array(result.sampler), method=np.array(method), nfe=np.array(result.nfe),
                     experiment=np.array(summary.get("experiment") or ""), dataset=np.array(summary.get("dataset") or ""),
                     budget_seconds=np.array(np.nan if budget is None else float(budget)))
    _atomic(path, write)

"""Fréchet Inception Distance (FID) with the standard weights, or an honest "unavailable".

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between Gaussians fitted to
the 2048 pool features of the FID Inception-v3 (:mod:`fpscore.inception`). Only
the standard weights file (pytorch-fid's ``pt_inception-2015-12-05``, checked by
SHA-256) is ever used: when it is absent and cannot be downloaded, the result is
recorded as ``unavailable: <reason>`` instead of a number from other weights.
"""
from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import linalg

from fpscore.config import schema_default
from fpscore.fileio import atomic_outputs, file_digest

# The standard weights' address and checksum are config keys (evaluate.fid); the schema holds them.
FID_WEIGHTS_URL = schema_default("evaluate.fid.url")
FID_WEIGHTS_SHA256 = schema_default("evaluate.fid.sha256")
FID_WEIGHTS_BYTES = 95_628_359


class WeightsUnavailable(RuntimeError):
    """The standard FID weights are neither on disk nor downloadable (the reason is the message)."""


@dataclass(frozen=True)
class FIDResult:
    """One FID measurement: ``value`` is NaN and ``status`` says why when it is unavailable."""

    value: float
    status: str  # "ok" or "unavailable: <reason>"
    n_generated: int
    n_reference: int


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    The matrix square root of sigma1 sigma2 is taken with scipy's sqrtm; when the
    product is singular (fewer samples than features) ``eps`` is added to both
    diagonals, as the reference implementations do.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, float)), np.atleast_2d(np.asarray(sigma2, float))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: expected means of length d and d x d covariances, got "
                         f"mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}")
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(d)
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3 * max(1.0, np.abs(np.diagonal(covmean).real).max()):
            raise ValueError(f"frechet_distance: sqrt(sigma1 sigma2) has an imaginary diagonal part of {imag:.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of N x D features; needs N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"feature_statistics needs an N x D array with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def sha256sum(path: Path) -> str:
    return file_digest(path, "sha256")


def _download(url: str, dest: Path, sha256: str) -> None:
    """Fetch ``url`` to ``dest`` through a temporary sibling; keep it only if the checksum matches."""
    with atomic_outputs(dest, suffix=".part") as (tmp,):
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        got = sha256sum(Path(tmp))
        if got != sha256:
            raise WeightsUnavailable(f"download of {url} has SHA-256 {got}, expected {sha256}")


def resolve_weights(weights_path: str | Path, url: str = FID_WEIGHTS_URL, sha256: str = FID_WEIGHTS_SHA256,
                    download: bool = True) -> Path:
    """Path of verified FID weights: the file at ``weights_path``, downloaded there if missing.

    Raises WeightsUnavailable (with the reason) when the file is missing and
    ``download`` is off or fails, or when its checksum is wrong (an empty
    ``sha256`` skips the check).
    """
    path = Path(weights_path)
    if not path.exists():
        if not download or not url:
            raise WeightsUnavailable(f"weights file {path} not found and download is disabled")
        try:
            _download(url, path, sha256)
        except OSError as err:  # URLError, timeouts, DNS failures are all OSErrors
            raise WeightsUnavailable(f"weights file {path} not found and download from {url} failed: "
                                     f"{getattr(err, 'reason', err)}") from None
    if not sha256:  # the configuration opted out of the checksum; strict loading still checks the layers
        return path
    got = sha256sum(path)
    if got != sha256:
        raise WeightsUnavailable(f"weights file {path} has SHA-256 {got}, expected {sha256} "
                                 "(not the standard pt_inception-2015-12-05 weights)")
    return path


def as_rgb(images: np.ndarray) -> np.ndarray:
    """N x C x H x W images in [0, 1] as N x 3 x H x W float32 (grey replicated, values clipped)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"FID images must be N x C x H x W with C in (1, 3), got shape {images.shape}")
    images = np.clip(images, 0.0, 1.0)
    return np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images


FID_BATCH_SIZE = schema_default("evaluate.fid.batch_size")


def inception_features(images: np.ndarray, model, batch_size: int = FID_BATCH_SIZE,
                       device: str = "cpu") -> np.ndarray:
    """N x 2048 pool features of ``model`` (an FIDInceptionV3) for N x C x H x W images in [0, 1]."""
    import torch
    from tqdm import tqdm

    images = as_rgb(images)
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc="inception features", leave=False):
            batch = torch.from_numpy(images[start:start + batch_size]).to(device)
            out.append(model(batch).cpu().numpy().astype(np.float64))
    return np.concatenate(out, axis=0)


def compute_fid(generated: np.ndarray, reference: np.ndarray, weights_path: str | Path,
                url: str = FID_WEIGHTS_URL, sha256: str = FID_WEIGHTS_SHA256, download: bool = True,
                batch_size: int = FID_BATCH_SIZE, device: str = "cpu") -> FIDResult:
    """FID of ``generated`` against ``reference`` (both N x C x H x W in [0, 1]).

    Missing weights give ``FIDResult(nan, "unavailable: <reason>")``; bad inputs raise.
    """
    n_gen, n_ref = len(generated), len(reference)
    generated, reference = as_rgb(generated), as_rgb(reference)
    if n_gen < 2 or n_ref < 2:
        return FIDResult(float("nan"), f"unavailable: FID needs at least 2 images per set "
                                       f"(got {n_gen} generated, {n_ref} reference)", n_gen, n_ref)
    try:
        path = resolve_weights(weights_path, url=url, sha256=sha256, download=download)
    except WeightsUnavailable as err:
        return FIDResult(float("nan"), f"unavailable: {err}", n_gen, n_ref)
    from fpscore.inception import load_fid_inception

    try:
        model = load_fid_inception(path, device=device)
    except ValueError as err:
        return FIDResult(float("nan"), f"unavailable: {err}", n_gen, n_ref)
    mu1, s1 = feature_statistics(inception_features(generated, model, batch_size, device))
    mu2, s2 = feature_statistics(inception_features(reference, model, batch_size, device))
    return FIDResult(frechet_distance(mu1, s1, mu2, s2), "ok", n_gen, n_ref)

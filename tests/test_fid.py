"""FID: the Fréchet distance against closed forms, the Inception network's structure, the offline path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fpscore import fid
from fpscore.inception import FEATURE_DIM, FIDInceptionV3, load_fid_inception


def _closed_form_commuting(mu1, a, mu2, b):
    """FD for covariances Q diag(a) Q^T and Q diag(b) Q^T: ||mu1 - mu2||^2 + sum (sqrt a - sqrt b)^2."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.1, 3.0, 5), rng.uniform(0.1, 3.0, 5)
    got = fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(_closed_form_commuting(mu1, a, mu2, b), rel=1e-10)


def test_frechet_distance_commuting_closed_form():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.1, 2.0, 6), rng.uniform(0.1, 2.0, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    got = fid.frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(_closed_form_commuting(mu1, a, mu2, b), rel=1e-8)


def test_frechet_distance_one_dimensional():
    # N(0, 4) vs N(3, 1): 3^2 + (2 - 1)^2 = 10
    assert fid.frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(10.0)


def test_frechet_distance_identical_statistics_is_zero_and_symmetric():
    rng = np.random.default_rng(2)
    mu, sigma = fid.feature_statistics(rng.normal(size=(200, 16)))
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-8 * np.trace(sigma)
    mu2, sigma2 = fid.feature_statistics(rng.normal(loc=0.5, size=(200, 16)))
    assert fid.frechet_distance(mu, sigma, mu2, sigma2) == pytest.approx(
        fid.frechet_distance(mu2, sigma2, mu, sigma), rel=1e-6)


def test_frechet_distance_singular_covariances_stay_finite():
    rng = np.random.default_rng(3)  # 5 samples in 32 dimensions: rank-deficient covariances
    mu1, s1 = fid.feature_statistics(rng.normal(size=(5, 32)))
    mu2, s2 = fid.feature_statistics(rng.normal(size=(5, 32)))
    value = fid.frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value) and value > 0


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="d x d"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))


def test_network_matches_the_released_weights_file_size():
    # The released state dict is 95,628,359 bytes; ours must hold the same tensors (pickle overhead aside).
    state = FIDInceptionV3().state_dict()
    tensor_bytes = sum(v.numel() * v.element_size() for v in state.values())
    assert abs(tensor_bytes - fid.FID_WEIGHTS_BYTES) / fid.FID_WEIGHTS_BYTES < 2e-3
    assert state["fc.weight"].shape == (1008, FEATURE_DIM)


def test_network_features_and_strict_loading(tmp_path):
    torch.manual_seed(0)
    model = FIDInceptionV3()
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    loaded = load_fid_inception(path)
    images = np.random.default_rng(0).random((3, 1, 20, 20)).astype(np.float32)
    feats = fid.inception_features(images, loaded, batch_size=2)
    assert feats.shape == (3, FEATURE_DIM) and np.isfinite(feats).all()
    bad = dict(model.state_dict())
    bad.pop("Mixed_7c.branch_pool.conv.weight")
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="do not match"):
        load_fid_inception(tmp_path / "bad.pth")


def _images(n, seed):
    return np.random.default_rng(seed).random((n, 1, 8, 8))


def test_offline_missing_weights_is_unavailable(tmp_path):
    result = fid.compute_fid(_images(4, 0), _images(4, 1), tmp_path / "absent.pth", download=False)
    assert np.isnan(result.value)
    assert result.status.startswith("unavailable:") and "absent.pth" in result.status


def test_failed_download_is_unavailable(tmp_path):
    url = (tmp_path / "nowhere" / "w.pth").as_uri()  # fails at once, like an offline machine
    result = fid.compute_fid(_images(4, 0), _images(4, 1), tmp_path / "w.pth", url=url, download=True)
    assert np.isnan(result.value) and "download" in result.status and result.status.startswith("unavailable:")
    assert not (tmp_path / "w.pth").exists()


def test_wrong_checksum_is_unavailable_never_a_number(tmp_path):
    weights = tmp_path / "other.pth"
    torch.save(FIDInceptionV3().state_dict(), weights)  # loadable, but not the standard weights
    result = fid.compute_fid(_images(4, 0), _images(4, 1), weights, download=False)
    assert np.isnan(result.value) and "SHA-256" in result.status


def test_download_keeps_only_a_verified_file(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"weights")
    dest = tmp_path / "res" / "w.pth"
    with pytest.raises(fid.WeightsUnavailable, match="SHA-256"):
        fid.resolve_weights(dest, url=source.as_uri(), sha256="0" * 64)
    assert not dest.exists() and not list(dest.parent.iterdir())
    assert fid.resolve_weights(dest, url=source.as_uri(), sha256=fid.sha256sum(source)) == dest


def test_unchecked_file_of_other_layers_is_unavailable(tmp_path):
    weights = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(1000, 2048)}, weights)  # e.g. a classifier of another network
    result = fid.compute_fid(_images(4, 0), _images(4, 1), weights, sha256="", download=False)
    assert np.isnan(result.value) and result.status.startswith("unavailable:") and "do not match" in result.status


def test_fid_command_records_unavailable_offline(tmp_path):
    from fpscore.cli import main

    np.savez(tmp_path / "samples.npz", images=_images(4, 0))
    np.savez(tmp_path / "images.npz", images=_images(6, 1), names=np.array([f"i{k}" for k in range(6)]))
    out = tmp_path / "metrics" / "fid.csv"
    code = main(["fid", "--samples", str(tmp_path / "samples.npz"), "--references", str(tmp_path / "images.npz"),
                 "--reference-count", "5", "--experiment", "budget_x", "--method", "ours", "--no-download",
                 "--weights-path", str(tmp_path / "absent.pth"), "--out", str(out)])
    assert code == 0
    row = __import__("pandas").read_csv(out).iloc[0]
    assert np.isnan(row["fid"]) and row["fid_status"].startswith("unavailable:")
    assert (row["n_generated"], row["n_reference"]) == (4, 5)

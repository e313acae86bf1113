"""Dataset stage: builtin sets, CIFAR-10 / CelebA readers on miniature archives, downloads, errors, atomic output."""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import shlex
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.data
from PIL import Image

from fpscore import data
from fpscore.config import schema_default
from fpscore.cli import build_parser, main
from fpscore.cli import data as cli_data

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---- miniature archives in the official formats ------------------------------------------------
def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _cifar_batches(per_batch: int = 4, n_test: int = 6) -> dict:
    """Random uint8 batches as in cifar-10-batches-py (bytes keys, as Python 2 pickled them)."""
    rng = np.random.default_rng(7)
    batches, start = {}, 0
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        labels = [int(x) for x in (np.arange(start, start + n) % 10)]
        batches[name] = {b"batch_label": name.encode(), b"labels": labels,
                         b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                         b"filenames": [f"img_{start + j}.png".encode() for j in range(n)]}
        start += n
    return batches


def make_cifar(path: Path, skip: str | None = None, extra: dict | None = None) -> dict:
    batches = _cifar_batches()
    meta = {b"label_names": [n.encode() for n in LABELS], b"num_cases_per_batch": 4, b"num_vis": 3072}
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        for name, batch in {**batches, **(extra or {})}.items():
            if name != skip:
                _add(tar, f"cifar-10-batches-py/{name}", batch if isinstance(batch, bytes)
                     else pickle.dumps(batch, protocol=2))
    return batches


def _expected_cifar(batches: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.concatenate([batches[n][b"data"] for n in names]).reshape(-1, 3, 32, 32) / 255.0
    labels = np.concatenate([batches[n][b"labels"] for n in names])
    return pixels, labels


CELEBA_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (120, 120, 40), (40, 120, 160)]


def make_celeba(path: Path, folder: str = "img_align_celeba/", corrupt: int | None = None) -> None:
    """218 x 178 JPEGs: a flat colour in the central 178 x 178 square, white bands above and below.

    Members are stored in reverse order: the reader must sort them by file name.
    """
    with zipfile.ZipFile(path, "w") as zf:
        for k, colour in reversed(list(enumerate(CELEBA_COLOURS))):
            img = np.full((218, 178, 3), 255, np.uint8)
            img[20:198] = colour
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
            payload = buf.getvalue()[:200] if k == corrupt else buf.getvalue()
            zf.writestr(f"{folder}{k + 1:06d}.jpg", payload)


@pytest.fixture
def cifar(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    batches = make_cifar(path)
    return SimpleNamespace(path=path, md5=_md5(path), batches=batches)


@pytest.fixture
def celeba(tmp_path):
    path = tmp_path / "img_align_celeba.zip"
    make_celeba(path)
    return SimpleNamespace(path=path, md5=_md5(path))


def _cifar_opts(**kw):
    opts = {"url": "", "md5": None, "split": "train", "classes": [], "count": 3, "indices": []}
    return {**opts, **kw}


# ---- builtin sets ------------------------------------------------------------------------------
@pytest.mark.parametrize("resolution, channels", [(8, 3), (32, 1), (64, 3)])
def test_photos_square_in_range_with_channels(resolution, channels):
    images, names, manifest = data.prepare("photos", resolution, {"names": ["astronaut", "camera", "coins"],
                                                                   "channels": channels})
    assert images.shape == (3, channels, resolution, resolution) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.05
    assert list(names) == ["astronaut", "camera", "coins"]
    assert [r["original_size"] for r in manifest["images"]] == [[512, 512], [512, 512], [303, 384]]
    if channels == 3:  # camera is grey: replicated
        np.testing.assert_array_equal(images[1, 0], images[1, 2])
        assert not np.allclose(images[0, 0], images[0, 2])  # astronaut stays colour


def test_photos_center_crop_and_scale_exact_at_native_size():
    images, _, manifest = data.prepare("photos", 303, {"names": ["coins"], "channels": 1})
    left = (384 - 303) // 2
    np.testing.assert_allclose(images[0, 0], skimage.data.coins()[:, left:left + 303] / 255.0, atol=1e-7)
    assert manifest["images"][0]["crop_side"] == 303 and not manifest["images"][0]["upsampled"]


def test_photos_unknown_and_duplicate_names_rejected():
    with pytest.raises(data.DataError, match=r"unknown photo\(s\) \['brain'\].*astronaut"):
        data.prepare("photos", 8, {"names": ["astronaut", "brain"]})
    with pytest.raises(data.DataError, match="same image twice.*'cat' is the same image as 'chelsea'"):
        data.prepare("photos", 8, {"names": ["chelsea", "cat"]})


def test_faces_selection_and_upsampling_note():
    images, names, manifest = data.prepare("faces", 25, {"count": 16, "indices": [99, 0, 42]})
    assert images.shape == (3, 1, 25, 25) and list(names) == ["lfw_099", "lfw_000", "lfw_042"]
    lfw = skimage.data.lfw_subset()
    np.testing.assert_allclose(images[:, 0], lfw[[99, 0, 42]], atol=1e-7)
    images, _, manifest = data.prepare("faces", 32, {"count": 5, "indices": []})
    assert images.shape == (5, 1, 32, 32) and manifest["indices"] == [0, 1, 2, 3, 4]
    assert all(r["upsampled"] for r in manifest["images"]) and "interpolated" in " ".join(manifest["notes"])


def test_faces_indices_out_of_range_and_non_faces_refused():
    with pytest.raises(data.DataError,
                       match=r"data\.faces\.indices out of range: \[100, -1\]; valid indices are 0\.\.99"):
        data.prepare("faces", 16, {"count": 4, "indices": [3, 100, -1]})
    with pytest.raises(data.DataError, match=r"data\.faces\.count = 101 but only 100"):
        data.prepare("faces", 16, {"count": 101, "indices": []})
    with pytest.raises(data.DataError, match=r"repeats \[3\]"):
        data.prepare("faces", 16, {"count": 4, "indices": [3, 3]})


def test_resize_is_anti_aliased():
    checker = (np.indices((63, 63)).sum(0) % 2).astype(float)[:, :, None]
    small = data.resize_square(checker, 21)
    assert small.shape == (21, 21, 1)
    assert abs(small.mean() - 0.5) < 0.05 and small.std() < 0.1
    from skimage.transform import resize  # without anti-aliasing the same resize aliases badly
    assert resize(checker, (21, 21, 1), order=1, anti_aliasing=False).std() > 0.4


@pytest.mark.parametrize("bad", [0, -3, 3.5, "abc", True, "0", None])
def test_bad_resolution(bad):
    with pytest.raises(data.DataError, match=f"resolution must be a positive integer.*got {bad!r}"):
        data.prepare("faces", bad, {"count": 1})


def test_unknown_or_missing_options():
    with pytest.raises(data.DataError, match=r"data\.faces: unknown option\(s\) \['split'\]; missing option\(s\) "
                                             r"\['indices'\]"):
        data.prepare("faces", 8, {"count": 2, "split": "train"})


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="unknown dataset 'mnist'; expected one of photos, faces, cifar10, celeba"):
        data.prepare("mnist", 32, {})


# ---- CIFAR-10 ----------------------------------------------------------------------------------
def test_cifar_train_class_filter_and_indices_pixels(cifar):
    images, names, manifest = data.prepare("cifar10", 32, _cifar_opts(classes=["cat", 5], indices=[1, 0, 2]),
                                           archive=cifar.path)
    pixels, labels = _expected_cifar(cifar.batches, [f"data_batch_{i}" for i in range(1, 6)])
    pool = np.flatnonzero(np.isin(labels, [3, 5]))  # 20 train images, labels 0..9,0..9: cat=3, dog=5
    chosen = pool[[1, 0, 2]]
    np.testing.assert_allclose(images, pixels[chosen], atol=1e-7)
    assert list(names) == [f"train_{i:05d}_{LABELS[labels[i]]}" for i in chosen]
    assert manifest["selection"]["classes"] == ["cat", "dog"]
    assert manifest["selection"]["split_indices"] == [int(i) for i in chosen] == manifest["indices"]


def test_cifar_test_split_count_and_upsampling(cifar):
    images, names, manifest = data.prepare("cifar10", 64, _cifar_opts(split="test", count=4), archive=cifar.path)
    pixels, _ = _expected_cifar(cifar.batches, ["test_batch"])
    assert images.shape == (4, 3, 64, 64) and names[0] == "test_00000_airplane"
    np.testing.assert_allclose(images.mean(axis=(2, 3)), pixels[:4].mean(axis=(2, 3)), atol=0.02)
    assert manifest["images"][0]["upsampled"] is True


def test_cifar_bad_selection_messages(cifar):
    with pytest.raises(data.DataError, match=r"unknown class 'unicorn'; expected an id 0\.\.9 or one of airplane"):
        data.prepare("cifar10", 32, _cifar_opts(classes=["unicorn"]), archive=cifar.path)
    with pytest.raises(data.DataError, match=r"data\.cifar10\.indices out of range: \[2\]; valid indices are 0\.\.1 "
                                             r"\(2 images available \(train split, classes \['bird'\]\)\)"):
        data.prepare("cifar10", 32, _cifar_opts(classes=["bird"], indices=[2]), archive=cifar.path)
    with pytest.raises(data.DataError, match="split must be one of train, test, got 'valid'"):
        data.prepare("cifar10", 32, _cifar_opts(split="valid"), archive=cifar.path)


def test_cifar_download_from_file_url(cifar, tmp_path):
    resources = tmp_path / "resources"
    images, _, manifest = data.prepare("cifar10", 32, _cifar_opts(url=cifar.path.as_uri(), md5=cifar.md5),
                                       resources_dir=resources)
    dest = resources / "cifar10" / "cifar-10-python.tar.gz"
    assert dest.read_bytes() == cifar.path.read_bytes() and images.shape == (3, 3, 32, 32)
    assert manifest["source"]["md5"] == cifar.md5 and manifest["source"]["md5_verified"] is True
    assert manifest["source"]["url"] == cifar.path.as_uri() and manifest["source"]["downloaded_now"] is True
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_download_checksum_mismatch_deletes_partial(cifar, tmp_path):
    dest = tmp_path / "res" / "cifar-10-python.tar.gz"
    with pytest.raises(data.DataError, match=f"expected md5 {'0' * 32}, got {cifar.md5}; the download was deleted"):
        data.download(cifar.path.as_uri(), dest, "0" * 32)
    assert list(dest.parent.iterdir()) == []


def test_existing_archive_with_bad_checksum_is_kept(cifar):
    with pytest.raises(data.DataError, match=f"checksum mismatch for .*expected md5 {'f' * 32}, got {cifar.md5}"):
        data.prepare("cifar10", 32, _cifar_opts(md5="f" * 32), archive=cifar.path)
    assert cifar.path.exists()


def test_no_network_says_where_to_put_the_file(tmp_path):
    opts = _cifar_opts(url="http://127.0.0.1:9/cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a")
    dest = tmp_path / "res" / "cifar10" / "cifar-10-python.tar.gz"
    with pytest.raises(data.DataError, match=f"could not download.*To continue offline, place the file "
                                             f"cifar-10-python.tar.gz \\(md5 c58f3.*\\) at {dest}"):
        data.prepare("cifar10", 32, opts, resources_dir=tmp_path / "res")
    assert list(dest.parent.iterdir()) == []


def test_cifar_corrupt_archives(cifar, tmp_path):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(cifar.path.read_bytes()[: cifar.path.stat().st_size // 2])
    with pytest.raises(data.DataError, match="truncated.tar.gz is not a readable tar.gz archive"):
        data.read_cifar10(truncated, "train", [], 2, [])
    with pytest.raises(data.DataError, match="checksum mismatch"):  # with its checksum, caught before parsing
        data.prepare("cifar10", 32, _cifar_opts(md5=cifar.md5), archive=truncated)
    missing = tmp_path / "missing.tar.gz"
    make_cifar(missing, skip="test_batch")
    with pytest.raises(data.DataError, match="has no member cifar-10-batches-py/test_batch"):
        data.read_cifar10(missing, "test", [], 2, [])


def test_cifar_pickle_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("owned",))

    evil = tmp_path / "evil.tar.gz"
    make_cifar(evil, extra={"test_batch": pickle.dumps({b"data": Exploit()}, protocol=2)})
    with pytest.raises(data.DataError,
                       match="not a readable CIFAR-10 pickle.*refusing to load (__builtin__|builtins).print"):
        data.read_cifar10(evil, "test", [], 1, [])


# ---- CelebA ------------------------------------------------------------------------------------
def test_celeba_center_crop_selection_and_colours(celeba):
    images, names, manifest = data.prepare("celeba", 32, {"md5": celeba.md5, "local_path": str(celeba.path),
                                                          "count": 2, "indices": [3, 1], "crop": 0})
    assert images.shape == (2, 3, 32, 32) and list(names) == ["000004", "000002"]
    for img, k in zip(images, [3, 1]):  # the white bands are cropped away: only the flat colour is left
        np.testing.assert_allclose(img.reshape(3, -1).mean(1), np.array(CELEBA_COLOURS[k]) / 255, atol=4 / 255)
        assert np.abs(img - np.array(CELEBA_COLOURS[k])[:, None, None] / 255).max() < 0.08
    assert manifest["source"]["kind"] == "local_path" and manifest["images"][0]["original_size"] == [218, 178]
    assert manifest["images"][0]["crop_side"] == 178
    # without a crop, the schema's default (data.celeba.crop = 140), as the workflow would use
    _, _, manifest = data.prepare("celeba", 32, {"md5": celeba.md5, "local_path": str(celeba.path), "count": 1,
                                                 "indices": []})
    assert manifest["images"][0]["crop_side"] == 140 == schema_default("data.celeba.crop")


def test_celeba_corrupt_archives(celeba, tmp_path):
    truncated = tmp_path / "t.zip"
    truncated.write_bytes(celeba.path.read_bytes()[:-100])
    with pytest.raises(data.DataError, match="t.zip is not a readable zip archive"):
        data.read_celeba(truncated, 2, [])
    wrong = tmp_path / "w.zip"
    make_celeba(wrong, folder="faces/")
    with pytest.raises(data.DataError, match=r"no img_align_celeba/\*\.jpg members"):
        data.read_celeba(wrong, 2, [])
    broken = tmp_path / "b.zip"
    make_celeba(broken, corrupt=1)
    images, _, _ = data.prepare("celeba", 32, {"md5": None, "local_path": str(broken), "count": 1, "indices": []})
    assert images.shape == (1, 3, 32, 32)  # member 0 is fine
    raw = data.read_celeba(broken, 2, [])  # members are decoded when read, one at a time
    with pytest.raises(data.DataError, match="member img_align_celeba/000002.jpg is corrupt"):
        list(raw.images)
    raw.images.close()
    with pytest.raises(data.DataError, match="member img_align_celeba/000002.jpg is corrupt"):
        data.prepare("celeba", 32, {"md5": None, "local_path": str(broken), "count": 2, "indices": []})
    with pytest.raises(data.DataError, match=r"local_path = .*nowhere.zip' does not exist"):
        data.prepare("celeba", 32, {"md5": None, "local_path": str(tmp_path / "nowhere.zip"), "count": 1})


class _DriveLike(BaseHTTPRequestHandler):
    """Serves a Google-Drive-style confirmation page, then the archive once the form is submitted."""

    payload = b""

    def do_GET(self):
        if "confirm=t" in self.path and "uuid=abc" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)
            return
        page = ('<html><title>Google Drive - Virus scan warning</title><form id="download-form" '
                'action="/download" method="get"><input type="hidden" name="id" value="XYZ">'
                '<input name="confirm" type="hidden" value="t"><input type="hidden" value="abc" name="uuid">'
                '<input type="submit" value="Download anyway">'
                '</form></html>').encode()
        if "quota" in self.path:
            page = b"<html><title>Google Drive - Quota exceeded</title>Too many users viewed this file</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args):
        pass


def test_celeba_download_through_confirmation_page(celeba, tmp_path):
    _DriveLike.payload = celeba.path.read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DriveLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/uc?export=download&id=XYZ"
        images, _, manifest = data.prepare("celeba", 16, {"url": url, "md5": celeba.md5, "local_path": "",
                                                          "count": 3, "indices": []}, resources_dir=tmp_path / "r")
        with pytest.raises(data.DataError, match="returned an HTML page instead of img_align_celeba.zip.*"
                                                 "To continue offline, place the file img_align_celeba.zip"):
            data.download(url.replace("/uc?", "/quota?"), tmp_path / "q" / "img_align_celeba.zip", celeba.md5)
    finally:
        server.shutdown()
    assert images.shape == (3, 3, 16, 16) and manifest["source"]["md5_verified"]
    assert (tmp_path / "r" / "celeba" / "img_align_celeba.zip").read_bytes() == celeba.path.read_bytes()
    assert list((tmp_path / "q").iterdir()) == []


# ---- output and command line --------------------------------------------------------------------
def test_write_is_whole_or_nothing(tmp_path, monkeypatch):
    out, man = tmp_path / "images.npz", tmp_path / "manifest.json"
    images, names = np.zeros((2, 1, 4, 4), np.float32), np.array(["a", "b"])
    data.write_dataset(images, names, {"ok": 1}, out, man)
    before = out.read_bytes(), man.read_bytes()
    with pytest.raises(TypeError):  # the manifest fails after the npz was written to its temp file
        data.write_dataset(images + 1, names, {"bad": object()}, out, man)
    assert (out.read_bytes(), man.read_bytes()) == before

    def half_write(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_write)
    with pytest.raises(OSError, match="disk full"):
        data.write_dataset(images, names, {}, tmp_path / "new" / "images.npz", tmp_path / "new" / "manifest.json")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["images.npz", "manifest.json", "new"]


def test_cli_writes_npz_and_manifest(tmp_path):
    out, man = tmp_path / "d" / "images.npz", tmp_path / "d" / "manifest.json"
    assert main(["data", "--dataset", "faces", "--resolution", "16", "--out", str(out), "--manifest", str(man),
                 "--count", "3", "--indices"]) == 0
    images, names = data.read_images(out)
    assert images.shape == (3, 1, 16, 16) and images.dtype == np.float32 and list(names) == ["lfw_000", "lfw_001",
                                                                                              "lfw_002"]
    assert json.loads(man.read_text())["indices"] == [0, 1, 2]


def test_data_subset_keeps_the_first_images(tmp_path, capsys):
    src, man = tmp_path / "images.npz", tmp_path / "manifest.json"
    assert main(["data", "--dataset", "faces", "--resolution", "8", "--out", str(src), "--manifest", str(man),
                 "--count", "4", "--indices"]) == 0
    images, names = data.read_images(src)
    for count, kept in ((3, 3), (10, 4)):  # more than the set: all of it
        out, out_man = tmp_path / f"s{count}" / "images.npz", tmp_path / f"s{count}" / "manifest.json"
        assert main(["data-subset", "--images", str(src), "--count", str(count), "--out", str(out),
                     "--manifest", str(out_man)]) == 0
        sub, sub_names = data.read_images(out)
        np.testing.assert_array_equal(sub, images[:kept])
        assert list(sub_names) == list(names[:kept]) and json.loads(out_man.read_text())["count"] == kept
    assert main(["data-subset", "--images", str(src), "--count", "0", "--out", str(tmp_path / "z.npz"),
                 "--manifest", str(tmp_path / "z.json")]) == 2
    assert "--count: expected a positive number" in capsys.readouterr().err
    assert not (tmp_path / "z.npz").exists()


def test_cli_errors(tmp_path, capsys):
    args = ["--out", str(tmp_path / "x.npz"), "--manifest", str(tmp_path / "x.json")]
    assert main(["data", "--dataset", "faces", "--resolution", "-4", *args]) == 2
    assert "resolution must be a positive integer" in capsys.readouterr().err
    assert main(["data", "--dataset", "faces", "--resolution", "8", "--split", "test", *args]) == 2
    assert "--split do not apply to dataset 'faces'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_rule_options_round_trip_through_the_parser(tmp_path):
    from fpscore.config import validate

    config = validate({"data": {"cifar10": {"url": "u", "md5": "m", "split": "test", "classes": ["cat", 3],
                                            "count": 5, "indices": []},
                                "celeba": {"local_path": "/data/celeba.zip", "count": 2, "indices": [4, 7]}}})["data"]
    words = cli_data.rule_options("cifar10", config)
    args = build_parser().parse_args(["data", "--dataset", "cifar10", "--resolution", "32", "--out", "o",
                                      "--manifest", "m", *words])
    assert (args.split, args.classes, args.count, args.indices, args.md5, args.url) == ("test", ["cat", "3"], 5, [],
                                                                                         "m", "u")
    args = build_parser().parse_args(["data", "--dataset", "celeba", "--resolution", "32", "--out", "o",
                                      "--manifest", "m", *cli_data.rule_options("celeba", config)])
    assert (args.local_path, args.count, args.indices, args.crop) == ("/data/celeba.zip", 2, [4, 7], 140)


def test_a_shard_reads_its_rows_from_a_memory_map(tmp_path, monkeypatch):
    """write_dataset stores the images uncompressed; read_images(rows=...) maps them and reads
    those rows only (equal to slicing the whole set), past the end gives none, and a compressed
    file from an older data stage still reads."""
    rng = np.random.default_rng(0)
    images = rng.random((7, 2, 4, 4)).astype(np.float32)
    names = np.array([f"img{i}" for i in range(7)])
    out = tmp_path / "images.npz"
    data.write_dataset(images, names, {}, out, tmp_path / "manifest.json")
    with zipfile.ZipFile(out) as zf:
        assert zf.getinfo("images.npy").compress_type == zipfile.ZIP_STORED
    whole, whole_names = data.read_images(out)
    np.testing.assert_array_equal(whole, images)
    read = []
    real_check = data.check_images
    monkeypatch.setattr(data.images, "check_images", lambda arr: read.append(len(arr)) or real_check(arr))
    part, part_names = data.read_images(out, rows=range(2, 5))
    np.testing.assert_array_equal(part, images[2:5])
    assert read == [3] and not isinstance(part, np.memmap) and list(part_names) == list(names)
    assert data.read_images(out, rows=range(5, 10))[0].shape == (2, 2, 4, 4)
    assert data.read_images(out, rows=range(9, 12))[0].shape == (0, 2, 4, 4)
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, images=images, names=names)
    np.testing.assert_array_equal(data.read_images(packed, rows=range(2, 5))[0], images[2:5])


def test_a_truncated_or_incomplete_images_file_is_named(tmp_path):
    out = tmp_path / "images.npz"
    data.write_dataset(np.zeros((4, 1, 8, 8), np.float32), np.array(list("abcd")), {}, out,
                       tmp_path / "manifest.json")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    for rows in (None, range(0, 2)):
        with pytest.raises(ValueError, match=f"images file {cut}"):
            data.read_images(cut, rows=rows)
    names_only = tmp_path / "names.npz"
    np.savez(names_only, names=np.array(list("abcd")))
    with pytest.raises(ValueError, match=r"names.npz: missing key\(s\) images.*expected 'images'"):
        data.read_images(names_only, rows=range(0, 2))


def test_the_splits_are_the_schemas():
    from fpscore.data.cifar10 import CIFAR10_SPLITS
    from fpscore.names import CIFAR10_SPLITS as SCHEMA_SPLITS

    assert tuple(CIFAR10_SPLITS) == SCHEMA_SPLITS

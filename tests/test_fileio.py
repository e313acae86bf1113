"""atomic_outputs: every file appears whole, with a plain file's mode, or none does."""
import os

import pytest

from fpscore.fileio import atomic_outputs, file_digest


def test_all_files_appear_with_plain_mode(tmp_path):
    a, b = tmp_path / "sub" / "a.txt", tmp_path / "b.txt"
    old = os.umask(0o022)
    try:
        with atomic_outputs(a, b) as (ta, tb):
            open(ta, "w").write("A")
            open(tb, "w").write("B")
            assert not a.exists() and not b.exists()
    finally:
        os.umask(old)
    assert a.read_text() == "A" and b.read_text() == "B"
    assert oct(a.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.txt", "sub"]


def test_failure_leaves_nothing_and_keeps_old_files(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_outputs(a, b) as (ta, tb):
            open(ta, "w").write("new")
            raise RuntimeError("writer failed")
    assert a.read_text() == "old" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_file_digest_matches_hashlib(tmp_path):
    import hashlib
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1000)
    assert file_digest(path, "md5", chunk=7) == hashlib.md5(b"abc" * 1000).hexdigest()

"""The one downloader of the project and the dataset archives: a URL to a file, through a temporary
sibling, checked against its digest, whole or not at all; where each archive is read from and
the check of an archive already there. Errors say where to put the file by hand to continue offline."""
from __future__ import annotations

import html
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from fpscore.data.base import DataError
from fpscore.fileio import atomic_outputs, file_digest
from fpscore.names import ARCHIVE_FILENAMES

_FORM = re.compile(r'<form\b[^>]*\baction="([^"]+)"[^>]*>(.*?)</form>', re.S | re.I)
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r'\b(type|name|value)="([^"]*)"', re.I)


def _offline_hint(dest: Path, digest: str | None, algorithm: str = "md5") -> str:
    checksum = f" ({algorithm} {digest})" if digest else ""
    return f"To continue offline, place the file {dest.name}{checksum} at {dest}"


def _confirm_url(page: str) -> str | None:
    """The download link of a Google Drive 'cannot scan for viruses' page (a form of hidden inputs)."""
    match = _FORM.search(page)
    if not match:
        return None
    action = html.unescape(match.group(1))
    params = {}
    for tag in _INPUT.findall(match.group(2)):
        attrs = {k.lower(): html.unescape(v) for k, v in _ATTR.findall(tag)}
        if attrs.get("type", "").lower() == "hidden" and "name" in attrs:
            params[attrs["name"]] = attrs.get("value", "")
    return f"{action}?{urllib.parse.urlencode(params)}" if params else action


def _stream(url: str, out, label: str, timeout: float, follow_confirm: bool = True) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "fpscore-data/0.1"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if "text/html" in (response.headers.get("Content-Type") or ""):
            page = response.read(1 << 20).decode("utf-8", "replace")
            link = _confirm_url(page) if follow_confirm else None
            if link is None:
                raise DataError(f"{url} returned an HTML page instead of {label} (a quota, login or "
                                "confirmation page?)")
            return _stream(urllib.parse.urljoin(url, link), out, label, timeout, follow_confirm=False)
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"download {label}") as bar:
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def download(url: str, dest: str | Path, digest: str | None, algorithm: str = "md5", timeout: float = 60.0) -> str:
    """Download `url` to `dest` through a temp file in the same folder; verify its ``algorithm`` digest
    (md5, sha256) against ``digest`` (None or empty: no check); return the digest. The one downloader.

    A failed or mismatching download is deleted (a DataError, a ValueError); the error says where to
    put the file by hand to continue offline.
    """
    dest, md5 = Path(dest), digest
    with atomic_outputs(dest, suffix=".part") as (tmp,):
        try:
            with open(tmp, "wb") as out:
                _stream(url, out, dest.name, timeout)
        except DataError as err:
            raise DataError(f"{err}. {_offline_hint(dest, md5, algorithm)}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            raise DataError(f"could not download {dest.name} from {url} ({reason}). "
                            f"{_offline_hint(dest, md5, algorithm)}") from None
        actual = file_digest(tmp, algorithm)
        if md5 and actual != md5.lower():
            raise DataError(f"checksum mismatch for {dest.name} downloaded from {url}: expected {algorithm} "
                            f"{md5.lower()}, got {actual}; the download was deleted. "
                            f"{_offline_hint(dest, md5, algorithm)}")
    return actual


def archive_path(dataset: str, resources_dir: str | Path, local_path: str | None = None) -> Path:
    """Where the archive of `dataset` is read from: `local_path` if given, else resources_dir/dataset/FILE."""
    if dataset not in ARCHIVE_FILENAMES:
        raise DataError(f"dataset {dataset!r} has no archive; archives exist for {', '.join(ARCHIVE_FILENAMES)}")
    if local_path:
        return Path(local_path)
    return Path(resources_dir) / dataset / ARCHIVE_FILENAMES[dataset]


def ensure_archive(dataset: str, path: str | Path, url: str | None, md5: str | None,
                   user_file: bool = False) -> dict:
    """Make sure the archive at `path` exists (downloading it from `url` if missing) and matches `md5`.

    An existing file that fails the checksum is never deleted (it may be the
    user's); the error says expected vs actual and what to do. Returns the
    source record for the manifest.
    """
    path = Path(path)
    name = ARCHIVE_FILENAMES[dataset]
    record = {"kind": "local_path" if user_file else "resources", "url": None if user_file else url,
              "path": str(path), "md5_expected": md5.lower() if md5 else None, "downloaded_now": False}
    if not path.exists():
        if user_file:
            raise DataError(f"data.{dataset}.local_path = {str(path)!r} does not exist; expected {name}")
        if not url:
            raise DataError(f"{path} is missing and data.{dataset}.url is empty. "
                            f"{_offline_hint(path, md5)}")
        actual = download(url, path, md5)
        record["downloaded_now"] = True
    else:
        actual = file_digest(path, "md5")
        if md5 and actual != md5.lower():
            raise DataError(f"checksum mismatch for {path}: expected md5 {md5.lower()}, got {actual}. The file is "
                            f"corrupt or not the official {name}: delete it "
                            f"{'and fix data.' + dataset + '.local_path' if user_file else 'to download it again'}, "
                            "or replace it with the correct file")
    record.update(md5=actual, md5_verified=bool(md5))
    return record

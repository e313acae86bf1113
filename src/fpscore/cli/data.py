"""`fpscore data` (one dataset at one resolution -> images.npz + manifest.json) and `fpscore download`.

Option defaults are the schema defaults of section `data.<dataset>`
(fpscore.config.schema_defaults), so a command typed by hand does what the
workflow does with the embedded config. `rule_options` and `rule_archive` turn
the workflow's config into this command line and its archive input.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Callable

from fpscore import data

# Per-dataset options: config key of data.<dataset> -> command-line flag.
FLAGS = {"names": "--names", "channels": "--channels", "crop": "--crop", "count": "--count",
         "indices": "--indices", "split": "--split", "classes": "--classes", "url": "--url", "md5": "--md5",
         "local_path": "--local-path"}
APPLIES = {
    "photos": ("names", "channels", "crop"),
    "faces": ("count", "indices", "channels", "crop"),
    "cifar10": ("url", "md5", "split", "classes", "count", "indices", "channels", "crop"),
    "celeba": ("url", "md5", "local_path", "count", "indices", "channels", "crop"),
}


def _data_defaults() -> dict:
    from fpscore.config import schema_defaults

    return schema_defaults().get("data", {})


def dataset_options(dataset: str, given: dict) -> dict:
    """The options of `dataset`: those given (not None) over the schema defaults of data.<dataset>."""
    data.check_dataset(dataset)
    stray = sorted(FLAGS[k] for k, v in given.items() if v is not None and k not in APPLIES[dataset])
    if stray:
        raise data.DataError(f"option(s) {', '.join(stray)} do not apply to dataset {dataset!r} "
                             f"(it takes {', '.join(FLAGS[k] for k in APPLIES[dataset])})")
    defaults = _data_defaults().get(dataset, {})
    options = {}
    for key in APPLIES[dataset]:
        value = given.get(key)
        if value is None:
            value = defaults.get(key)
        if value is not None:
            options[key] = value
    if not options.get("local_path"):
        options.pop("local_path", None)
    return options


def run_data(args: argparse.Namespace) -> int:
    given = {key: getattr(args, key) for key in FLAGS}
    options = dataset_options(args.dataset, given)
    resources = args.resources_dir or _data_defaults().get("resources_dir", "resources")
    images, names, manifest = data.prepare(args.dataset, args.resolution, options, resources, args.archive)
    data.write_dataset(images, names, manifest, args.out, args.manifest)
    print(f"wrote {args.out}: {images.shape[0]} images of {images.shape[1]} x {images.shape[2]} x "
          f"{images.shape[3]} ({args.dataset}), manifest {args.manifest}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    if args.dataset not in data.ARCHIVE_FILENAMES:
        raise data.DataError(f"--dataset {args.dataset!r} has no archive to download; expected one of "
                             f"{', '.join(data.ARCHIVE_FILENAMES)}")
    defaults = _data_defaults()
    section = defaults.get(args.dataset, {})
    url = args.url if args.url is not None else section.get("url")
    md5 = args.md5 if args.md5 is not None else section.get("md5")
    out = args.out or data.archive_path(args.dataset, args.resources_dir or defaults.get("resources_dir",
                                                                                           "resources"))
    record = data.ensure_archive(args.dataset, out, url, md5)
    print(f"{out}: md5 {record['md5']} ({'verified' if record['md5_verified'] else 'not verified: no md5 given'})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` and `download` subcommands."""
    p = subparsers.add_parser("data", help="prepare one dataset at one resolution (images.npz + manifest.json)",
                              description="Prepare one dataset at one resolution: images.npz (images N x C x R x R "
                              "float32 in [0, 1], names) and manifest.json (source, checksum, indices, resizing).")
    p.add_argument("--dataset", required=True, help=f"one of {', '.join(data.DATASETS)}")
    p.add_argument("--resolution", required=True, help="side of the square output images, in pixels")
    p.add_argument("--out", required=True, type=Path, help="images.npz to write")
    p.add_argument("--manifest", required=True, type=Path, help="manifest.json to write")
    p.add_argument("--resources-dir", help="folder of downloaded archives (default: data.resources_dir)")
    p.add_argument("--archive", type=Path, help="read the archive from this file (default: local path or "
                   "<resources-dir>/<dataset>/<archive name>, downloaded if missing)")
    g = p.add_argument_group("dataset options (default: the schema default of data.<dataset>.<key>)")
    g.add_argument("--names", nargs="+", help="photos: skimage.data photographs, in order")
    g.add_argument("--channels", type=int, choices=(1, 3), help="1 = grey (luminance), 3 = RGB (grey replicated)")
    g.add_argument("--crop", type=int, help="side of the central square crop before resizing (0 = largest)")
    g.add_argument("--count", type=int, help="number of images from the start (when no --indices)")
    g.add_argument("--indices", nargs="*", type=int, help="explicit image indices (0-based)")
    g.add_argument("--split", help="cifar10: train or test")
    g.add_argument("--classes", nargs="*", help="cifar10: class names or ids to keep (none = all)")
    g.add_argument("--url", help="archive download URL (file:// works)")
    g.add_argument("--md5", help="expected MD5 of the archive")
    g.add_argument("--local-path", dest="local_path", help="celeba: use this archive instead of downloading")
    p.set_defaults(func=run_data)

    d = subparsers.add_parser("download", help="download and verify a dataset archive (cifar10, celeba)")
    d.add_argument("--dataset", required=True, help=f"one of {', '.join(data.ARCHIVE_FILENAMES)}")
    d.add_argument("--out", type=Path, help="archive path (default: <resources-dir>/<dataset>/<archive name>)")
    d.add_argument("--resources-dir", help="default: data.resources_dir")
    d.add_argument("--url", help="default: data.<dataset>.url")
    d.add_argument("--md5", help="default: data.<dataset>.md5")
    d.set_defaults(func=run_download)


# ---- helpers for workflow/rules/data.smk --------------------------------------------------------
def download_target(dataset: str, data_config: dict) -> str:
    """Where the download rule of `dataset` writes its archive: <resources_dir>/<dataset>/<archive name>."""
    return str(data.archive_path(dataset, data_config["resources_dir"]))


def archive_input(dataset: str, data_config: dict) -> list[str]:
    """The archive the prepare rule needs for `dataset` ([] for the builtin sets)."""
    if dataset not in data.ARCHIVE_FILENAMES:
        return []
    section = data_config.get(dataset, {})
    return [str(data.archive_path(dataset, data_config["resources_dir"], section.get("local_path") or None))]


def command_options(dataset: str, data_config: dict) -> str:
    """`fpscore data` options (shell-quoted) for `dataset` from the workflow config section `data`."""
    section = data_config.get(dataset, {})
    words: list[str] = []
    for key in APPLIES[dataset]:
        if key not in section:
            continue
        value = section[key]
        if isinstance(value, list):
            words += [FLAGS[key], *map(str, value)]
        elif value is not None and value != "":
            words += [FLAGS[key], str(value)]
    for path in archive_input(dataset, data_config):
        words += ["--archive", path]
    return shlex.join(words)


def rule_archive(data_config: dict) -> Callable:
    """Input function for the prepare rule: wildcards -> the archive to read."""
    return lambda wildcards: archive_input(wildcards.dataset, data_config)


def rule_options(data_config: dict) -> Callable:
    """Params function for the prepare rule: wildcards -> the `fpscore data` options."""
    return lambda wildcards: command_options(wildcards.dataset, data_config)

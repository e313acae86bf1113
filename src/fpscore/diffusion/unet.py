"""DDPM-style U-Net (Ho et al. 2020) shared by our method and the DDPM baseline.

Residual blocks with GroupNorm, SiLU, dropout and an additive time embedding;
self-attention at chosen feature-map sizes; an embedding of a scalar time input
per sample (``TIME_EMBEDDINGS``): sinusoidal (Ho et al.) or linear (the authors' code,
METHOD.md section 8b: the scalar copied into every embedding dimension), followed
by the same two-layer MLP. Sized by base channels, per-level multipliers and
residual blocks per level. The caller decides what the time input is (our
method passes 999 t, DDPM its integer step), so both use the same network.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fpscore.config import schema_default
from fpscore.names import TIME_EMBEDDINGS



@dataclass(frozen=True)
class UNetConfig:
    """in_channels: image channels; resolution: image size (square); the rest as in the config `learn.unet`."""

    in_channels: int = 1
    resolution: int = 32
    base_channels: int = schema_default("learn.unet.base_channels")
    channel_mults: tuple[int, ...] = tuple(schema_default("learn.unet.channel_mults"))
    num_res_blocks: int = schema_default("learn.unet.num_res_blocks")
    attn_resolutions: tuple[int, ...] = tuple(schema_default("learn.unet.attn_resolutions"))
    dropout: float = schema_default("learn.unet.dropout")
    time_embedding: str = schema_default("learn.unet.time_embedding")

    def __post_init__(self):
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        for key in ("in_channels", "resolution", "base_channels", "num_res_blocks"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"unet.{key}: expected a positive integer, got {value!r}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"unet.channel_mults: expected a non-empty list of positive integers, "
                             f"got {list(self.channel_mults)}")
        if self.resolution % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(f"unet.channel_mults: {len(self.channel_mults)} levels halve the image "
                             f"{len(self.channel_mults) - 1} times, which needs a resolution divisible by "
                             f"{2 ** (len(self.channel_mults) - 1)}, got {self.resolution}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"unet.dropout: expected a rate in [0, 1), got {self.dropout!r}")
        if self.time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(f"unet.time_embedding: expected one of {TIME_EMBEDDINGS}, got {self.time_embedding!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"], d["attn_resolutions"] = list(self.channel_mults), list(self.attn_resolutions)
        return d


def _groups(channels: int) -> int:
    """Largest of 32, 16, 8, 4, 2, 1 that divides `channels` (GroupNorm needs a divisor)."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al.) of a batch of scalar times, B -> B x dim."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def linear_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The authors' time embedding: the scalar time copied into every dimension, B -> B x dim."""
    return t.float()[:, None].expand(-1, dim)


EMBEDDINGS = {"sinusoidal": timestep_embedding, "linear": linear_embedding}


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.drop = nn.GroupNorm(_groups(cout), cout), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None],
                                             v.transpose(1, 2)[:, None])[:, 0]
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """eps-style network: input B x C x H x W and B times, output B x C x H x W."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        ch, temb = config.base_channels, 4 * config.base_channels
        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)
        res, chans, cur = config.resolution, [ch], ch
        self.down = nn.ModuleList()
        for level, mult in enumerate(config.channel_mults):
            for _ in range(config.num_res_blocks):
                attn = AttnBlock(ch * mult) if res in config.attn_resolutions else nn.Identity()
                self.down.append(nn.ModuleList([ResBlock(cur, ch * mult, temb, config.dropout), attn]))
                cur = ch * mult
                chans.append(cur)
            if level < len(config.channel_mults) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                res //= 2
                chans.append(cur)
        self.mid = nn.ModuleList([ResBlock(cur, cur, temb, config.dropout), AttnBlock(cur),
                                  ResBlock(cur, cur, temb, config.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            for _ in range(config.num_res_blocks + 1):
                attn = AttnBlock(ch * mult) if res in config.attn_resolutions else nn.Identity()
                self.up.append(nn.ModuleList([ResBlock(cur + chans.pop(), ch * mult, temb, config.dropout), attn]))
                cur = ch * mult
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(cur, cur, 3, padding=1)))
                res *= 2
        self.norm_out = nn.GroupNorm(_groups(cur), cur)
        self.conv_out = nn.Conv2d(cur, config.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.config.in_channels, self.config.resolution, self.config.resolution):
            raise ValueError(f"UNet expects B x {self.config.in_channels} x {self.config.resolution} x "
                             f"{self.config.resolution} inputs, got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self.temb(EMBEDDINGS[self.config.time_embedding](t, self.config.base_channels))
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](h, emb))
            else:
                h = layer(h)
            skips.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = layer[1](layer[0](torch.cat([h, skips.pop()], dim=1), emb))
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""The restorer R(x_t, t): a small UNet with a sinusoidal timestep embedding.

A standard DDPM-style UNet (residual blocks with GroupNorm and SiLU, the step added to every block, one
self-attention block at the lowest resolution). The authors use a 56.6M-parameter ConvNeXt UNet; our
presets run from "tiny" (CI on a CPU) to "paper" (a size comparable to theirs, for a GPU).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetConfig", "UNet", "UNET_PRESETS", "unet_preset", "unet_preset_name"]


@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild a :class:`UNet` (stored beside every checkpoint)."""

    channels: int = 1
    base: int = 32
    mults: tuple[int, ...] = (1, 2, 2)
    blocks_per_level: int = 1
    attention: bool = True
    dropout: float = 0.0
    groups: int = 8

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        d = dict(d)
        d["mults"] = tuple(d["mults"])
        return cls(**d)


UNET_PRESETS: dict[str, dict] = {
    "tiny": dict(base=16, mults=(1, 2), blocks_per_level=1, attention=False, groups=4),
    "small": dict(base=32, mults=(1, 2, 2), blocks_per_level=1, attention=True),
    "base": dict(base=64, mults=(1, 2, 2, 2), blocks_per_level=2, attention=True, groups=32),
    "paper": dict(base=128, mults=(1, 2, 2, 2), blocks_per_level=2, attention=True, groups=32, dropout=0.1),
}


def unet_preset(name: str, channels: int) -> UNetConfig:
    """The config of a named size: tiny (0.16M params), small (1.06M), base (8.6M), paper (34.4M; 1 channel).
    """
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; choose one of {sorted(UNET_PRESETS)}.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels}.")
    return UNetConfig(channels=channels, **UNET_PRESETS[name])


def unet_preset_name(model_config: dict[str, Any]) -> str | None:
    """The name of the preset ("tiny", "small", ...) a checkpoint's ``config["model"]`` matches, if any."""
    channels = model_config.get("channels")
    if channels not in (1, 3):
        return None
    for name in UNET_PRESETS:
        if unet_preset(name, channels).to_dict() == {**model_config, "mults": tuple(model_config.get("mults", ()))}:
            return name
    return None


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the step, as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Single-head self-attention over pixels (used at the lowest resolution only)."""

    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # fused kernel where the device has one
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """R(x_t, t) → x̂0 for images of 1 or 3 channels whose sides are divisible by 2^(levels - 1).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c, g, drop = config.base, config.groups, config.dropout
        t_dim = 4 * c
        self.time_mlp = nn.Sequential(nn.Linear(c, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.stem = nn.Conv2d(config.channels, c, 3, padding=1)
        widths = [c * m for m in config.mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, prev = [c], c
        for i, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(config.blocks_per_level):
                blocks.append(ResBlock(prev, w, t_dim, g, drop))
                prev = w
                skips.append(w)
            self.down.append(blocks)
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(w, w, 3, stride=2, padding=1))
            if not last:
                skips.append(w)
        self.mid1 = ResBlock(prev, prev, t_dim, g, drop)
        self.mid_attn = Attention(prev, g) if config.attention else nn.Identity()
        self.mid2 = ResBlock(prev, prev, t_dim, g, drop)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(config.blocks_per_level + 1):
                blocks.append(ResBlock(prev + skips.pop(), w, t_dim, g, drop))
                prev = w
            self.up.append(blocks)
            self.upsample.append(nn.Identity() if i == 0 else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, w, 3, padding=1)))
        self.out = nn.Sequential(nn.GroupNorm(min(g, prev), prev), nn.SiLU(),
                                 nn.Conv2d(prev, config.channels, 3, padding=1))

    @property
    def levels(self) -> int:
        return len(self.config.mults)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.levels - 1)
        if x.ndim != 4 or x.shape[1] != self.config.channels:
            raise ValueError(f"UNet expects (B, {self.config.channels}, H, W) images; got {tuple(x.shape)}.")
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"image sides must be divisible by {factor} for a {self.levels}-level UNet; got "
                             f"{tuple(x.shape[-2:])}. Resize the images or choose fewer levels (mults).")
        # in the images' dtype: a float16 (or bfloat16) UNet then runs on a CPU too, not just under autocast
        temb = self.time_mlp(timestep_embedding(t, self.config.base).to(x.dtype))
        h = self.stem(x)
        hs = [h]
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, temb)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
            h = up(h)
        return self.out(h)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

"""Slow reference degradations, written the way the authors' code computes them: one step at a time.

These exist only to check coldlib's closed forms. Each builds its per-step operator from the paper's
description (``notebooks/paper_notes.md`` section (a)) without using coldlib's helpers, then applies
it ``t`` times to each image separately (loops over images and steps are the point here).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """torchgeometry's ``get_gaussian_kernel``: centred at size // 2 (shifted by 0.5 for even sizes)."""
    x = torch.arange(size, dtype=torch.float64) - size // 2 + (0.5 if size % 2 == 0 else 0.0)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def iterated_blur(x: torch.Tensor, t: list[int], sigmas: list[float], kernel_size: int, padding: str,
                  to_mean_at_T: bool = False) -> torch.Tensor:
    """Blur image b with kernels k_0..k_{t_b - 1}: a depthwise 2-D conv per step, as ``nn.Conv2d`` does."""
    out = []
    c = x.shape[1]
    p = kernel_size // 2
    for b, steps in enumerate(t):
        y = x[b : b + 1]
        for i in range(steps):
            g = gaussian_1d(kernel_size, sigmas[i])
            k2 = (g[:, None] * g[None, :]).to(x.dtype).expand(c, 1, kernel_size, kernel_size)
            y = F.conv2d(F.pad(y, (p, p, p, p), mode=padding), k2, groups=c)
        if to_mean_at_T and steps == len(sigmas):
            y = y.mean(dim=(2, 3), keepdim=True).expand_as(y)
        out.append(y)
    return torch.cat(out)


def iterated_pixelate(x: torch.Tensor, t: list[int]) -> torch.Tensor:
    """Step i: area-downsample to N / 2^(i+1), then nearest-upsample back to N."""
    out = []
    n_h, n_w = x.shape[-2:]
    for b, steps in enumerate(t):
        y = x[b : b + 1]
        for i in range(steps):
            small = F.interpolate(y, size=(n_h // 2 ** (i + 1), n_w // 2 ** (i + 1)), mode="area")
            y = F.interpolate(small, size=(n_h, n_w), mode="nearest")
        out.append(y)
    return torch.cat(out)


def fade_kernel(rows: int, cols: int, sigma: float) -> torch.Tensor:
    """``1 - G / max G`` on a (rows+1)×(cols+1) Gaussian, first row and column dropped (authors' crop)."""
    def centred(n: int) -> torch.Tensor:  # torchgeometry's grid: shifted by 0.5 for even sizes
        return torch.arange(n, dtype=torch.float64) - n // 2 + (0.5 if n % 2 == 0 else 0.0)

    yy, xx = centred(rows + 1), centred(cols + 1)
    g = torch.exp(-(yy[:, None] ** 2 + xx[None, :] ** 2) / (2 * sigma**2))
    return (1 - g / g.max())[1:, 1:]


def iterated_mask(x: torch.Tensor, t: list[int], sigmas: list[float], offsets: torch.Tensor | None) -> torch.Tensor:
    """Multiply by one mask per step; random mode crops an H×W window of a 2H×2W canvas at ``offsets``."""
    out = []
    h, w = x.shape[-2:]
    for b, steps in enumerate(t):
        y = x[b : b + 1]
        for i in range(steps):
            if offsets is None:
                m = fade_kernel(h, w, sigmas[i])
            else:
                oy, ox = int(offsets[b, 0]), int(offsets[b, 1])
                m = fade_kernel(2 * h, 2 * w, sigmas[i])[oy : oy + h, ox : ox + w]
            y = m.to(x.dtype) * y
        out.append(y)
    return torch.cat(out)


def iterated_decolor(x: torch.Tensor, t: list[int], T: int) -> torch.Tensor:
    """The authors' cumulative 1×1 convs W_i = e_i·I + (1 - e_i)·(1/3)·11ᵀ with e_i = (T-i-1)/(T-i)."""
    out = []
    gray_proj = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    for b, steps in enumerate(t):
        y = x[b : b + 1]
        for i in range(steps):
            e = (T - i - 1) / (T - i)
            w = (e * torch.eye(3, dtype=torch.float64) + (1 - e) * gray_proj).to(x.dtype)
            y = F.conv2d(y, w[:, :, None, None])
        out.append(y)
    return torch.cat(out)


def cosine_alphas_cumprod(T: int, s: float = 0.008) -> list[float]:
    """The authors' ``alphas_cumprod`` (length T; entry i is after i+1 steps), in plain Python."""
    f = [math.cos(((i / T) + s) / (1 + s) * math.pi * 0.5) ** 2 for i in range(T + 1)]
    out, acc = [], 1.0
    for i in range(T):
        beta = min(max(1 - f[i + 1] / f[i], 0.0), 0.999)
        acc *= 1 - beta
        out.append(acc)
    return out


def reference_mixing(x: torch.Tensor, t: list[int], z: torch.Tensor, T: int) -> torch.Tensor:
    ac = cosine_alphas_cumprod(T)
    out = []
    for b, steps in enumerate(t):
        a = 1.0 if steps == 0 else ac[steps - 1]
        out.append(math.sqrt(a) * x[b : b + 1] + math.sqrt(1 - a) * z[b : b + 1])
    return torch.cat(out)


def reference_snow(x: torch.Tensor, t: list[int], field: torch.Tensor, vertical: torch.Tensor,
                   thresholds: list[float], motion_sigmas: list[float], taps: int = 11) -> torch.Tensor:
    """Per image: threshold the field at τ_t, clip, motion-blur with a 1-D conv along its direction."""
    out = []
    for b, steps in enumerate(t):
        if steps == 0:
            out.append(x[b : b + 1])
            continue
        f = field[b : b + 1]
        flakes = torch.where(f >= thresholds[steps - 1], f, torch.zeros_like(f)).clamp(0, 1)
        k = gaussian_1d(taps, motion_sigmas[steps - 1]).to(x.dtype)
        if bool(vertical[b]):
            k2 = k[:, None]
            pad = (0, 0, taps // 2, taps // 2)
        else:
            k2 = k[None, :]
            pad = (taps // 2, taps // 2, 0, 0)
        s = F.conv2d(F.pad(flakes, pad), k2[None, None])
        u = (x[b : b + 1] + 1) / 2
        out.append(2 * (u + s + torch.rot90(s, 2, dims=(-2, -1))).clamp(0, 1) - 1)
    return torch.cat(out)

"""Mixing with another image: animorphosis (a second image) and Gaussian noise (the hot baseline).

``D(x, t, z) = sqrt(ᾱ_t)·x + sqrt(1 - ᾱ_t)·z`` with the cosine schedule of Nichol & Dhariwal (s = 0.008,
betas clipped at 0.999), as in the authors' demixing and denoising code. ``ᾱ_0 = 1`` so ``t = 0`` is the
identity, and ``ᾱ_t`` for ``t = 1..T`` is their ``alphas_cumprod[t - 1]``. For noise, ``z ~ N(0, I)``; for
animorphosis ``z`` is an image of another dataset, drawn from ``pool``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import Degradation, check_images

__all__ = ["ImageMixing", "GaussianNoise", "cosine_alpha_bar"]


def cosine_alpha_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """ᾱ_t for t = 0..T (float64, ᾱ_0 = 1) from the cosine beta schedule with betas clipped at 0.999.
    """
    x = torch.linspace(0, T, T + 1, dtype=torch.float64)
    f = torch.cos(((x / T) + s) / (1 + s) * math.pi * 0.5) ** 2
    f = f / f[0]
    betas = (1 - f[1:] / f[:-1]).clamp(0, 0.999)  # the schedule's own clip, as in the paper's code
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


class ImageMixing(Degradation):
    """Animorphosis: mix ``x0`` towards a second image ``z``; ``pool`` (N, C, H, W) supplies random ones.
    """

    channels = None  # any count: z has the shape of x0

    def __init__(self, T: int, pool: torch.Tensor | None = None) -> None:
        super().__init__(T)
        self.alpha_bar = cosine_alpha_bar(T)
        self.schedule = {"alpha_bar": self.alpha_bar}
        self.pool = None if pool is None else check_images(pool, name="pool", limit=1.0)

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "T": self.T}  # the pool of images is data, not config

    @property
    def generates(self) -> bool:
        return self.pool is not None  # x_T is almost all z: an image of the pool (noise: always)

    def generation_start(self, n: int, image_size: int, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        if not self.generates:
            raise ValueError("animorphosis starts from images of the other dataset: build the degradation with "
                             "ImageMixing(T, pool=<their images>).")
        return super().generation_start(n, image_size, **kwargs)

    def draw_z(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.pool is None:
            raise ValueError("ImageMixing needs the images to mix in: pass z=<images shaped like x0> or build it "
                             "with ImageMixing(T, pool=<(N, C, H, W) images of the other dataset>).")
        if self.pool.shape[1:] != x0.shape[1:]:
            raise ValueError(f"pool images have shape {tuple(self.pool.shape[1:])} but x0 images have "
                             f"{tuple(x0.shape[1:])}; resize one to match.")
        gen_device = generator.device if generator is not None else self.pool.device
        idx = torch.randint(0, self.pool.shape[0], (x0.shape[0],), generator=generator, device=gen_device)
        return self.pool[idx.to(self.pool.device)].to(device=x0.device, dtype=x0.dtype)

    def check_z(self, z: Any, x0: torch.Tensor) -> None:
        # no range check: besides images of the pool, z may be one solved by estimate_z, which can lie far
        # outside [-1, 1] when x̂0 is poor (that z still puts D(x̂0, t, z) exactly back on x_t)
        check_images(z, name="z")
        if z.shape != x0.shape:
            raise ValueError(f"z must have the same shape as x0 {tuple(x0.shape)}; got {tuple(z.shape)}.")

    def estimate_z(self, xt: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``ẑ = (x_t - sqrt(ᾱ_t)·x̂0) / sqrt(1 - ᾱ_t)`` (t >= 1): with it, Algorithm 2 is DDIM (η = 0).
        """
        if bool((t < 1).any()):
            raise ValueError("z cannot be estimated at t = 0 (x_0 holds no trace of z); pass steps t >= 1.")
        a = self.alpha_bar.to(device=xt.device, dtype=xt.dtype)[t][:, None, None, None]
        return (xt - a.sqrt() * x0_hat) / (1 - a).sqrt()

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        a = self.alpha_bar.to(device=x0.device, dtype=x0.dtype)[t][:, None, None, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * z.to(device=x0.device, dtype=x0.dtype)


class GaussianNoise(ImageMixing):
    """The hot baseline: mix with ``z ~ N(0, I)``."""

    generates = True  # x_T = sqrt(ᾱ_T)·x0 + sqrt(1 - ᾱ_T)·z is almost pure noise

    def __init__(self, T: int) -> None:
        super().__init__(T)

    def draw_z(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        gen_device = generator.device if generator is not None else x0.device
        z = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype)
        return z.to(x0.device)

"""Blur and pixelation as separable linear maps: ``D(x, t) = A_t · x · B_tᵀ`` for every channel.

The authors blur by running ``t`` convolutions, one per step, so a training batch costs O(max t). Every
per-step operator here acts on rows and columns separately (a 2-D Gaussian kernel is the outer product of
two 1-D kernels, and circular or reflect padding pads each axis on its own), so the composition of ``t``
steps is one ``H × H`` matrix on the columns and one ``W × W`` matrix on the rows. We build the composite
matrices once per image size by multiplying the per-step matrices (float64, so 300 steps lose nothing),
then any ``t`` costs two batched matrix products. The result equals the iterated convolutions exactly,
up to float rounding, for circular *and* reflect padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .base import Degradation, shared_step

__all__ = ["SeparableLinear", "GaussianBlur", "Pixelate", "gaussian_kernel1d", "blur_sigmas"]


class SeparableLinear(Degradation):
    """A degradation of the form ``A_t · x · B_tᵀ``; subclasses give the per-size composite matrices."""

    channels = None  # any count: every channel is transformed on its own

    def __init__(self, T: int) -> None:
        super().__init__(T)
        self._cache: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def composite_matrices(self, n: int) -> torch.Tensor:
        """The (T + 1, n, n) float64 stack of 1-D operators after 0..T steps on an axis of length n."""
        raise NotImplementedError

    def matrices(self, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (n, torch.device(device), dtype)
        if key not in self._cache:
            mats = self.composite_matrices(n)
            # Gaussian tails reach 1e-37 and below: their products with pixels are subnormal floats, which
            # CPUs process many times slower. Entries under 1e-20 change no output visibly; drop them.
            mats = torch.where(mats.abs() < 1e-20, torch.zeros_like(mats), mats)
            self._cache[key] = mats.to(device=device, dtype=dtype)
        return self._cache[key]

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        _, _, h, w = x0.shape
        rows = self.matrices(h, x0.device, x0.dtype)[t]  # (B, H, H)
        cols = self.matrices(w, x0.device, x0.dtype)[t]  # (B, W, W)
        return rows[:, None] @ x0 @ cols.transpose(-1, -2)[:, None]


def gaussian_kernel1d(size: int, sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``size`` taps (float64), centred as torchgeometry's kernel.

    The 2-D blur kernel of the paper is the outer product of two of these.
    """
    if size < 1:
        raise ValueError(f"kernel size must be positive; got {size}.")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma}.")
    x = torch.arange(size, dtype=torch.float64) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def blur_sigmas(routine: str, T: int, std: float) -> list[float]:
    """Per-step kernel widths of the authors' blur routines (``i`` = 0..T-1 is the step index).

    ``constant``: std; ``incremental``: std·(i+1); ``exponential``: e^(std·i);
    ``special_6`` (CIFAR-10): 0.35 + i/100 (``std`` unused).
    """
    table = {
        "constant": lambda i: std,
        "incremental": lambda i: std * (i + 1),
        "exponential": lambda i: math.exp(std * i),
        "special_6": lambda i: 0.35 + i / 100,
    }
    if routine not in table:
        raise ValueError(f"unknown blur routine {routine!r}; choose one of {sorted(table)}.")
    return [float(table[routine](i)) for i in range(T)]


def conv1d_matrix(kernel: torch.Tensor, n: int, padding: str) -> torch.Tensor:
    """The n × n matrix K with ``K @ v == conv1d(pad(v), kernel)`` for a length-n signal ``v``."""
    p = kernel.numel() // 2
    eye = torch.eye(n, dtype=torch.float64)[:, None, :]  # n impulses as a batch of signals
    padded = F.pad(eye, (p, kernel.numel() - 1 - p), mode=padding)
    # cross-correlation, as nn.Conv2d in the authors' code (the kernels are symmetric anyway)
    responses = F.conv1d(padded, kernel[None, None])  # row j = K @ e_j = column j of K
    return responses[:, 0, :].T.contiguous()


class GaussianBlur(SeparableLinear):
    """Cumulative Gaussian blur: step ``i`` convolves with a ``kernel_size``² Gaussian of width ``sigmas[i]``.

    ``D(x, t) = k_{t-1} * … * k_0 * x`` with ``padding`` "circular" (the authors'
    default, keeps each channel's mean) or "reflect" (their CIFAR-10 and CelebA deblurring presets).
    ``to_mean_at_T`` replaces the last state by the per-channel mean, the endpoint of blur-based generation.
    """

    def __init__(self, sigmas: Sequence[float], kernel_size: int, padding: str = "circular",
                 to_mean_at_T: bool = False) -> None:
        super().__init__(len(sigmas))
        if padding not in ("circular", "reflect"):
            raise ValueError(f"padding must be 'circular' or 'reflect'; got {padding!r}.")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int; got {kernel_size}.")
        self.sigmas = [float(s) for s in sigmas]
        self.kernel_size = kernel_size
        self.padding = padding
        self.to_mean_at_T = to_mean_at_T
        self.kernels = [gaussian_kernel1d(kernel_size, s) for s in self.sigmas]
        self.schedule = {"sigma": torch.tensor([0.0, *self.sigmas], dtype=torch.float64)}

    def config(self) -> dict[str, Any]:
        return {"type": "GaussianBlur", "sigmas": self.sigmas, "kernel_size": self.kernel_size,
                "padding": self.padding, "to_mean_at_T": self.to_mean_at_T}

    @property
    def generates(self) -> bool:
        return self.to_mean_at_T  # x_T is flat: each channel's mean

    def generation_start(self, n: int, image_size: int, *, channels: int = 1, prior: Any = None,
                         noise_std: float = 0.0, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Any]:
        """Blur to the mean starts from flat images whose colours ``prior`` draws (no ``z``)."""
        if not self.generates:
            return super().generation_start(n, image_size)  # raises: a blur that keeps x0's detail
        if prior is None:
            raise ValueError("blur-to-the-mean generation starts from flat colours: pass prior="
                             "fit_channel_mean_prior(training_images) (coldlib.generation).")
        return prior.sample(n, image_size, noise_std=noise_std, generator=generator), None

    @classmethod
    def from_routine(cls, routine: str, T: int, std: float, kernel_size: int, padding: str = "circular",
                     to_mean_at_T: bool = False) -> GaussianBlur:
        """Build the blur from one of the authors' named routines (see :func:`blur_sigmas`)."""
        return cls(blur_sigmas(routine, T, std), kernel_size, padding, to_mean_at_T)

    def composite_matrices(self, n: int) -> torch.Tensor:
        p = self.kernel_size // 2
        if self.padding == "reflect" and p >= n:
            raise ValueError(f"reflect padding needs kernel_size // 2 < image side; got {p} for side {n}.")
        if self.padding == "circular" and p > n:
            raise ValueError(f"circular padding needs kernel_size // 2 <= image side; got {p} for side {n}.")
        mats = [torch.eye(n, dtype=torch.float64)]
        for k in self.kernels:
            mats.append(conv1d_matrix(k, n, self.padding) @ mats[-1])
        if self.to_mean_at_T:
            mats[-1] = torch.full((n, n), 1.0 / n, dtype=torch.float64)
        return torch.stack(mats)

    def __repr__(self) -> str:
        return (f"GaussianBlur(T={self.T}, kernel_size={self.kernel_size}, sigma {self.sigmas[0]:.3g}→"
                f"{self.sigmas[-1]:.3g}, padding={self.padding!r}, to_mean_at_T={self.to_mean_at_T})")


class Pixelate(SeparableLinear):
    """Pixelation for super-resolution: after ``t`` steps each 2^t × 2^t block holds its mean.

    Step ``i`` halves the resolution and upsamples back with nearest neighbours.
    The authors downsample bicubically without antialiasing, which is only roughly a block average (it
    differs by up to 0.28 at t = 1); we use the exact block average (their "area" variant), which makes
    ``t`` steps the same as one average-pool by 2^t, so the closed form is exact.
    """

    def __init__(self, T: int) -> None:
        super().__init__(T)
        self.schedule = {"block": torch.tensor([2.0**t for t in range(T + 1)], dtype=torch.float64)}

    def config(self) -> dict[str, Any]:
        return {"type": "Pixelate", "T": self.T}

    def _check_side(self, n: int) -> None:
        if n % 2**self.T:
            raise ValueError(f"Pixelate(T={self.T}) needs image sides divisible by 2^T = {2**self.T}; got {n}. "
                             "Resize the images (the paper resizes MNIST to 32) or lower T.")

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        self._check_side(x0.shape[-2])
        self._check_side(x0.shape[-1])
        step = shared_step(t)
        if step is None:
            return super().degrade(x0, t, z)  # a step per image: one matrix pair per image, exact for every t
        # One step for the whole batch (the samplers' case): the block means, then nearest-neighbour
        # upsampling, are the same block average without the two (B, n, n) matrix products.
        if step == 0:
            return x0.clone()
        small = x0
        for _ in range(step):  # 2 × 2 means of 2 × 2 means: four strided views summed beat avg_pool2d on CPUs
            small = (small[..., 0::2, 0::2] + small[..., 1::2, 0::2] + small[..., 0::2, 1::2]
                     + small[..., 1::2, 1::2]) * 0.25
        # nearest-neighbour interpolate is many times faster than repeat_interleave here
        return F.interpolate(small, scale_factor=2**step, mode="nearest")

    def composite_matrices(self, n: int) -> torch.Tensor:
        self._check_side(n)
        idx = torch.arange(n)
        mats = []
        for t in range(self.T + 1):
            block = idx // 2**t
            mats.append((block[:, None] == block[None, :]).double() / 2**t)
        return torch.stack(mats)

    def __repr__(self) -> str:
        return f"Pixelate(T={self.T}, blocks 1→{2**self.T})"

"""Inpainting: a Gaussian-shaped hole that fades the image to 0 (mid-grey), growing with every step.

Step ``i`` multiplies the image by ``M_i = 1 - G_i / max G_i`` where ``G_i`` is a Gaussian of width
``kernel_std · (i + initial_mask)``. After ``t`` steps the image is multiplied by the product of the first
``t`` masks; we precompute those cumulative products once, so any ``t`` is one multiply. In the random mode
the masks live on a 2H × 2W canvas and each image sees an H × W window at its own offset ``z``, so the hole
can be anywhere (the authors' ``Random_Incremental``); the offset is the degradation's random ingredient.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Degradation, shared_step
from .separable import gaussian_kernel1d

__all__ = ["GaussianMask", "InpaintGeneration"]


def fade_mask(rows: int, cols: int, sigma: float) -> torch.Tensor:
    """``1 - G/max G`` on a (rows+1) × (cols+1) grid with the first row and column dropped (authors' crop)."""
    g = gaussian_kernel1d(rows + 1, sigma)[:, None] * gaussian_kernel1d(cols + 1, sigma)[None, :]
    return (1.0 - g / g.max())[1:, 1:]


class GaussianMask(Degradation):
    """Multiplicative Gaussian hole; ``random_position`` places it anywhere, else it is centred.

    ``z`` (random mode) is a long tensor (B, 2) of window offsets in 0..H, 0..W.
    """

    channels = None  # any count: the same mask multiplies every channel

    def __init__(self, T: int, kernel_std: float, initial_mask: float = 11.0, random_position: bool = True) -> None:
        super().__init__(T)
        if not kernel_std > 0:
            raise ValueError(f"kernel_std must be positive; got {kernel_std}.")
        self.kernel_std = float(kernel_std)
        self.initial_mask = float(initial_mask)
        self.random_position = random_position
        sigmas = [self.kernel_std * (i + self.initial_mask) for i in range(T)]
        if min(sigmas) <= 0:
            raise ValueError(f"mask widths kernel_std·(i + initial_mask) must be positive; got {min(sigmas)}.")
        self.sigmas = sigmas
        self.schedule = {"sigma": torch.tensor([0.0, *sigmas], dtype=torch.float64)}
        self._cache: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    def config(self) -> dict[str, Any]:
        return {"type": "GaussianMask", "T": self.T, "kernel_std": self.kernel_std,
                "initial_mask": self.initial_mask, "random_position": self.random_position}

    def cumulative_masks(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(T + 1, canvas_h, canvas_w): the product of the first t masks, for t = 0..T."""
        key = (h, w, torch.device(device), dtype)
        if key not in self._cache:
            ch, cw = (2 * h, 2 * w) if self.random_position else (h, w)
            masks = [torch.ones(ch, cw, dtype=torch.float64)]
            for s in self.sigmas:  # built once per image size, not per call
                masks.append(masks[-1] * fade_mask(ch, cw, s))
            masks = torch.stack(masks)
            # values under 1e-20 would only make subnormal floats (slow on CPUs) and no visible difference
            masks = torch.where(masks < 1e-20, torch.zeros_like(masks), masks)
            self._cache[key] = masks.to(device=device, dtype=dtype)
        return self._cache[key]

    @property
    def has_z(self) -> bool:
        return self.random_position  # the hole's position; a centred hole has none

    def draw_z(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor | None:
        if not self.random_position:
            return None
        b, _, h, w = x0.shape
        gen_device = generator.device if generator is not None else x0.device
        oy = torch.randint(0, h + 1, (b,), generator=generator, device=gen_device)
        ox = torch.randint(0, w + 1, (b,), generator=generator, device=gen_device)
        return torch.stack([oy, ox], dim=1).to(x0.device)

    def check_z(self, z: Any, x0: torch.Tensor) -> None:
        if not self.random_position:
            raise ValueError("this GaussianMask is centred and takes no z; pass z=None.")
        b, _, h, w = x0.shape
        if not isinstance(z, torch.Tensor) or z.shape != (b, 2) or z.is_floating_point():
            raise ValueError(f"z must be an integer tensor of hole offsets with shape ({b}, 2); got "
                             f"{getattr(z, 'shape', type(z).__name__)}. Draw one with D.draw_z(x0).")
        if int(z.min()) < 0 or int(z[:, 0].max()) > h or int(z[:, 1].max()) > w:
            raise ValueError(f"z offsets must lie in 0..{h} (rows) and 0..{w} (columns).")

    def masks(self, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The (B, H, W) multiplicative mask each image gets at its step."""
        _, _, h, w = x0.shape
        cumulative = self.cumulative_masks(h, w, x0.device, x0.dtype)
        if not self.random_position:
            return cumulative[t]
        # Every H × W window of every canvas, as a view (T + 1, H + 1, W + 1, H, W); indexing its three leading
        # dimensions copies one contiguous-row window per image, cheaper than a per-pixel gather.
        windows = cumulative.unfold(1, h, 1).unfold(2, w, 1)
        z = z.to(x0.device)
        return windows[t, z[:, 0], z[:, 1]]

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        step = None if self.random_position else shared_step(t)
        if step is not None:  # one step for the batch (the samplers' case):
            cumulative = self.cumulative_masks(x0.shape[-2], x0.shape[-1], x0.device, x0.dtype)
            return cumulative[step] * x0  # one mask broadcast over the batch, no copy per image
        return self.masks(x0, t, z)[:, None] * x0

    def __repr__(self) -> str:
        where = "random" if self.random_position else "centred"
        return (f"GaussianMask(T={self.T}, {where}, sigma {self.sigmas[0]:.3g}→{self.sigmas[-1]:.3g} px)")


class InpaintGeneration(Degradation):
    """Inpainting-based generation: the image is covered by a constant colour from the outside in.

    ``D(x0, t, c) = a_t ⊙ x0 + (1 - a_t) ⊙ c`` with ``c`` a constant colour per image,
    drawn uniformly in ``[-0.5, 0.5]`` per channel (the authors' ``--reverse`` generation). The centred holes
    of :class:`GaussianMask` grow with the number of masks multiplied, ``P_k = M_0 ⋯ M_{k-1}``; reversing
    them, the *visible* part shrinks towards the centre as t grows: ``a_t = (1 - P_{T-t}) / (1 - P_T)``.
    The authors use ``1 - P_{T-1-t}`` unnormalised; dividing by ``1 - P_T`` makes ``D(x, 0) = x`` exact and
    ``D(x, T) = c`` exact (their ``a_0`` reaches 0.993 in the corners). At ``t = T`` the image is the colour
    alone, so sampling starts from a random colour: ``z`` is the (B, C, 1, 1) colour tensor.
    """

    channels = None  # any count: the fill colour has one value per channel
    generates = True  # D(x0, T, c) is the colour c

    def __init__(self, T: int, kernel_std: float, initial_mask: float = 1.0) -> None:
        super().__init__(T)
        self._holes = GaussianMask(T, kernel_std=kernel_std, initial_mask=initial_mask, random_position=False)
        self.kernel_std, self.initial_mask = self._holes.kernel_std, self._holes.initial_mask
        self.schedule = {"sigma": self._holes.schedule["sigma"]}
        self._cache: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    def config(self) -> dict[str, Any]:
        return {"type": "InpaintGeneration", "T": self.T, "kernel_std": self.kernel_std,
                "initial_mask": self.initial_mask}

    def visible(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(T + 1, H, W): ``a_t``, the share of the image still visible after t steps (1 at t = 0, 0 at T)."""
        key = (h, w, torch.device(device), dtype)
        if key not in self._cache:
            P = self._holes.cumulative_masks(h, w, torch.device("cpu"), torch.float64)  # (T + 1, H, W)
            covered_at_T = 1 - P[self.T]
            if float(covered_at_T.min()) < 0.5:
                raise ValueError(f"with T={self.T} and kernel_std={self.kernel_std} the holes leave "
                                 f"{1 - float(covered_at_T.min()):.0%} of some pixel of a {h}x{w} image uncovered "
                                 "at t = T; raise T or kernel_std so that the last hole covers the whole image.")
            a = (1 - P.flip(0)) / covered_at_T  # a_t = (1 - P_{T-t}) / (1 - P_T)
            a = torch.where(a < 1e-20, torch.zeros_like(a), a)  # no subnormal floats (slow on CPUs)
            self._cache[key] = a.to(device=device, dtype=dtype)
        return self._cache[key]

    def draw_z(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c = x0.shape[:2]
        gen_device = generator.device if generator is not None else x0.device
        colour = torch.rand((b, c, 1, 1), generator=generator, device=gen_device, dtype=x0.dtype) - 0.5
        return colour.to(x0.device)

    def check_z(self, z: Any, x0: torch.Tensor) -> None:
        b, c = x0.shape[:2]
        if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.shape != (b, c, 1, 1):
            raise ValueError(f"z must be a float tensor of colours with shape ({b}, {c}, 1, 1); got "
                             f"{getattr(z, 'shape', type(z).__name__)}. Draw one with D.draw_z(x0).")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("z (the fill colours) must be finite.")

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        a = self.visible(x0.shape[-2], x0.shape[-1], x0.device, x0.dtype)[t][:, None]  # (B, 1, H, W)
        return a * x0 + (1 - a) * z.to(device=x0.device, dtype=x0.dtype)

    def __repr__(self) -> str:
        return (f"InpaintGeneration(T={self.T}, revealed from the centre, sigma "
                f"{self._holes.sigmas[0]:.3g}→{self._holes.sigmas[-1]:.3g} px)")

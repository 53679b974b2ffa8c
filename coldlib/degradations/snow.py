"""Snowification (from ImageNet-C, as in the paper): more and longer snowflakes with every step.

Snow is not cumulative: the state after ``t`` steps is a direct function of the clean image and a random
snow field ``z``. The field is a Gaussian field ``N(loc, scale²)`` at ``1/zoom`` of the image size,
upsampled bicubically (ImageNet-C's ``clipped_zoom``). At step t, flakes are the field's values above a
threshold ``τ_t`` (clipped to [0, 1]), smeared by an 11-tap motion blur of width ``σ_t`` along the field's
direction (horizontal or vertical), and added to the image twice (the pattern and its 180° rotation):
``D(x, t) = 2·clip(u + S_t + rot180(S_t), 0, 1) - 1`` with ``u = (x + 1)/2``. ``τ`` falls and ``σ`` grows
linearly over the steps (the authors' ``--fix_brightness`` setting). The authors rebuild all T layers on the
CPU at every training step; here each image's layer is made on the tensor's device at its own step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .base import Degradation

__all__ = ["Snow", "SnowField"]


class SnowField(NamedTuple):
    """The random ingredient of :class:`Snow`: a (B, 1, H, W) field and a (B,) bool "vertical" flag."""

    field: torch.Tensor
    vertical: torch.Tensor


class Snow(Degradation):
    """Snow with linear schedules ``threshold`` (τ, first→last step) and ``motion_sigma`` (σ).

    Defaults are the authors' level 3 (CIFAR-10); level 4 (CelebA) ends at
    τ = 0.55 and σ = 20.
    """

    # White flakes: the same amount is added to every channel, which means "whiter" for grey (1 channel)
    # and RGB (3) images only; 2 or 4 channels (e.g. an alpha channel) have no white to add.
    channels = (1, 3)

    def __init__(self, T: int, *, threshold: tuple[float, float] = (1.15, 0.70),
                 motion_sigma: tuple[float, float] = (0.05, 16.0), loc: float = 0.55, scale: float = 0.3,
                 zoom: float = 2.5, motion_taps: int = 11) -> None:
        super().__init__(T)
        if zoom < 1:
            raise ValueError(f"zoom must be >= 1 (the field is upsampled by it); got {zoom}.")
        if motion_taps < 1 or motion_taps % 2 == 0:
            raise ValueError(f"motion_taps must be a positive odd int; got {motion_taps}.")
        if min(motion_sigma) <= 0:
            raise ValueError(f"motion_sigma values must be positive; got {motion_sigma}.")
        self.loc, self.scale, self.zoom, self.motion_taps = float(loc), float(scale), float(zoom), motion_taps
        self.threshold, self.motion_sigma = tuple(threshold), tuple(motion_sigma)
        steps = torch.linspace(0, 1, T, dtype=torch.float64) if T > 1 else torch.ones(1, dtype=torch.float64)
        tau = threshold[0] + (threshold[1] - threshold[0]) * steps
        sigma = motion_sigma[0] + (motion_sigma[1] - motion_sigma[0]) * steps
        # entry 0 is t = 0, where no snow is added (an infinite threshold)
        self.schedule = {"threshold": torch.cat([torch.tensor([float("inf")], dtype=torch.float64), tau]),
                         "motion_sigma": torch.cat([torch.tensor([1.0], dtype=torch.float64), sigma])}

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> Snow:
        # JSON turns the (first, last) schedules into lists
        return cls(**{**arguments, "threshold": tuple(arguments["threshold"]),
                      "motion_sigma": tuple(arguments["motion_sigma"])})

    def config(self) -> dict[str, Any]:
        return {"type": "Snow", "T": self.T, "threshold": list(self.threshold),
                "motion_sigma": list(self.motion_sigma), "loc": self.loc, "scale": self.scale,
                "zoom": self.zoom, "motion_taps": self.motion_taps}

    def draw_z(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> SnowField:
        b, _, h, w = x0.shape
        gen_device = generator.device if generator is not None else x0.device
        small = (max(1, round(h / self.zoom)), max(1, round(w / self.zoom)))
        field = torch.randn((b, 1, *small), generator=generator, device=gen_device, dtype=torch.float32)
        field = F.interpolate(field * self.scale + self.loc, size=(h, w), mode="bicubic", align_corners=False)
        vertical = torch.rand((b,), generator=generator, device=gen_device) < 0.5
        return SnowField(field.to(device=x0.device, dtype=x0.dtype), vertical.to(x0.device))

    def check_z(self, z: Any, x0: torch.Tensor) -> None:
        b, _, h, w = x0.shape
        field, vertical = (z.field, z.vertical) if isinstance(z, SnowField) else (None, None)
        fits = (isinstance(field, torch.Tensor) and isinstance(vertical, torch.Tensor) and field.is_floating_point()
                and vertical.dtype == torch.bool and field.shape == (b, 1, h, w) and vertical.shape == (b,))
        if not fits:
            def describe(f: Any) -> str:
                return f"{f.dtype} {tuple(f.shape)}" if isinstance(f, torch.Tensor) else type(f).__name__

            got = (f"SnowField(field {describe(field)}, vertical {describe(vertical)})" if isinstance(z, SnowField)
                   else type(z).__name__)
            raise ValueError(f"z must be a SnowField(field: float (B, 1, H, W), vertical: bool (B,)) for a batch "
                             f"shaped {tuple(x0.shape)}; got {got}. Draw one with D.draw_z(x0).")
        if not bool(torch.isfinite(field).all()):
            raise ValueError("z.field (the snow field) must be finite; draw one with D.draw_z(x0).")

    def motion_kernels(self, t: torch.Tensor, vertical: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, taps, taps) kernels: a 1-D Gaussian of each image's σ_t along its row or column."""
        taps = self.motion_taps
        sigma = self.schedule["motion_sigma"].to(t.device)[t]  # (B,)
        x = torch.arange(taps, device=t.device, dtype=torch.float64) - taps // 2
        k1 = torch.exp(-(x[None] ** 2) / (2 * sigma[:, None] ** 2))
        k1 = k1 / k1.sum(1, keepdim=True)
        k1 = torch.where(k1 < 1e-20, torch.zeros_like(k1), k1).to(dtype)  # (B, taps); no subnormal taps
        line = torch.zeros(k1.shape[0], taps, taps, device=t.device, dtype=dtype)
        horizontal = line.clone()
        horizontal[:, taps // 2, :] = k1
        line[:, :, taps // 2] = k1
        return torch.where(vertical[:, None, None], line, horizontal)[:, None]

    def flakes(self, t: torch.Tensor, z: SnowField) -> torch.Tensor:
        """S_t: the (B, 1, H, W) snow layer of each image at its own step."""
        b, _, h, w = z.field.shape
        tau = self.schedule["threshold"].to(device=z.field.device, dtype=z.field.dtype)[t][:, None, None, None]
        raw = torch.where(z.field >= tau, z.field, torch.zeros_like(z.field)).clamp(0, 1)
        kernels = self.motion_kernels(t, z.vertical, z.field.dtype)
        # one grouped convolution blurs every image with its own kernel: no loop over the batch
        blurred = F.conv2d(raw.view(1, b, h, w), kernels, padding=self.motion_taps // 2, groups=b)
        return blurred.view(b, 1, h, w)

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        # like every other z, the field follows x0's device and dtype (one drawn on the CPU works on a GPU)
        z = SnowField(z.field.to(device=x0.device, dtype=x0.dtype), z.vertical.to(x0.device))
        s = self.flakes(t, z)
        u = (x0 + 1) / 2
        snowy = 2 * (u + s + s.flip(-1, -2)).clamp(0, 1) - 1
        return torch.where((t == 0)[:, None, None, None], x0, snowy)

    def __repr__(self) -> str:
        tau, sig = self.schedule["threshold"], self.schedule["motion_sigma"]
        return (f"Snow(T={self.T}, threshold {tau[1]:.3g}→{tau[-1]:.3g}, motion sigma {sig[1]:.3g}→"
                f"{sig[-1]:.3g})")

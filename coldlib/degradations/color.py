"""Decolorization: fade the colours to grey, linearly in t.

The authors apply ``t`` 1×1 convolutions ``W_i = e_i·I + (1-e_i)·gray``; with their
``Linear`` routine (total removal) the product is exactly ``(1 - t/T)·x + (t/T)·gray(x)``, which is what we
compute. ``gray`` is the mean of the RGB channels, broadcast back to three channels.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Degradation

__all__ = ["Decolorize"]


class Decolorize(Degradation):
    """``D(x, t) = (1 - t/T)·x + (t/T)·gray(x)`` for RGB images."""

    channels = 3  # RGB only: a grey (1-channel) image has no colour to fade, others no defined grey

    def __init__(self, T: int) -> None:
        super().__init__(T)
        self.schedule = {"gray_fraction": torch.arange(T + 1, dtype=torch.float64) / T}

    def config(self) -> dict[str, Any]:
        return {"type": "Decolorize", "T": self.T}

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        frac = (t.to(x0.dtype) / self.T)[:, None, None, None]
        gray = x0.mean(dim=1, keepdim=True)
        return x0 + frac * (gray - x0)

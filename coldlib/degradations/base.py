"""The one degradation interface: ``D(x0, t)`` for a batch of images and a step per image.

What every operator shares.

A degradation maps clean images ``x0`` (float, shape (B, C, H, W), values in [-1, 1]) and integer steps
``t`` in ``0..T`` (one per image) to degraded images on the same device and dtype, with ``D(x0, 0) == x0``.
Some degradations need a random ingredient ``z`` (a hole position, a snow pattern, a noise image, a second
image to mix in). ``draw_z`` draws it; a sampler draws it once and keeps it fixed along a trajectory, which
is what Algorithm 2 needs (it compares ``D(x̂0, t, z)`` with ``D(x̂0, t - 1, z)``). Left out, a fresh ``z``
is drawn on every call, which is what training wants.

Every built-in degradation is computed in closed form: the cost of ``D(x0, t)`` does not depend on ``t``
and a batch may mix steps freely.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

__all__ = ["Degradation", "check_images", "check_steps", "map_z"]


def check_images(x: Any, *, channels: int | None = None, name: str = "x0") -> torch.Tensor:
    """Check that ``x`` is a finite float batch shaped (B, C, H, W); raise ``ValueError`` otherwise.

    Nothing is clamped or converted silently: the message says how to fix it.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of images shaped (B, C, H, W); got {type(x).__name__}.")
    if x.ndim != 4:
        hint = " For a single image use x[None]." if x.ndim == 3 else ""
        raise ValueError(f"{name} must have 4 dimensions (B, C, H, W); got shape {tuple(x.shape)}.{hint}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor with values in [-1, 1]; got dtype {x.dtype}. "
            "Convert uint8 images with x.float() / 127.5 - 1."
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s) for this degradation; got {x.shape[1]} "
                         f"(shape {tuple(x.shape)}).")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one image.")
    if not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ValueError(f"{name} contains {bad} values; degradations need finite images in [-1, 1].")
    return x


def check_steps(t: Any, batch: int, T: int, device: torch.device) -> torch.Tensor:
    """Turn ``t`` (an int, or an integer tensor of shape () or (B,)) into a long tensor of shape (B,).

    Steps outside ``0..T`` raise ``ValueError``; they are never clamped.
    """
    if isinstance(t, bool) or (isinstance(t, torch.Tensor) and t.dtype == torch.bool):
        raise ValueError("t must be an integer step in 0..T (or a tensor of them), not a bool.")
    if isinstance(t, int):
        t = torch.tensor(t)
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"t must be an int or an integer torch.Tensor of shape (B,); got {type(t).__name__}.")
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"t must hold integer steps (e.g. torch.long); got dtype {t.dtype}. Use t.long() "
                         "if the values are whole numbers.")
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), one step per image; got shape "
                         f"{tuple(t.shape)}.")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi > T:
        raise ValueError(f"t must lie in 0..T = 0..{T}; got values from {lo} to {hi}.")
    return t.to(device=device, dtype=torch.long)


def map_z(z: Any, fn: Any) -> Any:
    """Apply ``fn`` to every tensor of a random ingredient: ``None``, a tensor, or a NamedTuple of tensors.

    Used to slice, index or move a ``z`` with its batch. Raises ``TypeError``
    for any other kind of ``z``.
    """
    if z is None:
        return None
    if isinstance(z, torch.Tensor):
        return fn(z)
    if isinstance(z, tuple) and hasattr(z, "_fields"):
        return type(z)(*(fn(f) for f in z))
    raise TypeError(f"a z of type {type(z).__name__} cannot be sliced or moved with its batch; return None, a "
                    "tensor or a NamedTuple of tensors (batch first) from draw_z.")


class Degradation(abc.ABC):
    """Base class of every degradation. Subclasses set ``T`` and implement :meth:`degrade`.

    Attributes:
        T: the number of steps; ``t = T`` is the most degraded state.
        channels: the channel count the operator needs, or ``None`` for any.
        schedule: named per-step parameters, each a float64 tensor of length ``T + 1`` (entry 0 is t = 0).
    """

    T: int
    channels: int | None = None
    schedule: dict[str, torch.Tensor]

    def __init__(self, T: int) -> None:
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int (the number of degradation steps); got {T!r}.")
        self.T = T
        self.schedule = {}

    def __call__(self, x0: torch.Tensor, t: int | torch.Tensor, z: Any = None) -> torch.Tensor:
        """Return ``D(x0, t)`` (with the random ingredient ``z`` if the degradation has one)."""
        x0 = check_images(x0, channels=self.channels)
        steps = check_steps(t, x0.shape[0], self.T, x0.device)
        if z is None:
            z = self.draw_z(x0)
        else:
            self.check_z(z, x0)
        return self.degrade(x0, steps, z)

    def draw_z(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> Any:
        """Draw the random ingredient for a batch like ``x0``; ``None`` for deterministic degradations."""
        return None

    def check_z(self, z: Any, x0: torch.Tensor) -> None:
        """Raise ``ValueError`` if ``z`` does not fit the batch ``x0``. Override where ``z`` is used."""

    def estimate_z(self, xt: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor) -> Any:
        """The ``z`` that would make ``D(x0_hat, t, z) = xt``, for samplers that re-estimate it at every step.

        Only degradations whose ``z``
        can be solved for implement it (mixing and noise); the rest raise ``NotImplementedError``.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot re-estimate its z from x_t and x̂0; sample with "
                                  "reestimate_z=False (z held fixed, Algorithm 2).")

    @abc.abstractmethod
    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: Any) -> torch.Tensor:
        """The operator itself; ``x0`` and ``t`` (long, shape (B,)) are already checked."""

    def config(self) -> dict[str, Any]:
        """A JSON-able description that :func:`coldlib.degradations.from_config` turns back into ``self``.

        Built-in degradations implement it so checkpoints can record what they were trained on.
        """
        raise NotImplementedError(f"{type(self).__name__} does not describe itself; implement config() to "
                                  "save it in a checkpoint.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(T={self.T})"

"""The one degradation interface: ``D(x0, t)`` for a batch of images and a step per image.

What every operator shares.

A degradation maps clean images ``x0`` (float, shape (B, C, H, W), values in [-1, 1]) and integer steps
``t`` in ``0..T`` (one per image) to degraded images on the same device and dtype, with ``D(x0, 0) == x0``.
Calling ``D(x0, t)`` checks all of that, the value range and the channel counts the degradation declares
(``channels``) included; the samplers, which degrade a restorer's prediction x̂0 that may overshoot [-1, 1],
call the unchecked :meth:`Degradation.degrade` after checking their own inputs.
Some degradations need a random ingredient ``z`` (a hole position, a snow pattern, a noise image, a second
image to mix in). ``draw_z`` draws it; a sampler draws it once and keeps it fixed along a trajectory, which
is what Algorithm 2 needs (it compares ``D(x̂0, t, z)`` with ``D(x̂0, t - 1, z)``). Left out, a fresh ``z``
is drawn on every call, which is what training wants.

Every built-in degradation is computed in closed form: the cost of ``D(x0, t)`` does not depend on ``t``
and a batch may mix steps freely.
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import Any

import torch

from ..validate import check_int

__all__ = ["Degradation", "check_images", "check_steps", "shared_step", "map_z", "from_config", "CLEAN_TOLERANCE",
           "LOOSE_LIMIT"]

#: How far outside [-1, 1] a clean image may stray: float round-off (of a resize, of ``x / 127.5 - 1``), no more.
CLEAN_TOLERANCE = 1e-3

#: The loose bound ``|x| <= LOOSE_LIMIT`` on what degradations and samplers are given. Clean images for training
#: are checked strictly (in [-1, 1]), but a degradation is also applied to a restorer's prediction x̂0 (which may
#: overshoot [-1, 1]) and samplers start from degraded states that legitimately leave it: x_T of
#: :class:`GaussianNoise` is about N(0, 1), whose largest value in a big batch is 5 or so, and a mix of two
#: images reaches sqrt(2). Nothing in the course comes near 10, while images left in [0, 255] (uint8 data turned
#: into floats with ``x.float()`` but not rescaled) almost always go past it.
LOOSE_LIMIT = 10.0

_CONVERT = "Convert uint8 data in [0, 255] with x.float() / 127.5 - 1, and data in [0, 1] with x * 2 - 1."


def _channels_text(channels: int | tuple[int, ...]) -> str:
    if isinstance(channels, int):
        return f"{channels} channel(s)"
    counts = [str(c) for c in channels]
    return (" or ".join(counts) if len(counts) < 3 else ", ".join(counts[:-1]) + " or " + counts[-1]) + " channels"


def _accepts(channels: int | tuple[int, ...] | None, c: int) -> bool:
    if channels is None:
        return True
    return c == channels if isinstance(channels, int) else c in channels


def check_images(x: Any, *, channels: int | tuple[int, ...] | None = None, name: str = "x0",
                 limit: float | None = None, owner: str = "this degradation", hint: str = "") -> torch.Tensor:
    """Check that ``x`` is a finite float batch shaped (B, C, H, W); raise ``ValueError`` otherwise.

    ``channels`` is the channel count ``x`` must have: an int, a tuple of the accepted counts, or ``None``
    (any). ``limit`` bounds the values: ``1`` requires clean images in [-1, 1] (up to
    :data:`CLEAN_TOLERANCE` of round-off), a larger number is a loose sanity bound ``|x| <= limit`` for
    degraded states (noise leaves [-1, 1]), and ``None`` checks no range (outputs of a network, which may
    overshoot). ``owner`` names who needs the channels, and ``hint`` is added to a range error, for the message.
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
    if not _accepts(channels, x.shape[1]):
        raise ValueError(f"{name} must have {_channels_text(channels)} for {owner}; got {x.shape[1]} "
                         f"(shape {tuple(x.shape)}).")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one image.")
    if x.numel() == 0:
        raise ValueError(f"{name} has no pixels (shape {tuple(x.shape)}); pass images of at least 1x1.")
    lo, hi = torch.stack(torch.aminmax(x)).tolist()  # one pass and one device sync for all value checks
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = "NaN" if math.isnan(lo) or math.isnan(hi) else "infinite"
        raise ValueError(f"{name} contains {bad} values; degradations need finite images in [-1, 1].")
    if limit is not None and max(-lo, hi) > limit + CLEAN_TOLERANCE:
        if limit <= 1:
            raise ValueError(f"{name} must have values in [-{limit:g}, {limit:g}] (clean images); got values from "
                             f"{lo:.4g} to {hi:.4g}. {_CONVERT}{hint}")
        raise ValueError(f"{name} has values from {lo:.4g} to {hi:.4g}, beyond ±{limit:g}: no degradation of "
                         f"images in [-1, 1] goes that far, so these look like unconverted [0, 255] data; work "
                         f"with images in [-1, 1]. {_CONVERT}{hint}")
    return x


def check_steps(t: Any, batch: int, T: int, device: torch.device) -> torch.Tensor:
    """Turn ``t`` (an int, or an integer tensor of shape () or (B,)) into a long tensor of shape (B,).

    Steps outside ``0..T`` raise ``ValueError``; they are never clamped.
    """
    if isinstance(t, bool) or (isinstance(t, torch.Tensor) and t.dtype == torch.bool):
        raise ValueError("t must be an integer step in 0..T (or a tensor of them), not a bool.")
    if isinstance(t, int):  # checked in Python: one tensor op for the common case of one step for the batch
        if not 0 <= t <= T:
            raise ValueError(f"t must lie in 0..T = 0..{T}; got {t}.")
        return torch.full((batch,), t, dtype=torch.long, device=device)
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"t must be an int or an integer torch.Tensor of shape (B,); got {type(t).__name__}.")
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"t must hold integer steps (e.g. torch.long); got dtype {t.dtype}. Use t.long() "
                         "if the values are whole numbers.")
    if t.dtype in (torch.uint16, torch.uint32, torch.uint64):  # most torch ops (aminmax, indexing) lack these types
        values = t.cpu().reshape(-1).tolist()  # a few steps; checked in Python, since max() lacks these types too
        if values and max(values) > T:  # before the cast: a huge uint64 would wrap to a negative long
            raise ValueError(f"t must lie in 0..T = 0..{T}; got values up to {max(values)}.")
        t = t.to(torch.long)
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), one step per image; got shape "
                         f"{tuple(t.shape)}.")
    lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one pass, one sync
    if lo < 0 or hi > T:
        raise ValueError(f"t must lie in 0..T = 0..{T}; got values from {lo} to {hi}.")
    return t.to(device=device, dtype=torch.long)


def shared_step(t: torch.Tensor) -> int | None:
    """The one step every image of the batch is at, or ``None`` when the steps differ (or ``t`` is empty).

    ``t`` is an integer tensor of steps (any shape, typically (B,) from :func:`check_steps`). Degradations
    use it to take a faster path when the whole batch shares one step (the samplers' case). It costs one
    ``aminmax`` pass and a single host-device sync.
    """
    if t.numel() == 0:
        return None
    lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one pass, one sync
    return int(lo) if lo == hi else None


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


def check_noise_std(noise_std: Any) -> float:
    """``noise_std`` (the symmetry-breaking noise of a generation start) must be a finite number >= 0."""
    if not (isinstance(noise_std, (int, float)) and math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be a finite number >= 0; got {noise_std!r}.")
    return noise_std


def add_start_noise(x_T: torch.Tensor, noise_std: float, generator: torch.Generator | None) -> torch.Tensor:
    """``x_T`` plus N(0, noise_std²) per pixel: the paper's symmetry breaking, added once to a generation start."""
    if check_noise_std(noise_std) > 0:
        x_T = x_T + noise_std * torch.randn(x_T.shape, generator=generator)
    return x_T


#: Every Degradation subclass, by class name (filled in as classes are defined; see ``__init_subclass__``).
_REGISTRY: dict[str, type[Degradation]] = {}


def from_config(config: dict) -> Degradation:
    """Rebuild a degradation from its :meth:`Degradation.config` (``{"type": class name, **arguments}``).

    Every subclass registers itself by name when it is defined, a learner's too, so this needs no list of
    types: a new degradation whose ``config()`` returns its constructor's arguments is saved and reloaded
    with no change here.
    """
    if not isinstance(config, dict) or config.get("type") not in _REGISTRY:
        known = sorted(n for n, c in _REGISTRY.items() if not inspect.isabstract(c))
        raise ValueError(f"not a degradation config (need 'type' in {known}): {config!r}")
    return _REGISTRY[config["type"]].from_arguments({k: v for k, v in config.items() if k != "type"})


class Degradation(abc.ABC):
    """Base class of every degradation. Subclasses set ``T`` and implement :meth:`degrade`.

    Attributes:
        T: the number of steps; ``t = T`` is the most degraded state.
        channels: the channel counts the operator accepts: an int, a tuple of ints, or ``None`` for any.
            Every built-in degradation declares it; :meth:`__call__` (and the training loss and samplers)
            refuse other counts with a ``ValueError``.
        schedule: named per-step parameters, each a float64 tensor of length ``T + 1`` (entry 0 is t = 0).
    """

    T: int
    channels: int | tuple[int, ...] | None = None
    schedule: dict[str, torch.Tensor]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        known = _REGISTRY.get(cls.__name__)
        # a class redefined (a notebook cell run twice) replaces itself; another class never takes a known name
        if known is None or (known.__module__, known.__qualname__) == (cls.__module__, cls.__qualname__):
            _REGISTRY[cls.__name__] = cls

    def __init__(self, T: int) -> None:
        self.T = check_int(T, "T", hint=" (the number of degradation steps)")
        self.schedule = {}

    def __call__(self, x0: torch.Tensor, t: int | torch.Tensor, z: Any = None) -> torch.Tensor:
        """Return ``D(x0, t)`` (with the random ingredient ``z`` if the degradation has one).

        ``x0`` holds images in [-1, 1] with a channel count the degradation accepts, or a restorer's prediction
        ``x̂0`` (which may overshoot a little): values beyond :data:`LOOSE_LIMIT` are refused as unconverted
        [0, 255] data. Training (``ColdDiffusion.loss``, the ``Trainer``) checks clean images strictly.
        """
        self.check_ready()
        x0 = check_images(x0, channels=self.channels, limit=LOOSE_LIMIT, owner=type(self).__name__)
        steps = check_steps(t, x0.shape[0], self.T, x0.device)
        if z is None:
            z = self.draw_z(x0)
        else:
            self.check_z(z, x0)
        out = self.degrade(x0, steps, z)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{type(self).__name__}.degrade returned a {type(out).__name__}; it must return the "
                            "degraded batch, a tensor shaped like x0.")
        return out

    def check_ready(self) -> None:
        """Raise ``ValueError`` if the object was never set up by ``Degradation.__init__`` (no valid ``T``)."""
        T = getattr(self, "T", None)
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"{type(self).__name__} has no valid T (got {T!r}): call super().__init__(T) in its "
                             "__init__ before using it.")

    @property
    def has_z(self) -> bool:
        """Whether this degradation has a random ingredient ``z`` (answered without drawing one).

        True for a class that overrides :meth:`draw_z`; a class whose ``z`` depends on its settings overrides this.
        """
        return type(self).draw_z is not Degradation.draw_z

    def draw_z(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> Any:
        """Draw the random ingredient for a batch like ``x0``; ``None`` for deterministic degradations."""
        return None

    @property
    def generates(self) -> bool:
        """Whether ``D(x0, T)`` forgets ``x0`` (up to ``z``), so sampling from ``x_T`` generates new images."""
        return False

    def generation_start(self, n: int, image_size: int, *, channels: int = 1, prior: Any = None,
                         noise_std: float = 0.0, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Any]:
        """``(x_T, z)`` to generate ``n`` images of ``channels × image_size²``, on the CPU.

        The default, for a degradation that :attr:`generates`: draw ``z`` and take ``x_T = D(0, T, z)`` (the
        ``x0`` term is gone or negligible at ``T``). ``noise_std`` adds the paper's symmetry-breaking noise to
        ``x_T``. ``prior`` is for degradations whose end state is drawn from one (blur to the mean).
        """
        if not self.generates:
            raise ValueError(f"{self!r} does not end in a state that can be sampled without x0; generation needs "
                             "blur to the mean, GaussianNoise, InpaintGeneration or ImageMixing with a pool.")
        n, image_size = check_int(n, "n", hint=" (how many images)"), check_int(image_size, "image_size")
        check_noise_std(noise_std)
        zeros = torch.zeros(n, channels, image_size, image_size)
        z = self.draw_z(zeros, generator)
        return add_start_noise(self(zeros, self.T, z), noise_std, generator), z

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> Degradation:
        """Build from the arguments of a :meth:`config` (its entries but ``type``); override to convert any."""
        return cls(**arguments)

    def check_z(self, z: Any, x0: torch.Tensor) -> None:
        """Raise ``ValueError`` if ``z`` does not fit the batch ``x0``. Override where ``z`` is used.

        The default refuses any ``z`` if the class does not draw one (it would be silently ignored).
        """
        if not self.has_z:
            raise ValueError(f"{type(self).__name__} has no random ingredient z, so a z would be ignored; pass "
                             f"z=None (got a {type(z).__name__}).")

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
        """A JSON-able ``{"type": class name, **constructor arguments}`` that :func:`from_config` turns back into
        ``self``. Built-in degradations implement it so checkpoints can record what they were trained on.
        """
        raise NotImplementedError(f"{type(self).__name__} does not describe itself; implement config() to "
                                  "save it in a checkpoint.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(T={self.T})"

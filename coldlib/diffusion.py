"""Cold diffusion around any degradation: the training loss and the three samplers, written once.

Training: draw ``t`` uniformly in 1..T, degrade ``x_t = D(x0, t)``, and regress ``R(x_t, t)`` on ``x0``
(L1 by default, as the paper). Sampling from a degraded ``x_s`` (``s = T`` for generation, any ``s`` to
restore an image that is only partly degraded), with ``x̂0 = R(x_s, s)`` at every step:

* **direct**: return the first ``x̂0``;
* **naive** (Algorithm 1): ``x_{s-1} = D(x̂0, s - 1)``;
* **improved** (Algorithm 2): ``x_{s-1} = x_s - D(x̂0, s) + D(x̂0, s - 1)``.

A degradation with a random ingredient ``z`` (noise, a second image) keeps the ``z`` it started from, or,
with ``reestimate_z=True``, re-solves ``z`` from ``x_s`` and ``x̂0`` at every step (for noise, that is
DDIM with η = 0: the paper's "estimated noise" hot sampler, lesson 07_hot_cold_reveal_and_animorphosis).

Because every degradation is a closed form, each step costs two degradations whatever ``s`` is, so a
whole Algorithm 2 run is O(T) degradations (the authors' code recomputes them from scratch: O(T²)).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .degradations import Degradation, check_images, check_steps
from .degradations.base import LOOSE_LIMIT

__all__ = ["ColdDiffusion", "Trajectory", "METHODS", "SAMPLER_NAMES", "compare_samplers", "eval_mode", "device_of",
           "weights_of"]

METHODS = ("direct", "naive", "improved")

#: How tables and figures name each sampler.
SAMPLER_NAMES = {"direct": "Direct", "naive": "Algorithm 1", "improved": "Algorithm 2"}


def weights_of(module: nn.Module) -> torch.Tensor | None:
    """The module's first floating-point parameter (or buffer): where and in what dtype it computes."""
    tensors = [*module.parameters(), *module.buffers()]
    return next((t for t in tensors if t.is_floating_point()), None)


def device_of(module: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the module's weights; ``fallback`` for a module without any."""
    weight = weights_of(module)
    return torch.device(fallback) if weight is None else weight.device


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in eval mode (dropout off), then give every submodule its own mode back, even after an error."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


@dataclass
class Trajectory:
    """What a sampler visited. ``xt[k]`` is the state at step ``steps[k]`` (the last one is x_0);
    ``x0_hat[k]`` is the restorer's prediction from ``xt[k]`` (one fewer than ``xt``)."""

    steps: list[int]
    xt: torch.Tensor  # (n + 1, B, C, H, W)
    x0_hat: torch.Tensor  # (n, B, C, H, W)


class ColdDiffusion(nn.Module):
    """A restorer ``model(x_t, t) → x̂0`` paired with a degradation ``D``.

    Calling the module on clean images returns the training loss.
    """

    def __init__(self, model: nn.Module, degradation: Degradation, loss: str = "l1") -> None:
        super().__init__()
        if loss not in ("l1", "l2"):
            raise ValueError(f"loss must be 'l1' (the paper's) or 'l2'; got {loss!r}.")
        if not isinstance(degradation, Degradation):
            raise ValueError(f"degradation must be a coldlib Degradation; got {type(degradation).__name__}.")
        self.model = model
        self.degradation = degradation
        self.loss_type = loss

    @property
    def T(self) -> int:
        return self.degradation.T

    def _check_input(self, x: Any, name: str, limit: float) -> torch.Tensor:
        """Check a batch for the restorer: images (see :func:`check_images`), then the model's dtype and device.

        Nothing is converted: a float64 batch for float32 weights is an error that says to call ``.float()``.
        """
        x = check_images(x, channels=self.degradation.channels, name=name, limit=limit,
                         owner=type(self.degradation).__name__)
        weight = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        if weight is None:  # a model without weights (a stand-in) takes what it is given
            return x
        if x.device != weight.device:
            raise ValueError(f"{name} is on {x.device} but the restorer's weights are on {weight.device}; move the "
                             f"images with {name}.to({str(weight.device)!r}) (or the model with "
                             f".to({str(x.device)!r})).")
        if x.dtype != weight.dtype:
            fix = f"{name}.float()" if weight.dtype == torch.float32 else f"{name}.to({weight.dtype})"
            raise ValueError(f"{name} has dtype {x.dtype} but the restorer's weights are {weight.dtype}; call {fix} "
                             "first (nothing is converted for you).")
        return x

    def _restore(self, xt: torch.Tensor, steps: torch.Tensor, where: str | None = None) -> torch.Tensor:
        """``R(x_t, t)``, checked to be a batch shaped like ``x_t``.

        With ``where`` (samplers and :meth:`estimate_t`, not training, whose autocast changes the dtype and whose
        loss is checked by the trainer) it must also keep ``x_t``'s dtype and device and be finite: a NaN
        prediction would otherwise come back as a NaN image, or as a confident wrong step.
        """
        x0_hat = self.model(xt, steps)
        if not isinstance(x0_hat, torch.Tensor) or x0_hat.shape != xt.shape:
            got = tuple(x0_hat.shape) if isinstance(x0_hat, torch.Tensor) else type(x0_hat).__name__
            raise ValueError(f"the restorer must return x̂0 shaped like its input x_t {tuple(xt.shape)}; got {got}. "
                             "Check that the model's channels match the images'.")
        if where is None:
            return x0_hat
        if x0_hat.dtype != xt.dtype or x0_hat.device != xt.device:
            raise ValueError(f"{where}: the restorer returned {x0_hat.dtype} on {x0_hat.device} for x_t of "
                             f"{xt.dtype} on {xt.device}; nothing is converted for you. Make its forward return its "
                             "input's dtype and device (e.g. end with .to(x)), or put the model and the images in "
                             "one dtype (model.float() and x.float()).")
        bad = ~torch.isfinite(x0_hat).flatten(1).all(dim=1)
        if bool(bad.any()):
            at = sorted(set(steps[bad].tolist()))
            raise ValueError(f"{where}: the restorer returned NaN or infinite values for {int(bad.sum())} of "
                             f"{len(bad)} images (at t = {', '.join(map(str, at))}), so there is nothing to "
                             "sample from. Its weights are probably not finite (a diverged training run, a damaged "
                             "file): check all(torch.isfinite(p).all() for p in model.parameters()), then reload or "
                             "retrain it.")
        return x0_hat

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return self.loss(x0)

    def loss(self, x0: torch.Tensor, t: torch.Tensor | None = None, z: Any = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """``|R(D(x0, t), t) - x0|`` averaged, with ``t ~ U{1..T}`` per image unless given.

        ``x0`` must be clean images in [-1, 1] of the model's dtype and device (``ValueError`` otherwise).
        """
        x0 = self._check_input(x0, "x0", limit=1.0)
        if t is None:
            gen_device = generator.device if generator is not None else x0.device
            t = torch.randint(1, self.T + 1, (x0.shape[0],), generator=generator, device=gen_device)
        t = check_steps(t, x0.shape[0], self.T, x0.device)
        if z is None:
            z = self.degradation.draw_z(x0, generator)
        # The degradation runs in the images' own precision even under a bf16 autocast: its composite
        # matrices and masks would lose digits in bf16, and it costs little next to the network.
        with torch.no_grad(), torch.autocast(x0.device.type, enabled=False):
            xt = self.degradation(x0, t, z)
        pred = self._restore(xt, t)
        if self.loss_type == "l1":
            return F.l1_loss(pred.float(), x0.float())
        return F.mse_loss(pred.float(), x0.float())

    @torch.no_grad()
    def predict_x0(self, xt: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """The restorer's estimate of the clean image from ``x_t``."""
        xt = self._check_input(xt, "xt", limit=LOOSE_LIMIT)
        steps = check_steps(t, xt.shape[0], self.T, xt.device)
        return self._restore(xt, steps, "predict_x0")

    @torch.no_grad()
    def sample(self, xt: torch.Tensor, t: int | torch.Tensor | None = None, *, method: str = "improved",
               z: Any = None, reestimate_z: bool = False,
               return_trajectory: bool = False) -> torch.Tensor | Trajectory:
        """Run a sampler from ``x_t`` (degraded ``t`` steps; default ``T``) down to step 0.

        ``method`` is "direct", "naive" (Algorithm 1) or
        "improved" (Algorithm 2). ``t`` may be one step per image (a long tensor of shape (B,)), e.g. from
        :meth:`estimate_t` for images that were degraded elsewhere; an image then waits, unchanged, until
        the loop reaches its own step. Degradations with a random ingredient (a hole position, a snow
        field, the image or noise mixed in) need the ``z`` that made ``x_t``: it is held fixed along the run,
        unless ``reestimate_z`` asks the degradation to re-solve it from ``x_s`` and ``x̂0`` at every step
        (:meth:`Degradation.estimate_z`; lesson 07_hot_cold_reveal_and_animorphosis).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        D = self.degradation
        # x_t is a degraded state (noise leaves [-1, 1]): only the loose bound LOOSE_LIMIT applies. The steps
        # below degrade the restorer's x̂0, which may overshoot [-1, 1], with the unchecked D.degrade.
        xt = self._check_input(xt, "xt", limit=LOOSE_LIMIT)
        if isinstance(t, float):
            raise ValueError(f"t (the step x_t was degraded to) must be an int in 0..{self.T}; got {t!r}.")
        starts = check_steps(self.T if t is None else t, xt.shape[0], self.T, xt.device)
        if z is None and not reestimate_z and D.has_z:
            raise ValueError(f"{type(D).__name__} has a random ingredient z; pass the z that produced x_t "
                             "(for generation, the one you start from) so the sampler can hold it fixed.")
        if z is not None:
            D.check_z(z, xt)
        if reestimate_z and method == "direct":
            raise ValueError("reestimate_z applies to the iterative samplers ('naive', 'improved'), not 'direct'.")
        x, top = xt, int(starts.max())
        states, preds, steps = [x], [], [top]
        if method == "direct":  # one pass, each image at its own step
            x0_hat = self._restore(x, starts, "the direct sampler")
            x = torch.where((starts > 0)[:, None, None, None], x0_hat, x)
            states, preds, steps = [xt, x], [x0_hat], [top, 0]
        for s in range(top, 0, -1) if method != "direct" else ():
            active = (starts >= s)[:, None, None, None]
            s_now = torch.full_like(starts, s)
            x0_hat = self._restore(x, s_now, f"the {SAMPLER_NAMES[method]} sampler at step s = {s}")
            if reestimate_z:
                z = D.estimate_z(x, x0_hat, s_now)
            previous = D.degrade(x0_hat, s_now - 1, z)
            step = previous if method == "naive" else x - D.degrade(x0_hat, s_now, z) + previous
            x = torch.where(active, step, x)
            states.append(x)
            preds.append(x0_hat)
            steps.append(s - 1)
        if not return_trajectory:
            return x
        empty = x.new_zeros((0, *x.shape))
        return Trajectory(steps, torch.stack(states), torch.stack(preds) if preds else empty)

    @torch.no_grad()
    def estimate_t(self, x: torch.Tensor, z: Any = None, candidates: list[int] | None = None) -> torch.Tensor:
        """Guess how many steps degraded each image: the ``s`` whose restoration, degraded again, fits best.

        For an image degraded elsewhere (a blurry photo, not made by our forward process) we do not know
        its step. For each candidate ``s`` (default: every step 1..T), predict ``x̂0 = R(x, s)`` and measure
        ``|D(x̂0, s) - x|``; the consistent ``s`` explains the image best. Costs one network pass per
        candidate. Returns a long tensor (B,).
        """
        D = self.degradation
        x = self._check_input(x, "x", limit=LOOSE_LIMIT)  # a degraded image: the loose bound, as in sample
        options = list(range(1, self.T + 1)) if candidates is None else _candidate_steps(candidates, self.T)
        if z is None and D.has_z:
            raise ValueError(f"{type(D).__name__} has a random ingredient z; pass the z to estimate t.")
        if z is not None:
            D.check_z(z, x)
        errors = []
        for s in options:
            steps = torch.full((x.shape[0],), s, device=x.device, dtype=torch.long)
            x0_hat = self._restore(x, steps, f"estimate_t, trying step {s}")
            errors.append((D.degrade(x0_hat, steps, z) - x).abs().mean(dim=(1, 2, 3)))
        best = torch.stack(errors).argmin(dim=0)
        return torch.tensor(options, device=x.device)[best]


def _candidate_steps(candidates: Any, T: int) -> list[int]:
    """``estimate_t``'s candidates as a list of ints in 1..T: whole steps only, never rounded (2.9 is not 2)."""
    if isinstance(candidates, torch.Tensor):
        if candidates.is_floating_point() or candidates.is_complex() or candidates.dtype == torch.bool \
                or candidates.ndim != 1:
            raise ValueError(f"candidates must be integer steps in 1..{T}, e.g. [1, 5, 10] or a 1-d long tensor; got "
                             f"a {candidates.dtype} tensor of shape {tuple(candidates.shape)}.")
        candidates = candidates.tolist()
    if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
        raise ValueError(f"candidates must be a list of integer steps in 1..{T}, e.g. [1, 5, 10]; got "
                         f"{type(candidates).__name__} {candidates!r}.")
    options = list(candidates)
    bad = [c for c in options if isinstance(c, bool) or not hasattr(c, "__index__") or not 1 <= c.__index__() <= T]
    if not options or bad:
        why = "none given" if not options else f"{bad[:5]!r} {'is' if len(bad) == 1 else 'are'} not"
        raise ValueError(f"candidates must be integer steps in 1..{T} ({why}); steps are whole numbers and are "
                         "never rounded, so pass e.g. [1, 5, 10] or list(range(1, T + 1)).")
    return [c.__index__() for c in options]


def compare_samplers(diffusion: ColdDiffusion, x_T: torch.Tensor, z: Any = None) -> dict[str, Any]:
    """Direct (an image batch) and the trajectories of Algorithms 1 and 2, all from the same ``x_T`` and ``z``.

    Keys: "Direct", "Algorithm 1", "Algorithm 2".
    """
    runs: dict[str, Any] = {"Direct": diffusion.sample(x_T, method="direct", z=z)}
    for method in ("naive", "improved"):
        runs[SAMPLER_NAMES[method]] = diffusion.sample(x_T, method=method, z=z, return_trajectory=True)
    return runs

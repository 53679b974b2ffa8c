"""A property checker for degradations, above all the ones a learner writes.

The samplers rely on a few promises: ``D(x, 0)`` is ``x``; shape and dtype are kept; the same inputs (and
the same ``z``) give the same output; values stay finite; severity grows with ``t``; and an image's result
does not depend on the other images of its batch. ``check_degradation`` tests each one on a batch and says,
in words, which promise is broken and how.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Degradation, check_images, map_z

__all__ = ["PropertyResult", "check_degradation", "blob_probe"]


@dataclass
class PropertyResult:
    name: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'ok' if self.passed else 'FAIL'}] {self.name}: {self.detail}"


def _default_channels(channels: int | tuple[int, ...] | None) -> int:
    """The channel count of the default test batch: RGB (3) where the degradation accepts it."""
    if channels is None:
        return 3
    if isinstance(channels, int):
        return channels
    return 3 if 3 in channels else channels[0]


def blob_probe(n: int = 4, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` seeded image-like test pictures: a few smooth Gaussian blobs each, in [-1, 1] (continuous values).

    Like real images they have spatial structure, so a distance such as ``|D(x, t) - x|`` grows with a
    geometric change (a rotation, a shift) the way it does on data; uniform noise, which has none, is already
    as far as it gets after one small turn. Values are not on an 8-bit grid, so rounding bugs still show.
    """
    g = torch.Generator().manual_seed(seed)
    k = 5  # blobs per channel
    centres = torch.rand(n, channels, k, 2, generator=g) * 0.8 + 0.1  # in (0.1, 0.9) of the side
    widths = (torch.rand(n, channels, k, generator=g) * 0.12 + 0.08)[..., None, None]
    heights = (torch.rand(n, channels, k, generator=g) * 1.5 + 0.5)[..., None, None]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    dy = (coords[:, None] - centres[..., 0, None, None]) ** 2
    dx = (coords[None, :] - centres[..., 1, None, None]) ** 2
    blobs = (heights * torch.exp(-(dx + dy) / (2 * widths**2))).sum(dim=2)  # (n, channels, size, size)
    lo, hi = blobs.amin(dim=(-2, -1), keepdim=True), blobs.amax(dim=(-2, -1), keepdim=True)
    return (blobs - lo) / (hi - lo) * 2 - 1


def check_degradation(D: Degradation, x: torch.Tensor | None = None, *, raise_on_failure: bool = True,
                      atol: float = 1e-5) -> list[PropertyResult]:
    """Check the properties the samplers rely on; raise ``ValueError`` listing every failure.

    ``x`` defaults to :func:`blob_probe`: a seeded batch of 4 image-like pictures (smooth blobs) of D's
    channel count at 32×32 in [-1, 1]; pass real images (in [-1, 1]) to check on data. Every failure says
    which batch it was found on. ``D`` must be an instance of a :class:`Degradation` subclass (``TypeError``
    otherwise).
    """
    if not isinstance(D, Degradation):
        what = (f"the class {D.__name__} itself, not an instance; pass one, e.g. {D.__name__}(10)"
                if isinstance(D, type) and issubclass(D, Degradation) else f"a {type(D).__name__}")
        raise TypeError(f"check_degradation needs a coldlib Degradation instance; got {what}. Write your operator "
                        "as a subclass of coldlib.degradations.Degradation that calls super().__init__(T) and "
                        "implements degrade(self, x0, t, z).")
    D.check_ready()
    probe = ("your batch x" if x is not None else "the default probe (4 smooth-blob images, 32×32, "
             "coldlib.degradations.checks.blob_probe); to check on your own data pass x=images in [-1, 1]")
    if x is None:
        x = blob_probe(4, _default_channels(D.channels), 32)
    check_images(x, channels=D.channels, name="x", limit=1.0, owner=type(D).__name__)
    z = D.draw_z(x, torch.Generator().manual_seed(1))
    T = D.T
    results: list[PropertyResult] = []

    def record(name: str, passed: bool, ok: str, bad: str) -> None:
        results.append(PropertyResult(name, passed, ok if passed else f"{bad} (found on {probe})"))

    out0 = D(x, 0, z)
    err0 = float((out0 - x).abs().max()) if out0.shape == x.shape else float("inf")
    record("identity at t=0", err0 <= atol, "D(x, 0) == x",
           f"D(x, 0) differs from x by up to {err0:.3g}; return x0 unchanged when t == 0.")

    grid = sorted({0, 1, max(1, T // 4), max(1, T // 2), max(1, 3 * T // 4), T})
    outs = {s: D(x, s, z) for s in grid}
    bad_shape = [s for s, y in outs.items() if y.shape != x.shape or y.dtype != x.dtype or y.device != x.device]
    record("shape, dtype and device kept", not bad_shape, f"checked at t in {grid}",
           f"at t = {bad_shape} the output is {tuple(outs[bad_shape[0]].shape)} {outs[bad_shape[0]].dtype} "
           f"on {outs[bad_shape[0]].device}, input {tuple(x.shape)} {x.dtype} on {x.device}." if bad_shape else "")

    finite = [s for s, y in outs.items() if not bool(torch.isfinite(y).all())]
    record("finite values", not finite, "no NaN or infinity",
           f"NaN or infinite values at t = {finite}; guard divisions and logs.")

    again = D(x, T, z)
    same = outs[T].shape == again.shape and bool(torch.equal(outs[T], again))
    record("deterministic", same, "the same x, t and z give the same output",
           "two calls with the same x, t and z differ; draw randomness only in draw_z, never in degrade.")

    if not bad_shape and not finite:
        dist = [float((outs[s] - x).abs().mean()) for s in grid]
        drops = [(a, b) for (a, b), (da, db) in zip(zip(grid, grid[1:]), zip(dist, dist[1:])) if db < da - 1e-6]
        grows = not drops and dist[-1] > dist[0]
        detail = ", ".join(f"t={s}: {d:.3f}" for s, d in zip(grid, dist))
        record("severity grows with t", grows, f"mean |D(x, t) - x|: {detail}",
               f"mean |D(x, t) - x| must not fall as t grows and must be > 0 at t = T; got {detail}.")

        steps = torch.tensor([grid[i % len(grid)] for i in range(x.shape[0])])
        together = D(x, steps, z)
        alone = torch.cat([D(x[i : i + 1], int(steps[i]), map_z(z, lambda f: f[i : i + 1])) for i in range(x.shape[0])])
        gap = float((together - alone).abs().max())
        record("one step per image", gap <= atol, "a batch with mixed t equals image-by-image calls",
               f"mixed-t batch differs from image-by-image calls by {gap:.3g}; index schedules with t per image "
               "(t has shape (B,)) instead of using one t for the whole batch.")

    failures = [r for r in results if not r.passed]
    if failures and raise_on_failure:
        raise ValueError(f"{type(D).__name__} breaks {len(failures)} propert"
                         f"{'y' if len(failures) == 1 else 'ies'} the samplers rely on:\n"
                         + "\n".join(str(r) for r in failures))
    return results

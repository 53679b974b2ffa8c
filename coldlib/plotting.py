"""Static figures of images and degradations, for readers with or without a live kernel.

Every slider in the lessons is followed by one of these grids, so the lesson reads without a kernel.

Images are float batches (B, C, H, W) in [-1, 1], one or three channels. Every function returns a
matplotlib ``Figure``. The figure is closed in pyplot right away, so a notebook shows it exactly once: when
it is the value of the cell (or passed to ``display``). Scripts can call ``fig.savefig(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from coldlib.degradations.base import Degradation, check_images, map_z
from coldlib.validate import check_int

__all__ = ["to_unit", "image_grid", "show_images", "sample_grids", "showcase", "degrade_over_steps", "degradation_grid",
           "compare_degradations", "plot_schedule", "labelled_rows"]

PAD = 2  # pixels of white between the images of a grid

# Keep one call of D below this many tensor elements; larger requests are split into chunks of steps.
MAX_ELEMENTS_PER_CALL = 2**26


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to the displayable range [0, 1] as float32, clamping what falls outside.

    The one conversion for showing *and* measuring images: grids display it, and
    :mod:`coldlib.evaluation.metrics` measures SSIM, RMSE and PSNR on it, so a metric sees what the screen
    shows. Values outside [-1, 1] (noise, a restorer's overshoot) are clamped to 0 or 1; samplers never clamp,
    only this view does. The result is detached and stays on ``x``'s device.
    """
    return ((x.detach().float() + 1) / 2).clamp(0, 1)


def image_grid(x: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """A (H', W', 3) uint8 array tiling the batch ``x`` (B, C, H, W) in rows of ``nrow``, white-padded."""
    if x.ndim == 3:
        x = x[None]
    check_images(x, name="x")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels to be shown; got {x.shape[1]} (shape {tuple(x.shape)}).")
    grid = make_grid(to_unit(x).cpu(), nrow=max(1, nrow), padding=PAD, pad_value=1.0)  # grey images become RGB
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _new_figure(width: float, height: float) -> Figure:
    fig = plt.figure(figsize=(max(width, 1.5), max(height, 1.0)))
    plt.close(fig)  # shown once, as the cell's value, not again by the inline backend
    return fig


def show_images(x: torch.Tensor, nrow: int = 8, title: str | None = None, ax: Axes | None = None,
                scale: float = 0.9) -> Figure:
    """Show a batch of images (B, C, H, W) in [-1, 1] as one grid with ``nrow`` images per row.

    ``ax`` draws into an existing axes (then its figure is returned and left to
    you); ``scale`` is inches per image otherwise.
    """
    grid = image_grid(x, nrow)
    if ax is None:
        n = 1 if x.ndim == 3 else x.shape[0]
        cols, rows = min(nrow, n), -(-n // nrow)
        fig = _new_figure(scale * cols, scale * rows + (0.35 if title else 0))
        ax = fig.add_axes((0, 0, 1, 0.9 if title else 1))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax.figure


def sample_grids(samples: Mapping[str, torch.Tensor], n: int = 64, nrow: int = 8, scale: float = 3.4) -> Figure:
    """The first ``n`` images of each entry of ``samples`` (name → (B, C, H, W)) as one grid per panel, side by side.

    Lessons 06 and 07: 64 samples of every generator, enough to judge variety at a glance. Fewer are shown
    when fewer exist (FAST mode draws 32). ``scale`` is inches per panel.
    """
    if not samples:
        raise ValueError("samples is empty; pass a dict name -> images (B, C, H, W).")
    check_int(n, "n")
    fig = _new_figure(scale * len(samples), scale * 1.12)
    axes = fig.subplots(1, len(samples), squeeze=False)[0]
    for ax, (name, x) in zip(axes, samples.items()):
        show_images(x[:n], nrow=nrow, title=f"{name} ({min(n, len(x))} samples)", ax=ax)
    fig.tight_layout()
    return fig


def showcase(x: torch.Tensor, labels: torch.Tensor | None = None, k: int = 4) -> torch.Tensor:
    """Indices of ``k`` images of ``x`` that show degradations well: textured and colourful ones.

    With ``labels`` the picks cycle through the classes (for the offline photos:
    one crop per source photo), taking the best-scoring unused image of each; the order is deterministic.
    """
    x = check_images(x, name="x")
    score = x.std(dim=(2, 3)).mean(1) + 2 * (x - x.mean(1, keepdim=True)).abs().mean(dim=(1, 2, 3))
    order = score.argsort(descending=True, stable=True)
    if labels is None:
        return order[:k]
    ranked = [order[labels[order] == c] for c in torch.unique(labels)]
    picks = [group[r] for r in range(max(len(g) for g in ranked)) for group in ranked if r < len(group)]
    return torch.stack(picks[:k])


def degrade_over_steps(D: Degradation, x: torch.Tensor, steps: Sequence[int] | torch.Tensor, z: Any = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """``D(x, t, z)`` for every ``t`` in ``steps``, as a (S, B, C, H, W) tensor, with ONE ``z`` for all steps.

    The batch is repeated S times and degraded in a single call of ``D`` with a
    different ``t`` per copy (closed forms make that cheap); only huge requests are split into chunks.
    ``z`` defaults to ``D.draw_z(x, generator)``, drawn once, so every step shows the same hole, snow field
    or noise image.
    """
    x = check_images(x, name="x")
    steps = torch.as_tensor(steps, dtype=torch.long).flatten()
    if steps.numel() == 0:
        raise ValueError("steps is empty; pass at least one t in 0..T.")
    if int(steps.min()) < 0 or int(steps.max()) > D.T:
        raise ValueError(f"steps must lie in 0..T = 0..{D.T}; got {steps.tolist()}.")
    if z is None:
        z = D.draw_z(x, generator)
    b = x.shape[0]
    per_step = x[0].numel() * b
    chunk = max(1, MAX_ELEMENTS_PER_CALL // per_step)
    out = []
    for part in steps.split(chunk):
        n = part.numel()
        t = part.to(x.device).repeat_interleave(b)  # step-major: copy k of the batch gets part[k]
        z_n = map_z(z, lambda f: f.repeat(n, *[1] * (f.ndim - 1)))  # z repeated with its batch
        out.append(D(x.repeat(n, 1, 1, 1), t, z_n).view(n, *x.shape))
    return torch.cat(out)


def _labelled_grid(images: torch.Tensor, ncols: int, col_labels: Sequence[str], row_labels: Sequence[str] | None,
                   title: str | None, scale: float) -> Figure:
    """Tile ``images`` (N, C, H, W) in rows of ``ncols`` with text labels on top and (optionally) on the left."""
    n, _, h, w = images.shape
    nrows = -(-n // ncols)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"row_labels has {len(row_labels)} entries for {nrows} rows.")
    fig = _new_figure(scale * ncols + (1.0 if row_labels is not None else 0.2), scale * nrows + 0.7)
    ax = fig.add_subplot()
    ax.imshow(image_grid(images, nrow=ncols), interpolation="nearest")
    ax.set_xticks([PAD + j * (w + PAD) + w / 2 - 0.5 for j in range(ncols)])
    ax.set_xticklabels(list(col_labels), fontsize=8)
    ax.xaxis.set_ticks_position("top")
    if row_labels is not None:
        ax.set_yticks([PAD + i * (h + PAD) + h / 2 - 0.5 for i in range(nrows)])
        ax.set_yticklabels(list(row_labels), fontsize=8)
    else:
        ax.set_yticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def labelled_rows(rows: Sequence[tuple[str, torch.Tensor]], col_labels: Sequence[str], title: str,
                  scale: float = 0.8, label_width: float = 1.6) -> Figure:
    """A grid with one row per ``(label, images)`` in ``rows``; ``images`` is (S, C, H, W), one per column.

    The static companion of a sampling-step slider (states and predictions of each sampler, one row each).
    """
    fig = plt.figure(figsize=(scale * len(col_labels) + label_width, scale * len(rows) + 0.5))
    plt.close(fig)  # shown once, as the cell's value
    axes = fig.subplots(len(rows), len(col_labels), squeeze=False)
    for i, (name, images) in enumerate(rows):
        for j, img in enumerate(images):
            axes[i, j].imshow(image_grid(img, nrow=1), interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(col_labels[j], fontsize=8)
        axes[i, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def degradation_grid(D: Degradation, x: torch.Tensor, steps: Sequence[int], z: Any = None,
                     generator: torch.Generator | None = None, title: str | None = None,
                     row_labels: Sequence[str] | None = None, scale: float = 0.9) -> Figure:
    """A labelled grid: one row per image of ``x``, one column per ``t`` in ``steps``.

    ``z`` as in
    :func:`degrade_over_steps`; ``title`` defaults to ``repr(D)``; ``scale`` is inches per image.
    """
    frames = degrade_over_steps(D, x, steps, z, generator)  # (S, B, C, H, W)
    s, b = frames.shape[:2]
    labels = [f"t={int(t)}" for t in torch.as_tensor(steps).flatten()]
    return _labelled_grid(frames.transpose(0, 1).reshape(s * b, *x.shape[1:]), s, labels, row_labels,
                          repr(D) if title is None else title, scale)


def _fraction_label(f: float) -> str:
    return "t=0" if f == 0 else "t=T" if f == 1 else f"t={f:g}T"


def compare_degradations(degradations: Mapping[str, Degradation], x: torch.Tensor,
                         fractions: Sequence[float] = (0, 0.25, 0.5, 0.75, 1),
                         generator: torch.Generator | None = None, title: str | None = None,
                         scale: float = 0.9) -> Figure:
    """One image under several degradations: one row per degradation, columns at t = round(f·T).

    ``x`` is a single image (C, H, W) or (1, C, H, W); ``fractions`` are fractions of each one's own T.
    """
    x = x[None] if x.ndim == 3 else x
    x = check_images(x, name="x")
    if x.shape[0] != 1:
        raise ValueError(f"x must be ONE image, shape (1, C, H, W); got {tuple(x.shape)}.")
    if not degradations or not fractions:
        raise ValueError("pass at least one degradation and one fraction.")
    if any(not 0 <= f <= 1 for f in fractions):
        raise ValueError(f"fractions must lie in [0, 1]; got {list(fractions)}.")
    rows = [degrade_over_steps(D, x, [round(f * D.T) for f in fractions], generator=generator)[:, 0]
            for D in degradations.values()]
    return _labelled_grid(torch.cat(rows), len(fractions), [_fraction_label(f) for f in fractions],
                          list(degradations), title, scale)


def plot_schedule(D: Degradation, keys: Sequence[str] | None = None) -> Figure:
    """Plot each entry of ``D.schedule`` (or only ``keys``) against ``t = 0..T``, one panel per entry.

    Non-finite entries (snow's threshold at t = 0 is +inf: no snow) are left out.
    """
    names = list(D.schedule) if keys is None else list(keys)
    if not names:
        raise ValueError(f"{D!r} has an empty schedule; nothing to plot.")
    fig = _new_figure(3.2 * len(names), 2.6)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    t = np.arange(D.T + 1)
    for ax, name in zip(axes, names):
        values = D.schedule[name].double().cpu().numpy()
        finite = np.isfinite(values)
        ax.plot(t[finite], values[finite], marker="o" if D.T <= 30 else None, ms=3)
        ax.set_xlabel("t")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(repr(D), fontsize=9)
    fig.tight_layout()
    return fig

"""Sliders that respond at once: every frame is computed and encoded ONCE, before the slider is shown, so
moving it only swaps a picture (and a slider never waits on a computation, even while the kernel is busy
with a later cell: it shows the next frame as soon as the kernel reads the move).

A slider over t for each degradation; :func:`frame_slider` also scrubs through sampling trajectories.
:class:`UploadRestorer` restores a learner's own image (a FileUpload; a bundled example until then).

Only core ipywidgets are used (IntSlider, Play, FileUpload, Image, HTML, boxes), which work in JupyterLab and Colab.
Without a live kernel (GitHub, nbviewer, a notebook run headlessly) a slider shows nothing, so every
slider in the course is followed by a static :func:`coldlib.plotting.degradation_grid`.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import torch
from matplotlib.figure import Figure
from PIL import Image

from coldlib.degradations.base import Degradation
from coldlib.diffusion import ColdDiffusion
from coldlib.plotting import degrade_over_steps, image_grid, labelled_rows
from coldlib.upload import UploadResult, example_path, prepare_image, restore_upload, uploaded_files

__all__ = ["frames_over_t", "FrameSlider", "frame_slider", "t_slider", "schedule_titles", "sampler_frames",
           "UploadRestorer"]

DISPLAY_SIDE = 96  # images are enlarged (nearest neighbour) to at least this many pixels on screen


def frames_over_t(D: Degradation, x: torch.Tensor, z: Any = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """All states ``D(x, t, z)`` for ``t = 0..T`` as a (T + 1, B, C, H, W) tensor; frame 0 is ``x``.

    One batched call of ``D`` (``x`` repeated over t); ``z`` is drawn once with
    ``D.draw_z(x, generator)`` if not given, so all frames share the same hole, snow field or noise.
    """
    return degrade_over_steps(D, x, range(D.T + 1), z, generator)


def _png(frame: torch.Tensor, nrow: int, upscale: int) -> bytes:
    img = Image.fromarray(image_grid(frame, nrow))
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="png", compress_level=1)
    return buf.getvalue()


class FrameSlider(W.VBox):
    """A slider (with a play button) over precomputed frames; see :func:`frame_slider`.

    Attributes: ``slider`` (the IntSlider), ``images`` (one Image widget per panel), ``caption`` (the
    HTML line above the pictures), ``frames`` (dict name → (S, B, C, H, W) tensor). ``show(i)`` draws
    frame ``i``. Every PNG is encoded in the constructor (a few ms per frame), so the slider is complete when
    it appears and no move ever computes anything.
    """

    def __init__(self, frames: torch.Tensor | Mapping[str, torch.Tensor], titles: Sequence[str] | None = None,
                 description: str = "t", nrow: int | None = None, value: int = 0) -> None:
        panels = dict(frames) if isinstance(frames, Mapping) else {"": frames}
        if not panels:
            raise ValueError("frames is empty; pass a tensor (S, B, C, H, W) or a dict name -> such tensor.")
        lengths = set()
        for name, f in panels.items():
            if not isinstance(f, torch.Tensor) or f.ndim != 5:
                raise ValueError(f"frames{'[' + repr(name) + ']' if name else ''} must be a tensor shaped "
                                 f"(S, B, C, H, W); got {getattr(f, 'shape', type(f).__name__)}.")
            lengths.add(f.shape[0])
        if len(lengths) != 1:
            raise ValueError(f"all panels need the same number of frames; got {sorted(lengths)}.")
        n = lengths.pop()
        if titles is not None and len(titles) != n:
            raise ValueError(f"titles has {len(titles)} entries for {n} frames.")
        self.frames = {k: v.detach().cpu() for k, v in panels.items()}
        self.titles = list(titles) if titles is not None else [f"{description} = {i}" for i in range(n)]
        self._cache: dict[tuple[str, int], bytes] = {}
        self._nrow = {k: nrow or v.shape[1] for k, v in self.frames.items()}
        side = min(min(v.shape[-2:]) for v in self.frames.values())
        self._upscale = max(1, min(8, math.ceil(DISPLAY_SIDE / side)))

        value = min(max(int(value), 0), n - 1)
        self.slider = W.IntSlider(value=value, min=0, max=n - 1, description=description,
                                  continuous_update=True, layout=W.Layout(width="420px"))
        play = W.Play(value=value, min=0, max=n - 1, interval=max(20, 3000 // n), description="play")
        W.jslink((play, "value"), (self.slider, "value"))
        self.caption = W.HTML()
        self.images = {k: W.Image(format="png") for k in self.frames}
        boxes = [W.VBox([W.HTML(f"<b>{k}</b>"), img]) if k else img for k, img in self.images.items()]
        super().__init__([W.HBox([play, self.slider]), self.caption, W.HBox(boxes)])
        for name in self.frames:  # encode every frame now: nothing is left to compute once the slider shows
            for i in range(n):
                self.frame_png(name, i)
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.show(value)

    def frame_png(self, name: str, i: int) -> bytes:
        """The PNG of frame ``i`` of panel ``name`` (encoded once)."""
        key = (name, i)
        if key not in self._cache:
            self._cache[key] = _png(self.frames[name][i], self._nrow[name], self._upscale)
        return self._cache[key]

    def show(self, i: int) -> None:
        """Draw frame ``i``: swap the pictures and the caption (no computation on the images)."""
        i = int(i)
        for name, img in self.images.items():
            img.value = self.frame_png(name, i)
        self.caption.value = f"<code>{self.titles[i]}</code>"


def frame_slider(frames: torch.Tensor | Mapping[str, torch.Tensor], titles: Sequence[str] | None = None,
                 description: str = "t", nrow: int | None = None, value: int = 0) -> FrameSlider:
    """A slider over precomputed frames (S, B, C, H, W); a dict name → frames shows panels side by side.

    Frames are the states over t, or a sampling trajectory. ``titles`` (one per frame)
    is the caption; by default ``"<description> = i"``. ``nrow`` images per row (default: the whole batch
    in one row). The slider only swaps pictures, so it responds at once.
    """
    return FrameSlider(frames, titles=titles, description=description, nrow=nrow, value=value)


def schedule_titles(D: Degradation) -> list[str]:
    """One caption per t: ``"t = 5 / 20 · sigma = 7"`` built from ``D.schedule``."""
    out = []
    for t in range(D.T + 1):
        parts = [f"t = {t} / {D.T}"]
        for name, values in D.schedule.items():
            v = float(values[t])
            parts.append(f"{name} = {v:.4g}")
        out.append(" · ".join(parts))
    return out


def t_slider(D: Degradation, x: torch.Tensor, z: Any = None, generator: torch.Generator | None = None,
             nrow: int | None = None, value: int | None = None) -> FrameSlider:
    """Slide ``t`` from 0 to ``D.T`` over the images ``x`` degraded by ``D`` (same ``z`` at every t).

    All T + 1 states come from one batched call (:func:`frames_over_t`); the
    slider starts at ``value`` (default T // 2).
    """
    frames = frames_over_t(D, x, z, generator)
    return frame_slider(frames, titles=schedule_titles(D), description="t", nrow=nrow,
                        value=D.T // 2 if value is None else value)


def sampler_frames(runs: Mapping[str, Any], label: str, show: slice = slice(0, 4)) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Slider frames (S, B, C, H, W) and one caption per step from :func:`coldlib.diffusion.compare_samplers`.

    Panels: Direct (the same at every step), the states
    of Algorithms 1 and 2, and Algorithm 2's estimates (the final state has no estimate: it is repeated).
    """
    alg1, alg2 = runs["Algorithm 1"], runs["Algorithm 2"]
    n = alg2.xt.shape[0]
    frames = {"Direct R(x_T, T)": runs["Direct"][show][None].expand(n, -1, -1, -1, -1),
              "Alg. 1: x_s": alg1.xt[:, show], "Alg. 2: x_s": alg2.xt[:, show],
              "Alg. 2: x̂0 = R(x_s, s)": torch.cat([alg2.x0_hat, alg2.xt[-1:]])[:, show]}
    return frames, [f"{label}: step {k} of {alg2.steps[0]}, s = {s}" + (" (final)" if s == 0 else "")
                    for k, s in enumerate(alg2.steps)]


class UploadRestorer(W.VBox):
    """Upload an image; see it as the restorer reads it, its estimated step t, Direct and Algorithm 2.

    Until a file is uploaded, the bundled ``example`` (a file name of :data:`coldlib.upload.EXAMPLES`) is
    shown, so the cell runs unattended (CI, a notebook run headlessly). A refused file (not an image, too
    large, an unsupported mode) leaves the previous pictures and says in ``status`` what was wrong and
    what to do. ``size`` is the restorer's image side; ``channels`` defaults to the model's;
    ``background`` and ``invert`` go to :func:`coldlib.upload.prepare_image`.

    Attributes: ``upload`` (the FileUpload), ``status`` (HTML: name, estimated t, the notes on what was
    changed, or the error), ``images`` (three Image widgets), ``result`` (the last
    :class:`coldlib.upload.UploadResult`), ``error`` (the last refusal's message, ``None`` after a success).
    """

    def __init__(self, diffusion: ColdDiffusion, *, size: int, example: str = "digit_8px.png",
                 channels: int | None = None, background: int | None = None, invert: bool = False) -> None:
        if channels is None:
            config = getattr(diffusion.model, "config", None)
            channels = getattr(config, "channels", None) or (
                diffusion.degradation.channels if isinstance(diffusion.degradation.channels, int) else None)
            if channels is None:
                raise ValueError("the restorer does not say its channel count; pass channels=1 or channels=3.")
        self.diffusion, self.size, self.channels = diffusion, size, channels
        self.background, self.invert = background, invert
        self.result: UploadResult | None = None
        self.error: str | None = None
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="Upload an image")
        self.status = W.HTML()
        titles = ("as the restorer reads it", "Direct: R(x, t̂)", "Algorithm 2 from t̂")
        self.images = [W.Image(format="png") for _ in titles]
        panels = [W.VBox([W.HTML(f"<b>{t}</b>"), img]) for t, img in zip(titles, self.images)]
        super().__init__([self.upload, self.status, W.HBox(panels)])
        self.upload.observe(self._on_upload, names="value")
        self.restore_bytes(example, example_path(example).read_bytes(), label="bundled example")

    def _on_upload(self, change: dict) -> None:
        files = uploaded_files(change["new"])
        if files:  # an empty value: the upload was cleared, nothing to restore
            self.restore_bytes(*files[-1], label="your upload")

    def restore_bytes(self, name: str, data: bytes, label: str = "your upload") -> UploadResult | None:
        """Read, estimate t, restore and show ``data``; a refused file sets ``error`` and returns ``None``."""
        try:
            image = prepare_image(data, channels=self.channels, size=self.size, background=self.background,
                                  invert=self.invert)
        except ValueError as e:
            self.error = str(e)
            kept = f" The pictures still show {html.escape(self.result.name)}." if self.result else ""
            self.status.value = (f"<span style='color:#b00'><b>Could not use {html.escape(name)}</b>: "
                                 f"{html.escape(self.error)}</span>{kept}")
            return None
        result = restore_upload(self.diffusion, image, name)
        self.result, self.error = result, None
        upscale = max(1, min(8, math.ceil(DISPLAY_SIDE / self.size)))
        for widget, x in zip(self.images, (result.x, result.direct, result.improved)):
            widget.value = _png(x, 1, upscale)
        T = self.diffusion.T
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in image.notes) or "<li>used as it is</li>"
        self.status.value = (f"<b>{html.escape(name)}</b> ({label}; {image.mode}, {image.original_size[0]} x "
                             f"{image.original_size[1]} px): estimated step <b>t̂ = {result.t_hat}</b> of T = {T}"
                             f"<ul style='margin:0'>{notes}</ul>")
        return result

    def figure(self) -> Figure:
        """The last restoration as a static figure, for viewers without a live kernel."""
        if self.result is None:
            raise ValueError("nothing restored yet; the bundled example failed or no upload was accepted.")
        r = self.result
        return labelled_rows([(r.name, torch.cat([r.x, r.direct, r.improved]))],
                             ["as read", f"Direct R(x, {r.t_hat})", f"Alg. 2 from t̂ = {r.t_hat}"],
                             f"{r.name}: estimated step t̂ = {r.t_hat} of T = {self.diffusion.T}", scale=1.0)

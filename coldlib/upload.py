"""A learner's own image: read uploaded bytes into a restorer's batch, estimate its step t, restore it.

:func:`prepare_image` turns the bytes of an image file into a (1, C, size, size) float32 batch in [-1, 1]
and lists, in words, every change it made (grey conversion, crop, resize, ...), so nothing is lost without
being said. Files it cannot convert without guessing are refused with a ``ValueError`` that says what was
wrong and what to do:

* not an image (PIL cannot identify it), damaged, or animated (several frames);
* too large: more than ``max_bytes`` bytes or ``max_pixels`` pixels;
* a mode without one right conversion: CMYK (needs the file's colour profile), 32-bit float pixels
  (no fixed range), or transparent pixels (what lies behind them?) unless ``background`` says.

What is converted, because the conversion is unambiguous: an EXIF orientation (a phone photo taken sideways
is turned upright, as every viewer shows it), 1-bit, palette and YCbCr images (looked up or
converted exactly), 16-bit grey (scaled by 65535, no 8-bit step), an alpha channel that is fully opaque
(dropped). Then colour to grey (ITU-R 601 luma, PIL's "L") or grey to three equal channels, a centre crop
to a square, and a resize to ``size``.

:func:`restore_upload` estimates the step with :meth:`ColdDiffusion.estimate_t` and restores with Direct
and Algorithm 2 from there. The widget around both is :class:`coldlib.widgets.UploadRestorer`; lessons 03
and 04 use it with the bundled examples of ``data/examples`` (:func:`example_path`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

import coldlib

from .data import center_square
from .diffusion import ColdDiffusion, eval_mode, weights_of
from .env import data_dir

__all__ = ["MAX_BYTES", "MAX_PIXELS", "EXAMPLES", "PreparedImage", "UploadResult", "prepare_image",
           "image_from_bytes", "example_path", "uploaded_files", "restore_upload"]

MAX_BYTES = 10 * 2**20  # 10 MiB: a phone photo fits; a restorer works at 32-64 px anyway
MAX_PIXELS = 25_000_000  # 25 megapixels, far below PIL's decompression-bomb limit (89 MP)

#: The bundled "degraded elsewhere" examples in ``data/examples`` (made by its ``make_examples.py``).
EXAMPLES = {"digit_8px.png": "a held-out MNIST digit shrunk to 8 x 8 px by PIL (bicubic)",
            "digit_blurred.png": "the same digit blurred by PIL's GaussianBlur (radius 5)"}

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")
_ACCEPTED = ("1", "L", "P", "RGB", "YCbCr", "I", *_SIXTEEN_BIT, *_ALPHA)


@dataclass
class PreparedImage:
    """An uploaded image as the restorer will see it.

    ``x``: (1, C, size, size) float32 in [-1, 1]; ``notes``: each change made to the file, in words;
    ``mode`` and ``original_size`` (width, height): the file as PIL read it.
    """

    x: torch.Tensor
    notes: list[str]
    mode: str
    original_size: tuple[int, int]


def _too_large(what: str, limit: str, got: str) -> ValueError:
    return ValueError(f"the image is too large: {got} {what}, the limit is {limit}. The restorer works on small "
                      "images (32 px for MNIST), so shrink or crop it first (any image editor, or PIL's "
                      "Image.thumbnail) and upload it again.")


def _open(data: bytes, max_bytes: int, max_pixels: int) -> Image.Image:
    """PIL's image for ``data``, refused (``ValueError``) if it is not one image within the limits."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be the bytes of an image file; got {type(data).__name__}.")
    data = bytes(data)
    if not data:
        raise ValueError("the file is empty (0 bytes); upload an image file (PNG, JPEG, ...).")
    if len(data) > max_bytes:  # checked before PIL parses anything
        raise _too_large("bytes", f"{max_bytes:,} bytes", f"{len(data):,}")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only: the pixel count is known before decoding
    except UnidentifiedImageError as e:
        raise ValueError(f"this is not an image PIL can read ({len(data):,} bytes starting with {data[:8]!r}). "
                         "Upload an image file: PNG, JPEG, BMP, GIF, WebP or TIFF.") from e
    except Image.DecompressionBombError as e:  # PIL refuses these itself, before our own limit is checked
        raise _too_large("pixels", f"{max_pixels:,} pixels", f"more pixels than PIL will decode ({e})") from e
    except (OSError, SyntaxError, ValueError) as e:  # a known format with a broken header
        raise ValueError(f"the file looks like an image but its header is damaged ({e}); save it again and "
                         "upload the new file.") from e
    width, height = img.size
    if width * height > max_pixels:
        raise _too_large("pixels", f"{max_pixels:,} pixels", f"{width} x {height} = {width * height:,}")
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise ValueError(f"the file is an animation with {frames} frames; coldlib restores one still image. Save "
                         "the frame you want as a PNG and upload that.")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated or corrupt data
        raise ValueError(f"the {img.format or 'image'} file is damaged or truncated ({e}); save it again and "
                         "upload the new file.") from e
    return img


def _flatten_alpha(img: Image.Image, background: int | None, notes: list[str]) -> Image.Image:
    """Drop an alpha channel: free when fully opaque; else composite onto ``background`` or refuse."""
    img = img.convert("LA" if img.mode in ("LA", "La") else "RGBA")  # premultiplied and palette: plain alpha
    alpha = img.getchannel("A")
    base = img.mode[:-1]
    if alpha.getextrema() == (255, 255):
        notes.append("dropped its alpha channel (every pixel is fully opaque, so nothing is lost)")
        return img.convert(base)
    if background is None:
        raise ValueError(f"the image has transparent pixels ({img.mode} with an alpha channel), and what lies "
                         "behind them is a guess coldlib does not make. Pass background=0 (black, MNIST's "
                         "background) or background=255 (white), or flatten the image in an editor and upload "
                         "it again.")
    fill = int(background) if base == "L" else (int(background),) * 3
    flat = Image.new(base, img.size, fill)
    flat.paste(img.convert(base), mask=alpha)
    notes.append(f"composited its transparent pixels onto grey level {int(background)} (background={background})")
    return flat


def _to_unit(img: Image.Image, background: int | None, notes: list[str]) -> np.ndarray:
    """The image as float64 (H, W, 1 or 3) in [0, 1], converting only modes with one right conversion."""
    mode = img.mode
    if mode not in _ACCEPTED:
        why = {"CMYK": "CMYK (print colours) has no single RGB version without the file's colour profile, which "
                       "coldlib does not apply; export it as an RGB (sRGB) PNG or JPEG",
               "F": "32-bit float pixels have no fixed range to map to [-1, 1]; save it as an 8-bit PNG"}.get(
            mode, "save it as an 8-bit grey or RGB PNG or JPEG")
        raise ValueError(f"the image's mode {mode!r} is not supported: {why}. Supported modes: "
                         f"{', '.join(_ACCEPTED)}.")
    if mode in _SIXTEEN_BIT or mode == "I":
        values = np.asarray(img, dtype=np.float64)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):  # older PIL reads 16-bit PNGs as "I"
            raise ValueError(f"the image has 32-bit integer pixels (mode 'I') from {values.min():g} to "
                             f"{values.max():g}, outside the 16-bit range 0..65535, so their scale is unknown; "
                             "save it as an 8-bit or 16-bit PNG.")
        notes.append(f"read as 16-bit grey (mode {mode!r}, 0..65535 scaled to [-1, 1] without an 8-bit step)")
        return (values / 65535.0)[..., None]
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # the palette marks some entries transparent: handle it as alpha
    if img.mode in _ALPHA:
        img = _flatten_alpha(img, background, notes)
    elif img.mode in ("1", "P", "YCbCr"):
        target = "L" if img.mode == "1" else "RGB"
        how = {"1": "black and white to 0 and 255", "P": "its palette looked up", "YCbCr": "the JPEG formula"}
        notes.append(f"converted mode {img.mode!r} to {target!r} ({how[img.mode]}: nothing lost)")
        img = img.convert(target)
    values = np.asarray(img, dtype=np.float64) / 255.0
    return values[..., None] if values.ndim == 2 else values


def _match_channels(x: torch.Tensor, channels: int, notes: list[str]) -> torch.Tensor:
    """(C, H, W) to ``channels``: colour to grey with PIL's luma weights, or grey copied to three channels."""
    c = x.shape[0]
    if c == channels:
        return x
    if c == 3 and channels == 1:
        grey = bool((x[0] == x[1]).all() and (x[1] == x[2]).all())
        notes.append("converted to grey for a one-channel restorer" + (
            " (its three channels were equal: nothing lost)" if grey else
            " with ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, as PIL's 'L'): the colour is lost"))
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype)[:, None, None]
        return (x * weights).sum(dim=0, keepdim=True)
    if c == 1 and channels == 3:
        notes.append("copied its grey channel to R, G and B for a three-channel restorer")
        return x.expand(3, -1, -1).clone()
    raise ValueError(f"channels must be 1 or 3 (the restorer's channel count); got {channels}.")


def _fit(x: torch.Tensor, size: int, notes: list[str]) -> torch.Tensor:
    """(C, H, W) centre-cropped to a square and resized to ``size`` (as coldlib's datasets are made)."""
    h, w = x.shape[-2:]
    if h != w:
        x = center_square(x)
        notes.append(f"cropped to its central {min(h, w)} x {min(h, w)} square (the restorer takes square images; "
                     f"{abs(w - h)} {'columns' if w > h else 'rows'} at the sides are not used)")
    side = x.shape[-1]
    if side == size:
        return x
    if side < size and size % side == 0:
        # Integer enlargement: nearest neighbour keeps every pixel's value (blocks), bilinear would invent
        # smooth in-between values, which e.g. a pixelation restorer never saw.
        notes.append(f"enlarged from {side} to {size} px with nearest neighbour (each pixel becomes a "
                     f"{size // side} x {size // side} block)")
        return F.interpolate(x[None], size=(size, size), mode="nearest")[0]
    how = "shrunk" if side > size else "enlarged"
    notes.append(f"{how} from {side} to {size} px (bilinear{', antialiased' if side > size else ''})")
    y = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)[0]
    return y.clamp(0.0, 1.0)  # bilinear weights are convex: the clamp only removes float round-off


# What each EXIF orientation value (2-8; 1 is upright) asks a viewer to do to the stored pixels.
_ORIENTATION = {2: "mirrored left to right", 3: "turned 180°", 4: "mirrored top to bottom",
                5: "mirrored along its main diagonal", 6: "turned 90° clockwise",
                7: "mirrored along its other diagonal", 8: "turned 90° counter-clockwise"}


def _upright(img: Image.Image, notes: list[str]) -> Image.Image:
    """Apply the EXIF orientation tag (phones store photos sideways and set it), and say so."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # an EXIF block PIL cannot parse: the pixels as stored, and a note that says so
        notes.append("its EXIF data could not be read, so any orientation tag in it was not applied")
        return img
    if orientation not in _ORIENTATION:
        return img
    upright = ImageOps.exif_transpose(img)
    notes.append(f"{_ORIENTATION[orientation]} as its EXIF orientation tag ({orientation}) says, so it is upright as "
                 "photo viewers show it")
    return upright


def _check_options(channels: Any, size: Any, max_bytes: Any, max_pixels: Any, background: Any, invert: Any) -> None:
    """Refuse options of the wrong type before the file is read (True is not a size, 0.5 not a grey level)."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(channels) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3 (the restorer's channel count); got {channels!r}.")
    if not is_int(size) or size < 1:
        raise ValueError(f"size must be a positive int (the restorer's image side, e.g. 32); got {size!r}.")
    for name, value in (("max_bytes", max_bytes), ("max_pixels", max_pixels)):
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    if background is not None and (not is_int(background) or not 0 <= background <= 255):
        raise ValueError(f"background must be None or an int grey level in 0..255 (0 black, 255 white), where "
                         f"transparent pixels are composited; got {background!r}.")
    if not isinstance(invert, bool):
        raise ValueError(f"invert must be True or False; got {invert!r}.")


def prepare_image(data: bytes | bytearray | memoryview, *, channels: int, size: int, max_bytes: int = MAX_BYTES,
                  max_pixels: int = MAX_PIXELS, background: int | None = None,
                  invert: bool = False) -> PreparedImage:
    """Read an image file's bytes into a (1, ``channels``, ``size``, ``size``) batch in [-1, 1], with notes.

    See the module docstring for what is converted and what is refused (``ValueError``, saying why and
    what to do). ``background`` (a grey level 0..255) is where transparent pixels are composited; without
    it a transparent image is refused. ``invert=True`` turns dark-on-light into light-on-dark, as MNIST
    digits are (a note suggests it when the border of a grey image is light).
    """
    _check_options(channels, size, max_bytes, max_pixels, background, invert)
    notes: list[str] = []
    img = _open(data, max_bytes, max_pixels)
    mode, original = img.mode, img.size
    img = _upright(img, notes)
    unit = torch.from_numpy(_to_unit(img, background, notes)).permute(2, 0, 1).float()  # (C, H, W) in [0, 1]
    unit = _fit(_match_channels(unit, channels, notes), size, notes)
    if invert:
        unit = 1.0 - unit
        notes.append("inverted (invert=True): light became dark and dark light")
    elif channels == 1:
        border = torch.cat([unit[0, 0], unit[0, -1], unit[0, :, 0], unit[0, :, -1]])
        if float(border.mean()) > 0.5:
            notes.append("its border is light: MNIST restorers expect a light digit on a dark background; if "
                         "yours is dark on light, pass invert=True")
    return PreparedImage((unit * 2 - 1)[None], notes, mode, original)


def image_from_bytes(data: bytes | bytearray | memoryview, *, channels: int, size: int,
                     max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS, background: int | None = None,
                     invert: bool = False) -> torch.Tensor:
    """Just the batch of :func:`prepare_image`: (1, ``channels``, ``size``, ``size``) float32 in [-1, 1]."""
    return prepare_image(data, channels=channels, size=size, max_bytes=max_bytes, max_pixels=max_pixels,
                         background=background, invert=invert).x


def example_path(name: str = "digit_8px.png") -> Path:
    """The bundled example ``name`` (see :data:`EXAMPLES`) in the repository's ``data/examples``.

    Looked for next to the coldlib package (a clone or editable install), then in
    :func:`coldlib.env.data_dir` ``/examples`` (in Colab the setup cell points ``COLDLIB_DATA_DIR`` at the
    clone's ``data``, which covers a non-editable install there).
    """
    if name not in EXAMPLES:
        raise ValueError(f"no bundled example {name!r}; the examples are: {', '.join(EXAMPLES)}.")
    places = [Path(coldlib.__file__).resolve().parents[1] / "data" / "examples"]
    try:
        places.append(data_dir() / "examples")
    except FileNotFoundError:  # a COLDLIB_DATA_DIR that does not exist: the repository's copy may still be there
        pass
    for folder in places:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"the bundled example {name} is in none of {', '.join(map(str, places))}. It comes "
                            "with a clone of the course repository (data/examples); set COLDLIB_DATA_DIR to the "
                            "clone's data folder, or run data/examples/make_examples.py to make it again.")


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """(name, bytes) for each file in an ipywidgets ``FileUpload.value``, for ipywidgets 7 and 8 alike.

    ipywidgets 8: a tuple of dicts with ``name`` and ``content`` (a memoryview). ipywidgets 7: a dict
    name → {``metadata``, ``content`` (bytes)}. Empty (nothing uploaded) gives ``[]``.
    """
    if isinstance(value, Mapping):  # ipywidgets 7
        items = [(str(name), entry) for name, entry in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):  # ipywidgets 8
        items = [(str(entry.get("name", f"upload {i + 1}")) if isinstance(entry, Mapping) else "", entry)
                 for i, entry in enumerate(value)]
    else:
        raise ValueError(f"not a FileUpload value (a tuple of files in ipywidgets 8, a dict in 7); got "
                         f"{type(value).__name__}.")
    files = []
    for name, entry in items:
        if not isinstance(entry, Mapping) or "content" not in entry:
            raise ValueError(f"the uploaded file {name!r} has no 'content'; got {type(entry).__name__}.")
        files.append((name, bytes(entry["content"])))
    return files


@dataclass
class UploadResult:
    """One upload restored: its name, the prepared image, the estimated step, Direct and Algorithm 2."""

    name: str
    image: PreparedImage
    t_hat: int
    direct: torch.Tensor  # (1, C, size, size): R(x, t_hat)
    improved: torch.Tensor  # (1, C, size, size): Algorithm 2 from x at step t_hat

    @property
    def x(self) -> torch.Tensor:
        return self.image.x


def restore_upload(diffusion: ColdDiffusion, image: PreparedImage, name: str = "upload",
                   candidates: list[int] | None = None) -> UploadResult:
    """Estimate the image's step (:meth:`ColdDiffusion.estimate_t`), then restore with Direct and Algorithm 2.

    Only degradations without a random ingredient qualify (blur, pixelation, centred masks, ...): for a
    random hole or snow field, an upload does not say where it is (``ValueError``).
    """
    D = diffusion.degradation
    if D.has_z:
        raise ValueError(f"{type(D).__name__} has a random ingredient z (a hole position, a snow field, ...) that "
                         "an uploaded image does not come with; restore uploads with a restorer for a "
                         "deterministic degradation (blur, pixelation, centred masks).")
    weight = weights_of(diffusion.model)
    x = image.x if weight is None else image.x.to(device=weight.device, dtype=weight.dtype)
    with eval_mode(diffusion.model):
        t_hat = diffusion.estimate_t(x, candidates=candidates)
        direct = diffusion.sample(x, t=t_hat, method="direct")
        improved = diffusion.sample(x, t=t_hat, method="improved")
    return UploadResult(name, image, int(t_hat[0]), direct.cpu(), improved.cpu())

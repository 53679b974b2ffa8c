"""coldlib.upload and coldlib.widgets.UploadRestorer: a learner's own image, read, checked, its step estimated.

Image files are made in memory with PIL. The step-estimation tests use an oracle restorer that knows the clean
image, so they check the whole path bytes -> batch -> estimate_t (a wrong crop, scale, flip or resize of the
reader moves the estimate); the shipped-model tests check the bundled examples end to end.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from coldlib.degradations import GaussianMask, Pixelate  # noqa: E402
from coldlib.diffusion import ColdDiffusion  # noqa: E402
from coldlib.experiments import preset  # noqa: E402
from coldlib.upload import (  # noqa: E402
    EXAMPLES,
    example_path,
    image_from_bytes,
    prepare_image,
    restore_upload,
    uploaded_files,
)


def png(img: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=save.pop("format", "PNG"), **save)
    return buf.getvalue()


def grey_pixels(side: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)


def digit_like(side: int = 32) -> torch.Tensor:
    """A (1, 1, side, side) image in [-1, 1] with strokes: a ring and a bar (structure at every scale)."""
    yy, xx = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    ring = ((((yy - 12) ** 2 + (xx - 15) ** 2).sqrt() - 7).abs() < 2).float()
    bar = ((xx - 21).abs() < 1.5).float() * (yy > 12).float() * (yy < 28).float()
    return (torch.maximum(ring, bar) * 2 - 1)[None, None]


def to_png(x: torch.Tensor) -> bytes:
    """A (1, 1, H, W) image in [-1, 1] as an 8-bit grey PNG, as a learner's file would be."""
    pixels = ((x[0, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    return png(Image.fromarray(pixels))


class Oracle(nn.Module):
    """A 'restorer' that always answers the clean image: estimate_t then measures only |D(x0, s) - x|."""

    def __init__(self, clean: torch.Tensor) -> None:
        super().__init__()
        self.clean = clean

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.clean.expand_as(x).clone()


# --- reading bytes --------------------------------------------------------------------------------------------

def test_grey_png_is_read_exactly():
    pixels = grey_pixels()
    image = prepare_image(png(Image.fromarray(pixels)), channels=1, size=32)
    assert image.x.shape == (1, 1, 32, 32) and image.x.dtype == torch.float32
    assert image.mode == "L" and image.original_size == (32, 32)
    # x / 127.5 - 1 on 8-bit pixels: float32 single ops, ulp-level (measured 0; here and below: 1.2e-7 at most)
    assert torch.allclose(image.x[0, 0], torch.from_numpy(pixels).float() / 127.5 - 1, atol=1e-6)
    assert float(image.x.min()) >= -1 and float(image.x.max()) <= 1
    assert torch.equal(image_from_bytes(png(Image.fromarray(pixels)), channels=1, size=32), image.x)


def test_rgb_to_three_and_to_one_channel():
    rgb = np.stack([grey_pixels(seed=s) for s in range(3)], axis=-1)
    data = png(Image.fromarray(rgb))
    three = prepare_image(data, channels=3, size=32)
    assert torch.allclose(three.x[0], torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1, atol=1e-6)
    assert three.notes == []
    one = prepare_image(data, channels=1, size=32)
    assert one.x.shape == (1, 1, 32, 32) and any("colour is lost" in n for n in one.notes)
    grey = prepare_image(png(Image.fromarray(grey_pixels())), channels=3, size=32)
    assert grey.x.shape == (1, 3, 32, 32) and torch.equal(grey.x[0, 0], grey.x[0, 2])
    assert any("copied its grey channel" in n for n in grey.notes)


def test_crop_and_resize_are_said():
    wide = prepare_image(png(Image.fromarray(np.zeros((40, 64), np.uint8))), channels=1, size=32)
    assert wide.x.shape == (1, 1, 32, 32) and wide.original_size == (64, 40)
    assert any("cropped to its central 40 x 40" in n for n in wide.notes)
    assert any("shrunk from 40 to 32" in n for n in wide.notes)
    small = grey_pixels(8)
    blocks = prepare_image(png(Image.fromarray(small)), channels=1, size=32)
    assert any("nearest neighbour" in n for n in blocks.notes)
    expected = torch.from_numpy(small).float().repeat_interleave(4, 0).repeat_interleave(4, 1) / 127.5 - 1
    assert torch.allclose(blocks.x[0, 0], expected, atol=1e-6)  # every pixel kept, as a 4 x 4 block


def test_not_an_image_empty_and_damaged():
    with pytest.raises(ValueError, match="not an image PIL can read.*Upload an image file"):
        prepare_image(b"%PDF-1.4 this is a document", channels=1, size=32)
    with pytest.raises(ValueError, match="empty"):
        prepare_image(b"", channels=1, size=32)
    data = png(Image.fromarray(grey_pixels(64)))
    with pytest.raises(ValueError, match="damaged or truncated"):
        prepare_image(data[: len(data) // 2], channels=1, size=32)
    with pytest.raises(ValueError, match="bytes of an image file"):
        prepare_image("digit.png", channels=1, size=32)  # a path is not the file's bytes


def test_too_large_says_the_limit_and_what_to_do():
    data = png(Image.fromarray(grey_pixels(64)))
    with pytest.raises(ValueError, match=r"too large: [\d,]+ bytes, the limit is 100 bytes.*shrink or crop"):
        prepare_image(data, channels=1, size=32, max_bytes=100)
    with pytest.raises(ValueError, match=r"64 x 64 = 4,096 pixels, the limit is 1,000 pixels"):
        prepare_image(data, channels=1, size=32, max_pixels=1000)


def test_unambiguous_modes_are_converted_and_said():
    one_bit = Image.fromarray(grey_pixels() > 127)  # mode "1"
    x = prepare_image(png(one_bit), channels=1, size=32)
    assert set(x.x.unique().tolist()) <= {-1.0, 1.0} and any("'1'" in n for n in x.notes)
    palette = Image.fromarray(np.stack([grey_pixels(seed=s) for s in range(3)], -1)).convert("P")
    p = prepare_image(png(palette), channels=3, size=32)
    assert torch.allclose(p.x, prepare_image(png(palette.convert("RGB")), channels=3, size=32).x)
    opaque = Image.fromarray(grey_pixels()).convert("RGBA")
    o = prepare_image(png(opaque), channels=1, size=32)
    assert any("fully opaque" in n for n in o.notes)
    assert torch.allclose(o.x, prepare_image(png(opaque.convert("L")), channels=1, size=32).x, atol=1e-6)


def test_sixteen_bit_grey_keeps_its_precision():
    values = np.array([[0, 1, 32768, 65535]] * 4, dtype=np.uint16)
    image = Image.fromarray(values)  # mode "I;16"
    x = prepare_image(png(image), channels=1, size=4)
    assert any("16-bit" in n for n in x.notes)
    expected = torch.tensor([0, 1, 32768, 65535], dtype=torch.float64) / 65535 * 2 - 1
    assert torch.allclose(x.x[0, 0, 0].double(), expected, atol=1e-6)  # 1/65535 survives: no 8-bit step
    assert float(x.x[0, 0, 0, 1]) > -1


def test_transparency_is_refused_unless_a_background_is_given():
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:16, :, 3] = 255  # top half opaque white, bottom half fully transparent
    data = png(Image.fromarray(rgba))
    with pytest.raises(ValueError, match="transparent pixels.*background=0.*background=255"):
        prepare_image(data, channels=1, size=32)
    on_black = prepare_image(data, channels=1, size=32, background=0)
    assert float(on_black.x[0, 0, :16].min()) == 1 and float(on_black.x[0, 0, 16:].max()) == -1
    assert any("background=0" in n for n in on_black.notes)
    palette = Image.fromarray(grey_pixels()).convert("P")
    palette.info["transparency"] = 0
    with pytest.raises(ValueError, match="transparent"):
        prepare_image(png(palette, transparency=0), channels=1, size=32)


@pytest.mark.parametrize("mode,fmt,match", [("CMYK", "JPEG", "CMYK.*colour profile"),
                                            ("F", "TIFF", "float pixels have no fixed range")])
def test_ambiguous_modes_are_refused(mode, fmt, match):
    image = Image.fromarray(grey_pixels()).convert(mode)
    with pytest.raises(ValueError, match=match):
        prepare_image(png(image, format=fmt), channels=3, size=32)


def test_animation_is_refused():
    frames = [Image.fromarray(grey_pixels(seed=s)) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match="animation with 3 frames"):
        prepare_image(buf.getvalue(), channels=1, size=32)


def test_invert_and_the_light_background_hint():
    dark_on_light = np.full((32, 32), 255, np.uint8)
    dark_on_light[8:24, 14:18] = 0
    plain = prepare_image(png(Image.fromarray(dark_on_light)), channels=1, size=32)
    assert any("invert=True" in n for n in plain.notes)
    inverted = prepare_image(png(Image.fromarray(dark_on_light)), channels=1, size=32, invert=True)
    assert torch.allclose(inverted.x, -plain.x) and any("inverted" in n for n in inverted.notes)


# --- FileUpload values and the bundled examples ---------------------------------------------------------------

def test_uploaded_files_reads_ipywidgets_7_and_8():
    data = b"\x89PNG..."
    v8 = ({"name": "a.png", "type": "image/png", "size": len(data), "content": memoryview(data)},)
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png"}, "content": data}}
    assert uploaded_files(v8) == [("a.png", data)] == uploaded_files(v7)
    assert uploaded_files(()) == [] == uploaded_files({})
    with pytest.raises(ValueError, match="no 'content'"):
        uploaded_files(({"name": "a.png"},))
    with pytest.raises(ValueError, match="not a FileUpload value"):
        uploaded_files(42)


def test_bundled_examples_are_found_and_readable():
    for name in EXAMPLES:
        path = example_path(name)
        assert path.is_file() and path.stat().st_size < 10_000
        assert prepare_image(path.read_bytes(), channels=1, size=32).x.shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="no bundled example"):
        example_path("cat.png")


def test_examples_are_found_in_the_data_dir_for_a_non_editable_install(tmp_path, monkeypatch):
    """Colab pip-installs coldlib (no repository next to the package) and points COLDLIB_DATA_DIR at the clone's data."""
    import shutil

    import coldlib
    monkeypatch.setattr(coldlib, "__file__", str(tmp_path / "site-packages" / "coldlib" / "__init__.py"))
    clone_data = tmp_path / "clone" / "data"
    (clone_data / "examples").mkdir(parents=True)
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(clone_data))
    with pytest.raises(FileNotFoundError, match="COLDLIB_DATA_DIR.*make_examples.py"):
        example_path("digit_8px.png")
    shutil.copy(Path(__file__).resolve().parents[1] / "data" / "examples" / "digit_8px.png", clone_data / "examples")
    assert example_path("digit_8px.png") == clone_data / "examples" / "digit_8px.png"


# --- the estimated step ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("task,t", [("pixelate", 1), ("pixelate", 2), ("pixelate", 3),
                                    ("blur", 1), ("blur", 3), ("blur", 8)])
def test_estimated_step_recovers_a_known_step_through_a_png(task, t):
    D = Pixelate(3) if task == "pixelate" else preset("blur", "mnist")
    clean = digit_like()
    data = to_png(D(clean, t))  # degraded at a known t, then saved as an 8-bit file
    result = restore_upload(ColdDiffusion(Oracle(clean), D), prepare_image(data, channels=1, size=32))
    assert result.t_hat == t
    # and the file was read back onto D's path exactly, up to the 8-bit rounding of the PNG
    assert float((result.x - D(clean, t)).abs().max()) <= 1 / 127.5 + 1e-6
    assert result.direct.shape == result.improved.shape == (1, 1, 32, 32)


def test_random_ingredient_degradations_are_refused():
    D = GaussianMask(6, kernel_std=0.5, initial_mask=2, random_position=True)
    image = prepare_image(png(Image.fromarray(grey_pixels())), channels=1, size=32)
    with pytest.raises(ValueError, match="random ingredient z"):
        restore_upload(ColdDiffusion(Oracle(digit_like()), D), image)


def _shipped(name: str) -> ColdDiffusion:
    from coldlib.shipped import load_shipped
    try:
        return load_shipped(name).diffusion()
    except (FileNotFoundError, ValueError) as e:
        pytest.skip(f"shipped checkpoint {name} unavailable: {e}")


def test_shipped_pixelate_restorer_estimates_the_8px_example():
    """The bundled example was shrunk by PIL (bicubic, antialiased), not by coldlib: 8 px means blocks of 4, t = 2."""
    result = restore_upload(_shipped("mnist_pixelate"),
                            prepare_image(example_path("digit_8px.png").read_bytes(), channels=1, size=32))
    assert result.t_hat == 2
    # Algorithm 2 keeps the blocks' means: its output pixelated at t_hat is the input (lesson 04, Exercise 2),
    # whatever the trained weights (their output cancels), so only float32 rounding is left: measured 2.4e-7
    D = Pixelate(3)
    assert torch.allclose(D(result.improved, 2), result.x, atol=1e-4)


# --- the widget -----------------------------------------------------------------------------------------------

def test_widget_shows_the_example_without_a_person_then_an_upload_and_a_refusal():
    from coldlib.widgets import UploadRestorer
    widget = UploadRestorer(_shipped("mnist_pixelate"), size=32)
    assert widget.result is not None and widget.result.name == "digit_8px.png" and widget.error is None
    assert widget.result.t_hat == 2 and "t̂ = 2" in widget.status.value and "bundled example" in widget.status.value
    assert all(img.value[:8] == b"\x89PNG\r\n\x1a\n" for img in widget.images)
    assert isinstance(widget.figure(), Figure)

    blurred = example_path("digit_blurred.png").read_bytes()
    widget.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(blurred),
                            "content": memoryview(blurred), "last_modified": datetime.datetime.now()},)
    assert widget.result.name == "mine.png" and "your upload" in widget.status.value

    assert widget.restore_bytes("notes.txt", b"just text") is None
    assert "not an image" in widget.error and "Could not use notes.txt" in widget.status.value
    assert widget.result.name == "mine.png" and "still show mine.png" in widget.status.value

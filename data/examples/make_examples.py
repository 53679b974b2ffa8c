"""Make the bundled "degraded elsewhere" example images (run once; the PNGs are committed).

    COLDLIB_DATA_DIR=... python data/examples/make_examples.py

Both start from the same held-out MNIST digit: official test image 9992 (a 9), the 8th from the end of the
test split. It is held out under both of coldlib's MNIST protocols (the full one trains on the 60,000 training
images; the offline one trains on test images 0-7999), so no shipped restorer has seen it.

* ``digit_8px.png``: the 32 x 32 digit shrunk to 8 x 8 pixels by PIL's bicubic filter (which antialiases,
  unlike coldlib's Pixelate): a low-resolution file, for the super-resolution restorer (lesson 04).
* ``digit_blurred.png``: the 32 x 32 digit blurred by PIL's GaussianBlur with radius 5: a blurry photo, for
  the deblurring restorer (lesson 03). The radius is chosen to lie on the course's MNIST blur path (about
  its step 3; each of its steps blurs with sigma 7, so a milder PIL blur falls below step 1).

Neither is made by coldlib's own degradations: that is the point of the examples.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageFilter

from coldlib.data import load_images

HERE = Path(__file__).resolve().parent
OFFICIAL_INDEX = 9992  # 8th from the end: the same digit under both protocols (both end at official 9999)


def main() -> None:
    test = load_images("mnist", split="test")
    pixels = test.images[OFFICIAL_INDEX - 10_000, 0].numpy()  # (32, 32) uint8
    digit = Image.fromarray(pixels)  # 2-D uint8: mode "L"
    digit.resize((8, 8), Image.Resampling.BICUBIC).save(HERE / "digit_8px.png", optimize=True)
    digit.filter(ImageFilter.GaussianBlur(radius=5)).save(HERE / "digit_blurred.png", optimize=True)
    print(f"wrote digit_8px.png and digit_blurred.png in {HERE} (label {int(test.labels[OFFICIAL_INDEX - 10_000])})")


if __name__ == "__main__":
    main()

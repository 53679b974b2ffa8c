"""Degradations ``D(x0, t)``: one interface, every operator of the paper in closed form.

The paper's setting for each task and dataset (``preset("blur", "mnist")``) lives in :mod:`coldlib.experiments`,
with the paper's numbers and recipes; ``notebooks/paper_notes.md`` section (a) states the sources.
"""

from .base import Degradation, check_images, check_steps, from_config, map_z, shared_step
from .checks import PropertyResult, check_degradation
from .color import Decolorize
from .mask import GaussianMask, InpaintGeneration
from .mixing import GaussianNoise, ImageMixing, cosine_alpha_bar
from .separable import GaussianBlur, Pixelate, SeparableLinear, blur_sigmas, gaussian_kernel1d
from .snow import Snow, SnowField

__all__ = [
    "Degradation", "check_images", "check_steps", "shared_step", "map_z", "from_config", "SeparableLinear", "GaussianBlur",
    "Pixelate", "GaussianMask", "InpaintGeneration", "Snow", "SnowField", "Decolorize", "ImageMixing",
    "GaussianNoise", "blur_sigmas", "gaussian_kernel1d", "cosine_alpha_bar", "check_degradation", "PropertyResult",
]

"""Bad input is refused by class, with a message that says what was wrong and how to fix it.

Channels (each degradation declares the counts it accepts), value ranges (clean images in [-1, 1] at the
entry points that take them, a loose bound on sampler inputs), dtypes and devices against the restorer's
weights, the property checker's argument, and the random ingredient ``z``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coldlib.degradations import (
    Decolorize,
    Degradation,
    GaussianBlur,
    GaussianMask,
    GaussianNoise,
    ImageMixing,
    InpaintGeneration,
    Pixelate,
    Snow,
    SnowField,
    check_degradation,
)
from coldlib.experiments import list_presets, preset
from coldlib.diffusion import ColdDiffusion
from coldlib.unet import UNet, unet_preset

ALL = list_presets()
TO_UINT8 = r"x\.float\(\) / 127\.5 - 1"


def images(b: int = 2, c: int = 3, n: int = 32, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return (torch.rand(b, c, n, n, generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(dtype)


def make(kind: str, dataset: str) -> Degradation:
    return ImageMixing(200, pool=images(4, seed=9)) if kind == "mixing" else preset(kind, dataset)


def rgb_or_first(D: Degradation) -> int:
    c = D.channels
    return 3 if c is None else c if isinstance(c, int) else (3 if 3 in c else c[0])


class Oracle(nn.Module):
    """A restorer without weights that returns a known batch, scaled (scale > 1 overshoots [-1, 1])."""

    def __init__(self, x0: torch.Tensor, scale: float = 1.0) -> None:
        super().__init__()
        self.x0, self.scale = x0, scale

    def forward(self, xt, t):
        return self.x0 * self.scale


# ---------------------------------------------------------------- 1. channels
def test_every_builtin_declares_its_channels():
    for kind, dataset in ALL:
        D = make(kind, dataset)
        declared = [c for c in type(D).__mro__ if c is not Degradation and "channels" in vars(c)]
        assert declared, f"{type(D).__name__} does not declare the channel counts it accepts"


@pytest.mark.parametrize("c", [2, 4])
def test_snow_refuses_batches_that_are_neither_grey_nor_rgb(c):
    with pytest.raises(ValueError, match=rf"x0 must have 1 or 3 channels for Snow; got {c}"):
        Snow(10)(images(c=c), 3)


def test_snow_takes_grey_and_rgb():
    for c in (1, 3):
        x = images(c=c)
        assert Snow(10)(x, 10).shape == x.shape


def test_decolorize_needs_rgb():
    with pytest.raises(ValueError, match=r"x0 must have 3 channel\(s\) for Decolorize; got 1"):
        Decolorize(10)(images(c=1), 3)


@pytest.mark.parametrize("D", [GaussianBlur([1.0] * 3, 5), Pixelate(2), GaussianMask(5, 0.1), GaussianNoise(5),
                               preset("inpaint_generation", "mnist")])
def test_channel_agnostic_degradations_take_any_count(D):
    x = images(c=2)
    assert D(x, 2).shape == x.shape


def test_loss_and_samplers_check_channels_too():
    x = images(c=2)
    diffusion = ColdDiffusion(Oracle(x), Snow(10))
    z = SnowField(torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="1 or 3 channels for Snow"):
        diffusion.loss(x)
    with pytest.raises(ValueError, match="1 or 3 channels for Snow"):
        diffusion.sample(x, z=z)
    with pytest.raises(ValueError, match="1 or 3 channels for Snow"):
        diffusion.estimate_t(x, z=z)


def test_property_checker_uses_a_channel_count_the_degradation_accepts():
    assert all(r.passed for r in check_degradation(Snow(20)))
    with pytest.raises(ValueError, match="1 or 3 channels for Snow"):
        check_degradation(Snow(20), images(c=2))


# ---------------------------------------------------------------- 2. value ranges
@pytest.mark.parametrize("kind,dataset", ALL)
def test_degradations_refuse_images_in_0_255(kind, dataset):
    D = make(kind, dataset)
    x = torch.randint(0, 256, (2, rgb_or_first(D), 32, 32)).float()  # uint8 data converted without scaling
    x[0, 0, 0, :2] = torch.tensor([0.0, 255.0])
    expected = rf"x0 has values from 0 to 255, beyond ±10.*{TO_UINT8}.*x \* 2"
    with pytest.raises(ValueError, match=expected):
        D(x, 1)


def test_clean_range_for_training_allows_round_off_only():
    D = preset("blur", "mnist")
    diffusion = ColdDiffusion(UNet(unet_preset("tiny", 1)), D)
    x = images(c=1)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1.0005, -1.0005
    diffusion.loss(x)  # float round-off passes
    x[0, 0, 0, 0] = 1.01
    with pytest.raises(ValueError, match=r"got values from -1 to 1\.01\."):
        diffusion.loss(x)


def test_degrading_a_prediction_is_allowed():
    D = preset("blur", "mnist")
    x_hat = 1.5 * images(c=1)  # an overshooting restorer's x̂0, or a perturbed image in a lesson
    assert torch.equal(D(x_hat, 4), D.degrade(x_hat, torch.tensor([4, 4]), None))
    with pytest.raises(ValueError, match="NaN"):  # everything but the strict range is still checked
        D(x_hat * float("nan"), 4)


def test_loss_refuses_images_in_0_255():
    x = images(c=1)
    with pytest.raises(ValueError, match=rf"x0 must have values in \[-1, 1\].*{TO_UINT8}"):
        ColdDiffusion(Oracle(x), preset("blur", "mnist")).loss((x + 1) * 127.5)


def test_sampler_inputs_get_a_loose_bound():
    x = images(c=1)
    D = preset("blur", "mnist")
    diffusion = ColdDiffusion(Oracle(x), D)
    diffusion.sample(D(x, D.T) * 3, method="naive")  # outside [-1, 1] but plausible: accepted
    x255 = (x + 1) * 127.5
    x255[0, 0, 0, :2] = torch.tensor([0.0, 255.0])
    for call in (diffusion.sample, diffusion.estimate_t, lambda v: diffusion.predict_x0(v, 3)):
        with pytest.raises(ValueError, match=rf"from 0 to 255, beyond ±10.*{TO_UINT8}"):
            call(x255)


def test_noisy_states_and_overshooting_predictions_are_sampled():
    x = images(c=1)
    D = GaussianNoise(10)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    xT = D(x, D.T, z)
    assert float(xT.abs().max()) > 2  # x_T of noise is well outside [-1, 1]
    for method in ("direct", "naive", "improved"):
        out = ColdDiffusion(Oracle(x, scale=3.0), D).sample(xT, method=method, z=z)  # x̂0 overshoots to ±3
        assert torch.isfinite(out).all()
    ColdDiffusion(Oracle(x, scale=3.0), D).sample(xT, method="improved", reestimate_z=True)


def test_mixing_pool_must_be_clean_images():
    with pytest.raises(ValueError, match=r"pool must have values in \[-1, 1\]"):
        ImageMixing(10, pool=(images() + 1) * 127.5)


def test_property_checker_refuses_out_of_range_images():
    with pytest.raises(ValueError, match=r"x must have values in \[-1, 1\]"):
        check_degradation(preset("blur", "cifar10"), (images() + 1) * 127.5)


def _trainer(images_, D=None):
    from coldlib.training.trainer import TrainConfig, Trainer  # imported here: the package is heavy

    model = UNet(unet_preset("tiny", 1))
    return Trainer(ColdDiffusion(model, D or preset("blur", "mnist")), images_, TrainConfig(batch_size=2),
                   device="cpu")


def test_trainer_checks_its_images():
    u8 = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    _trainer(u8)  # uint8 in [0, 255]: accepted, converted batch by batch
    _trainer(u8.float() / 127.5 - 1)  # floats in [-1, 1]: accepted
    x255 = u8.float()  # converted without scaling
    x255[0, 0, 0, :2] = torch.tensor([0.0, 255.0])
    with pytest.raises(ValueError, match=rf"images must have values in \[-1, 1\] \(clean images\); got values from "
                                         rf"0 to 255.*{TO_UINT8}.*The Trainer also takes uint8 images"):
        _trainer(x255)
    with pytest.raises(ValueError, match=r"uint8 in \[0, 255\] or float in \[-1, 1\]; got dtype torch\.int64"):
        _trainer(u8.long())
    with pytest.raises(ValueError, match=r"images must have 3 channel\(s\) for Decolorize; got 1"):
        _trainer(u8, Decolorize(10))


# ---------------------------------------------------------------- 3. dtype and device against the weights
def test_float64_batches_are_refused_with_the_fix():
    model = UNet(unet_preset("tiny", 1))
    D = preset("blur", "mnist")
    diffusion = ColdDiffusion(model, D)
    x = images(c=1, dtype=torch.float64)
    fix = r"xt has dtype torch\.float64 but the restorer's weights are torch\.float32; call xt\.float\(\)"
    for method in ("direct", "improved"):
        with pytest.raises(ValueError, match=fix):
            diffusion.sample(x, method=method)
    with pytest.raises(ValueError, match=fix):
        diffusion.predict_x0(x, 3)
    with pytest.raises(ValueError, match=r"x has dtype torch\.float64 .* call x\.float\(\)"):
        diffusion.estimate_t(x, candidates=[1])
    with pytest.raises(ValueError, match=r"x0 has dtype torch\.float64 .* call x0\.float\(\)"):
        diffusion.loss(x)
    assert diffusion.sample(x.float(), method="direct").dtype == torch.float32


def test_images_on_another_device_than_the_weights():
    model = UNet(unet_preset("tiny", 1)).to("meta")
    with pytest.raises(ValueError, match=r"xt is on cpu but the restorer's weights are on meta; move the images"):
        ColdDiffusion(model, preset("blur", "mnist")).sample(images(c=1), method="direct")


# ---------------------------------------------------------------- 4. the property checker's argument
class Fade(Degradation):
    def degrade(self, x0, t, z):
        f = (t.to(x0.dtype) / self.T)[:, None, None, None]
        return (1 - f) * x0 - f


class NoInit(Fade):
    def __init__(self, T):  # forgets super().__init__(T)
        self.steps = T


@pytest.mark.parametrize("thing,match", [
    (lambda x, t: x, "got a function"),
    ("blur", "got a str"),
    (Fade, r"got the class Fade itself, not an instance; pass one, e.g\. Fade\(10\)"),
])
def test_property_checker_says_what_it_needs(thing, match):
    with pytest.raises(TypeError, match=rf"needs a coldlib Degradation instance; {match}.*subclass of "
                                        r"coldlib\.degradations\.Degradation.*implements degrade\(self, x0, t, z\)"):
        check_degradation(thing)


def test_a_degradation_that_skipped_init_is_named():
    with pytest.raises(ValueError, match=r"NoInit has no valid T .*call super\(\)\.__init__\(T\)"):
        check_degradation(NoInit(10))
    with pytest.raises(ValueError, match=r"super\(\)\.__init__\(T\)"):
        NoInit(10)(images(), 1)


# ---------------------------------------------------------------- 5. z, restorer output, degrade output
def test_deterministic_degradations_refuse_a_z():
    with pytest.raises(ValueError, match="GaussianBlur has no random ingredient z.*pass z=None"):
        preset("blur", "cifar10")(images(), 3, torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="Fade has no random ingredient z"):
        Fade(10)(images(), 3, torch.zeros(2))


def test_snow_z_fields_are_checked_and_follow_x0():
    D, x = Snow(10), images()
    z = D.draw_z(x, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"vertical: bool \(B,\).*got SnowField\(field torch\.float32 "
                                         r"\(2, 1, 32, 32\), vertical torch\.float32 \(2,\)\)"):
        D(x, 3, SnowField(z.field, z.vertical.float()))
    with pytest.raises(ValueError, match="got SnowField"):
        D(x, 3, SnowField(z.field.numpy(), z.vertical))
    with pytest.raises(ValueError, match="must be finite"):
        D(x, 3, SnowField(z.field * float("inf"), z.vertical))
    out = D(x.double(), 10, z)  # a float32 field on float64 images: computed in the images' dtype
    assert out.dtype == torch.float64
    assert torch.allclose(out.float(), D(x, 10, z), atol=1e-5)  # float32's rounding of closed-form ops (measured 2e-7)


def test_estimate_t_checks_z():
    x = images(c=1)
    D = GaussianMask(10, kernel_std=0.1)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        ColdDiffusion(Oracle(x), D).estimate_t(D(x, 3, torch.zeros(2, 2, dtype=torch.long)), z=torch.zeros(3, 2))


def test_a_restorer_of_the_wrong_shape_is_named():
    x = images(c=1)
    diffusion = ColdDiffusion(Oracle(images(c=3)), preset("blur", "mnist"))
    for call in (lambda: diffusion.sample(x), lambda: diffusion.loss(x), lambda: diffusion.predict_x0(x, 2)):
        with pytest.raises(ValueError, match=r"restorer must return x̂0 shaped like its input x_t \(2, 1, 32, 32\); "
                                             r"got \(2, 3, 32, 32\)"):
            call()


def test_degrade_must_return_a_tensor():
    class Forgets(Fade):
        def degrade(self, x0, t, z):
            0.5 * x0  # computes, but returns nothing

    with pytest.raises(TypeError, match="Forgets.degrade returned a NoneType; it must return"):
        Forgets(10)(images(), 3)


def test_images_without_pixels_are_refused():
    with pytest.raises(ValueError, match="no pixels"):
        preset("blur", "cifar10")(torch.zeros(2, 3, 0, 32), 1)

"""Every closed-form degradation equals the authors'-style iterated form, and keeps the interface's promises."""

from __future__ import annotations

import json

import pytest
import torch

from coldlib.degradations import (
    Decolorize,
    Degradation,
    GaussianBlur,
    GaussianMask,
    GaussianNoise,
    ImageMixing,
    Pixelate,
    SeparableLinear,
    Snow,
    from_config,
    shared_step,
)
from coldlib.experiments import list_presets, preset

from . import reference_degradations as ref

# A degradation against the paper's iterated operations (up to T float32 convolutions or blends in a row, whose
# rounding accumulates): measured 9.5e-7 at most, so TOL leaves 100x for other sum orders on other CPUs. The atol=1e-6
# comparisons below are closed-form (one operator against the same result by another path, values in [-1, 1]): a few
# float32 ulps (6e-8 at 1), measured 6e-8 at most.
TOL = 1e-4


def images(b: int = 4, c: int = 3, h: int = 32, w: int = 32, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, c, h, w, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)


def spread_steps(T: int, b: int) -> list[int]:
    """b steps spread over 0..T, always including 0, 1 and T (when b allows)."""
    return sorted({0, 1, T, *torch.linspace(0, T, b).round().long().tolist()})[:b] if b >= 3 else [0, T][:b]


def steps_for(T: int) -> list[int]:
    return sorted({0, 1, 2, T // 3, T // 2, T - 1, T})


def make(kind: str, dataset: str) -> Degradation:
    if kind == "mixing":
        return ImageMixing(200, pool=images(6, seed=99))
    return preset(kind, dataset)


def channels_for(D: Degradation) -> int:
    """RGB where the degradation takes it (``channels`` is None, an int, or a tuple of accepted counts)."""
    if D.channels is None or isinstance(D.channels, int):
        return D.channels or 3
    return 3 if 3 in D.channels else D.channels[0]


# ---------------------------------------------------------------- closed form == iterated reference
@pytest.mark.parametrize("kind,dataset", [k for k in list_presets() if k[0] in ("blur", "blur_generation")])
def test_blur_equals_iterated_convolutions(kind, dataset):
    D = preset(kind, dataset)
    t = steps_for(D.T)
    x = images(len(t))
    got = D(x, torch.tensor(t))
    want = ref.iterated_blur(x, t, D.sigmas, D.kernel_size, D.padding, D.to_mean_at_T)
    assert (got - want).abs().max() < TOL


@pytest.mark.parametrize("padding", ["circular", "reflect"])
def test_blur_non_square_images(padding):
    D = GaussianBlur([1.0, 2.0, 3.0], kernel_size=7, padding=padding)
    x = images(3, h=20, w=36)
    t = [0, 2, 3]
    assert (D(x, torch.tensor(t)) - ref.iterated_blur(x, t, D.sigmas, 7, padding)).abs().max() < TOL


def test_blur_to_mean_endpoint_is_the_channel_mean():
    D = preset("blur_generation", "celeba")
    x = images(2)
    y = D(x, D.T)
    assert torch.allclose(y, x.mean(dim=(2, 3), keepdim=True).expand_as(x), atol=1e-6)


def test_circular_blur_preserves_channel_means():
    D = preset("blur", "mnist")
    x = images(3)
    y = D(x, torch.tensor([1, 10, 20]))
    assert torch.allclose(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5)


@pytest.mark.parametrize("T", [3, 4])
def test_pixelate_equals_iterated_downsampling(T):
    D = Pixelate(T)
    t = list(range(T + 1))
    x = images(len(t))
    assert (D(x, torch.tensor(t)) - ref.iterated_pixelate(x, t)).abs().max() < TOL


def test_pixelate_is_block_average():
    x = images(1)
    y = Pixelate(3)(x, 3)
    blocks = torch.nn.functional.avg_pool2d(x, 8)
    assert torch.allclose(y, blocks.repeat_interleave(8, -1).repeat_interleave(8, -2), atol=1e-6)


@pytest.mark.parametrize("kind,dataset", [k for k in list_presets() if k[0] == "inpaint"])
def test_mask_equals_iterated_products(kind, dataset):
    D = preset(kind, dataset)
    t = steps_for(D.T)
    x = images(len(t))
    z = D.draw_z(x, torch.Generator().manual_seed(1))
    got = D(x, torch.tensor(t), z)
    want = ref.iterated_mask(x, t, D.sigmas, z)
    assert (got - want).abs().max() < TOL


@pytest.mark.parametrize("size", [27, 28])
def test_centred_mask_odd_and_even_sizes(size):
    D = GaussianMask(30, kernel_std=0.2, initial_mask=1, random_position=False)
    t = steps_for(D.T)
    x = images(len(t), h=size, w=size)
    assert (D(x, torch.tensor(t)) - ref.iterated_mask(x, t, D.sigmas, None)).abs().max() < TOL


def test_decolor_equals_iterated_1x1_convolutions():
    D = Decolorize(20)
    t = steps_for(20)
    x = images(len(t))
    assert (D(x, torch.tensor(t)) - ref.iterated_decolor(x, t, 20)).abs().max() < TOL
    assert torch.allclose(D(x, 20), x.mean(1, keepdim=True).expand_as(x), atol=1e-6)


@pytest.mark.parametrize("D", [ImageMixing(200), GaussianNoise(200), GaussianNoise(7)], ids=repr)
def test_mixing_equals_authors_cosine_schedule(D):
    t = steps_for(D.T)
    x = images(len(t))
    z = images(len(t), seed=5)
    assert (D(x, torch.tensor(t), z) - ref.reference_mixing(x, t, z, D.T)).abs().max() < TOL


@pytest.mark.parametrize("kind,dataset", [k for k in list_presets() if k[0] == "snow"])
def test_snow_equals_per_image_reference(kind, dataset):
    D = preset(kind, dataset)
    t = steps_for(D.T)
    x = images(len(t))
    z = D.draw_z(x, torch.Generator().manual_seed(3))
    z = z._replace(vertical=torch.tensor([i % 2 == 0 for i in range(len(t))]))  # both directions
    want = ref.reference_snow(x, t, z.field, z.vertical, D.schedule["threshold"][1:].tolist(),
                              D.schedule["motion_sigma"][1:].tolist())
    assert (D(x, torch.tensor(t), z) - want).abs().max() < TOL


# ---------------------------------------------------------------- properties of every preset
ALL = list_presets()


@pytest.mark.parametrize("kind,dataset", ALL)
def test_identity_at_t0(kind, dataset):
    D = make(kind, dataset)
    x = images(3, c=channels_for(D))
    assert torch.equal(D(x, 0), x)


@pytest.mark.parametrize("kind,dataset", ALL)
def test_severity_grows_with_t(kind, dataset):
    D = make(kind, dataset)
    x = images(8, c=channels_for(D), seed=11)
    z = D.draw_z(x, torch.Generator().manual_seed(2))
    grid = sorted({0, D.T // 4, D.T // 2, 3 * D.T // 4, D.T})
    dist = [float((D(x, s, z) - x).abs().mean()) for s in grid]
    assert dist[0] == 0 and dist[-1] > 0.05
    assert all(b >= a - 1e-6 for a, b in zip(dist, dist[1:])), dist  # monotone up to a float32 mean's rounding


@pytest.mark.parametrize("kind,dataset", ALL)
def test_per_image_steps_match_separate_calls(kind, dataset):
    D = make(kind, dataset)
    t = spread_steps(D.T, 4)
    x = images(len(t), c=channels_for(D))
    z = D.draw_z(x, torch.Generator().manual_seed(4))
    together = D(x, torch.tensor(t), z)
    for i, s in enumerate(t):
        zi = None if z is None else (z[i : i + 1] if isinstance(z, torch.Tensor) else type(z)(*(f[i : i + 1] for f in z)))
        assert torch.allclose(together[i : i + 1], D(x[i : i + 1], s, zi), atol=1e-6)


@pytest.mark.parametrize("kind,dataset", ALL)
def test_cpu_determinism_and_seeded_z(kind, dataset):
    D = make(kind, dataset)
    x = images(3, c=channels_for(D))
    z1 = D.draw_z(x, torch.Generator().manual_seed(7))
    z2 = D.draw_z(x, torch.Generator().manual_seed(7))
    t = torch.tensor([1, D.T // 2, D.T])
    assert torch.equal(D(x, t, z1), D(x, t, z2))


@pytest.mark.parametrize("kind,dataset", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_shape_dtype_device_kept(kind, dataset, dtype):
    D = make(kind, dataset)
    if kind == "mixing":
        D = ImageMixing(200, pool=images(6, seed=99, dtype=dtype))
    x = images(2, c=channels_for(D), dtype=dtype)
    y = D(x, torch.tensor([1, D.T]))
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_learner_degradation_uses_the_same_interface():
    class FadeToBlack(Degradation):
        def degrade(self, x0, t, z):
            return x0 * (1 - t / self.T)[:, None, None, None] - t[:, None, None, None] / self.T

    D = FadeToBlack(10)
    x = images(2)
    assert torch.equal(D(x, 0), x)
    assert torch.allclose(D(x, 10), -torch.ones_like(x))


# ---------------------------------------------------------------- bad input is refused, never clamped
@pytest.mark.parametrize(
    "x,t,match",
    [
        (images(2), torch.tensor([0, 21]), r"0\.\.20"),
        (images(2), torch.tensor([-1, 3]), r"0\.\.20"),
        (images(2), torch.tensor([1, 2, 3]), "shape"),
        (images(2), torch.tensor([[1, 2]]), "shape"),
        (images(2), torch.tensor([1.0, 2.0]), "integer"),
        (images(2), 2.0, "int"),
        (images(2), True, "bool"),
        (images(2)[0], 3, "4 dimensions"),
        ((images(2) * 127).to(torch.uint8), 3, "floating-point"),
        (images(2).masked_fill(torch.rand(2, 3, 32, 32) > 0.99, float("nan")), 3, "NaN"),
        (images(2).masked_fill(torch.rand(2, 3, 32, 32) > 0.99, float("inf")), 3, "infinite"),
        ([[1.0]], 3, "torch.Tensor"),
        (images(0), 0, "empty"),
    ],
)
def test_bad_input_raises_value_error(x, t, match):
    with pytest.raises(ValueError, match=match):
        preset("blur", "mnist")(x, t)


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match="3 channel"):
        Decolorize(20)(images(2, c=1), 3)


def test_pixelate_needs_divisible_size():
    with pytest.raises(ValueError, match="divisible by 2\\^T"):
        Pixelate(3)(images(1, h=28, w=28), 1)


def test_mask_offsets_are_checked():
    D = GaussianMask(10, kernel_std=0.1)
    x = images(2)
    with pytest.raises(ValueError, match="shape"):
        D(x, 3, torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="0..32"):
        D(x, 3, torch.full((2, 2), 40))
    with pytest.raises(ValueError, match="no z"):
        GaussianMask(10, kernel_std=0.1, random_position=False)(x, 3, torch.zeros(2, 2, dtype=torch.long))


def test_mixing_without_images_says_what_to_pass():
    with pytest.raises(ValueError, match="pool"):
        ImageMixing(10)(images(2), 3)
    with pytest.raises(ValueError, match="same shape"):
        ImageMixing(10)(images(2), 3, images(3))


def test_snow_z_is_checked():
    with pytest.raises(ValueError, match="SnowField"):
        Snow(10)(images(2), 3, images(2))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_T_raises(bad):
    with pytest.raises(ValueError, match="T must be a positive int"):
        Pixelate(bad)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match="blur/mnist"):
        preset("blur", "imagenet")


@pytest.mark.parametrize("kind,dataset", ALL)
def test_config_round_trip(kind, dataset):
    from coldlib.degradations import from_config

    D = make(kind, dataset)
    D2 = from_config(D.config())
    x = images(2, c=channels_for(D))
    z = D.draw_z(x, torch.Generator().manual_seed(0))
    t = torch.tensor([1, D.T])
    assert type(D2) is type(D) and torch.equal(D(x, t, z), D2(x, t, z))


def test_every_subclass_is_rebuilt_from_its_config_without_a_list_of_types():
    class FadeToFloor(Degradation):  # a learner's degradation: config() returns its constructor's arguments
        def __init__(self, T: int, floor: float = 0.0) -> None:
            super().__init__(T)
            self.floor = floor

        def degrade(self, x0, t, z):
            a = (1 - t / self.T).to(x0.dtype)[:, None, None, None]
            return a * x0 + (1 - a) * self.floor

        def config(self):
            return {"type": "FadeToFloor", "T": self.T, "floor": self.floor}

    rebuilt = from_config(FadeToFloor(7, floor=-1.0).config())
    assert type(rebuilt) is FadeToFloor and rebuilt.T == 7 and rebuilt.floor == -1.0
    for key in list_presets():  # and the built-ins, Snow's tuples included
        assert from_config(json.loads(json.dumps(preset(*key).config()))).config() == preset(*key).config()

    class GaussianBlur(FadeToFloor):  # another class may not take a built-in's name
        pass

    assert type(from_config(preset("blur", "mnist").config())).__module__ == "coldlib.degradations.separable"
    with pytest.raises(ValueError, match="not a degradation config"):
        from_config({"type": "Nothing"})


@pytest.mark.parametrize("key", list_presets())
def test_has_z_says_without_drawing_whether_draw_z_gives_one(key):
    D = preset(*key)
    if key[0] == "mixing":
        D = ImageMixing(D.T, pool=torch.zeros(3, channels_for(D), 8, 8))
    x = torch.zeros(2, channels_for(D), 8, 8)
    state = torch.random.get_rng_state()
    answer = D.has_z
    assert torch.equal(torch.random.get_rng_state(), state)  # no random number was drawn to answer
    assert answer == (D.draw_z(x) is not None)


@pytest.mark.parametrize("key", list_presets())
def test_generation_starts_only_where_x_T_forgets_x0(key):
    D = preset(*key)
    if not D.generates:
        with pytest.raises(ValueError, match="does not end in a state that can be sampled without x0|other dataset"):
            D.generation_start(2, 8, channels=channels_for(D))
        return
    prior = None
    if isinstance(D, GaussianBlur):
        from coldlib.generation import fit_channel_mean_prior

        prior = fit_channel_mean_prior(torch.rand(16, channels_for(D), 8, 8) * 2 - 1)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x_T, z = D.generation_start(3, 8, channels=channels_for(D), prior=prior, generator=g())
    again, _ = D.generation_start(3, 8, channels=channels_for(D), prior=prior, generator=g())
    assert x_T.shape == (3, channels_for(D), 8, 8) and torch.equal(x_T, again)
    assert (z is None) == (not D.has_z)


@pytest.mark.parametrize("T, side", [(3, 32), (4, 64)])
def test_pixelate_shared_step_pooling_equals_the_matrices(T, side):
    D = Pixelate(T)
    x = torch.rand(4, 3, side, side, generator=torch.Generator().manual_seed(T)) * 2 - 1
    for t in range(T + 1):  # the whole batch at one step: the average-pool path
        by_matrices = SeparableLinear.degrade(D, x, torch.full((4,), t), None)
        assert torch.allclose(D(x, t), by_matrices, atol=1e-6), t
    mixed = torch.tensor([0, 1, T, 2])  # a step per image: still exact
    assert torch.allclose(D(x, mixed), torch.stack([D(x[i : i + 1], int(s))[0] for i, s in enumerate(mixed)]),
                          atol=1e-6)
    assert D(x, 0) is not x and torch.equal(D(x, 0), x)


@pytest.mark.parametrize("t, expected", [
    (torch.tensor([3, 3, 3, 3]), 3),  # the whole batch at one step
    (torch.tensor([3, 3, 4, 3]), None),  # steps differ
    (torch.tensor([0, 5]), None),
    (torch.tensor([7]), 7),  # a single image
    (torch.tensor(2), 2),  # a scalar step
    (torch.full((5,), 9, dtype=torch.int64), 9),  # int64, as check_steps returns
    (torch.full((5,), 9, dtype=torch.int32), 9),
    (torch.zeros(0, dtype=torch.long), None),  # an empty batch shares no step
])
def test_shared_step(t, expected):
    step = shared_step(t)
    assert step == expected
    assert step is None or type(step) is int



def test_centred_mask_shared_step_path_equals_the_per_image_masks():
    D = GaussianMask(10, kernel_std=0.2, random_position=False)
    x = images(3, 3, 32, 32, seed=5)
    for t in (0, 1, D.T):  # one step for the batch: one broadcast mask, the same as a mask per image
        steps = torch.full((3,), t)
        assert torch.allclose(D(x, t), D.masks(x, steps, None)[:, None] * x, atol=1e-6), t

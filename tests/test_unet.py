"""coldlib.unet: the restorer R(x_t, t), its config and its size presets.

Fast: tiny and small models on 8-16 px images; the large presets are only counted (built on the meta device).
"""

from __future__ import annotations

import functools
import json
import re

import pytest
import torch

from coldlib.unet import UNET_PRESETS, UNet, UNetConfig, timestep_embedding, unet_preset, unet_preset_name


def _model(name: str = "tiny", channels: int = 1, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(unet_preset(name, channels)).eval()


@pytest.mark.parametrize("name", ["tiny", "small"])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_matches_input(name, channels):
    model = _model(name, channels)
    x = torch.randn(3, channels, 16, 16)
    t = torch.tensor([1, 7, 13])  # odd steps, one per image
    with torch.no_grad():
        y = model(x, t)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("t", [0, 1, 3, 49, 999])
def test_any_step_gives_a_finite_image_of_the_same_shape(t):
    model = _model("small", 3)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y = model(x, torch.full((2,), t))
    assert y.shape == (2, 3, 8, 8) and torch.isfinite(y).all()


def test_non_square_images_whose_sides_divide():
    model = _model("small", 1)  # 3 levels: sides divisible by 4
    with torch.no_grad():
        y = model(torch.randn(2, 1, 8, 20), torch.tensor([2, 5]))
    assert y.shape == (2, 1, 8, 20)


def test_the_step_changes_the_output():
    model = _model("tiny", 1)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        a, b, a_again = model(x, torch.tensor([1])), model(x, torch.tensor([3])), model(x, torch.tensor([1]))
    assert torch.equal(a, a_again)
    assert (a - b).abs().max() > 1e-4


def test_float_and_int_steps_agree():
    model = _model("tiny", 3)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x, torch.tensor([5, 11])), model(x, torch.tensor([5.0, 11.0])))


def test_images_in_a_batch_do_not_mix():
    model = _model("small", 3)  # GroupNorm and attention work per image, so a batch is a stack of single calls
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([2, 9, 4])
    with torch.no_grad():
        together = model(x, t)
        alone = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(3)])
    # A batch of 1 runs other float32 kernels than a batch of 3 (other sum orders, by CPU and vector width): measured
    # 1.1e-6 on outputs of up to 0.8, so 1e-4 (1e-5 left a margin of 9); images mixed up (x paired with another
    # image's t) differ by 0.34.
    assert torch.allclose(together, alone, atol=1e-4)


def test_every_parameter_gets_a_gradient():
    model = _model("small", 1).train()
    model(torch.randn(2, 1, 8, 8), torch.tensor([1, 6])).abs().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("shape,match", [
    ((2, 3, 16, 16), r"expects \(B, 1, H, W\)"),   # wrong channel count
    ((1, 16, 16), r"expects \(B, 1, H, W\)"),      # no batch dimension
    ((2, 1, 15, 16), "divisible by 2"),            # tiny has 2 levels
    ((2, 1, 16, 9), "divisible by 2"),
])
def test_bad_inputs_are_explained(shape, match):
    model = _model("tiny", 1)
    with pytest.raises(ValueError, match=match):
        model(torch.randn(*shape), torch.zeros(shape[0], dtype=torch.long))


def test_divisibility_follows_the_number_of_levels():
    model = _model("small", 1)
    assert model.levels == len(unet_preset("small", 1).mults) == 3
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 1, 10, 12), torch.zeros(1, dtype=torch.long))


@functools.lru_cache(maxsize=None)
def _count(name: str, channels: int) -> int:
    """Parameters of a preset, built on the meta device (shapes only: the 34M-parameter preset costs no memory)."""
    with torch.device("meta"):
        return UNet(unet_preset(name, channels)).num_parameters()


def _docstring_sizes() -> dict[str, float]:
    """The parameter counts unet_preset's docstring states, e.g. {'tiny': 0.16, ...} (millions)."""
    found = dict(re.findall(r"(\w+) \(([\d.]+)M", unet_preset.__doc__))
    return {name: float(value) for name, value in found.items()}


def test_docstring_names_every_preset():
    assert sorted(_docstring_sizes()) == sorted(UNET_PRESETS)


@pytest.mark.parametrize("name", sorted(UNET_PRESETS))
def test_preset_parameter_counts_match_the_docstring(name):
    stated = _docstring_sizes()[name]
    decimals = len(str(stated).split(".")[1])  # 0.16 -> 2 decimals, 8.6 -> 1
    n = _count(name, 1)
    assert round(n / 1e6, decimals) == stated, f"{name}: {n:,} parameters, docstring says {stated}M"


def test_colour_costs_only_the_stem_and_output_convolutions():
    for name in UNET_PRESETS:
        base = unet_preset(name, 1).base
        # stem: 2 more input channels x base x 3x3; output conv: 2 more output channels x (base x 3x3 + bias)
        assert _count(name, 3) - _count(name, 1) == 2 * base * 9 + 2 * (base * 9 + 1), name


def test_unet_preset_errors():
    with pytest.raises(ValueError, match="unknown UNet preset 'huge'") as info:
        unet_preset("huge", 1)
    assert all(name in str(info.value) for name in UNET_PRESETS)
    for channels in (0, 2, 4):
        with pytest.raises(ValueError, match="channels must be 1"):
            unet_preset("tiny", channels)


def test_presets_grow_and_only_paper_has_dropout():
    sizes = [_count(name, 1) for name in ("tiny", "small", "base", "paper")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    assert [unet_preset(n, 1).dropout for n in ("tiny", "small", "base", "paper")] == [0.0, 0.0, 0.0, 0.1]


@pytest.mark.parametrize("name", sorted(UNET_PRESETS))
@pytest.mark.parametrize("channels", [1, 3])
def test_config_round_trips_through_json(name, channels):
    config = unet_preset(name, channels)
    restored = UNetConfig.from_dict(json.loads(json.dumps(config.to_dict())))  # mults come back as a list
    assert restored == config and isinstance(restored.mults, tuple)
    assert restored.to_dict() == config.to_dict()



@pytest.mark.parametrize("channels", [1, 3])
def test_unet_preset_name_recognises_every_preset_from_its_stored_json(channels):
    for name in UNET_PRESETS:
        stored = json.loads(json.dumps(unet_preset(name, channels).to_dict()))  # as a checkpoint sidecar holds it
        assert unet_preset_name(stored) == name


@pytest.mark.parametrize("change", [{"base": 24}, {"mults": [1, 2, 2, 2]}, {"attention": True}, {"dropout": 0.1},
                                   {"channels": 2}, {"channels": None}])
def test_unet_preset_name_is_none_for_other_configs(change):
    assert unet_preset_name({**unet_preset("tiny", 1).to_dict(), **change}) is None

def test_config_from_dict_does_not_change_its_input_and_rejects_unknown_keys():
    d = {**UNetConfig().to_dict(), "mults": [1, 2]}
    assert UNetConfig.from_dict(d).mults == (1, 2)
    assert d["mults"] == [1, 2]
    with pytest.raises(TypeError):
        UNetConfig.from_dict({**d, "width": 3})


def test_weights_load_into_a_model_rebuilt_from_the_stored_config():
    model = _model("small", 3, seed=1)
    rebuilt = UNet(UNetConfig.from_dict(json.loads(json.dumps(model.config.to_dict())))).eval()
    rebuilt.load_state_dict(model.state_dict())  # strict: same modules, same shapes
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 8])
    with torch.no_grad():
        assert torch.equal(model(x, t), rebuilt(x, t))


def test_config_is_frozen_and_the_model_keeps_it():
    config = unet_preset("tiny", 1)
    with pytest.raises(AttributeError):
        config.base = 8
    assert UNet(config).config is config


def test_timestep_embedding():
    t = torch.tensor([0, 1, 7, 1000])
    emb = timestep_embedding(t, 16)
    assert emb.shape == (4, 16) and emb.dtype == torch.float32
    assert torch.equal(emb[0], torch.cat([torch.zeros(8), torch.ones(8)]))  # sin 0 = 0, cos 0 = 1
    assert emb.abs().max() <= 1.0
    assert torch.allclose(emb[:, :8] ** 2 + emb[:, 8:] ** 2, torch.ones(4, 8), atol=1e-5)  # float32 sin, cos: ulps
    assert torch.allclose(emb[2, 0], torch.sin(torch.tensor(7.0)))  # the first frequency is 1
    assert len({tuple(row.tolist()) for row in emb}) == 4

"""coldlib.plotting and coldlib.widgets: fast checks, no display needed (matplotlib Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from coldlib import plotting, widgets  # noqa: E402
from coldlib.degradations import (  # noqa: E402
    Decolorize,
    GaussianMask,
    GaussianNoise,
    ImageMixing,
    Pixelate,
    Snow,
    SnowField,
)
from coldlib.experiments import preset  # noqa: E402


def images(b: int = 3, c: int = 3, n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, n, n, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def small_degradations() -> dict[str, object]:
    pool = images(5, seed=1)
    return {
        "blur": preset("blur", "mnist"),
        "mask_random": GaussianMask(6, kernel_std=0.5, initial_mask=2, random_position=True),
        "mask_centred": GaussianMask(6, kernel_std=0.5, initial_mask=2, random_position=False),
        "pixelate": Pixelate(2),
        "snow": Snow(7),
        "decolor": Decolorize(5),
        "mixing": ImageMixing(9, pool=pool),
        "noise": GaussianNoise(9),
    }


class CountingCalls:
    """Wraps a degradation and counts how often it is called (and with how many images)."""

    def __init__(self, D):
        self.D, self.calls = D, []

    def __getattr__(self, name):
        return getattr(self.D, name)

    def __call__(self, x0, t, z=None):
        self.calls.append(x0.shape[0])
        return self.D(x0, t, z)


# --- frames_over_t / degrade_over_steps -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(small_degradations()))
def test_frames_over_t_matches_D_at_every_t(name):
    D = small_degradations()[name]
    x = images()
    z = D.draw_z(x, torch.Generator().manual_seed(3))
    frames = widgets.frames_over_t(D, x, z)
    assert frames.shape == (D.T + 1, *x.shape)
    # Closed-form degradations, batched over t or called per t (other batch shapes, so maybe other sum orders):
    # a few float32 ulps on values in [-1, 1], measured 6e-8 at most.
    assert torch.allclose(frames[0], x, atol=1e-6)
    for t in range(D.T + 1):
        assert torch.allclose(frames[t], D(x, t, z), atol=1e-5), t


@pytest.mark.parametrize("name", ["mask_random", "snow", "noise", "mixing"])
def test_frames_over_t_draws_one_z_for_all_frames(name):
    D = small_degradations()[name]
    x = images()
    a = widgets.frames_over_t(D, x, generator=torch.Generator().manual_seed(5))
    b = widgets.frames_over_t(D, x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)  # the generator fixes z
    z = D.draw_z(x, torch.Generator().manual_seed(5))
    assert torch.allclose(a[-1], D(x, D.T, z), atol=1e-5)  # ... and the frames use that one z


def test_frames_over_t_is_one_batched_call():
    D = CountingCalls(preset("blur", "mnist"))
    x = images(2, 1)
    widgets.frames_over_t(D, x)
    assert D.calls == [(D.T + 1) * 2]


def test_degrade_over_steps_chunks_huge_requests(monkeypatch):
    monkeypatch.setattr(plotting, "MAX_ELEMENTS_PER_CALL", 3 * 3 * 16 * 16 * 4)  # room for 4 steps per call
    D = CountingCalls(Decolorize(9))
    x = images()
    frames = plotting.degrade_over_steps(D, x, range(10))
    assert D.calls == [12, 12, 6] and frames.shape == (10, *x.shape)
    assert torch.allclose(frames[7], D.D(x, 7), atol=1e-6)  # closed-form, another batch shape: ulp-level (measured 0)


def test_degrade_over_steps_rejects_bad_steps():
    with pytest.raises(ValueError, match="0..T"):
        plotting.degrade_over_steps(Pixelate(2), images(), [0, 3])
    with pytest.raises(ValueError, match="empty"):
        plotting.degrade_over_steps(Pixelate(2), images(), [])


def test_degrade_over_steps_repeats_a_named_tuple_z(monkeypatch):
    monkeypatch.setattr(plotting, "MAX_ELEMENTS_PER_CALL", 3 * 3 * 16 * 16 * 2)  # 2 steps per call: z repeated twice
    D, x = Snow(7), images()
    z = D.draw_z(x, torch.Generator().manual_seed(3))
    assert isinstance(z, SnowField)  # a NamedTuple: every field is repeated with the batch
    frames = plotting.degrade_over_steps(D, x, range(D.T + 1), z)
    for t in range(D.T + 1):
        assert torch.allclose(frames[t], D(x, t, z), atol=1e-5), t  # closed-form: ulp-level (measured 0)
    assert torch.allclose(plotting.degrade_over_steps(Pixelate(2), x, [2])[0], Pixelate(2)(x, 2))  # z None
    with pytest.raises(TypeError):
        plotting.degrade_over_steps(D, x, [1, 2], z={"a": 1})


# --- sliders ----------------------------------------------------------------------------------------------

def test_t_slider_builds_and_redraws_without_calling_D_again():
    D = CountingCalls(preset("blur", "mnist"))
    x = images(2, 1, 32)
    w = widgets.t_slider(D, x)
    assert D.calls == [(D.T + 1) * 2]  # exactly one batched call, at construction
    assert w.slider.min == 0 and w.slider.max == D.T and w.slider.value == D.T // 2
    first = bytes(w.images[""].value)
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    w.slider.value = D.T  # what dragging the slider does
    assert bytes(w.images[""].value) != first and f"t = {D.T} / {D.T}" in w.caption.value
    w.slider.value = D.T // 2
    assert bytes(w.images[""].value) == first  # cached picture
    assert D.calls == [(D.T + 1) * 2]  # moving the slider never runs the degradation


def test_slider_encodes_every_frame_before_it_is_shown(monkeypatch):
    """A move never computes anything, so a slider stays responsive while the kernel runs a later cell."""
    w = widgets.frame_slider({"a": torch.zeros(5, 2, 1, 8, 8), "b": torch.ones(5, 1, 3, 8, 8)})
    assert set(w._cache) == {(k, i) for k in ("a", "b") for i in range(5)}
    monkeypatch.setattr(widgets, "_png", lambda *a, **k: pytest.fail("a slider move encoded a frame"))
    for i in (4, 0, 2):
        w.slider.value = i


def test_frame_slider_shows_panels_side_by_side():
    frames = {"grey": torch.zeros(4, 2, 1, 8, 8), "colour": torch.ones(4, 3, 3, 8, 8) * 0.5}
    w = widgets.frame_slider(frames, titles=[f"step {i}" for i in range(4)], description="step")
    assert set(w.images) == {"grey", "colour"} and w.slider.max == 3
    w.slider.value = 3
    assert "step 3" in w.caption.value
    assert all(bytes(img.value).startswith(b"\x89PNG") for img in w.images.values())


def test_frame_slider_rejects_bad_frames():
    with pytest.raises(ValueError, match="same number of frames"):
        widgets.frame_slider({"a": torch.zeros(3, 1, 1, 8, 8), "b": torch.zeros(4, 1, 1, 8, 8)})
    with pytest.raises(ValueError, match=r"\(S, B, C, H, W\)"):
        widgets.frame_slider(torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="titles"):
        widgets.frame_slider(torch.zeros(3, 1, 1, 8, 8), titles=["only one"])


def test_schedule_titles_name_every_schedule_entry():
    titles = widgets.schedule_titles(Snow(4))
    assert len(titles) == 5 and "threshold" in titles[2] and "motion_sigma" in titles[2]


# --- static figures ---------------------------------------------------------------------------------------

def test_show_images_handles_grey_and_colour():
    assert isinstance(plotting.show_images(images(5, 1), nrow=3, title="grey"), Figure)
    assert isinstance(plotting.show_images(images(2, 3)[0]), Figure)  # a single (C, H, W) image
    fig = Figure()
    ax = fig.add_subplot()
    assert plotting.show_images(images(2), ax=ax) is fig
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plotting.show_images(images(2, 2))


def test_image_grid_maps_minus_one_to_black_and_one_to_white():
    grid = plotting.image_grid(torch.stack([torch.full((1, 4, 4), -1.0), torch.full((1, 4, 4), 1.0)]), nrow=2)
    assert grid.shape == (4 + 2 * plotting.PAD, 2 * 4 + 3 * plotting.PAD, 3)
    p = plotting.PAD
    assert (grid[p:p + 4, p:p + 4] == 0).all() and (grid[p:p + 4, 2 * p + 4:2 * p + 8] == 255).all()


def test_degradation_grid_labels_columns_with_t():
    fig = plotting.degradation_grid(preset("blur", "mnist"), images(2, 1, 32), [0, 5, 20], row_labels=["a", "b"])
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["t=0", "t=5", "t=20"]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["a", "b"]
    assert "GaussianBlur" in ax.get_title()


def test_compare_degradations_one_row_per_degradation():
    Ds = {"noise": GaussianNoise(10), "pixelate": Pixelate(2)}
    fig = plotting.compare_degradations(Ds, images(1), fractions=(0, 0.5, 1))
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["noise", "pixelate"]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["t=0", "t=0.5T", "t=T"]
    with pytest.raises(ValueError, match="ONE image"):
        plotting.compare_degradations(Ds, images(2))


def test_plot_schedule_one_panel_per_entry_and_skips_infinite_values():
    fig = plotting.plot_schedule(Snow(6))
    assert len(fig.axes) == 2
    line = fig.axes[0].get_lines()[0]
    assert len(line.get_xdata()) == 6  # threshold at t = 0 is +inf and left out


def test_showcase_picks_one_per_label_first():
    x = images(6, 3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    idx = plotting.showcase(x, labels, k=3)
    assert sorted(labels[idx].tolist()) == [0, 1, 2]
    assert len(plotting.showcase(x, None, k=4)) == 4


def test_compare_samplers_and_their_frames():
    from torch import nn

    from coldlib.experiments import preset
    from coldlib.diffusion import ColdDiffusion, compare_samplers
    from coldlib.widgets import sampler_frames

    class Half(nn.Module):
        def forward(self, x, t):
            return x / 2

    D = preset("pixelate", "mnist")
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    R = ColdDiffusion(Half(), D)
    runs = compare_samplers(R, D(x, D.T))
    assert torch.equal(runs["Direct"], D(x, D.T) / 2)
    assert torch.equal(runs["Algorithm 2"].xt[-1], R.sample(D(x, D.T), method="improved"))
    frames, titles = sampler_frames(runs, "sr", show=slice(0, 2))
    assert list(frames) == ["Direct R(x_T, T)", "Alg. 1: x_s", "Alg. 2: x_s", "Alg. 2: x̂0 = R(x_s, s)"]
    assert all(f.shape == (D.T + 1, 2, 1, 32, 32) for f in frames.values())
    assert titles[0] == "sr: step 0 of 3, s = 3" and titles[-1].endswith("(final)")


def test_sample_grids_one_panel_per_generator_at_most_n_each():
    fig = plotting.sample_grids({"a": images(70, 1, 8), "b": images(5, 1, 8)}, n=64)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["a (64 samples)", "b (5 samples)"]
    with pytest.raises(ValueError, match="samples is empty"):
        plotting.sample_grids({})

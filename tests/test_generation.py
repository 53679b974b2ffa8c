"""Generation: the inpainting-based generator's degradation, re-estimated z (DDIM), the channel-mean prior and
``generate`` (starts drawn once, sampled in chunks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coldlib.degradations import (
    GaussianBlur,
    GaussianNoise,
    ImageMixing,
    InpaintGeneration,
    check_degradation,
    from_config,
)
from coldlib.experiments import preset
from coldlib.diffusion import ColdDiffusion
from coldlib.generation import channel_means, fit_channel_mean_prior, generate
from coldlib.unet import UNet, unet_preset


def images(b=4, c=1, n=32, seed=0):
    return torch.rand(b, c, n, n, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class Oracle(nn.Module):
    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = x0

    def forward(self, xt, t):
        return self.x0


def test_inpaint_generation_goes_from_image_to_colour():
    D = preset("inpaint_generation", "mnist")
    x = images()
    z = D.draw_z(x, torch.Generator().manual_seed(0))
    assert z.shape == (4, 1, 1, 1) and float(z.abs().max()) <= 0.5
    assert torch.equal(D(x, 0, z), x)
    assert torch.allclose(D(x, D.T, z), z.expand_as(x), atol=1e-6)  # closed-form mask blend: ulp-level (measured 0)
    a = D.visible(32, 32, torch.device("cpu"), torch.float64)
    assert a.shape == (D.T + 1, 32, 32) and (a[:-1] >= a[1:] - 1e-12).all()  # only ever covers more
    assert a[D.T // 2, 16, 16] > a[D.T // 2, 0, 0]  # the centre stays visible longest
    t = torch.tensor([0, 10, 50, 100])
    per_image = D(x, t, z)
    for i in range(4):
        # the same elementwise float32 ops per image, batched or not: ulp-level (measured 0)
        assert torch.allclose(per_image[i], D(x[i : i + 1], int(t[i]), z[i : i + 1])[0], atol=1e-6)
    assert from_config(D.config()).config() == D.config()
    assert all(r.passed for r in check_degradation(D, x))


def test_inpaint_generation_errors():
    with pytest.raises(ValueError, match="raise T or kernel_std"):
        InpaintGeneration(20, kernel_std=0.05)(images(), 1)
    D = preset("inpaint_generation", "mnist")
    with pytest.raises(ValueError, match=r"shape \(4, 1, 1, 1\)"):
        D(images(), 3, torch.zeros(4, 1, 32, 32))


@pytest.mark.parametrize("D", [GaussianNoise(50), ImageMixing(50)])
def test_estimate_z_solves_the_mixing(D):
    x0, z = images(), images(seed=1)
    t = torch.tensor([1, 10, 30, 50])
    xt = D(x0, t, z)
    assert torch.allclose(D.estimate_z(xt, x0, t), z, atol=1e-3)
    other = images(seed=2)  # any estimate of x0: the re-solved z puts D(x̂0, t, ẑ) back on x_t
    assert torch.allclose(D(other, t, D.estimate_z(xt, other, t)), xt, atol=1e-4)
    with pytest.raises(ValueError, match="t >= 1"):
        D.estimate_z(xt, x0, torch.zeros(4, dtype=torch.long))


def test_reestimated_noise_sampler_is_ddim():
    D = GaussianNoise(20)
    x0, z = images(), images(seed=1)
    xT = D(x0, D.T, z)
    out = ColdDiffusion(Oracle(x0), D).sample(xT, method="improved", reestimate_z=True)  # no z needed
    assert torch.allclose(out, x0, atol=1e-4)
    # one DDIM step by hand: x_{s-1} = sqrt(ab_{s-1}) x̂0 + sqrt(1 - ab_{s-1}) ẑ
    traj = ColdDiffusion(Oracle(x0 * 0.5), D).sample(xT, method="improved", reestimate_z=True,
                                                      return_trajectory=True)
    ab = D.alpha_bar.float()
    z_hat = (xT - ab[20].sqrt() * x0 * 0.5) / (1 - ab[20]).sqrt()
    assert torch.allclose(traj.xt[1], ab[19].sqrt() * x0 * 0.5 + (1 - ab[19]).sqrt() * z_hat, atol=1e-4)


def test_reestimate_z_errors():
    x0 = images()
    with pytest.raises(ValueError, match="not 'direct'"):
        ColdDiffusion(Oracle(x0), GaussianNoise(5)).sample(x0, method="direct", reestimate_z=True)
    with pytest.raises(NotImplementedError, match="reestimate_z=False"):
        ColdDiffusion(Oracle(x0), preset("blur", "mnist")).sample(x0, reestimate_z=True)


def test_channel_mean_prior_fits_and_samples():
    x = torch.cat([torch.full((50, 3, 8, 8), -0.5), torch.full((50, 3, 8, 8), 0.5)])
    x += 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    prior = fit_channel_mean_prior(x, n_components=2)
    assert sorted(round(float(m), 1) for m in prior.means[:, 0]) == [-0.5, 0.5]
    a = prior.sample(400, 16, generator=torch.Generator().manual_seed(1))
    b = prior.sample(400, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (400, 3, 16, 16) and a.dtype == torch.float32
    assert float(a.std(dim=(2, 3)).max()) == 0.0  # perfect symmetry: constant images
    colours = channel_means(a)[:, 0]
    assert 0.35 < float((colours > 0).double().mean()) < 0.65  # both components drawn
    noisy = prior.sample(8, (4, 6), noise_std=0.002, generator=torch.Generator().manual_seed(1))
    assert noisy.shape == (8, 3, 4, 6) and 0.001 < float(noisy.std(dim=(2, 3)).mean()) < 0.003


@pytest.mark.parametrize("kwargs, match", [(dict(n=0), "positive int"), (dict(noise_std=-1.0), "noise_std"),
                                           (dict(image_size=0), "image_size")])
def test_channel_mean_prior_bad_arguments(kwargs, match):
    prior = fit_channel_mean_prior(images(8))
    args = dict(n=2, image_size=8) | kwargs
    with pytest.raises(ValueError, match=match):
        prior.sample(args.pop("n"), args.pop("image_size"), **args)
    with pytest.raises(ValueError, match="n_components"):
        fit_channel_mean_prior(images(8), n_components=9)


def test_generation_start_for_every_generator():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    prior = fit_channel_mean_prior(images(8))
    x, z = preset("blur_generation", "mnist").generation_start(3, 32, prior=prior, generator=g())
    assert z is None and torch.equal(x, prior.sample(3, 32, generator=g()))
    D = preset("noise", "mnist")
    x, z = D.generation_start(3, 32, generator=g())
    assert torch.equal(x, D(torch.zeros(3, 1, 32, 32), D.T, z)) and float(z.std()) > 0.9
    D = preset("inpaint_generation", "mnist")
    x, z = D.generation_start(3, 32, noise_std=0.002, generator=g())
    # Seeded noise of std 0.002: the largest of 3,072 draws is ~4 std (measured 0.008); 0.02 is 10 std.
    assert z.shape == (3, 1, 1, 1) and torch.allclose(x, z.expand(3, 1, 32, 32), atol=0.02)
    pool = images(5, seed=3)
    x, z = ImageMixing(100, pool=pool).generation_start(3, 32, generator=g())
    assert all(any(torch.equal(zi, p) for p in pool) for zi in z)
    for D, match in [(preset("blur_generation", "mnist"), "pass prior"), (ImageMixing(10), "pool"),
                     (preset("blur", "mnist"), "cannot|does not end")]:
        with pytest.raises(ValueError, match=match):
            D.generation_start(2, 32)


def small_blur_generator() -> ColdDiffusion:
    """A tiny UNet on a 4-step blur to the mean at 16 px: deterministic (no z), fast to sample."""
    torch.manual_seed(0)
    D = GaussianBlur([1.0] * 4, kernel_size=5, padding="circular", to_mean_at_T=True)
    return ColdDiffusion(UNet(unet_preset("tiny", 1)), D)


class Scaled(nn.Module):
    """A restorer with one weight and no config (so channels must come from elsewhere); records its modes."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))
        self.modes: set[bool] = set()

    def forward(self, xt, t):
        self.modes.add(self.training)
        return self.w * xt


def test_generate_shapes_determinism_and_chunking():
    R = small_blur_generator().train()
    prior = fit_channel_mean_prior(images(8))
    seeded = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    kw = dict(prior=prior, noise_std=0.002, image_size=16)
    whole = generate(R, 7, batch_size=100, generator=seeded(), **kw)
    assert whole.shape == (7, 1, 16, 16) and whole.device.type == "cpu" and whole.dtype == torch.float32
    assert torch.equal(generate(R, 7, batch_size=100, generator=seeded(), **kw), whole)  # seeded: reproducible
    assert not torch.equal(generate(R, 7, generator=torch.Generator().manual_seed(4), **kw), whole)
    chunked = generate(R, 7, batch_size=3, generator=seeded(), progress=True, **kw)  # chunks of 3, 3, 1
    # Batches of 3 and 1 run other float32 convolution kernels than a batch of 7 (other sum orders, by CPU and
    # vector width), through 4 sampling steps of a UNet: measured 5.3e-6 on outputs of up to 0.86, so the bound
    # is 1e-4 (1e-5 left a margin of 2); a chunk given another chunk's start differs by ~0.25 (another seed).
    assert torch.allclose(chunked, whole, atol=1e-4)
    # ... and it is exactly Algorithm 2 from generation_start's batch, in eval mode, handed back in train mode
    x_T, _ = R.degradation.generation_start(7, 16, prior=prior, noise_std=0.002, generator=seeded())
    # the same batch of 7 through the same kernels: bit-identical here (measured 0); 1e-5 is ulp-level headroom
    assert torch.allclose(whole, R.eval().sample(x_T, method="improved"), atol=1e-5)
    R.train()
    naive = generate(R, 7, method="naive", generator=seeded(), **kw)
    assert not torch.allclose(naive, whole, atol=1e-3)
    assert R.training and R.model.training


def test_generate_slices_z_with_its_chunk():
    D = GaussianNoise(4)  # a random ingredient: one z for all n, sliced per chunk
    R = ColdDiffusion(Scaled(), D)
    R.train()
    whole = generate(R, 5, generator=torch.Generator().manual_seed(0), image_size=8, channels=1)
    chunked = generate(R, 5, batch_size=2, generator=torch.Generator().manual_seed(0), image_size=8, channels=1)
    # Scaled is elementwise (no sums across pixels or images): chunking changes no rounding (measured 0 here and
    # below); 1e-6 is ulp-level headroom
    assert torch.allclose(whole, chunked, atol=1e-6)
    x_T, z = D.generation_start(5, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(whole, R.sample(x_T, method="improved", z=z), atol=1e-6)
    assert R.model.modes == {False, True} and R.training  # generate ran in eval mode; the last call did not
    ddim = generate(R, 5, batch_size=2, reestimate_z=True, generator=torch.Generator().manual_seed(0), image_size=8,
                    channels=1)
    assert torch.allclose(ddim, R.sample(x_T, method="improved", reestimate_z=True), atol=1e-6)


def test_generate_from_a_pool_infers_the_size():
    pool = images(5, c=1, n=12, seed=3)
    R = ColdDiffusion(Scaled(), ImageMixing(6))  # no pool in the degradation, as in a loaded checkpoint
    out = generate(R, 4, pool=pool, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 1, 12, 12)  # image size and channels from the pool
    x_T, z = ImageMixing(6, pool=pool).generation_start(4, 12, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, R.sample(x_T, z=z), atol=1e-6)  # elementwise restorer: ulp-level (measured 0)


def test_generate_bad_arguments():
    R = small_blur_generator()
    prior = fit_channel_mean_prior(images(8))
    with pytest.raises(ValueError, match="image_size"):
        generate(R, 2, prior=prior)
    with pytest.raises(ValueError, match="'naive' or 'improved'"):
        generate(R, 2, prior=prior, image_size=16, method="direct")
    with pytest.raises(ValueError, match="batch_size"):
        generate(R, 2, prior=prior, image_size=16, batch_size=0)
    with pytest.raises(ValueError, match="pass prior"):
        generate(R, 2, image_size=16)
    with pytest.raises(ValueError, match="animorphosis"):
        generate(R, 2, prior=prior, pool=images(3, n=16))
    with pytest.raises(ValueError, match="channels"):
        generate(ColdDiffusion(Scaled(), GaussianNoise(3)), 2, image_size=8)
    with pytest.raises(ValueError, match="3-channel"):
        generate(R, 2, prior=fit_channel_mean_prior(images(8, c=3)), image_size=16, channels=1)

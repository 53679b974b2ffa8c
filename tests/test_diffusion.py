"""The training loss and the three samplers, for built-in degradations and one a learner writes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coldlib.degradations import Degradation, GaussianMask
from coldlib.experiments import preset
from coldlib.diffusion import ColdDiffusion
from coldlib.unet import UNet, unet_preset


def images(b=3, c=1, n=16, seed=0):
    return torch.rand(b, c, n, n, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class Oracle(nn.Module):
    """A perfect restorer for a known batch, optionally with an error that depends on x_t."""

    def __init__(self, x0: torch.Tensor, error: float = 0.0) -> None:
        super().__init__()
        self.x0, self.error, self.calls = x0, error, 0

    def forward(self, xt, t):
        self.calls += 1
        return self.x0 + self.error * torch.tanh(xt)


class Shift(Degradation):
    """A learner's linear degradation D(x, t) = x + (t/T)·e with a fixed direction e."""

    def __init__(self, T: int, e: torch.Tensor) -> None:
        super().__init__(T)
        self.e = e

    def degrade(self, x0, t, z):
        return x0 + (t.to(x0.dtype) / self.T)[:, None, None, None] * self.e


class CountingBlur(Degradation):
    def __init__(self):
        self.inner = preset("blur", "mnist")
        super().__init__(self.inner.T)
        self.calls = 0

    def degrade(self, x0, t, z):
        self.calls += 1
        return self.inner.degrade(x0, t, z)


@pytest.mark.parametrize("method", ["naive", "improved"])
def test_perfect_restorer_recovers_the_image(method):
    x = images()
    D = preset("blur", "mnist")
    out = ColdDiffusion(Oracle(x), D).sample(D(x, D.T), method=method)
    # x_s - D(x0, s) + D(x0, s-1) with the true x0 is D(x0, s-1) exactly (a - a = 0): exact on any CPU (measured 0)
    assert torch.allclose(out, x, atol=1e-5)


def test_direct_is_one_network_pass():
    x = images()
    oracle = Oracle(x, error=0.1)
    D = preset("blur", "mnist")
    xt = D(x, D.T)
    out = ColdDiffusion(oracle, D).sample(xt, method="direct")
    assert oracle.calls == 1 and torch.allclose(out, x + 0.1 * torch.tanh(xt))  # the same ops: exact (measured 0)


def test_algorithm_2_cancels_first_order_restoration_error():
    """The paper's argument: for D(x, s) = x + s·e, Algorithm 2 returns x0 whatever the restorer's error."""
    x = images()
    e = images(1, seed=9)
    D = Shift(10, e)
    model = Oracle(x, error=0.3)  # a restorer that is wrong by a smooth function of x_t
    diffusion = ColdDiffusion(model, D)
    improved = diffusion.sample(D(x, 10), method="improved")
    naive = diffusion.sample(D(x, 10), method="naive")
    # Elementwise float32 ops only (correctly rounded, so the same on any CPU but for tanh's last bit), 10 steps on
    # values of magnitude ~2: measured 4.2e-7; the restorer's error itself is 0.3 * tanh, about 0.2.
    assert torch.allclose(improved, x, atol=1e-5)
    assert (naive - x).abs().mean() > 0.05


def test_trajectory_and_partial_start():
    x = images()
    D = preset("blur", "mnist")
    traj = ColdDiffusion(Oracle(x, 0.05), D).sample(D(x, 5), t=5, method="improved", return_trajectory=True)
    assert traj.steps == [5, 4, 3, 2, 1, 0]
    assert traj.xt.shape == (6, *x.shape) and traj.x0_hat.shape == (5, *x.shape)
    assert torch.equal(traj.xt[0], D(x, 5))


@pytest.mark.parametrize("method,per_step", [("naive", 1), ("improved", 2)])
def test_sampling_costs_a_constant_number_of_degradations_per_step(method, per_step):
    x = images()
    D = CountingBlur()
    xt = D(x, D.T)
    D.calls = 0
    ColdDiffusion(Oracle(x), D).sample(xt, method=method)
    assert D.calls == per_step * D.T  # O(T) in total, not the authors' O(T²)


def test_random_degradation_needs_its_z():
    x = images()
    D = GaussianMask(10, kernel_std=0.1)
    z = D.draw_z(x, torch.Generator().manual_seed(0))
    diffusion = ColdDiffusion(Oracle(x), D)
    with pytest.raises(ValueError, match="pass the z"):
        diffusion.sample(D(x, 10, z))
    assert torch.allclose(diffusion.sample(D(x, 10, z), z=z), x, atol=1e-5)  # exact cancellation, as above (0)


@pytest.mark.parametrize("kwargs,match", [({"method": "ddpm"}, "method"), ({"t": 21}, "0..20"), ({"t": 2.0}, "int")])
def test_bad_sampler_arguments(kwargs, match):
    x = images()
    with pytest.raises(ValueError, match=match):
        ColdDiffusion(Oracle(x), preset("blur", "mnist")).sample(x, **kwargs)


def test_loss_is_l1_of_the_restoration():
    x = images()
    model = UNet(unet_preset("tiny", 1))
    D = preset("blur", "mnist")
    t = torch.tensor([1, 7, 20])
    manual = (model(D(x, t), t) - x).abs().mean()
    assert torch.allclose(ColdDiffusion(model, D).loss(x, t), manual)  # the same ops in the same order: exact
    l2 = ((model(D(x, t), t) - x) ** 2).mean()
    assert torch.allclose(ColdDiffusion(model, D, loss="l2").loss(x, t), l2)
    with pytest.raises(ValueError, match="loss"):
        ColdDiffusion(model, D, loss="huber")


def test_degradation_stays_in_full_precision_under_autocast():
    seen = []

    class Spy(nn.Module):
        def forward(self, xt, t):
            seen.append(xt.dtype)
            return xt

    x = images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ColdDiffusion(Spy(), preset("blur", "mnist")).loss(x)
    assert seen == [torch.float32]


def test_per_image_starting_steps():
    x = images(3)
    D = preset("blur", "mnist")
    starts = torch.tensor([0, 4, 20])
    diffusion = ColdDiffusion(Oracle(x, 0.02), D)
    together = diffusion.sample(D(x, starts), starts, method="improved")
    for i, s in enumerate(starts.tolist()):
        model_i = ColdDiffusion(Oracle(x[i : i + 1], 0.02), D)
        alone = model_i.sample(D(x[i : i + 1], s), s, method="improved") if s else x[i : i + 1]
        assert torch.allclose(together[i : i + 1], alone, atol=1e-5)  # per image the same ops: ulp-level (measured 0)
    direct = diffusion.sample(D(x, starts), starts, method="direct")
    assert torch.equal(direct[0], x[0])  # t = 0: nothing to undo


def test_estimate_t_finds_the_degradation_step():
    x = images(4)
    D = preset("blur", "mnist")
    diffusion = ColdDiffusion(Oracle(x), D)  # a perfect restorer makes every s consistent only at the truth
    steps = torch.tensor([1, 3, 8, 15])
    found = diffusion.estimate_t(D(x, steps))
    assert torch.equal(found, steps)
    with pytest.raises(ValueError, match="candidates"):
        diffusion.estimate_t(x, candidates=[0, 3])

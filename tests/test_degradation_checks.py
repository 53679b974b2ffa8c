"""The property checker accepts every built-in degradation and names what a broken one gets wrong."""

from __future__ import annotations

import pytest
import torch

from coldlib.degradations import Degradation, ImageMixing, check_degradation
from coldlib.experiments import list_presets, preset


@pytest.mark.parametrize("kind,dataset", list_presets())
def test_builtins_pass(kind, dataset):
    D = ImageMixing(200, pool=torch.rand(6, 3, 32, 32) * 2 - 1) if kind == "mixing" else preset(kind, dataset)
    assert all(r.passed for r in check_degradation(D))


class Fade(Degradation):
    """A correct learner degradation: fade to black."""

    def degrade(self, x0, t, z):
        f = (t.to(x0.dtype) / self.T)[:, None, None, None]
        return (1 - f) * x0 - f


class NotIdentity(Fade):
    def degrade(self, x0, t, z):
        return super().degrade(x0, t, z) * 0.9


class Random(Fade):
    def degrade(self, x0, t, z):
        return super().degrade(x0, t, z) + 0.01 * torch.randn_like(x0) * (t > 0)[:, None, None, None]


class Shrinks(Fade):
    def degrade(self, x0, t, z):
        return x0[..., ::2, ::2] if int(t.max()) > 0 else x0


class GetsMilder(Fade):
    def degrade(self, x0, t, z):
        f = torch.sin(torch.pi * t.to(x0.dtype) / self.T)[:, None, None, None]
        return (1 - f) * x0


class OneStepPerBatch(Fade):
    def degrade(self, x0, t, z):
        f = float(t[0]) / self.T  # ignores the other images' steps
        return (1 - f) * x0 - f


class Nan(Fade):
    def degrade(self, x0, t, z):
        y = super().degrade(x0, t, z)
        return torch.where((t == self.T)[:, None, None, None], torch.full_like(y, float("nan")), y)


def test_a_correct_learner_degradation_passes():
    assert all(r.passed for r in check_degradation(Fade(10)))


@pytest.mark.parametrize(
    "cls,match",
    [
        (NotIdentity, "identity at t=0"),
        (Random, "deterministic"),
        (Shrinks, "shape, dtype and device"),
        (GetsMilder, "severity grows"),
        (OneStepPerBatch, "one step per image"),
        (Nan, "finite values"),
    ],
)
def test_each_broken_promise_is_named(cls, match):
    with pytest.raises(ValueError, match=match):
        check_degradation(cls(10))
    results = check_degradation(cls(10), raise_on_failure=False)
    assert any(not r.passed and match in r.name for r in results)

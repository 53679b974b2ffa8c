"""Tests for coldlib.evaluation: SSIM/RMSE/PSNR and the paper's evaluation table (with its Fréchet column).

Lesson: 03_sampling_naive_vs_improved. Tiny images (16 px) and tiny models, so this runs in seconds on a CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn


from coldlib.degradations import Degradation, GaussianBlur, GaussianNoise
from coldlib.diffusion import SAMPLER_NAMES, ColdDiffusion
from coldlib.experiments import paper_table
from coldlib.evaluation import FD_MNIST_CNN, FeatureStats, metrics, mnist_cnn_features, mnist_fd
from coldlib.plotting import to_unit
from coldlib.unet import UNet, unet_preset


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g)
    return (x.cumsum(-1) / 8).clamp(0, 1) * 2 - 1  # smooth-ish images in [-1, 1]


def _blur() -> GaussianBlur:
    return GaussianBlur([1.0] * 5, kernel_size=5, padding="circular")


class Oracle(nn.Module):
    """Returns the true x0: the clean image whose degraded version is nearest to the input.

    A dropout on the output ruins it unless the module is in eval mode; ``seen`` records the modes it ran in.
    """

    def __init__(self, x0: torch.Tensor, degradation: Degradation, p: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("x0", x0.clone())
        self.degradation = degradation
        self.drop = nn.Dropout(p)
        self.seen: set[bool] = set()

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen.add(self.training)
        out = []
        for img, s in zip(xt, t.tolist()):
            candidates = self.degradation(self.x0, s)
            out.append(self.x0[((candidates - img) ** 2).flatten(1).sum(1).argmin()])
        return self.drop(torch.stack(out))


def test_identical_images() -> None:
    x = _images()
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-6)  # a ratio of equal terms: ulp-level (measured 0)
    assert metrics.rmse(x, x) == 0.0
    assert metrics.psnr(x, x) == math.inf


def test_known_offset() -> None:
    a = torch.full((2, 3, 16, 16), -0.5)
    b = a + 0.2  # 0.1 in [0, 1]
    assert metrics.rmse(a, b) == pytest.approx(0.1, abs=1e-6)  # float32 rounding of 0.2: ulp-level (measured 6e-9)
    assert metrics.psnr(a, b) == pytest.approx(20.0, abs=1e-4)


def test_to_unit_clamps_and_shapes_checked() -> None:
    assert torch.equal(to_unit(torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0])),
                       torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    wide = to_unit(torch.zeros(2, dtype=torch.float64, requires_grad=True))
    assert wide.dtype == torch.float32 and not wide.requires_grad  # measured (and shown) as float32
    with pytest.raises(ValueError, match="same shape"):
        metrics.rmse(torch.zeros(1, 1, 16, 16), torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """An independent SSIM per image: scikit-image with the authors' settings, channel by channel."""
    from skimage.metrics import structural_similarity

    a, b = to_unit(a).double().numpy(), to_unit(b).double().numpy()
    return [sum(structural_similarity(a[i, c], b[i, c], gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0) for c in range(a.shape[1]))
            / a.shape[1] for i in range(a.shape[0])]


def _digit_like(n: int, seed: int, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Strokes on an empty border (as MNIST) and a blurred (noisy) copy."""
    from skimage.data import camera

    g = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, 32, 32)
    photo = torch.from_numpy(camera()[::8, ::8].copy()).float() / 127.5 - 1  # 64x64 of a real photograph
    for i in range(n):
        r, c = torch.randint(0, 64 - 20, (2,), generator=g).tolist()
        x[i, 0, 6:26, 6:26] = photo[r:r + 20, c:c + 20]
    y = _blur()(x, 3) + noise * torch.randn(x.shape, generator=g)
    return x, y


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image_with_the_authors_settings(channels: int) -> None:
    x, y = _digit_like(5, seed=channels)
    x, y = x.repeat(1, channels, 1, 1), y.repeat(1, channels, 1, 1)
    if channels == 3:  # colour: make the channels differ
        y = y + 0.3 * torch.rand(y.shape, generator=torch.Generator().manual_seed(9))
    reference = _skimage_ssim(x, y)
    per_image = metrics._ssim_per_image(to_unit(x), to_unit(y))
    assert per_image.tolist() == pytest.approx(reference, abs=1e-3)
    assert metrics.ssim(x, y) == pytest.approx(sum(reference) / len(reference), abs=1e-3)
    assert 0.05 < metrics.ssim(x, y) < 0.95  # a real test: far from both trivial values


def test_ssim_is_not_torchmetrics_padded_convention() -> None:
    """torchmetrics' default pads the borders; where both images share an empty border it reads higher."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, y = _digit_like(5, seed=0, noise=0.0)
    assert metrics._ssim_per_image(to_unit(y), to_unit(x)).tolist() == pytest.approx(_skimage_ssim(y, x), abs=1e-3)
    padded = float(structural_similarity_index_measure(to_unit(y), to_unit(x), data_range=1.0))
    assert padded - metrics.ssim(y, x) > 0.02


def test_oracle_restorer_is_perfect_and_degraded_is_not() -> None:
    x0 = _images()
    D = _blur()
    res = metrics.evaluate_restoration(ColdDiffusion(Oracle(x0, D), D), x0, batch_size=4)
    assert list(res) == ["Degraded", "Direct", "Algorithm 1", "Algorithm 2"]
    # The oracle hands back the images themselves and Algorithm 2 then cancels exactly: exact on any CPU (measured
    # 0); the bounds only leave ulps of room. The rows below are the same per-image values averaged by the pipeline
    # (float64 means, measured 2e-16 apart): rel 1e-9 and 1e-6 are far above float64 rounding.
    for col in ("Direct", "Algorithm 1", "Algorithm 2"):
        assert res[col]["RMSE"] < 1e-6 and res[col]["SSIM"] == pytest.approx(1.0, abs=1e-5), col
    xT = D(x0, D.T)  # "Degraded" is the true x_T, measured on the same images
    assert res["Degraded"]["RMSE"] == pytest.approx(metrics.rmse(xT, x0), rel=1e-9)
    assert res["Degraded"]["SSIM"] == pytest.approx(metrics.ssim(xT, x0), rel=1e-6)
    assert res["Degraded"]["PSNR"] == pytest.approx(metrics.psnr(xT, x0), rel=1e-6)
    assert res["Degraded"]["RMSE"] > 0.01 and res["Degraded"]["SSIM"] < 0.99


def test_seeded_evaluation_is_deterministic_and_shares_z() -> None:
    torch.manual_seed(0)
    x0 = _images(4)
    D = GaussianNoise(4)
    diffusion = ColdDiffusion(UNet(unet_preset("tiny", 1)), D)

    def run(seed: int, methods: tuple[str, ...] = ("direct", "naive", "improved")) -> dict:
        return metrics.evaluate_restoration(diffusion, x0, batch_size=2, generator=torch.Generator().manual_seed(seed),
                                            methods=methods)

    first = run(7)
    assert first == run(7)
    assert run(8, ("direct",))["Degraded"] != first["Degraded"]
    # z is drawn once per batch with the generator and shared by all columns: rebuild it batch by batch.
    g = torch.Generator().manual_seed(7)
    zs = [D.draw_z(b, g) for b in x0.split(2)]
    # The same images through the same ops in the same batches: the metrics agree to float64 rounding (measured 0).
    xT = torch.cat([D(b, D.T, z) for b, z in zip(x0.split(2), zs)])
    assert first["Degraded"]["RMSE"] == pytest.approx(metrics.rmse(xT, x0), rel=1e-9)
    assert first["Degraded"]["SSIM"] == pytest.approx(metrics.ssim(xT, x0), rel=1e-6)
    final = torch.cat([diffusion.sample(D(b, D.T, z), method="improved", z=z) for b, z in zip(x0.split(2), zs)])
    assert first["Algorithm 2"]["RMSE"] == pytest.approx(metrics.rmse(final, x0), rel=1e-9)
    assert first["Algorithm 2"]["PSNR"] == pytest.approx(metrics.psnr(final, x0), rel=1e-6)


def test_modes_restored_and_dropout_off() -> None:
    x0 = _images(4)
    D = _blur()
    oracle = Oracle(x0, D, p=0.9)
    diffusion = ColdDiffusion(oracle, D)
    diffusion.train()
    res = metrics.evaluate_restoration(diffusion, x0, methods=("direct", "improved"))
    assert oracle.seen == {False}  # evaluated with dropout off ...
    assert res["Direct"]["RMSE"] < 1e-6 and res["Algorithm 2"]["RMSE"] < 1e-6  # exact oracle, as above (measured 0)
    assert diffusion.training and oracle.training and oracle.drop.training  # ... and handed back in train mode
    diffusion.eval()
    metrics.evaluate_restoration(diffusion, x0, methods=("direct",))
    assert not oracle.training and not oracle.drop.training


def test_mode_restored_after_error() -> None:
    D = _blur()
    model = UNet(unet_preset("tiny", 1)).train()
    with pytest.raises(ValueError, match="divisible"):  # the UNet rejects 13 px mid-evaluation
        metrics.evaluate_restoration(ColdDiffusion(model, D), torch.zeros(2, 1, 13, 13))
    assert model.training


def test_bad_arguments() -> None:
    D = _blur()
    diffusion = ColdDiffusion(UNet(unet_preset("tiny", 1)), D)
    with pytest.raises(ValueError, match="methods"):
        metrics.evaluate_restoration(diffusion, _images(2), methods=("ddim",))
    with pytest.raises(ValueError, match="batch_size"):
        metrics.evaluate_restoration(diffusion, _images(2), batch_size=0)
    with pytest.raises(ValueError, match="mnist-cnn"):
        metrics.evaluate_restoration(diffusion, _images(2), frechet="fid")
    with pytest.raises(ValueError, match="frechet="):
        metrics.evaluate_restoration(diffusion, _images(2), weights_path="inception.pth")
    with pytest.raises(ValueError, match="at least 2"):
        metrics.evaluate_restoration(diffusion, _images(1), frechet="mnist-cnn")


@pytest.mark.slow
def test_frechet_column_is_measured_on_the_same_images() -> None:
    torch.manual_seed(0)
    D = GaussianNoise(3)  # a random ingredient z: the rows only agree if they share it
    diffusion = ColdDiffusion(UNet(unet_preset("tiny", 1)), D)
    x0 = torch.rand(10, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1  # the classifier's 32 px
    seeded = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    got = metrics.evaluate_restoration(diffusion, x0, batch_size=4, generator=seeded(), frechet="mnist-cnn",
                                       progress=True)
    plain = metrics.evaluate_restoration(diffusion, x0, batch_size=4, generator=seeded())
    assert list(got) == list(plain) == ["Degraded", *SAMPLER_NAMES.values()]
    for row, values in plain.items():  # the Fréchet column changes nothing else
        # the same computation run twice: exact (measured 0)
        assert {k: v for k, v in got[row].items() if k != FD_MNIST_CNN} == pytest.approx(values, rel=1e-12)
    # Collect every row's images by hand (z per batch of 4 from the same seed) and measure them independently.
    g = seeded()
    images: dict[str, list[torch.Tensor]] = {row: [] for row in plain}
    with torch.no_grad():
        for batch in x0.split(4):
            z = D.draw_z(batch, g)
            xt = D(batch, D.T, z)
            images["Degraded"].append(xt)
            for method, row in SAMPLER_NAMES.items():
                images[row].append(diffusion.sample(xt, method=method, z=z))
    reference = FeatureStats.from_features(mnist_cnn_features(x0))
    for row, parts in images.items():
        x = torch.cat(parts)
        by_stats = reference.frechet_distance(FeatureStats.from_features(mnist_cnn_features(x)))
        # the same images and features, FD in float64: measured 0 apart; 1e-6 is far above float64 rounding
        assert got[row][FD_MNIST_CNN] == pytest.approx(by_stats, rel=1e-6, abs=1e-6), row
        assert got[row][FD_MNIST_CNN] == pytest.approx(mnist_fd(x0, x), rel=1e-6, abs=1e-6), row
    assert got["Degraded"][FD_MNIST_CNN] > 0


def test_format_table() -> None:
    results = {"Degraded": {"SSIM": 0.3, "RMSE": 0.29, "PSNR": 10.5},
               "Direct": {"SSIM": 0.75, "RMSE": 0.14, "PSNR": math.inf},
               "Algorithm 2": {"SSIM": 0.71, "RMSE": 0.15, "PSNR": 16.0}}
    plain = metrics.format_table(results)
    assert plain.splitlines()[0] == "| Column | SSIM | RMSE | PSNR |"
    assert "| Direct | 0.750 | 0.140 | ∞ |" in plain
    table = metrics.format_table(results, paper_table("blur", "mnist"))
    assert table.splitlines()[0] == ("| Column | SSIM | SSIM (paper) | RMSE | RMSE (paper) | PSNR | FID (paper) |")
    assert "| Algorithm 2 | 0.710 | 0.718 | 0.150 | 0.154 | 16.00 | 4.69 |" in table
    sampled = metrics.format_table({"Algorithm 2": results["Algorithm 2"]}, {"Sampled": {"SSIM": 0.5}})
    assert "| Algorithm 2 | 0.710 | 0.500 |" in sampled

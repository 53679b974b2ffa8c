"""Tests for coldlib.evaluation.intervals: bootstrap intervals, Fréchet spreads and floors, and compare().

Lessons: 03_sampling_naive_vs_improved and 09_reproducing_the_paper (every comparison they print carries an
interval). Synthetic per-image values and features, plus tiny models on 16-32 px images: seconds on a CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from coldlib.degradations import GaussianNoise
from coldlib.diffusion import ColdDiffusion
from coldlib.evaluation import (
    FD_MNIST_CNN,
    FeatureStats,
    Interval,
    RestorationResults,
    bootstrap_mean,
    bootstrap_rmse,
    compare,
    format_frechet_table,
    format_table,
    frechet_distance,
    frechet_floor,
    frechet_interval,
    intervals_from_dict,
    intervals_to_dict,
    metric_intervals,
    metrics,
)
from coldlib.evaluation import intervals as iv_mod
from coldlib.unet import UNet, unet_preset


def _pairs(n: int = 12, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, size, size, generator=g).cumsum(-1) / 8).clamp(0, 1) * 2 - 1
    return x, (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1.2, 1.2)  # overshoot: clamped as measured


# ------------------------------------------------------------------------------------------ Interval


def test_interval_prints_compares_and_round_trips() -> None:
    iv = Interval(0.7271, 0.7212, 0.7333, n=2000, what="95% bootstrap over 2,000 images")
    assert str(iv) == "0.727 [0.721, 0.733]"
    assert f"{iv:.2f}" == iv.format(2) == "0.73 [0.72, 0.73]"
    assert str(Interval(20.0, 19.5, math.inf)) == "20.000 [19.500, ∞]"
    assert iv.contains(0.7212) and iv.contains(0.73) and not iv.contains(0.74)
    assert iv.width == pytest.approx(0.0121)
    # JSON for checkpoint sidecars, and back.
    assert Interval.from_dict(json.loads(json.dumps(iv.to_dict()))) == iv
    nested = {"Direct": {"SSIM": iv}}
    assert intervals_from_dict(json.loads(json.dumps(intervals_to_dict(nested)))) == nested
    with pytest.raises(ValueError, match="low <= high"):
        Interval(0.5, 0.6, 0.4)
    with pytest.raises(ValueError, match="level"):
        Interval(0.5, 0.4, 0.6, level=95)


# ----------------------------------------------------------------------------------------- bootstrap


def test_point_estimates_equal_the_existing_metrics() -> None:
    a, b = _pairs()
    got = metric_intervals(b, a, n_boot=200)
    # Equal up to float64 summation order (the same per-image values, summed in another order): rel 1e-12.
    assert got["SSIM"].estimate == pytest.approx(metrics.ssim(b, a), rel=1e-12)
    assert got["RMSE"].estimate == pytest.approx(metrics.rmse(b, a), rel=1e-12)
    assert got["PSNR"].estimate == pytest.approx(metrics.psnr(b, a), rel=1e-12)
    for name, value in got.items():
        assert value.low < value.estimate < value.high and value.n == 12, name
        assert value.what == "95% bootstrap over 12 images (200 resamples)"
    assert metric_intervals(b, a, n_boot=200) == got  # seeded
    assert metric_intervals(b, a, n_boot=200, seed=1) != got


def test_interval_shrinks_like_one_over_sqrt_n() -> None:
    rng = np.random.default_rng(0)
    widths = [bootstrap_mean(rng.normal(0.7, 0.1, n)).width for n in (100, 400, 1600)]
    # 4x the images, half the width. Loose bounds: at n=100 the sample SD alone moves the width by ~7%, and the
    # 2.5%/97.5% quantiles of 2,000 resamples by ~3%.
    for wide, narrow in zip(widths, widths[1:]):
        assert 1.6 < wide / narrow < 2.5
    assert widths[-1] * math.sqrt(1600) == pytest.approx(2 * 1.96 * 0.1, rel=0.15)  # 2 z_0.975 sigma / sqrt(n)


def test_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    repetitions, n, true_mean = 400, 40, 0.7
    covered = sum(bootstrap_mean(rng.normal(true_mean, 0.1, n), n_boot=1000, seed=i).contains(true_mean)
                  for i in range(repetitions))
    # A percentile interval for a mean of 40 normal values covers a bit under 95% (about 93-94%: it uses the
    # plug-in SD and normal, not t, quantiles); 400 repetitions add a binomial SD of ~1.2 points. Seeded, so the
    # result is fixed; the bounds are 3+ SDs wide either way.
    assert 0.90 <= covered / repetitions <= 0.98


def test_matches_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(2)
    ssim_like = rng.beta(8, 3, size=300)
    mse_like = rng.gamma(2.0, 0.01, size=300)
    for ours, statistic, data in ((bootstrap_mean(ssim_like), np.mean, ssim_like),
                                  (bootstrap_rmse(mse_like), lambda x, axis=-1: np.sqrt(np.mean(x, axis=axis)),
                                   mse_like)):
        ref = stats.bootstrap((data,), statistic, method="percentile", n_resamples=10_000, confidence_level=0.95,
                              rng=np.random.default_rng(3)).confidence_interval
        # Different random resamples, so only Monte Carlo agreement: each end carries ~0.06 standard errors of
        # noise with 2,000 resamples (0.03 with 10,000); 10% of the width is about 0.4 standard errors.
        assert ours.low == pytest.approx(ref.low, abs=0.1 * ours.width)
        assert ours.high == pytest.approx(ref.high, abs=0.1 * ours.width)
        assert ours.estimate == pytest.approx(float(statistic(data)), rel=1e-12)


def test_perfect_images_and_bad_values() -> None:
    psnr = np.array([30.0] * 99 + [math.inf])  # one perfect restoration: PSNR is infinite
    iv = bootstrap_mean(psnr)
    assert iv.estimate == math.inf and iv.high == math.inf and iv.low == 30.0  # ~37% of resamples miss it
    assert bootstrap_mean(np.full(50, 0.5)) == Interval(0.5, 0.5, 0.5, n=50, what=iv.what.replace("100", "50"))
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean([0.1, float("nan")])
    with pytest.raises(ValueError, match="1-d"):
        bootstrap_mean([0.1])
    with pytest.raises(ValueError, match="non-negative"):
        bootstrap_rmse([0.1, -0.1])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean([0.1, 0.2], n_boot=0)


# ------------------------------------------------------------------------------------------- compare


def test_compare_says_ahead_only_when_intervals_separate() -> None:
    direct, alg2 = Interval(0.727, 0.72, 0.73), Interval(0.571, 0.56, 0.58)
    c = compare(direct, alg2, names=("Direct", "Algorithm 2"), higher_is_better=True)
    assert (c.verdict, c.leader, c.separated) == ("ahead", "Direct", True)
    assert str(c) == "Direct ahead of Algorithm 2 (0.727 [0.720, 0.730] vs 0.571 [0.560, 0.580])"
    # The same order, lower is better (an RMSE or a distance): now the other one leads, and is named first.
    c = compare(direct, alg2, names=("Direct", "Algorithm 2"), higher_is_better=False)
    assert str(c) == "Algorithm 2 ahead of Direct (0.571 [0.560, 0.580] vs 0.727 [0.720, 0.730])"
    # Overlapping, or merely touching, intervals are level whatever the point estimates say.
    for other in (Interval(0.715, 0.70, 0.725), Interval(0.70, 0.69, 0.72)):
        c = compare(direct, other, names=("Direct", "Algorithm 1"), higher_is_better=True)
        assert (c.verdict, c.leader, c.separated) == ("level", None, False)
        assert str(c).startswith("Direct and Algorithm 1 level (intervals overlap: 0.727 [0.720, 0.730] vs ")
    assert str(compare(direct, alg2, higher_is_better=True)).startswith("A ahead of B")
    with pytest.raises(ValueError, match="confidence level"):
        compare(direct, Interval(0.5, 0.4, 0.6, level=0.9), higher_is_better=True)
    with pytest.raises(ValueError, match="higher_is_better"):
        compare(direct, alg2, higher_is_better=None)  # type: ignore[arg-type]


def test_compare_with_the_papers_number() -> None:
    ours = Interval(0.727, 0.721, 0.733)
    c = compare(ours, 0.757, higher_is_better=True)
    assert str(c) == "ours below the paper's 0.757 (0.727 [0.721, 0.733])"
    assert (c.verdict, c.leader) == ("below", "the paper")
    c = compare(ours, 0.73, higher_is_better=True)
    assert str(c) == "ours consistent with the paper's 0.73 (0.727 [0.721, 0.733])"
    assert (c.verdict, c.leader, c.separated) == ("consistent", None, False)
    c = compare(Interval(0.154, 0.150, 0.160), 0.137, names=("our RMSE", "the paper"), higher_is_better=False)
    assert str(c) == "our RMSE above the paper's 0.137 (0.154 [0.150, 0.160])" and c.leader == "the paper"
    with pytest.raises(ValueError, match="number"):
        compare(ours, "0.75", higher_is_better=True)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- Fréchet distances


def _gaussian_features(n: int, d: int = 8, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d))) + shift


def test_resampled_statistics_equal_feature_stats_of_the_resample() -> None:
    f, g = _gaussian_features(50), _gaussian_features(50, shift=0.5, seed=1)
    counts = iv_mod._counts(np.random.default_rng(0), 3, 50)
    batched = iv_mod._frechet_batch(*iv_mod._weighted_stats(f, counts), *iv_mod._weighted_stats(g, counts))
    for k in range(3):  # materialise each resample and measure it the ordinary way
        idx = np.repeat(np.arange(50), counts[k].astype(int))
        one = FeatureStats.from_features(f[idx]).frechet_distance(FeatureStats.from_features(g[idx]))
        assert batched[k] == pytest.approx(one, rel=1e-9)  # float64, another summation order (measured 2e-15)


def test_frechet_interval_contains_the_full_set_distance() -> None:
    ref = _gaussian_features(400)
    for features, paired in ((_gaussian_features(400, shift=0.3, seed=1), False),  # a clear distance
                             (_gaussian_features(400, seed=2), False),  # same distribution: the bias dominates
                             (_gaussian_features(400, shift=0.3, seed=1), True)):
        iv = frechet_interval(features, ref, paired=paired, n_boot=200)
        full = frechet_distance(features.mean(0), np.cov(features, rowvar=False), ref.mean(0),
                                np.cov(ref, rowvar=False))
        assert iv.estimate == pytest.approx(full, rel=1e-9)  # float64, another summation order (measured 4e-15)
        assert iv.contains(full) and iv.width > 0 and iv.low >= 0 and iv.n == 400
    assert "image pairs" in iv.what
    # A perfect restorer, resampled as pairs: zero, with no spread at all.
    perfect = frechet_interval(ref, ref, paired=True, n_boot=50)
    assert max(perfect.estimate, perfect.high) < 1e-9  # round-off of a distance that is exactly 0
    with pytest.raises(ValueError, match="paired"):
        frechet_interval(ref, ref[:300], paired=True)
    with pytest.raises(ValueError, match="dimensions"):
        frechet_interval(ref, ref[:, :4])


def test_real_vs_real_floor_is_positive_and_falls_with_n() -> None:
    pool = _gaussian_features(4000, seed=3)
    floors = [frechet_floor(pool, n, n_splits=100) for n in (250, 500, 1000, 2000)]
    for floor, n in zip(floors, (250, 500, 1000, 2000)):
        assert floor.estimate > 0 and floor.low > 0 and floor.n == n and floor.contains(floor.estimate)
    # The small-sample bias is about (a constant) / n, so each doubling of n roughly halves the floor.
    for big, small in zip(floors, floors[1:]):
        assert 1.5 < big.estimate / small.estimate < 2.6
    with pytest.raises(ValueError, match="disjoint"):
        frechet_floor(pool, 2001)


# ------------------------------------------------------------------------- evaluate_restoration and tables


def test_evaluate_restoration_with_intervals_keeps_the_old_result() -> None:
    torch.manual_seed(0)
    D = GaussianNoise(3)
    diffusion = ColdDiffusion(UNet(unet_preset("tiny", 1)), D)
    x0, _ = _pairs(8)
    kw = dict(batch_size=3, methods=("direct", "improved"))
    plain = metrics.evaluate_restoration(diffusion, x0, generator=torch.Generator().manual_seed(4), **kw)
    got = metrics.evaluate_restoration(diffusion, x0, generator=torch.Generator().manual_seed(4), intervals=True,
                                       n_boot=300, **kw)
    assert type(plain) is dict and isinstance(got, RestorationResults)
    assert got == plain and json.dumps(got) == json.dumps(plain)  # same rows, same floats, same sidecar JSON
    assert list(got.intervals) == list(plain)
    for row, values in plain.items():
        assert set(got.intervals[row]) == set(values)
        for metric, value in values.items():
            # Per-image values summed in another order (float64): rel 1e-12.
            assert got.intervals[row][metric].estimate == pytest.approx(value, rel=1e-12), (row, metric)
            assert got.intervals[row][metric].contains(value) and got.intervals[row][metric].n == 8
    # Tables: unchanged for the plain dict, intervals and a note when present.
    assert format_table(plain) == format_table(dict(got))
    table = format_table(got)
    ssim = got.intervals["Direct"]["SSIM"]
    assert f"| Direct | {ssim:.3f} |" in table and "SSIM, RMSE, PSNR: 95% bootstrap over 8 images" in table
    with pytest.raises(ValueError, match="intervals=True"):
        metrics.evaluate_restoration(diffusion, x0, n_boot=100)


def test_evaluate_restoration_frechet_intervals_and_the_floor_note() -> None:
    torch.manual_seed(0)
    diffusion = ColdDiffusion(UNet(unet_preset("tiny", 1)), GaussianNoise(3))
    x0 = torch.rand(10, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1  # the classifier's 32 px
    got = metrics.evaluate_restoration(diffusion, x0, batch_size=4, methods=("direct",), frechet="mnist-cnn",
                                       intervals=True, n_boot=100, generator=torch.Generator().manual_seed(5))
    for row in ("Degraded", "Direct"):
        fd = got.intervals[row][FD_MNIST_CNN]
        # the same features and float64 formula (measured 0)
        assert fd.estimate == pytest.approx(got[row][FD_MNIST_CNN], rel=1e-9) and fd.contains(got[row][FD_MNIST_CNN])
        assert "10 image pairs" in fd.what
    floor = Interval(1.0, 0.5, 2.0, n=10)
    table = format_frechet_table(got, floor=floor)
    assert "Real-vs-real floor at n = 10: 1.000 [0.500, 2.000]" in table
    with pytest.raises(ValueError, match="same n"):
        format_frechet_table(got, floor=Interval(1.0, 0.5, 2.0, n=2000))


def test_verdicts_read_orderings_from_intervals():
    from coldlib.evaluation import Interval, verdicts

    iv = {"Direct": {"SSIM": Interval(0.80, 0.79, 0.81), "RMSE": Interval(0.10, 0.09, 0.11)},
          "Algorithm 2": {"SSIM": Interval(0.70, 0.69, 0.71), "RMSE": Interval(0.105, 0.10, 0.12)}}
    lines = verdicts(iv, paper={"Direct": {"SSIM": 0.9}})
    assert "SSIM: Direct ahead of Algorithm 2" in lines[0]
    assert any("SSIM, Direct: ours below the paper's 0.9" in line for line in lines)
    assert any(line.startswith("RMSE: Direct and Algorithm 2 level") for line in lines)
    assert not any("Algorithm 1" in line for line in lines)  # rows the results do not hold are skipped


def test_mnist_fd_interval_estimate_is_mnist_fd():
    from coldlib.evaluation import mnist_fd, mnist_fd_interval

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(60, 1, 32, 32, generator=g) * 2 - 1, torch.rand(50, 1, 32, 32, generator=g) * 2 - 1
    iv = mnist_fd_interval(a, b, n_boot=50)
    # same features, same float64 Fréchet formula: equal up to summation order
    assert iv.estimate == pytest.approx(mnist_fd(a, b), rel=1e-9) and iv.low <= iv.estimate <= iv.high

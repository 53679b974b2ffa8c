"""Uncertainty for every number the course compares: bootstrap intervals and "ahead" / "level" verdicts.

A restoration metric measured on 2,000 held-out images is one draw: other images would give another number.
The percentile bootstrap estimates how much it would move by re-measuring on resamples of the images (drawn
with replacement, seeded): the interval runs between the 2.5% and 97.5% quantiles of the resampled values.

* :func:`bootstrap_mean` for means of per-image values (SSIM, PSNR); :func:`bootstrap_rmse` for RMSE pooled over
  all pixels, ``sqrt(mean of per-image MSE)`` (every image has the same pixel count, so this *is* the pooled RMSE).
* :func:`frechet_interval`: the spread of a Fréchet distance over resampled images; :func:`frechet_floor`: the
  distance between two disjoint sets of *real* images of the same size, the value a perfect generator would
  still get at that ``n`` (both distances are biased upwards for small sets).
* :func:`compare`: says "A ahead of B" only when the two intervals do not overlap, "level" otherwise, and compares
  an interval with a single published number ("below" / "consistent with" / "above" the paper's).

Resampling reuses one seed, so two rows measured on the same images are resampled with the same indices
(common random numbers): their intervals move together instead of adding independent Monte Carlo noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..validate import check_int
from .frechet import FeatureStats, _as_float64

__all__ = ["Interval", "N_BOOT", "FD_N_BOOT", "bootstrap_mean", "bootstrap_rmse", "frechet_interval",
           "frechet_floor", "Comparison", "compare", "intervals_to_dict", "intervals_from_dict"]

#: Resamples for means of per-image values: the 2.5% / 97.5% quantiles then carry about 0.06 standard errors of
#: Monte Carlo noise, invisible at three decimals.
N_BOOT: int = 2000
#: Resamples for Fréchet distances: each costs two eigen-decompositions of a D x D covariance (seconds at
#: Inception's D = 2048, about a millisecond at FD_MNIST-CNN's 64), so fewer; enough for a spread to a digit.
FD_N_BOOT: int = 500
_CHUNK = 2**22  # float64 entries per vectorised block of resamples (32 MB): bounds memory, not the result


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval, e.g. SSIM ``0.727 [0.721, 0.733]``.

    ``n`` is the number of images measured and ``what`` says how the interval was made
    ("95% bootstrap over 2,000 images"). ``format(iv, ".2f")`` or ``iv.format(2)`` choose the digits;
    ``str(iv)`` uses 3 decimals.
    """

    estimate: float
    low: float
    high: float
    level: float = 0.95
    n: int | None = None
    what: str = ""

    def __post_init__(self) -> None:
        for name in ("estimate", "low", "high", "level"):  # plain floats (not NumPy scalars): JSON-friendly
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.n is not None:
            object.__setattr__(self, "n", int(self.n))
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {self.level!r}.")
        if any(math.isnan(v) for v in (self.estimate, self.low, self.high)) or self.low > self.high:
            raise ValueError(f"an interval needs low <= high and no NaN; got {self.estimate}, [{self.low}, "
                             f"{self.high}].")

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]`` (ends included)."""
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low

    def format(self, digits: int = 3) -> str:
        return format(self, f".{digits}f")

    def __format__(self, spec: str) -> str:
        spec = spec or ".3f"
        return f"{_num(self.estimate, spec)} [{_num(self.low, spec)}, {_num(self.high, spec)}]"

    def __str__(self) -> str:
        return format(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (for checkpoint sidecars); :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Interval:
        return cls(**{k: d[k] for k in ("estimate", "low", "high", "level", "n", "what") if k in d})


def _num(value: float, spec: str) -> str:
    return "∞" if value == math.inf else "-∞" if value == -math.inf else format(value, spec)


def intervals_to_dict(intervals: Mapping[str, Mapping[str, Interval]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{row: {metric: Interval}}`` (e.g. ``evaluate_restoration(..., intervals=True).intervals``) as plain JSON."""
    return {row: {m: iv.to_dict() for m, iv in values.items()} for row, values in intervals.items()}


def intervals_from_dict(d: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Interval]]:
    """The inverse of :func:`intervals_to_dict`."""
    return {row: {m: Interval.from_dict(iv) for m, iv in values.items()} for row, values in d.items()}


# ------------------------------------------------------------------------------------------ resampling


def _check(n_boot: int, level: float) -> None:
    check_int(n_boot, "n_boot", minimum=10, hint=" (bootstrap resamples; 2,000 is the default)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}.")


def _counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """``(b, n)`` multiplicities of ``b`` resamples of ``n`` items drawn with replacement (one bincount, no loop)."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _quantiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The two-sided percentile ends (NumPy's 'linear' rule), written out so +inf values (PSNR of a perfect
    image) give inf rather than NaN: NumPy interpolates inf - inf even when the weight is 0."""
    s = np.sort(stats)
    out = []
    for p in ((1 - level) / 2, (1 + level) / 2):
        pos = p * (len(s) - 1)
        i = int(math.floor(pos))
        a, b, g = float(s[i]), float(s[min(i + 1, len(s) - 1)]), pos - i
        out.append(a if g == 0 or a == b else a + (b - a) * g)
    return out[0], out[1]


def _per_image(values: object, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-d array of per-image values (at least 2); got shape {v.shape}.")
    if np.isnan(v).any() or (v == -np.inf).any():
        raise ValueError(f"{name} contains NaN or -inf.")
    return v


def _bootstrap(v: np.ndarray, transform: Callable[[np.ndarray], np.ndarray], *, n_boot: int, level: float,
               seed: int, label: str) -> Interval:
    _check(n_boot, level)
    rng = np.random.default_rng(seed)
    n = v.shape[0]
    chunk = max(1, _CHUNK // n)
    perfect = np.isinf(v)  # +inf: a perfect image's PSNR; a resample holding one has an infinite mean
    finite = np.where(perfect, 0.0, v)
    means = []
    for start in range(0, n_boot, chunk):  # blocks of resamples only bound memory; each block is one matmul
        counts = _counts(rng, min(chunk, n_boot - start), n)
        m = counts @ finite / n
        m[(counts[:, perfect] > 0).any(axis=1)] = np.inf
        means.append(m)
    stats = transform(np.concatenate(means))
    low, high = _quantiles(stats, level)
    return Interval(float(transform(v.mean())), low, high, level, n,
                    f"{level:.0%} bootstrap over {n:,} {label} ({n_boot:,} resamples)")


def bootstrap_mean(values: object, *, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0,
                   label: str = "images") -> Interval:
    """Percentile-bootstrap interval for the mean of per-image values (SSIM, PSNR), estimate = their mean.

    ``values``: a 1-d array or tensor (+inf allowed: a perfect image's PSNR). Seeded: the same call gives the
    same interval.
    """
    return _bootstrap(_per_image(values, "values"), lambda m: m, n_boot=n_boot, level=level, seed=seed,
                      label=label)


def bootstrap_rmse(per_image_mse: object, *, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile-bootstrap interval for the RMSE pooled over all pixels, from per-image mean squared errors.

    ``sqrt(mean(per_image_mse))`` equals :func:`coldlib.evaluation.rmse` (square root of the mean over all
    pixels) because every image has the same number of pixels; images are resampled, not pixels, since
    neighbouring pixels of one image are far from independent.
    """
    v = _per_image(per_image_mse, "per_image_mse")
    if (v < 0).any() or np.isinf(v).any():
        raise ValueError("per_image_mse must be finite and non-negative.")
    return _bootstrap(v, np.sqrt, n_boot=n_boot, level=level, seed=seed, label="images")


# ------------------------------------------------------------------------------------ Fréchet distances


def _features(x: object, name: str) -> np.ndarray:
    f = _as_float64(x, name)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) per-image features with N >= 2; got shape {f.shape}.")
    return f


def _weighted_stats(f: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means ``(b, D)`` and unbiased covariances ``(b, D, D)`` of ``f`` under integer weights ``w`` ``(b, N)``:
    the statistics FeatureStats would give for each resample, without materialising the resampled sets."""
    centre = f.mean(axis=0)  # centring first keeps the second moments free of cancellation
    fc = f - centre
    m = w.sum(axis=1)[:, None]
    mean = w @ fc / m
    scatter = np.swapaxes(w[:, :, None] * fc, 1, 2) @ fc - m[:, :, None] * mean[:, :, None] * mean[:, None]
    return mean + centre, scatter / (m[:, :, None] - 1)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + np.swapaxes(s, -1, -2)) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def _frechet_batch(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """:func:`coldlib.evaluation.frechet_distance` over a stack of Gaussians (same formula, batched linear algebra)."""
    tr_covmean = np.linalg.svd(_sqrt_psd(s2) @ _sqrt_psd(s1), compute_uv=False).sum(axis=-1)
    diff = mu1 - mu2
    value = (diff * diff).sum(-1) + np.trace(s1, axis1=-2, axis2=-1) + np.trace(s2, axis1=-2, axis2=-1) - 2 * tr_covmean
    return np.clip(value, 0.0, None)  # only round-off can make it negative


def _fd_stats(f1: np.ndarray, f2: np.ndarray, draw: Callable[[int], tuple[np.ndarray, np.ndarray]],
              n_draws: int) -> np.ndarray:
    """Fréchet distances for ``n_draws`` weightings ``(w1, w2) = draw(b)``, in blocks that bound memory."""
    d, n = f1.shape[1], max(f1.shape[0], f2.shape[0])
    chunk = max(1, _CHUNK // (d * max(d, n)))
    out = []
    for start in range(0, n_draws, chunk):
        w1, w2 = draw(min(chunk, n_draws - start))
        out.append(_frechet_batch(*_weighted_stats(f1, w1), *_weighted_stats(f2, w2)))
    return np.concatenate(out)


def frechet_interval(features: object, reference: object, *, paired: bool = False, n_boot: int = FD_N_BOOT,
                     level: float = 0.95, seed: int = 0) -> Interval:
    """The Fréchet distance between two feature sets ``(N, D)`` with its spread over resampled images.

    Estimate: the distance on the full sets (as :meth:`FeatureStats.frechet_distance`). Which images are
    resampled: *both* sets, because both are finite draws (another set of reference images moves the
    distance as much as another set of generated ones). ``paired=True`` when row ``i`` of ``features`` was
    made from row ``i`` of ``reference`` (a restoration of that image, as in ``evaluate_restoration``): then
    the same indices are drawn for both, since another draw of test images changes both sets together, and a
    perfect restorer correctly gets zero spread. Otherwise each set is resampled independently.

    The interval is the percentile spread of the resampled distances shifted to sit on the estimate: a
    resample holds only about 63% distinct images, which adds its own small-sample upward bias (as large as
    the full set's), so the resamples' *location* says nothing about the estimate while their *spread* does.
    The bias itself is what :func:`frechet_floor` shows: compare a distance with the floor at the same ``n``.
    Near zero the bootstrap overstates the spread (a distance cannot go below 0, and duplicated images add
    noise), so there the floor, not this interval, says whether a distance is small.
    """
    f1, f2 = _features(features, "features"), _features(reference, "reference")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features have {f1.shape[1]} dimensions but reference has {f2.shape[1]}.")
    if paired and f1.shape[0] != f2.shape[0]:
        raise ValueError(f"paired=True needs one feature row per reference row; got {f1.shape[0]} and {f2.shape[0]}.")
    _check(n_boot, level)
    rng = np.random.default_rng(seed)

    def draw(b: int) -> tuple[np.ndarray, np.ndarray]:
        w1 = _counts(rng, b, f1.shape[0])
        return w1, (w1 if paired else _counts(rng, b, f2.shape[0]))

    stats = _fd_stats(f1, f2, draw, n_boot)
    estimate = FeatureStats.from_features(f1).frechet_distance(FeatureStats.from_features(f2))
    low, high = _quantiles(stats, level)
    centre = float(np.median(stats))
    pairs = f"{f1.shape[0]:,} image pairs" if paired else f"{f1.shape[0]:,} and {f2.shape[0]:,} images"
    return Interval(estimate, max(0.0, estimate + low - centre), estimate + high - centre, level, f1.shape[0],
                    f"{level:.0%} bootstrap spread over {pairs} ({n_boot:,} resamples, centred on the estimate)")


def frechet_floor(real_features: object, n: int, *, n_splits: int = FD_N_BOOT, level: float = 0.95,
                  seed: int = 0) -> Interval:
    """The real-vs-real floor: the Fréchet distance between two disjoint sets of ``n`` real images each.

    A perfect generator (its images indistinguishable from real ones) would still get this at ``n`` images,
    because both distances are biased upwards for finite sets: a measured distance inside this range is as
    good as real at that ``n``. (``evaluate_restoration`` measures each row against the very images restored,
    so an exact restoration gets 0 there; the floor is what equally realistic *other* images would get.)

    ``real_features`` ``(N, D)`` needs ``N >= 2 n`` (e.g. features of held-out images). Each of ``n_splits``
    random splits draws two disjoint sets of ``n`` (random, not the first and second halves: a dataset's order
    can drift, as MNIST's test split does); the estimate is the mean distance over splits (the expected floor)
    and the interval the range holding the central ``level`` of them, i.e. where one real-vs-real measurement
    at this ``n`` falls.
    """
    f = _features(real_features, "real_features")
    check_int(n, "n", minimum=2, hint=" (images per set)")
    if f.shape[0] < 2 * n:
        raise ValueError(f"a floor at n={n:,} needs two disjoint sets of {n:,} real images ({2 * n:,}); got "
                         f"{f.shape[0]:,}.")
    _check(n_splits, level)
    rng = np.random.default_rng(seed)
    N = f.shape[0]

    def draw(b: int) -> tuple[np.ndarray, np.ndarray]:
        perm = rng.permuted(np.tile(np.arange(N), (b, 1)), axis=1)
        w1, w2 = np.zeros((b, N)), np.zeros((b, N))
        np.put_along_axis(w1, perm[:, :n], 1.0, axis=1)
        np.put_along_axis(w2, perm[:, n : 2 * n], 1.0, axis=1)
        return w1, w2

    stats = _fd_stats(f, f, draw, n_splits)
    low, high = _quantiles(stats, level)
    return Interval(float(stats.mean()), low, high, level, n,
                    f"real-vs-real floor: {level:.0%} range over {n_splits:,} random splits of {N:,} real images "
                    f"into two disjoint sets of {n:,}")


# ------------------------------------------------------------------------------------------ comparing


@dataclass(frozen=True)
class Comparison:
    """The verdict of :func:`compare`; ``str()`` gives the sentence a lesson prints.

    ``verdict`` is "ahead" / "level" for two intervals, "below" / "consistent" / "above" against a single
    number; ``leader`` names the better one when the intervals separate (``None`` otherwise).
    """

    a: Interval
    b: Interval | float
    names: tuple[str, str]
    verdict: str
    leader: str | None = None

    @property
    def separated(self) -> bool:
        return self.verdict in ("ahead", "below", "above")

    def __str__(self) -> str:
        (na, nb), a, b = self.names, self.a, self.b
        if not isinstance(b, Interval):
            word = "consistent with" if self.verdict == "consistent" else self.verdict
            return f"{na} {word} {nb}'s {_plain(b)} ({a})"
        if self.verdict == "level":
            return f"{na} and {nb} level (intervals overlap: {a} vs {b})"
        first, second = (a, b) if self.leader == na else (b, a)
        other = nb if self.leader == na else na
        return f"{self.leader} ahead of {other} ({first} vs {second})"


def _plain(value: float) -> str:
    return _num(value, "g")  # a published number as printed: 0.757, 4.69, 20


def compare(a: Interval, b: Interval | float, *, names: tuple[str, str] | None = None,
            higher_is_better: bool) -> Comparison:
    """Which of two measurements is ahead, read from their intervals rather than their point estimates.

    Two intervals: "A ahead of B" only when they do not overlap (touching ends count as overlap), otherwise
    "A and B level". Non-overlap of two 95% intervals is a conservative test (stricter than a 5% test of the
    difference), so "level" means "not shown to differ", not "equal". Against a single number ``b`` (a
    paper's value, which has no interval): "ours below / above the paper's 0.757" when ``a``'s interval
    excludes it, "consistent with" when it contains it. ``names`` default to ("A", "B"), or ("ours",
    "the paper") against a number. ``higher_is_better``: True for SSIM and PSNR, False for RMSE and distances.
    """
    if not isinstance(a, Interval):
        raise ValueError(f"a must be an Interval; got {type(a).__name__}.")
    if not isinstance(higher_is_better, bool):
        raise ValueError("higher_is_better must be True (SSIM, PSNR) or False (RMSE, Fréchet distances).")
    if isinstance(b, Interval):
        names = names or ("A", "B")
        if b.level != a.level:
            raise ValueError(f"compare intervals of one confidence level; got {a.level} and {b.level}.")
        if a.low <= b.high and b.low <= a.high:
            return Comparison(a, b, names, "level")
        a_better = (a.low > b.high) == higher_is_better
        return Comparison(a, b, names, "ahead", names[0] if a_better else names[1])
    if isinstance(b, bool) or not isinstance(b, (int, float)) or math.isnan(b):
        raise ValueError(f"b must be an Interval or a number (e.g. the paper's value); got {b!r}.")
    names = names or ("ours", "the paper")
    b = float(b)
    if a.contains(b):
        return Comparison(a, b, names, "consistent")
    ours_better = (a.low > b) == higher_is_better
    return Comparison(a, b, names, "above" if a.low > b else "below", names[0] if ours_better else names[1])


#: Whether a higher value is better, for every metric a table can hold.
HIGHER_IS_BETTER = {"SSIM": True, "PSNR": True, "RMSE": False, "FD_MNIST-CNN": False, "FID": False}


def verdicts(intervals: Mapping[str, Mapping[str, Interval]], *, rows: Sequence[str] = ("Direct", "Algorithm 1",
             "Algorithm 2"), metrics: Sequence[str] = ("SSIM", "RMSE"),
             paper: Mapping[str, Mapping[str, float]] | None = None) -> list[str]:
    """Every pairwise ordering of ``rows`` on ``metrics``, and each row against the paper, from intervals.

    ``intervals`` is ``results.intervals`` of ``evaluate_restoration(..., intervals=True)``. One sentence per
    comparison (:func:`compare`): lessons and the model card print these instead of ranking point estimates.
    Rows or metrics the results do not hold are skipped; the paper's number is used where ``paper`` has it.
    """
    lines = []
    present = [r for r in rows if r in intervals]
    for metric in metrics:
        higher = HIGHER_IS_BETTER[metric]
        for i, a in enumerate(present):
            if metric not in intervals[a]:
                continue
            for b in present[i + 1:]:
                if metric in intervals[b]:
                    lines.append(f"{metric}: {compare(intervals[a][metric], intervals[b][metric], names=(a, b), higher_is_better=higher)}")
            if paper is not None and metric in paper.get(a, {}):
                lines.append(f"{metric}, {a}: {compare(intervals[a][metric], paper[a][metric], higher_is_better=higher)}")
    return lines


def mnist_fd_interval(real: object, fake: object, *, device: str | torch.device | None = None,
                      n_boot: int = FD_N_BOOT, seed: int = 0) -> Interval:
    """FD_MNIST-CNN between two image sets ``(N, 1, 32, 32)`` with its spread (:func:`frechet_interval`).

    The estimate equals :func:`coldlib.evaluation.mnist_fd`; both sets are resampled independently (a
    generator's samples are not paired with the reference images). Print it beside :func:`frechet_floor`
    at the same number of images, and order generators with :func:`compare` or :func:`verdicts`.
    """
    from .frechet import mnist_cnn_features  # the shipped classifier's 64-d features

    return frechet_interval(mnist_cnn_features(fake, device=device), mnist_cnn_features(real, device=device),
                            n_boot=n_boot, seed=seed)

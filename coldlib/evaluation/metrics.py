"""Restoration metrics and the paper's evaluation table (Degraded / Direct / Algorithm 1 / Algorithm 2).

Images live in [-1, 1]; the metrics are defined on the displayable range [0, 1], so
:func:`coldlib.plotting.to_unit` (the one conversion for showing and measuring) maps to float32 and clamps
before measuring (a restorer's output may overshoot; what is shown on screen is the clamped image):

* RMSE: the square root of the mean squared error over *all* pixels of all images (the paper's definition);
* PSNR: ``10 log10(1 / MSE)`` per image in dB, averaged over images (``inf`` for a perfect restoration);
* SSIM: the authors' convention, computed by their own library, ``pytorch_msssim.ssim``: an 11-tap Gaussian
  window with σ = 1.5, K = (0.01, 0.03), population (biased) variances, data range 1, averaged over the windows
  that lie *fully inside* the image (no padding), then over channels and images. torchmetrics' default SSIM
  pads the borders instead and averages over every pixel; on MNIST, whose borders are empty background that
  both images share, it reads about 0.08 higher, so it would not stand beside the paper's numbers. The tests
  tie this SSIM to scikit-image's independent ``structural_similarity`` (Gaussian weights, same settings).

Both images are clamped to [0, 1] before every metric (RMSE, PSNR and SSIM): a restorer's output can overshoot
[-1, 1] slightly, and the clamped image is what a reader sees.

:func:`evaluate_restoration` fixes three inconsistencies of the authors' evaluation scripts
(``notebooks/paper_notes.md`` section (e)): "Degraded" is the true ``x_T = D(x0, T, z)`` (not the state after
the first sampler update), "Algorithm 2" is the final ``x_0`` (not the last prediction ``R(x_1, 1)``), and the
restorer runs in eval mode (their dropout stayed on). Every column is measured on the same images with the
same random ingredient ``z``, and the optional Fréchet column (``frechet="mnist-cnn"`` or ``"inception"``)
comes from the same images in the same pass. With ``intervals=True`` it also returns a bootstrap interval for
every number (:mod:`coldlib.evaluation.intervals`), and :func:`format_table` prints them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from pytorch_msssim import ssim as _authors_ssim  # the authors' SSIM (valid windows only): comparable with the paper
from torchmetrics.functional.image import peak_signal_noise_ratio
from tqdm.auto import tqdm

from ..degradations import check_images
from ..diffusion import METHODS, SAMPLER_NAMES, ColdDiffusion, device_of, eval_mode
from ..env import progress_bars
from ..plotting import to_unit
from ..validate import check_int
from .frechet import FD_MNIST_CNN, FID_INCEPTION, FeatureStats, check_no_mixing, fd_column_name, feature_extractor
from .intervals import FD_N_BOOT, N_BOOT, Interval, bootstrap_mean, bootstrap_rmse, frechet_interval

__all__ = ["rmse", "psnr", "ssim", "metric_intervals", "evaluate_restoration", "RestorationResults", "format_table",
           "format_frechet_table", "SSIM_CONVENTION", "EVAL_Z_SEED"]

_METRICS = ("SSIM", "RMSE", "PSNR")

#: How :func:`ssim` measures, in words: checkpoints record it beside their metrics (``metrics_protocol``).
SSIM_CONVENTION = ("pytorch_msssim.ssim, the authors' convention: 11-tap Gaussian window, sigma 1.5, only windows "
                   "fully inside the image, data range 1")
_SSIM_WINDOW = 11

#: The seed of the one ``torch.Generator`` that draws ``z`` for the held-out evaluation (the trainer's final
#: evaluation and ``bench/eval_restorers.py``): checkpoints record it as ``metrics_protocol["z_seed"]``.
EVAL_Z_SEED: int = 1234


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = check_images(a, name="a")
    b = check_images(b, name="b")
    if a.shape != b.shape:
        raise ValueError(f"the two batches must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}.")
    return to_unit(a), to_unit(b.to(a.device))


def _squared_error_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.double() - b.double()) ** 2).sum()


def _psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))


def _ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if min(a.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM uses an {_SSIM_WINDOW}x{_SSIM_WINDOW} window, so images need sides of at least "
                         f"{_SSIM_WINDOW} pixels; got {tuple(a.shape[-2:])}.")
    # float64: the per-window statistics of a nearly flat image cancel badly in float32.
    return _authors_ssim(a.double(), b.double(), data_range=1.0, size_average=False, win_size=_SSIM_WINDOW,
                         win_sigma=1.5, K=(0.01, 0.03), nonnegative_ssim=False)


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Root mean squared error over all pixels, measured in [0, 1]."""
    a, b = _pair(a, b)
    return math.sqrt(float(_squared_error_sum(a, b)) / a.numel())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB (data range 1), averaged over images; ``inf`` when identical.
    """
    a, b = _pair(a, b)
    return float(_psnr_per_image(a, b).double().mean())


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Structural similarity (1 = identical) in the authors' convention (see the module notes), averaged over images."""
    a, b = _pair(a, b)
    return float(_ssim_per_image(a, b).double().mean())


def _mse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.double() - b.double()) ** 2).flatten(1).mean(1)


def _intervals(ssim_values: torch.Tensor, mse_values: torch.Tensor, psnr_values: torch.Tensor, n_boot: int,
               seed: int) -> dict[str, Interval]:
    return {"SSIM": bootstrap_mean(ssim_values, n_boot=n_boot, seed=seed),
            "RMSE": bootstrap_rmse(mse_values, n_boot=n_boot, seed=seed),
            "PSNR": bootstrap_mean(psnr_values, n_boot=n_boot, seed=seed)}


def metric_intervals(a: torch.Tensor, b: torch.Tensor, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Interval]:
    """SSIM, RMSE and PSNR of ``a`` against ``b`` with 95% bootstrap intervals over the images.

    The estimates are :func:`ssim`, :func:`rmse` and :func:`psnr` (up to float64 summation order).
    """
    a, b = _pair(a, b)
    return _intervals(_ssim_per_image(a, b), _mse_per_image(a, b), _psnr_per_image(a, b), n_boot, seed)


class _Accumulator:
    """Running sums so a batched evaluation equals one evaluation of the whole set.

    ``keep=True`` also keeps the per-image values, which the bootstrap intervals resample.
    """

    def __init__(self, keep: bool = False) -> None:
        self.images = 0
        self.pixels = 0
        self.squared_error = 0.0
        self.psnr = 0.0
        self.ssim = 0.0
        self.kept: dict[str, list[torch.Tensor]] | None = {"SSIM": [], "MSE": [], "PSNR": []} if keep else None

    def add(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        a, b = to_unit(pred), to_unit(target)
        self.images += a.shape[0]
        self.pixels += a.numel()
        self.squared_error += float(_squared_error_sum(a, b))
        psnr_values, ssim_values = _psnr_per_image(a, b).double(), _ssim_per_image(a, b).double()
        self.psnr += float(psnr_values.sum())
        self.ssim += float(ssim_values.sum())
        if self.kept is not None:
            for key, values in (("SSIM", ssim_values), ("MSE", _mse_per_image(a, b)), ("PSNR", psnr_values)):
                self.kept[key].append(values.cpu())

    def result(self) -> dict[str, float]:
        return {"SSIM": self.ssim / self.images, "RMSE": math.sqrt(self.squared_error / self.pixels),
                "PSNR": self.psnr / self.images}

    def intervals(self, n_boot: int, seed: int) -> dict[str, Interval]:
        kept = {key: torch.cat(values) for key, values in self.kept.items()}
        return _intervals(kept["SSIM"], kept["MSE"], kept["PSNR"], n_boot, seed)


class RestorationResults(dict):
    """What ``evaluate_restoration(..., intervals=True)`` returns: the same ``{row: {metric: float}}`` dict as
    without intervals, so everything that reads it (tables, ``json.dumps`` for sidecars, comparisons) works
    unchanged, plus ``.intervals``: ``{row: {metric: Interval}}`` for the same rows and metrics.

    ``coldlib.evaluation.intervals_to_dict(results.intervals)`` is their JSON form. Plain-dict copies
    (``dict(results)``, a JSON round trip) drop the intervals.
    """

    def __init__(self, results: Mapping[str, dict[str, float]], intervals: dict[str, dict[str, Interval]]) -> None:
        super().__init__(results)
        self.intervals = intervals


@torch.no_grad()
def evaluate_restoration(diffusion: ColdDiffusion, x0: torch.Tensor, *, batch_size: int = 64,
                         generator: torch.Generator | None = None, methods: Sequence[str] = METHODS,
                         frechet: str | None = None, progress: bool = False, intervals: bool = False,
                         n_boot: int | None = None, boot_seed: int | None = None,
                         **frechet_kw) -> dict[str, dict[str, float]] | RestorationResults:
    """The paper's restoration table on held-out images ``x0`` (in [-1, 1]): SSIM, RMSE and PSNR per row.

    Rows: "Degraded" = ``x_T = D(x0, T, z)``, then one per sampler in ``methods``, named by
    :data:`coldlib.diffusion.SAMPLER_NAMES`: "Direct" = ``R(x_T, T)``, "Algorithm 1" and "Algorithm 2" = the
    final ``x_0`` of the naive and improved samplers, all started from the same ``x_T``. ``z`` (the hole
    position, snow field, noise, ...) is drawn once per batch with ``generator`` and shared by every row, so a
    seeded generator makes the table reproducible. The model runs in eval mode (dropout off) and gets its
    previous train/eval modes back afterwards.

    ``frechet`` ("mnist-cnn" or "inception") adds the column ``fd_column_name(frechet)`` ("FD_MNIST-CNN" or
    "FID") to every row: the Fréchet distance between the features of that row's images and those of the
    clean ``x0``, from the very images the other columns measure, in the same pass (features are accumulated
    batch by batch; no image is kept). ``frechet_kw`` go to :func:`coldlib.evaluation.feature_extractor`
    (``weights_path=`` for Inception; ``device=``, by default the restorer's). ``progress`` shows a tqdm bar
    over the batches.

    ``intervals=True`` returns a :class:`RestorationResults`: the very same dict, plus ``.intervals[row][metric]``,
    95% bootstrap intervals over the images (:mod:`coldlib.evaluation.intervals`): percentile intervals for
    SSIM, RMSE and PSNR (2,000 resamples) and, for the Fréchet column, the spread over resampled image pairs
    (:func:`coldlib.evaluation.frechet_interval`, 500 resamples). ``n_boot`` sets both counts (each Fréchet
    resample costs seconds with Inception, so pass fewer there). Per-image values (and features) are kept for
    that, and one ``boot_seed`` (default 0) resamples every row with the same indices.
    """
    if not isinstance(diffusion, ColdDiffusion):
        raise ValueError(f"diffusion must be a coldlib ColdDiffusion; got {type(diffusion).__name__}.")
    x0 = check_images(x0, channels=diffusion.degradation.channels)
    check_int(batch_size, "batch_size")
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct names from {METHODS}; got {methods}.")
    if frechet is None and frechet_kw:
        raise ValueError(f"{sorted(frechet_kw)} configure the Fréchet column; pass frechet='mnist-cnn' or "
                         "'inception' too (or leave them out).")
    if not intervals and (n_boot is not None or boot_seed is not None):
        raise ValueError("n_boot and boot_seed configure the bootstrap intervals; pass intervals=True too.")
    if intervals and x0.shape[0] < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 images (hundreds for a useful one); x0 has "
                         f"{x0.shape[0]}.")
    if frechet is not None and x0.shape[0] < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 images (hundreds for a meaningful value); x0 has "
                         f"{x0.shape[0]}.")
    D, T = diffusion.degradation, diffusion.T
    device = device_of(diffusion, x0.device)
    column = None if frechet is None else fd_column_name(frechet)
    # Built before the loop, so a missing network (e.g. Inception offline) fails at once, not after sampling.
    extract = None if frechet is None else feature_extractor(frechet, **{"device": device, **frechet_kw})
    rows = ["Degraded", *(SAMPLER_NAMES[m] for m in methods)]
    pixels = {row: _Accumulator(keep=intervals) for row in rows}
    features = {row: FeatureStats() for row in rows}
    reference = FeatureStats()
    kept: dict[str, list[torch.Tensor]] = {row: [] for row in ("reference", *rows)}  # features, for intervals
    with eval_mode(diffusion):
        for start in tqdm(range(0, x0.shape[0], batch_size), desc="evaluating", unit="batch", disable=not progress_bars(progress)):
            batch = x0[start : start + batch_size].to(device)
            z = D.draw_z(batch, generator)
            xt = D(batch, T, z)
            images = {"Degraded": xt, **{SAMPLER_NAMES[m]: diffusion.sample(xt, T, method=m, z=z) for m in methods}}
            if extract is not None:
                reference.update(feats := extract(batch))
                if intervals:
                    kept["reference"].append(feats)
            for row, out in images.items():
                pixels[row].add(out, batch)
                if extract is not None:
                    features[row].update(feats := extract(out))
                    if intervals:
                        kept[row].append(feats)
    results = {row: pixels[row].result() for row in rows}
    if column is not None:
        for row in rows:
            results[row][column] = reference.frechet_distance(features[row])
    if not intervals:
        return results
    seed = 0 if boot_seed is None else boot_seed
    spreads = {row: pixels[row].intervals(N_BOOT if n_boot is None else n_boot, seed) for row in rows}
    if column is not None:
        for row in rows:  # row i of every set is the restoration of reference image i: resample them as pairs
            spreads[row][column] = frechet_interval(torch.cat(kept[row]), torch.cat(kept["reference"]), paired=True,
                                                    n_boot=FD_N_BOOT if n_boot is None else n_boot, seed=seed)
    return RestorationResults(results, spreads)


def _fmt(metric: str, value: float | None, interval: Interval | None = None) -> str:
    spec = ".2f" if metric in ("PSNR", "FID") else ".3f"
    if interval is not None:
        return format(interval, spec)
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return format(value, spec)


def format_table(results: dict[str, dict[str, float]], paper: dict[str, dict[str, float]] | None = None,
                 intervals: Mapping[str, Mapping[str, Interval]] | None = None) -> str:
    """A markdown table of :func:`evaluate_restoration` results, with the paper's numbers beside ours if given.

    ``paper`` has the same shape (e.g. ``coldlib.experiments.paper_table("blur", "mnist")``);
    its "Sampled" row is read as "Algorithm 2", and metrics we do not compute (FID) get a paper-only column.
    ``intervals`` (by default ``results.intervals`` when ``results`` has them: ``evaluate_restoration(...,
    intervals=True)``) are printed as ``estimate [low, high]``, with a note under the table saying how they
    were made.
    """
    if intervals is None:
        intervals = getattr(results, "intervals", None) or {}
    paper = {("Algorithm 2" if k == "Sampled" else k): v for k, v in (paper or {}).items()}
    ours = [m for m in _METRICS if any(m in row for row in results.values())]
    ours += sorted({m for row in results.values() for m in row} - set(ours))
    paper_metrics = {m for row in paper.values() for m in row}
    header, keys = ["Column"], []
    for metric in ours:
        header.append(metric)
        keys.append(("ours", metric))
        if metric in paper_metrics:
            header.append(f"{metric} (paper)")
            keys.append(("paper", metric))
    for metric in sorted(paper_metrics - set(ours)):
        header.append(f"{metric} (paper)")
        keys.append(("paper", metric))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in results.items():
        cells = [name]
        for source, metric in keys:
            if source == "ours":
                cells.append(_fmt(metric, row.get(metric), intervals.get(name, {}).get(metric)))
            else:
                cells.append(_fmt(metric, paper.get(name, {}).get(metric)))
        lines.append("| " + " | ".join(cells) + " |")
    how: dict[str, list[str]] = {}  # how each metric's intervals were made, metrics sharing a method together
    for metric in ours:
        whats = {values[metric].what for values in intervals.values() if metric in values}
        for what in sorted(whats):
            how.setdefault(what, []).append(metric)
    notes = "; ".join(f"{', '.join(metrics)}: {what}" for what, metrics in how.items())
    return "\n".join(lines) + (f"\n\nOurs as estimate [interval]. {notes}." if notes else "")


def format_frechet_table(results: dict[str, dict[str, float]],
                         paper: dict[str, dict[str, float]] | None = None, floor: Interval | None = None) -> str:
    """:func:`format_table`, never mixing distances: with FD_MNIST-CNN the paper's FID is left out.

    A note under the table says which distance it holds. ``floor``
    (:func:`coldlib.evaluation.frechet_floor` on real images, at the table's number of images) adds the
    real-vs-real floor under it: what realistic images other than the reference would get at that ``n``.
    """
    check_no_mixing(results)
    has_fd = any(FD_MNIST_CNN in row for row in results.values())
    note = ""
    if has_fd:
        dropped = paper is not None and any(FID_INCEPTION in row for row in paper.values())
        paper = {k: {m: v for m, v in row.items() if m != FID_INCEPTION} for k, row in (paper or {}).items()} or None
        note = (f"\n\n{FD_MNIST_CNN}: Fréchet distance on the shipped MNIST classifier's features, not Inception FID"
                + ("; the paper's FID is left out because it is not comparable." if dropped else "."))
    elif any(FID_INCEPTION in row for row in results.values()):
        note = "\n\nFID: Inception FID (torchmetrics / torch-fidelity InceptionV3, 2048-d pool features)."
    if floor is not None:
        sizes = {iv.n for values in getattr(results, "intervals", {}).values() for iv in values.values()}
        if floor.n is not None and sizes and sizes != {floor.n}:
            raise ValueError(f"the floor was measured at n={floor.n:,} images, the table at n={sorted(sizes)}: "
                             "Fréchet distances are only comparable at the same n.")
        at_n = "" if floor.n is None else f" at n = {floor.n:,}"
        note += (f"\n\nReal-vs-real floor{at_n}: {floor:.3f} (the distance between two disjoint sets of real "
                 "images, mean and range over random splits: what images as realistic as real ones, but not copies "
                 "of the reference, would get).")
    return format_table(results, paper) + note

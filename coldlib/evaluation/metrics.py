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
comes from the same images in the same pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

__all__ = ["rmse", "psnr", "ssim", "evaluate_restoration", "format_table", "format_frechet_table", "SSIM_CONVENTION",
           "EVAL_Z_SEED"]

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


class _Accumulator:
    """Running sums so a batched evaluation equals one evaluation of the whole set."""

    def __init__(self) -> None:
        self.images = 0
        self.pixels = 0
        self.squared_error = 0.0
        self.psnr = 0.0
        self.ssim = 0.0

    def add(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        a, b = to_unit(pred), to_unit(target)
        self.images += a.shape[0]
        self.pixels += a.numel()
        self.squared_error += float(_squared_error_sum(a, b))
        self.psnr += float(_psnr_per_image(a, b).double().sum())
        self.ssim += float(_ssim_per_image(a, b).double().sum())

    def result(self) -> dict[str, float]:
        return {"SSIM": self.ssim / self.images, "RMSE": math.sqrt(self.squared_error / self.pixels),
                "PSNR": self.psnr / self.images}


@torch.no_grad()
def evaluate_restoration(diffusion: ColdDiffusion, x0: torch.Tensor, *, batch_size: int = 64,
                         generator: torch.Generator | None = None, methods: Sequence[str] = METHODS,
                         frechet: str | None = None, progress: bool = False,
                         **frechet_kw) -> dict[str, dict[str, float]]:
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
    if frechet is not None and x0.shape[0] < 2:
        raise ValueError(f"a Fréchet distance needs at least 2 images (hundreds for a meaningful value); x0 has "
                         f"{x0.shape[0]}.")
    D, T = diffusion.degradation, diffusion.T
    device = device_of(diffusion, x0.device)
    column = None if frechet is None else fd_column_name(frechet)
    # Built before the loop, so a missing network (e.g. Inception offline) fails at once, not after sampling.
    extract = None if frechet is None else feature_extractor(frechet, **{"device": device, **frechet_kw})
    rows = ["Degraded", *(SAMPLER_NAMES[m] for m in methods)]
    pixels = {row: _Accumulator() for row in rows}
    features = {row: FeatureStats() for row in rows}
    reference = FeatureStats()
    with eval_mode(diffusion):
        for start in tqdm(range(0, x0.shape[0], batch_size), desc="evaluating", unit="batch", disable=not progress_bars(progress)):
            batch = x0[start : start + batch_size].to(device)
            z = D.draw_z(batch, generator)
            xt = D(batch, T, z)
            images = {"Degraded": xt, **{SAMPLER_NAMES[m]: diffusion.sample(xt, T, method=m, z=z) for m in methods}}
            if extract is not None:
                reference.update(extract(batch))
            for row, out in images.items():
                pixels[row].add(out, batch)
                if extract is not None:
                    features[row].update(extract(out))
    results = {row: pixels[row].result() for row in rows}
    if column is not None:
        for row in rows:
            results[row][column] = reference.frechet_distance(features[row])
    return results


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if metric in ("PSNR", "FID") else f"{value:.3f}"


def format_table(results: dict[str, dict[str, float]], paper: dict[str, dict[str, float]] | None = None) -> str:
    """A markdown table of :func:`evaluate_restoration` results, with the paper's numbers beside ours if given.

    ``paper`` has the same shape (e.g. ``coldlib.experiments.paper_table("blur", "mnist")``);
    its "Sampled" row is read as "Algorithm 2", and metrics we do not compute (FID) get a paper-only column.
    """
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
            value = row.get(metric) if source == "ours" else paper.get(name, {}).get(metric)
            cells.append(_fmt(metric, value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_frechet_table(results: dict[str, dict[str, float]],
                         paper: dict[str, dict[str, float]] | None = None) -> str:
    """:func:`format_table`, never mixing distances: with FD_MNIST-CNN the paper's FID is left out.

    A note under the table says which distance it holds.
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
    return format_table(results, paper) + note

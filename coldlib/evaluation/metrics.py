"""Restoration metrics and the paper's evaluation table (Degraded / Direct / Algorithm 1 / Algorithm 2).

Images live in [-1, 1]; the metrics are defined on the displayable range [0, 1], so :func:`to_unit` maps and
clamps before measuring (a restorer's output may overshoot; what is shown on screen is the clamped image):

* RMSE: the square root of the mean squared error over *all* pixels of all images (the paper's definition);
* PSNR: ``10 log10(1 / MSE)`` per image in dB, averaged over images (``inf`` for a perfect restoration);
* SSIM: torchmetrics' SSIM (11×11 Gaussian window, σ = 1.5, ``data_range=1``) per image, averaged. The authors
  use ``pytorch_msssim.ssim``, which has the same window but ignores the borders instead of padding them, so
  small differences in the third decimal are expected.

:func:`evaluate_restoration` fixes three inconsistencies of the authors' evaluation scripts
(``shared/reference/paper.md`` section (e)): "Degraded" is the true ``x_T = D(x0, T, z)`` (not the state after
the first sampler update), "Algorithm 2" is the final ``x_0`` (not the last prediction ``R(x_1, 1)``), and the
restorer runs in eval mode (their dropout stayed on). Every column is measured on the same images with the
same random ingredient ``z``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ..degradations import check_images
from ..diffusion import METHODS, SAMPLER_NAMES, ColdDiffusion

__all__ = ["to_unit", "rmse", "psnr", "ssim", "evaluate_restoration", "format_table", "COLUMNS", "PAPER_TABLES"]

#: Column name of each sampler in the results table.
COLUMNS = SAMPLER_NAMES
_METRICS = ("SSIM", "RMSE", "PSNR")
_SSIM_WINDOW = 11

#: The paper's numbers (``shared/reference/paper.md`` section (d)); "Sampled" in the paper is Algorithm 2.
#: Keys are (kind, dataset) as in :func:`coldlib.degradations.preset` ("pixelate" is the paper's super-resolution).
PAPER_TABLES: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    ("blur", "mnist"): {"Degraded": {"FID": 438.59, "SSIM": 0.287, "RMSE": 0.287},
                        "Direct": {"FID": 5.10, "SSIM": 0.757, "RMSE": 0.142},
                        "Algorithm 2": {"FID": 4.69, "SSIM": 0.718, "RMSE": 0.154}},
    ("blur", "cifar10"): {"Degraded": {"FID": 298.60, "SSIM": 0.315, "RMSE": 0.136},
                          "Direct": {"FID": 83.69, "SSIM": 0.775, "RMSE": 0.071},
                          "Algorithm 2": {"FID": 80.08, "SSIM": 0.773, "RMSE": 0.075}},
    ("blur", "celeba"): {"Degraded": {"FID": 382.81, "SSIM": 0.254, "RMSE": 0.193},
                         "Direct": {"FID": 36.37, "SSIM": 0.607, "RMSE": 0.083},
                         "Algorithm 2": {"FID": 26.14, "SSIM": 0.568, "RMSE": 0.093}},
    ("pixelate", "mnist"): {"Degraded": {"FID": 368.56, "SSIM": 0.178, "RMSE": 0.231},
                            "Direct": {"FID": 4.05, "SSIM": 0.823, "RMSE": 0.114},
                            "Algorithm 2": {"FID": 4.33, "SSIM": 0.820, "RMSE": 0.115}},
    ("pixelate", "cifar10"): {"Degraded": {"FID": 358.99, "SSIM": 0.279, "RMSE": 0.146},
                              "Direct": {"FID": 169.94, "SSIM": 0.420, "RMSE": 0.152},
                              "Algorithm 2": {"FID": 152.76, "SSIM": 0.411, "RMSE": 0.155}},
    ("pixelate", "celeba"): {"Degraded": {"FID": 349.85, "SSIM": 0.335, "RMSE": 0.225},
                             "Direct": {"FID": 112.84, "SSIM": 0.400, "RMSE": 0.196},
                             "Algorithm 2": {"FID": 96.92, "SSIM": 0.381, "RMSE": 0.201}},
    # Table 2 (inpainting): only the FIDs were found; its Degraded column and all SSIM/RMSE are unknown.
    ("inpaint", "mnist"): {"Direct": {"FID": 2.24}, "Algorithm 2": {"FID": 1.61}},
    ("inpaint", "cifar10"): {"Direct": {"FID": 9.97}, "Algorithm 2": {"FID": 8.92}},
    ("inpaint", "celeba"): {"Direct": {"FID": 7.74}, "Algorithm 2": {"FID": 5.73}},
}


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to [0, 1] as float32, clamping (metrics are defined on the displayable range).

    The clamp is for measuring only; samplers never clamp.
    """
    return ((x.float() + 1) / 2).clamp(0, 1)


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
    return structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")


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
    """Structural similarity (1 = identical), averaged over images."""
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


def _device_of(module: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return fallback


@torch.no_grad()
def evaluate_restoration(diffusion: ColdDiffusion, x0: torch.Tensor, *, batch_size: int = 64,
                         generator: torch.Generator | None = None,
                         methods: Sequence[str] = METHODS) -> dict[str, dict[str, float]]:
    """The paper's restoration table on held-out images ``x0`` (in [-1, 1]): SSIM, RMSE and PSNR per column.

    Columns: "Degraded" = ``x_T = D(x0, T, z)``, "Direct" =
    ``R(x_T, T)``, "Algorithm 1" and "Algorithm 2" = the final ``x_0`` of the naive and improved samplers,
    all started from the same ``x_T``. ``z`` (the hole position, snow field, noise, ...) is drawn once per
    batch with ``generator`` and shared by every column, so a seeded generator makes the table reproducible.
    The model runs in eval mode (dropout off) and gets its previous train/eval modes back afterwards.
    """
    if not isinstance(diffusion, ColdDiffusion):
        raise ValueError(f"diffusion must be a coldlib ColdDiffusion; got {type(diffusion).__name__}.")
    x0 = check_images(x0, channels=diffusion.degradation.channels)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct names from {METHODS}; got {methods}.")
    D, T = diffusion.degradation, diffusion.T
    device = _device_of(diffusion, x0.device)
    columns = {"Degraded": _Accumulator(), **{COLUMNS[m]: _Accumulator() for m in methods}}
    modes = {module: module.training for module in diffusion.modules()}
    diffusion.eval()
    try:
        for start in range(0, x0.shape[0], batch_size):
            batch = x0[start : start + batch_size].to(device)
            z = D.draw_z(batch, generator)
            xt = D(batch, T, z)
            columns["Degraded"].add(xt, batch)
            for method in methods:
                restored = diffusion.sample(xt, T, method=method, z=z)
                columns[COLUMNS[method]].add(restored, batch)
    finally:
        for module, training in modes.items():
            module.training = training
    return {name: acc.result() for name, acc in columns.items()}


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if metric in ("PSNR", "FID") else f"{value:.3f}"


def format_table(results: dict[str, dict[str, float]], paper: dict[str, dict[str, float]] | None = None) -> str:
    """A markdown table of :func:`evaluate_restoration` results, with the paper's numbers beside ours if given.

    ``paper`` has the same shape (e.g. ``PAPER_TABLES["blur", "mnist"]``);
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

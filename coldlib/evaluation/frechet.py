"""Fréchet distances between image sets: Inception FID (the paper's) and the offline FD_MNIST-CNN.

Both fit a Gaussian (mean ``mu``, covariance ``Sigma``) to the features of each image set and report the Fréchet
(2-Wasserstein) distance between the two Gaussians,
``||mu1 - mu2||² + tr(Sigma1) + tr(Sigma2) - 2 tr((Sigma1 Sigma2)^½)``. They differ in the feature network:

* **FID** (:func:`inception_fid`, column ``"FID"``): the paper's metric (``notebooks/paper_notes.md`` section (b)),
  2048-d pool features of the TensorFlow-FID InceptionV3, grey-scale repeated to 3 channels. Computed with
  torchmetrics' ``FrechetInceptionDistance``, which needs the ``torch-fidelity`` package
  (``pip install torch-fidelity``) and the InceptionV3 weights (about 92 MB): downloaded automatically with a
  network, or read from a file you point to (``weights_path=`` or ``COLDLIB_INCEPTION_WEIGHTS``), namely
  torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``. The authors used pytorch-fid, whose port of
  the same network resizes slightly differently, so expect small differences, not different scales.
* **FD_MNIST-CNN** (:func:`mnist_fd`, column ``"FD_MNIST-CNN"``): the same distance on the 64-d features of the
  small MNIST classifier the course trains and ships (:mod:`coldlib.evaluation.classifier`). It works offline, but it is
  **not** FID: its numbers have their own scale and must never be compared with the paper's FIDs.

Never put both in one table (:func:`check_no_mixing`; :func:`coldlib.evaluation.format_frechet_table` enforces
it). :func:`coldlib.evaluation.evaluate_restoration` adds either distance as a column of the paper's table
(``frechet="mnist-cnn"`` or ``"inception"``), measured on the images its other columns measure. Both
distances are biased upwards for small sets, so compare only numbers computed on the same number of images.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torchmetrics.image.fid import FrechetInceptionDistance  # importable without torch-fidelity; built only with it

from ..data import ImageSet
from ..env import offline
from .classifier import load_shipped_classifier

__all__ = ["frechet_distance", "FeatureStats", "FD_MNIST_CNN", "FID_INCEPTION", "KINDS", "fd_column_name",
           "mnist_cnn_features", "mnist_fd", "inception_fid", "InceptionUnavailable", "INCEPTION_WEIGHTS_FILE",
           "feature_extractor", "frechet_column", "add_frechet_column", "check_no_mixing"]

FD_MNIST_CNN = "FD_MNIST-CNN"
FID_INCEPTION = "FID"
#: Distance kind → table column. "inception" is the paper's FID (so it sits beside "FID (paper)").
KINDS = {"mnist-cnn": FD_MNIST_CNN, "inception": FID_INCEPTION}
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's file name
_WEIGHTS_ENV = "COLDLIB_INCEPTION_WEIGHTS"


def fd_column_name(kind: str) -> str:
    """The table column for a distance kind: ``"mnist-cnn"`` → ``"FD_MNIST-CNN"``, ``"inception"`` → ``"FID"``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}; got {kind!r}. 'inception' is the paper's FID, "
                         "'mnist-cnn' the offline Fréchet distance on the shipped MNIST classifier's features.")
    return KINDS[kind]


# ------------------------------------------------------------------------------------------ the distance


def _as_float64(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; the features (or images) it came from are broken.")
    return arr


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues → 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: object, sigma1: object, mu2: object, sigma2: object) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``tr((Σ1 Σ2)^½)`` equals the sum of the singular values of
    ``Σ2^½ Σ1^½`` (symmetric square roots by eigen-decomposition), so no non-symmetric matrix square root is
    needed (no SciPy, no complex parts) and singular covariances (dead features, fewer images than dimensions)
    stay accurate. Accepts NumPy arrays or tensors.
    """
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    sigma1, sigma2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of one length; got {mu1.shape} and {mu2.shape}.")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"sigma1 and sigma2 must be {d}x{d} (the means have {d} entries); got {sigma1.shape} and "
                         f"{sigma2.shape}.")
    # tr((Σ1 Σ2)^½) = sum of singular values of Σ2^½ Σ1^½ (their squares are the eigenvalues of Σ1^½ Σ2 Σ1^½).
    # Singular values carry absolute errors of order eps·||M||, unlike square roots of eigenvalues, whose
    # errors near zero are of order sqrt(eps): this keeps singular covariances (e.g. dead features) accurate.
    tr_covmean = float(np.linalg.svd(_sqrt_psd(sigma2) @ _sqrt_psd(sigma1), compute_uv=False).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    scale = float(np.trace(sigma1) + np.trace(sigma2) + diff @ diff)
    if value < 0:  # only round-off can make it negative
        if value < -1e-9 * max(scale, 1.0):
            raise ValueError(f"the Fréchet distance came out negative ({value}); are sigma1/sigma2 covariance "
                             "matrices (symmetric, positive semi-definite)?")
        value = 0.0
    return value


class FeatureStats:
    """Running mean and covariance of feature vectors, in float64 (batch-wise Chan/Welford updates).

    ``stats.update(features)`` with ``(N, D)`` batches; ``stats.mean``,
    ``stats.cov`` (unbiased, divides by n - 1) and ``stats.frechet_distance(other)``. Feeding a set in batches
    gives the same result as feeding it at once.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.n = 0
        self._mean: np.ndarray | None = None if dim is None else np.zeros(dim)
        self._scatter: np.ndarray | None = None if dim is None else np.zeros((dim, dim))

    @classmethod
    def from_features(cls, features: object) -> FeatureStats:
        """Statistics of one ``(N, D)`` array or tensor of features."""
        stats = cls()
        stats.update(features)
        return stats

    def update(self, features: object) -> FeatureStats:
        """Add a batch of features ``(N, D)``; returns ``self``."""
        f = _as_float64(features, "features")
        if f.ndim != 2:
            raise ValueError(f"features must be (N, D); got shape {f.shape}.")
        if f.shape[0] == 0:
            return self
        if self._mean is None:
            self._mean, self._scatter = np.zeros(f.shape[1]), np.zeros((f.shape[1], f.shape[1]))
        if f.shape[1] != self._mean.shape[0]:
            raise ValueError(f"features have {f.shape[1]} dimensions but earlier batches had {self._mean.shape[0]}.")
        nb = f.shape[0]
        mean_b = f.mean(axis=0)
        centred = f - mean_b
        delta = mean_b - self._mean
        total = self.n + nb
        self._scatter += centred.T @ centred + np.outer(delta, delta) * (self.n * nb / total)
        self._mean += delta * (nb / total)
        self.n = total
        return self

    def _check(self) -> None:
        if self.n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance; got {self.n}.")

    @property
    def mean(self) -> np.ndarray:
        self._check()
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        self._check()
        return self._scatter / (self.n - 1)

    def frechet_distance(self, other: FeatureStats) -> float:
        """:func:`frechet_distance` between these statistics and ``other``'s."""
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)

    def __repr__(self) -> str:
        dim = None if self._mean is None else self._mean.shape[0]
        return f"FeatureStats(n={self.n}, dim={dim})"


# ----------------------------------------------------------------------------------- feature networks


def _images(x: object, name: str, min_count: int = 2) -> torch.Tensor:
    """A float image tensor in [-1, 1] from a tensor or an ImageSet (values outside are clamped, as displayed)."""
    if isinstance(x, ImageSet):
        x = x.float()
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        what = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be float images (N, C, H, W) in [-1, 1] or an ImageSet; got {what}"
                         f"{' ' + str(x.dtype) if isinstance(x, torch.Tensor) else ''}.")
    if x.shape[0] < min_count:
        raise ValueError(f"{name} has {x.shape[0]} image(s); a Fréchet distance needs at least 2 per set (and "
                         "hundreds to thousands for a meaningful value).")
    return x.clamp(-1, 1)


@torch.no_grad()
def mnist_cnn_features(images: object, *, batch_size: int = 500, device: str | torch.device | None = None,
                       classifier: torch.nn.Module | None = None) -> torch.Tensor:
    """The shipped MNIST classifier's 64-d features of ``images`` (N, 1, 32, 32) in [-1, 1], as float64 on CPU.

    ``classifier`` replaces the shipped network (an
    :class:`coldlib.evaluation.classifier.MnistCNN`), e.g. one you trained yourself.
    """
    x = _images(images, "images", min_count=1)
    if classifier is None:
        classifier = load_shipped_classifier(device or "cpu").model
    dev = next(classifier.parameters()).device if device is None else torch.device(device)
    classifier = classifier.to(dev).eval()
    return torch.cat([classifier.features(x[i : i + batch_size].to(dev)).double().cpu()
                      for i in range(0, x.shape[0], batch_size)])


def mnist_fd(real: object, fake: object, *, batch_size: int = 500, device: str | torch.device | None = None,
             classifier: torch.nn.Module | None = None) -> float:
    """**FD_MNIST-CNN**: the Fréchet distance between two MNIST image sets on the shipped classifier's features.

    Images are ``(N, 1, 32, 32)`` float in [-1, 1] (or ImageSets). This is
    *not* Inception FID: label it ``fd_column_name("mnist-cnn")`` and never compare it with the paper's FIDs.
    """
    kw = dict(batch_size=batch_size, device=device, classifier=classifier)
    return FeatureStats.from_features(mnist_cnn_features(real, **kw)).frechet_distance(
        FeatureStats.from_features(mnist_cnn_features(fake, **kw)))


# ------------------------------------------------------------------------------------------ Inception


class InceptionUnavailable(RuntimeError):
    """Inception FID cannot be computed here (no torch-fidelity, or no way to get the InceptionV3 weights)."""


def _torch_fidelity_available() -> bool:
    return importlib.util.find_spec("torch_fidelity") is not None


def _hub_cached_weights() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def _how_to_get() -> str:
    return (f"To compute Inception FID: (1) `pip install torch-fidelity`; (2) either run once with a network "
            f"(COLDLIB_OFFLINE unset; the weights are cached in {_hub_cached_weights().parent}) or download "
            f"{INCEPTION_WEIGHTS_FILE} from torch-fidelity's GitHub release v0.2.0 on a machine that has one and "
            f"pass weights_path=... (or set {_WEIGHTS_ENV}). Offline, use FD_MNIST-CNN instead "
            "(coldlib.evaluation.mnist_fd, kind='mnist-cnn'): a Fréchet distance on the shipped MNIST classifier's "
            "features, which is NOT comparable with FID.")


def _resolve_weights(weights_path: str | os.PathLike | None) -> str | None:
    """The weights file to use, or None for "let torch-fidelity download"; raises when neither is possible."""
    source = "weights_path"
    if weights_path is None and os.environ.get(_WEIGHTS_ENV, "").strip():
        weights_path, source = os.environ[_WEIGHTS_ENV].strip(), _WEIGHTS_ENV
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{source}={str(weights_path)!r}: no such file. It should be torch-fidelity's "
                                    f"InceptionV3 weights ({INCEPTION_WEIGHTS_FILE}). {_how_to_get()}")
        return str(path)
    cached = _hub_cached_weights()
    if cached.is_file():
        return str(cached)
    if offline():
        raise InceptionUnavailable("Inception FID needs the InceptionV3 weights, which are not on this machine, and "
                                   "COLDLIB_OFFLINE=1 forbids downloading them. " + _how_to_get())
    return None


def _checked_state_dict_file(path: str, tmpdir: str) -> str:
    """Refuse pickled code: the file must load with ``weights_only=True`` (or be safetensors, converted)."""
    if path.endswith(".safetensors"):
        target = os.path.join(tmpdir, INCEPTION_WEIGHTS_FILE)
        torch.save(load_file(path), target)
        return target
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a plain PyTorch state dict (torch.load(weights_only=True) refused it: "
                         f"{type(e).__name__}: {e}). coldlib does not unpickle arbitrary files; use torch-fidelity's "
                         f"{INCEPTION_WEIGHTS_FILE} or a .safetensors copy of it.") from e
    return path


def _to_uint8_rgb(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] not in (1, 3):
        raise ValueError(f"Inception FID takes 1- or 3-channel images; got {x.shape[1]} channels.")
    x = ((x + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _inception_metric(weights_path: str | os.PathLike | None, device: torch.device):
    """torchmetrics' FrechetInceptionDistance (2048-d), built from the resolved weights; clear errors otherwise."""
    resolved = _resolve_weights(weights_path)
    if not _torch_fidelity_available():
        raise InceptionUnavailable("Inception FID uses torchmetrics' FrechetInceptionDistance, which needs the "
                                   "torch-fidelity package (not installed). " + _how_to_get())
    with tempfile.TemporaryDirectory() as tmpdir:
        checked = None if resolved is None else _checked_state_dict_file(resolved, tmpdir)
        try:
            metric = FrechetInceptionDistance(feature=2048, normalize=False, feature_extractor_weights_path=checked)
        except (OSError, RuntimeError) as e:  # URLError/HTTPError are OSErrors; state-dict mismatches RuntimeErrors
            if checked is None:
                raise InceptionUnavailable(f"downloading the InceptionV3 weights failed ({type(e).__name__}: "
                                           f"{e}). " + _how_to_get()) from e
            raise ValueError(f"{resolved} is not torch-fidelity's InceptionV3 state dict ({type(e).__name__}: "
                             f"{str(e)[:300]}). Use {INCEPTION_WEIGHTS_FILE}.") from e
    return metric.to(device)


@torch.no_grad()
def inception_fid(real: object, fake: object, weights_path: str | os.PathLike | None = None, *,
                  batch_size: int = 50, device: str | torch.device | None = None) -> float:
    """The paper's FID between two image sets (float, [-1, 1], 1 or 3 channels; grey-scale repeated to 3).

    Uses torchmetrics' ``FrechetInceptionDistance(feature=2048)`` (needs
    ``torch-fidelity``). Weights: ``weights_path``, else ``$COLDLIB_INCEPTION_WEIGHTS``, else torch's hub cache,
    else a download (never under ``COLDLIB_OFFLINE=1``). Raises :class:`InceptionUnavailable` (a RuntimeError)
    saying how to get them when none of that is possible; FD_MNIST-CNN (:func:`mnist_fd`) is the offline
    alternative. Images are rounded to 8 bits (as a saved PNG would be) before Inception sees them.
    """
    real, fake = _images(real, "real"), _images(fake, "fake")
    dev = torch.device(device) if device is not None else real.device
    metric = _inception_metric(weights_path, dev)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, images.shape[0], batch_size):
            metric.update(_to_uint8_rgb(images[i : i + batch_size]).to(dev), real=is_real)
    return float(metric.compute())


def feature_extractor(kind: str, *, weights_path: str | os.PathLike | None = None, batch_size: int = 100,
                      device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """A function images ([-1, 1]) → float64 CPU features for ``kind`` ("mnist-cnn" or "inception").

    The Inception one uses the same network as :func:`inception_fid`.
    """
    fd_column_name(kind)
    dev = torch.device(device)
    if kind == "mnist-cnn":
        net = load_shipped_classifier(dev).model
        return lambda x: mnist_cnn_features(x, batch_size=batch_size, classifier=net)
    inception = _inception_metric(weights_path, dev).inception

    @torch.no_grad()
    def extract(x: torch.Tensor) -> torch.Tensor:
        x = _images(x, "images", min_count=1)
        return torch.cat([inception(_to_uint8_rgb(x[i : i + batch_size]).to(dev)).double().cpu()
                          for i in range(0, x.shape[0], batch_size)])

    return extract


# ------------------------------------------------------------------------------------- results tables


def frechet_column(images_by_row: Mapping[str, torch.Tensor], reference: torch.Tensor, kind: str = "mnist-cnn",
                   **kw) -> dict[str, float]:
    """``{row: distance(reference, images)}`` for each row's images, with one feature pass over ``reference``.

    ``kw`` goes to :func:`feature_extractor` (weights_path, device, ...).
    """
    extract = feature_extractor(kind, **kw)
    ref = FeatureStats.from_features(extract(reference))
    return {row: ref.frechet_distance(FeatureStats.from_features(extract(x))) for row, x in images_by_row.items()}


def add_frechet_column(results_images: Mapping[str, torch.Tensor], reference: torch.Tensor, kind: str = "mnist-cnn",
                       *, results: dict[str, dict[str, float]] | None = None, **kw) -> dict[str, float]:
    """Fréchet distances of each row's images to ``reference``; also written into ``results`` rows if given.

    ``results_images`` maps table rows ("Degraded", "Direct", ...) to the
    images that row measured, ``reference`` are the clean originals. ``results`` (from
    :func:`coldlib.evaluation.evaluate_restoration`) gains the column ``fd_column_name(kind)`` in place; a table that
    already holds the other distance is refused (never mix FID and FD_MNIST-CNN). Returns ``{row: value}``.
    """
    column = fd_column_name(kind)
    if results is not None:
        check_no_mixing({row: {**values, column: 0.0} for row, values in results.items()})
        missing = [row for row in results_images if row not in results]
        if missing:
            raise ValueError(f"rows {missing} are not in results (rows: {list(results)}).")
    values = frechet_column(results_images, reference, kind, **kw)
    if results is not None:
        for row, value in values.items():
            results[row][column] = value
    return values


def check_no_mixing(results: Mapping[str, Mapping[str, float]],
                    paper: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """Raise ``ValueError`` if one table would hold both FD_MNIST-CNN and Inception FID (ours or the paper's)."""
    ours = {m for row in results.values() for m in row}
    theirs = {m for row in (paper or {}).values() for m in row}
    if FD_MNIST_CNN in ours and (FID_INCEPTION in ours or FID_INCEPTION in theirs):
        where = "results" if FID_INCEPTION in ours else "the paper's numbers"
        raise ValueError(f"this table would hold both {FD_MNIST_CNN} and Inception FID ({where}). They are different "
                         "distances on different scales and must not share a table: drop one (for the paper's "
                         "numbers, format_frechet_table leaves their FID out).")

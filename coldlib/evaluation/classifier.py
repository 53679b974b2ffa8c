"""A small MNIST classifier whose features give the offline Fréchet distance "FD_MNIST-CNN".

The paper's FID uses InceptionV3 weights that must be downloaded. Where that is impossible (offline machines, CI),
:mod:`coldlib.evaluation` measures a Fréchet distance on the penultimate features of *this* network instead. It is
a different number with a different scale, always labelled ``FD_MNIST-CNN`` and never compared with Inception FID.

The network (:class:`MnistCNN`, 121,994 parameters) takes ``1×32×32`` images in [-1, 1], the course's MNIST
format (``load_images("mnist")`` resizes 28 → 32 as the paper does). Other sizes are refused rather than resized
silently: resize them yourself if you really mean to. :meth:`MnistCNN.features` returns the 64 activations
before the classification layer.

The course ships one trained copy, ``data/checkpoints/mnist_classifier.safetensors`` with a ``.json`` sidecar
(format, architecture, training data, steps, held-out accuracy, time, hardware, SHA-256 of the weights).
It was trained with ``python -m coldlib.evaluation.classifier --out data/checkpoints/mnist_classifier`` on the *train* part
of the data only (MNIST's official 60,000-image training split); the 10,000 test images are used only to
measure its accuracy. Loading checks the SHA-256 (from the
sidecar, and for the shipped copy also against :data:`SHIPPED_SHA256`) and never unpickles anything.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import coldlib

from ..checkpoints import _check_state_dict, read_checkpoint, sha256_of, write_checkpoint
from ..data import load_images
from ..shipped import checkpoint_dir
from ..validate import check_int, check_seed

__all__ = ["MnistCNN", "CLASSIFIER_FORMAT", "IMAGE_SHAPE", "FEATURE_DIM", "SHIPPED_NAME", "SHIPPED_SHA256",
           "LoadedClassifier", "train_classifier", "accuracy", "save_classifier", "load_classifier",
           "load_shipped_classifier", "shipped_classifier_path"]

CLASSIFIER_FORMAT = "coldlib-classifier/1"
IMAGE_SHAPE = (1, 32, 32)
FEATURE_DIM = 64
SHIPPED_NAME = "mnist_classifier"
#: SHA-256 of the shipped weights. FD_MNIST-CNN values are only comparable when computed with the same weights,
#: so the shipped file is pinned here; retraining it means updating this value (the CLI prints it).
SHIPPED_SHA256 = "a2efe9c0bd94ee5be07928b2ff22ec82b3dc757d2777ebfbc7738356692c2f4b"


class MnistCNN(nn.Module):
    """Three 3×3 conv layers (32, 64, 64 channels, each ReLU + 2×2 max-pool), a 64-d feature layer, a linear head.

    Input ``(N, 1, 32, 32)`` in [-1, 1]; ``forward`` gives 10 logits,
    :meth:`features` the 64 penultimate activations (after ReLU) that FD_MNIST-CNN compares.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 4 * 4, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, 10)

    @staticmethod
    def check_input(x: torch.Tensor) -> torch.Tensor:
        """Refuse anything but float ``(N, 1, 32, 32)`` batches (a clear error instead of a shape crash)."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"expected a tensor of images (N, 1, 32, 32) in [-1, 1]; got {type(x).__name__}.")
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"the MNIST classifier takes (N, 1, 32, 32) images in [-1, 1] (the course's MNIST format, "
                f"load_images('mnist')); got shape {tuple(x.shape)}. 28x28 MNIST must be resized to 32x32 first "
                "(load_images does this); colour or other datasets cannot use FD_MNIST-CNN.")
        if not x.is_floating_point():
            raise ValueError(f"images must be float in [-1, 1] (ImageSet.float()); got {x.dtype}.")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d penultimate activations (after ReLU) of images ``(N, 1, 32, 32)`` in [-1, 1]."""
        x = self.check_input(x).to(self.fc.weight.dtype)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 16x16
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 8x8
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)  # 4x4
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10)."""
        return self.head(self.features(x))


@dataclass
class LoadedClassifier:
    """What :func:`load_classifier` returns: the network in eval mode, its sidecar config and the weights path."""

    model: MnistCNN
    config: dict[str, Any]
    path: Path


# ------------------------------------------------------------------------------------------------ training


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero = background -1 padding)."""
    if max_shift <= 0:
        return x
    n = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    h, w = x.shape[-2:]
    rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, x.shape[1], h, w)
    return out.gather(3, cols)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, steps: int = 1500, *, batch_size: int = 128,
                     lr: float = 2e-3, max_shift: int = 2, seed: int = 0,
                     log_every: int = 0) -> MnistCNN:
    """Train an :class:`MnistCNN` on float images ``(N, 1, 32, 32)`` in [-1, 1] and int labels; return it in eval mode.

    Adam with a cosine learning-rate decay to zero over ``steps``, batches
    drawn at random (with a seeded generator, so a run is reproducible on the same machine), and random
    translations of up to ``max_shift`` pixels as augmentation. Pass training images only, never the images
    you evaluate on.
    """
    MnistCNN.check_input(images)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"need one label per image; got {tuple(labels.shape)} labels for {images.shape[0]} images.")
    check_int(steps, "steps")
    check_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the layers' initialisation
    model = MnistCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / steps)).item()))
    labels = labels.to(torch.int64)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        x = _random_shift(images[idx], max_shift, generator)
        loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if log_every and step % log_every == 0:
            print(f"step {step}/{steps}  loss {loss.item():.4f}", flush=True)
    return model.eval()


@torch.no_grad()
def accuracy(model: MnistCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``images`` (float, [-1, 1]) classified as ``labels``."""
    was_training = model.training
    model.eval()
    try:
        correct = sum(int((model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum())
                      for i in range(0, images.shape[0], batch_size))
    finally:
        model.train(was_training)
    return correct / images.shape[0]


# ---------------------------------------------------------------------------------------------- files


def save_classifier(path_stem: str | Path, model: MnistCNN, info: dict[str, Any]) -> Path:
    """Write ``<stem>.safetensors`` (float32 weights) and ``<stem>.json`` (``info`` + format + SHA-256), atomically.

    ``info`` should say what data it saw, the steps, the held-out accuracy. The same writer as the restorers'
    (:func:`coldlib.checkpoints.write_checkpoint`).
    """
    if not isinstance(model, MnistCNN):
        raise ValueError(f"save_classifier saves a coldlib MnistCNN; got {type(model).__name__}.")
    sidecar = {"coldlib_version": coldlib.__version__,
               "architecture": "MnistCNN: conv3x3(1->32)-pool, conv3x3(32->64)-pool, conv3x3(64->64)-pool, "
                               f"fc(1024->{FEATURE_DIM}) features, fc({FEATURE_DIM}->10); input 1x32x32 in [-1, 1]",
               "parameters": sum(p.numel() for p in model.parameters()), **info}
    return write_checkpoint(path_stem, model.state_dict(), sidecar, fmt=CLASSIFIER_FORMAT)


def load_classifier(path: str | Path, device: str | torch.device = "cpu",
                    expected_sha256: str | None = None) -> LoadedClassifier:
    """Load a classifier written by :func:`save_classifier` (stem, ``.safetensors`` or ``.json`` path).

    The weights' SHA-256 must match the sidecar's (and ``expected_sha256``
    if given); missing, truncated or mismatched files raise ``FileNotFoundError``/``ValueError`` saying what to do.
    """
    retrain = ("retrain it with `python -m coldlib.evaluation.classifier --out <stem>` or restore the shipped files "
               "(git checkout -- data/checkpoints/mnist_classifier.safetensors data/checkpoints/mnist_classifier.json)")
    tensors, config, _, weights = read_checkpoint(path, fmt=CLASSIFIER_FORMAT, what="classifier", fix=retrain,
                                                  expected_sha256=expected_sha256)
    model = MnistCNN()
    _check_state_dict(tensors, model.state_dict(), weights, subject=f"the weights in {weights} are not an MnistCNN's",
                      fix=retrain[0].upper() + retrain[1:] + ".")  # keys, shapes and dtypes: never a silent cast
    model.load_state_dict(tensors, strict=True)
    return LoadedClassifier(model.to(device).eval(), config, weights)


def shipped_classifier_path() -> Path:
    """``<checkpoint_dir()>/mnist_classifier.safetensors`` (honours ``COLDLIB_CHECKPOINT_DIR``)."""
    return checkpoint_dir() / f"{SHIPPED_NAME}.safetensors"


_CACHE: dict[tuple[str, str], LoadedClassifier] = {}


def load_shipped_classifier(device: str | torch.device = "cpu") -> LoadedClassifier:
    """The course's trained MNIST classifier, verified against :data:`SHIPPED_SHA256` (cached per device).
    """
    path = shipped_classifier_path()
    key = (str(path.resolve()), str(torch.device(device)))
    if key not in _CACHE:
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped MNIST classifier should be at {path}, which is missing. It comes with a clone of the "
                "course repository (set COLDLIB_CHECKPOINT_DIR if you keep checkpoints elsewhere), or train one "
                f"with `python -m coldlib.evaluation.classifier --out {path.with_suffix('')}`.")
        _CACHE[key] = load_classifier(path, device=device, expected_sha256=SHIPPED_SHA256)
    return _CACHE[key]


# ------------------------------------------------------------------------------------------------- CLI


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:  # Linux: the CPU's model name is more telling than the architecture
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu} ({os.cpu_count()} logical CPUs), {torch.get_num_threads()} torch thread(s), CPU only, "
            f"{platform.system()}")


def main(argv: list[str] | None = None) -> int:
    """``python -m coldlib.evaluation.classifier --out data/checkpoints/mnist_classifier``: train, report, save."""

    parser = argparse.ArgumentParser(prog="python -m coldlib.evaluation.classifier", description=(
        "Train the MNIST classifier behind FD_MNIST-CNN on the train split only, report its held-out accuracy "
        "and save it as <out>.safetensors + <out>.json."))
    parser.add_argument("--out", required=True, help="path stem, e.g. data/checkpoints/mnist_classifier")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-shift", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--note", default="", help="added to the sidecar's timing note (e.g. other load)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    train = load_images("mnist", "train")
    test = load_images("mnist", "test")
    start = time.perf_counter()
    model = train_classifier(train.float(), train.labels, args.steps, batch_size=args.batch_size, lr=args.lr,
                             max_shift=args.max_shift, seed=args.seed, log_every=max(1, args.steps // 10))
    seconds = time.perf_counter() - start
    acc = accuracy(model, test.float(), test.labels)
    print(f"held-out accuracy {acc:.4f} on {len(test):,} images; training took {seconds:.0f} s")
    info = {
        "data": {"train": train.source, "heldout": test.source},
        "training_data": None if train.origin is None else train.origin.to_dict(),
        "steps": args.steps,
        "train": {"batch_size": args.batch_size, "lr": args.lr, "optimizer": "Adam, cosine decay to 0",
                  "augmentation": f"random shifts up to {args.max_shift} px", "seed": args.seed},
        "metrics": {"heldout_accuracy": acc, "heldout_images": len(test)},
        "wall_time_s": round(seconds, 1),
        "wall_time_measured": "time.perf_counter() around train_classifier only (not data loading or evaluation)"
                              + (f"; {args.note}" if args.note else ""),
        "hardware": _hardware(),
        "torch": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    weights = save_classifier(args.out, model, info)
    print(f"saved {weights} and {weights.with_suffix('.json')}; SHA-256 {sha256_of(weights)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

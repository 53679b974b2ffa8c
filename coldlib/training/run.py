"""Train-or-load: use the course's shipped model when it is there, else train one with the same recipe.

Full-quality restorers take hours on a CPU, so the course ships a few trained ones in ``data/checkpoints``
(registered, with their SHA-256, in ``registry.json``; see :mod:`coldlib.checkpoints`). :func:`train_or_load`
loads the shipped model ``name`` if it is registered and verified. If it is not registered (a fork without
the files, or a lesson run before the models were trained), it says so and trains a fresh model with the
same recipe for the number of steps you ask for, so a lesson always runs to the end; only the quality of
the results depends on which of the two happened. A registered checkpoint that is damaged or missing is an
error, not a reason to train silently: the message says how to fix it.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import coldlib

from ..checkpoints import FORMAT, LoadedModel

from ..shipped import checkpoint_dir, load_shipped, read_registry, registry_path
from ..data import load_images
from ..degradations import Degradation, preset
from ..diffusion import ColdDiffusion
from ..env import pick_device
from .trainer import TrainConfig, Trainer
from ..unet import UNET_PRESETS, UNet, unet_preset

__all__ = ["train_or_load", "unet_preset_name", "describe_metrics", "PRESET_DATASET"]

#: Datasets that borrow another dataset's degradation preset (as ``python -m coldlib.training`` does): the
#: offline colour photos use the CIFAR-10 settings (32 px), FashionMNIST uses MNIST's.
PRESET_DATASET = {"photos": "cifar10", "fashion_mnist": "mnist"}


def unet_preset_name(model_config: dict[str, Any]) -> str | None:
    """The name of the UNet preset ("tiny", "small", ...) a checkpoint's ``config["model"]`` matches, if any.
    """
    channels = model_config.get("channels")
    if channels not in (1, 3):
        return None
    for name in UNET_PRESETS:
        if unet_preset(name, channels).to_dict() == {**model_config, "mults": tuple(model_config.get("mults", ()))}:
            return name
    return None


def describe_metrics(metrics: dict[str, dict[str, float]] | None) -> str:
    """One line from an :func:`coldlib.evaluation.evaluate_restoration` result, e.g. ``"Direct SSIM 0.75 ..."``.

    ``"no metrics stored"`` when there are none.
    """
    if not metrics:
        return "no metrics stored"
    parts = []
    for column, row in metrics.items():
        if not isinstance(row, dict):
            continue
        values = [f"{k} {v:.3f}" if k != "PSNR" else f"{k} {v:.2f}" for k, v in row.items()
                  if isinstance(v, (int, float))]
        parts.append(f"{column}: " + ", ".join(values))
    return "; ".join(parts) if parts else "no metrics stored"


def _describe_loaded(name: str, loaded: LoadedModel) -> str:
    config = loaded.config
    size = unet_preset_name(config.get("model", {}))
    params = loaded.model.num_parameters()
    train = config.get("train") or {}
    batch = train.get("batch_size", "?")
    accum = train.get("grad_accum", 1)
    return (f"loaded the shipped checkpoint {name!r} ({loaded.path.name}, SHA-256 verified): "
            f"UNet {size + ' ' if size else ''}with {params:,} parameters, {config['steps']:,} steps "
            f"of batch {batch}×{accum}; {loaded.degradation!r}; trained on: {config['data']}; "
            f"held-out metrics: {describe_metrics(config.get('metrics'))}")


def train_or_load(name: str, *, task: str, dataset: str, steps: int, model: str = "small", batch_size: int = 32,
                  lr: float = 4e-4, device: str | torch.device | None = None, seed: int = 0, progress: bool = True,
                  out_dir: str | Path | None = None, limit: int | None = None,
                  classes: list[int] | None = None, degradation: Degradation | None = None,
                  **train_options: Any) -> LoadedModel:
    """Load the shipped checkpoint ``name``, or train a fresh restorer with the same recipe if it is absent.

    *Loading.* If ``name`` is in the registry (``registry.json`` in :func:`coldlib.shipped.checkpoint_dir`),
    the weights are verified against their SHA-256 and loaded with :func:`coldlib.shipped.load_shipped`;
    one line says what was loaded (UNet size, steps, training data, stored metrics). The recipe arguments
    are then not used. A registered entry whose ``task`` or ``dataset`` differs from the ones asked for, or
    whose file is damaged or missing, raises ``ValueError``/``FileNotFoundError`` with a fix.

    *Training.* Otherwise one line says why, and a UNet preset ``model`` is trained for ``steps`` optimizer
    steps on ``load_images(dataset, "train", limit=limit)`` with ``preset(task, dataset)`` (the photos use the
    CIFAR-10 preset), batch ``batch_size``, Adam ``lr``, and any further :class:`~coldlib.training.TrainConfig`
    field in ``train_options`` (``grad_accum``, ``ema_start``, ...). ``classes`` keeps only those labels of the
    dataset; ``degradation`` replaces the preset (e.g. animorphosis: ``ImageMixing(T, pool=...)`` with the
    images to mix in, lesson 06_generation). The weights are initialised from
    ``seed`` without touching the global random state. Nothing is written unless ``out_dir`` is given: then
    the run keeps ``out_dir/state.safetensors`` (so calling again resumes it) and exports the EMA weights to
    ``out_dir/<name>.safetensors``.

    Either way the result is a :class:`~coldlib.checkpoints.LoadedModel` (EMA weights, eval mode, on
    ``device``) whose ``config`` has the same keys as a checkpoint's ``.json`` (``model``, ``degradation``,
    ``data``, ``steps``, ``train``, ``metrics``, ...). ``path`` is ``None`` for a model trained in memory.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int (optimizer steps for a fresh run); got {steps!r}.")
    if model not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset {model!r}; choose one of {sorted(UNET_PRESETS)}.")
    device = pick_device() if device is None else torch.device(device)
    preset_dataset = PRESET_DATASET.get(dataset, dataset)
    D = preset(task, preset_dataset)  # fails early, with the list of presets, on a typo
    if degradation is not None:
        if not isinstance(degradation, Degradation) or type(degradation) is not type(D) or degradation.T != D.T:
            raise ValueError(f"degradation must be of type {type(D).__name__} with T={D.T}, like preset({task!r}, "
                             f"{preset_dataset!r}); got {degradation!r}.")
        D = degradation

    registry = read_registry()  # re-read: a checkpoint registered after import counts too
    if name in registry:
        entry = registry[name]
        mismatched = [f"{key} {entry[key]!r} (asked for {wanted!r})" for key, wanted in
                      (("task", task), ("dataset", dataset)) if key in entry and entry[key] != wanted]
        if mismatched:
            raise ValueError(f"the shipped checkpoint {name!r} in {registry_path()} has {', '.join(mismatched)}; "
                             "ask for the matching task and dataset, or pick another name.")
        loaded = load_shipped(name, device=device)
        print(_describe_loaded(name, loaded), flush=True)
        if loaded.degradation.config() != D.config():
            print(f"note: its degradation differs from preset({task!r}, {preset_dataset!r}) = {D!r}; the "
                  "checkpoint's own degradation is used.", flush=True)
        return loaded

    where = registry_path()
    why = (f"{where} does not exist" if not where.is_file() else f"{where} has no entry {name!r} (it has: "
           f"{', '.join(sorted(registry)) or 'none'})")
    train_set = load_images(dataset, "train", limit=limit, classes=classes)
    if train_set.images.shape[0] < batch_size:
        raise ValueError(f"{len(train_set)} training images are fewer than batch_size={batch_size}.")
    channels = int(train_set.images.shape[1])
    unet_config = unet_preset(model, channels)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the caller's random state is untouched
        torch.manual_seed(seed)
        net = UNet(unet_config)
    diffusion = ColdDiffusion(net.to(device), D)
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, **train_options)
    run_dir = Path(out_dir).expanduser() if out_dir is not None else None
    trainer = Trainer(diffusion, train_set.images, config, out_dir=run_dir, device=device, data_note=train_set.source)
    resumed = run_dir is not None and trainer.resume()
    print(f"no shipped checkpoint {name!r} ({why}; shipped checkpoints live in {checkpoint_dir()}), so "
          f"training a fresh one: UNet {model} with {net.num_parameters():,} parameters, {D!r}, "
          f"{steps:,} steps of batch {batch_size}×{config.grad_accum}, lr {lr:g}, on {device}"
          + (f"; resuming {run_dir} at step {trainer.step}" if resumed else "") + ".", flush=True)
    start = time.perf_counter()
    trainer.train(steps, progress=progress)
    seconds = time.perf_counter() - start
    ema = trainer.ema.eval()
    train_settings = {**asdict(config), "wall_seconds": round(seconds, 1)}
    path = None
    if run_dir is not None:
        path = trainer.export(run_dir / name)
    info = {
        "format": FORMAT,
        "coldlib_version": coldlib.__version__,
        "model": unet_config.to_dict(),
        "degradation": D.config(),
        "data": train_set.source,
        "steps": trainer.step,
        "train": train_settings,
        "metrics": None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": None,
    }
    final = sum(trainer.losses[-20:]) / max(1, len(trainer.losses[-20:]))
    print(f"trained {trainer.step:,} steps in {seconds:.0f} s; mean L1 loss of the last "
          f"{min(20, len(trainer.losses))} steps: {final:.4f}" + (f"; saved {path}" if path else ""), flush=True)
    return LoadedModel(ema, D, info, path)

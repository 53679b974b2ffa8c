"""The one training pipeline, and train-or-load for the lessons.

:func:`train` is what ``python -m coldlib.training`` runs and what :func:`train_or_load` calls when there is no
shipped model: data, degradation (the paper's preset, or one you pass), a seeded UNet, the :class:`Trainer`
(resuming a run folder), an optional held-out evaluation, a report and an exported checkpoint.

Full-quality restorers take hours on a CPU, so the course ships a few trained ones in ``data/checkpoints``
(registered, with their SHA-256, in ``registry.json``; see :mod:`coldlib.shipped`). :func:`train_or_load`
loads the shipped model ``name`` if it is registered and verified. If it is not registered (a fork without
the files, or a lesson run before the models were trained), it says so and trains a fresh model with the
same recipe for the number of steps you ask for, so a lesson always runs to the end; only the quality of
the results depends on which of the two happened. A registered checkpoint that is damaged or missing is an
error, not a reason to train silently: the message says how to fix it.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

import coldlib

from ..checkpoints import FORMAT, LoadedModel, _split_path, describe_degradation, load_model, sha256_of
from ..data import ImageSet, TooFewImages, check_held_out, load_images
from ..degradations import Degradation, ImageMixing
from ..diffusion import ColdDiffusion
from ..env import pick_device
from ..evaluation import EVAL_Z_SEED, SSIM_CONVENTION, evaluate_restoration
from ..experiments import experiment
from ..shipped import checkpoint_dir, load_shipped, read_registry, registry_path
from ..unet import UNET_PRESETS, UNet, unet_preset, unet_preset_name
from .trainer import TrainConfig, Trainer
from ..validate import check_int

__all__ = ["train", "train_or_load", "describe_metrics", "check_writable", "preset_for"]

_CONFIG_FIELDS = {f.name for f in fields(TrainConfig)} - {"steps"}


def _rank() -> tuple[int, int]:
    """(world size, rank) of an initialised torch.distributed group, else (1, 0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _hardware(device: torch.device, world: int) -> str:
    what = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
    return f"{world} processes × {what}" if world > 1 else what


def check_writable(path: str | Path, what: str, *, stem: bool = False) -> Path:
    """Refuse a place that cannot be written before any data is read or any step trained; return it.

    ``path`` is a run folder, or with ``stem=True`` an export stem (``<stem>.safetensors`` + ``.json``, whose
    folder must be writable). Nothing is created: a test file is made, and removed, in the nearest folder
    that exists. ``what`` names the argument in the message (e.g. ``"--out (out_dir)"``).
    """
    path = Path(path).expanduser()
    folder = path.parent if stem else path
    if stem:
        clash = [f for f in _split_path(path) if f.is_dir()]
        if clash:
            raise ValueError(f"{what} {path}: {clash[0]} is a folder, so the export cannot be written there; pick "
                             "another name.")
    elif path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is an existing file; it must be a run folder (new, or one to resume).")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {path} cannot be created: {existing} is a file, not a folder. Pick a path in a "
                         "folder you can write to.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ValueError(f"{what} {path} cannot be written: {existing} is not writable ({e.strerror or e}). Pick a "
                         "folder you can write to (or fix its permissions) before training starts.") from e
    return path


def preset_for(task: str, dataset: str, preset_dataset: str | None = None) -> Degradation:
    """The paper's degradation for ``task`` on ``preset_dataset or dataset`` (a folder has none: say which flag)."""
    if preset_dataset is None and isinstance(dataset, str) and dataset.startswith("folder:"):
        raise ValueError(f"a folder of your own images ({dataset}) has no degradation preset: pass preset_dataset= "
                         "(--preset-dataset) to say whose preset to use, e.g. --preset-dataset mnist (grey, 32 px) "
                         "or --preset-dataset cifar10 (colour, 32 px), or pass a degradation of your own "
                         "(degradation=..., --degradation).")
    return experiment(task, preset_dataset or dataset).degradation()  # fails early, listing the presets, on a typo


def _mixing_pool(D: Degradation, mix_with: str | None, mix_classes: list[int] | None, split: str,
                 image_size: int | None) -> tuple[Degradation, str | None]:
    """Animorphosis: ``D`` (an ImageMixing) with a pool of ``mix_with`` images of ``split``, and their source."""
    if type(D) is not ImageMixing:  # GaussianNoise subclasses it but draws its own z: no pool
        return D, None
    pool = load_images(mix_with, split, image_size=image_size, classes=mix_classes)
    return ImageMixing(D.T, pool=pool.float()), pool.source


def train(task: str, dataset: str, *, steps: int, model: str = "small", out_dir: str | Path | None = None,
          export: str | Path | None = None, image_size: int | None = None, limit: int | None = None,
          classes: list[int] | None = None, degradation: Degradation | None = None, preset_dataset: str | None = None,
          mix_with: str | None = None, mix_classes: list[int] | None = None, loss: str = "l1", eval_images: int = 0,
          device: str | torch.device | None = None, progress: bool = True, init_from: str | Path | None = None,
          **config: Any) -> tuple[LoadedModel, dict]:
    """Train a restorer for ``task`` on ``dataset`` for ``steps`` optimizer steps; return ``(model, report)``.

    The degradation is ``preset(task, preset_dataset or dataset)`` (the paper's setting), or ``degradation``:
    any :class:`Degradation`, a learner's own included (``task`` is then only a label; the report and the
    export record the degradation that ran). Only when ``preset_dataset`` is also given must ``degradation``
    match that preset's type and T (e.g. an :class:`ImageMixing` with a pool of your own). ``config`` takes
    the other :class:`TrainConfig` fields (``batch_size``, ``grad_accum``, ``lr``, ``ema_*``, ``seed``, ``flip``,
    ``mixed_precision``, ``compile``, ...). The UNet preset ``model`` is initialised from ``seed`` without
    touching the caller's random state. With ``out_dir`` the run keeps ``out_dir/state.safetensors`` (calling
    again resumes it, if the folder was made for the same task, degradation, dataset, image size and network)
    and ``report.json``; with ``export`` the EMA weights are saved as a checkpoint. With ``eval_images`` > 0
    that many held-out images are scored with every sampler before export. Every argument, and whether
    ``out_dir`` and ``export`` can be written, is checked before any data is read.

    ``init_from`` (a checkpoint written by :func:`coldlib.checkpoints.save_model`, e.g. a shipped one) warm-starts
    the weights, and the EMA, from that model instead of from ``seed``: fine-tuning, or extending a finished
    run whose resumable state is gone. Its UNet and degradation must equal this run's. The export records
    where it started (``train["init_from"]``: file, SHA-256, and the steps it had taken).

    Under ``torchrun`` (a process group already initialised by the caller) every rank calls it; rank 0
    evaluates and writes. Returns the EMA model as a :class:`LoadedModel` (``path`` is the export, or None)
    and the report (steps, wall time, degradation, metrics).
    """
    unknown = sorted(set(config) - _CONFIG_FIELDS)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; TrainConfig has {sorted(_CONFIG_FIELDS)}.")
    train_config = TrainConfig(steps=steps, **config)  # validates every setting before any data is read
    if model not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset {model!r}; choose one of {sorted(UNET_PRESETS)}.")
    if not isinstance(task, str) or not task.strip():
        raise ValueError(f"task must be a non-empty string (a preset's task, or a label for your degradation); "
                         f"got {task!r}.")
    check_int(eval_images, "eval_images", minimum=0, hint=" (held-out images to score)")
    if loss not in ("l1", "l2"):
        raise ValueError(f"loss must be 'l1' (the paper's) or 'l2'; got {loss!r}.")
    if degradation is not None and not isinstance(degradation, Degradation):
        raise ValueError(f"degradation must be a coldlib Degradation (an instance of a subclass); got "
                         f"{type(degradation).__name__}.")
    if degradation is None or preset_dataset is not None:  # a preset is asked for: it must exist
        D = preset_for(task, dataset, preset_dataset)
        if degradation is not None and (type(degradation) is not type(D) or degradation.T != D.T):
            raise ValueError(f"degradation must be of type {type(D).__name__} with T={D.T}, like the preset for "
                             f"{task}/{preset_dataset} that preset_dataset asks for; got {degradation!r}. Leave "
                             "preset_dataset out to train any degradation of your own.")
    if degradation is not None:
        D = degradation
    elif type(D) is ImageMixing and not mix_with:  # (GaussianNoise, a subclass, needs no pool)
        raise ValueError("the mixing task needs the images to mix in: pass mix_with=DATASET (--mix-with) and "
                         "mix_classes to pick labels, e.g. --dataset mnist --classes 8 --mix-with mnist "
                         "--mix-classes 0.")
    if mix_with and (degradation is not None or not isinstance(D, ImageMixing)):
        raise ValueError(f"mix_with (--mix-with) is for --task mixing (animorphosis) with the preset; {D!r} "
                         f"{'brings its own pool' if isinstance(D, ImageMixing) else 'mixes nothing in'}.")
    if export is not None:
        try:
            json.dumps(D.config())
        except (NotImplementedError, TypeError, ValueError) as e:  # found now, not after hours of training
            raise ValueError(f"export needs a degradation that describes itself as JSON: {e} (implement config(); "
                             "lesson 08 shows how), or train without export.") from e
    world, rank = _rank()
    if rank == 0:  # only rank 0 writes (and other nodes need not see the folders)
        if out_dir is not None:
            check_writable(out_dir, "out_dir (--out)")
        if export is not None:
            check_writable(export, "export (--export)", stem=True)
    device = pick_device(None if device is None else str(device), name="device (--device)")  # not torch's traceback
    if world > 1 and rank != 0:
        dist.barrier()  # rank 0 downloads (if needed) before the others read the files
    train_set = load_images(dataset, "train", image_size=image_size, limit=limit, classes=classes)
    data_note = train_set.source
    if degradation is None:
        D, mixed_in = _mixing_pool(D, mix_with, mix_classes, "train", image_size)
        if mixed_in:
            data_note += f"; mixed with: {mixed_in}"
    held_out: ImageSet | None = None
    if rank == 0 and eval_images > 0:  # loaded now, so a bad eval_images fails before training, not after
        try:
            held_out = load_images(dataset, "test", image_size=image_size, limit=eval_images, classes=classes)
        except TooFewImages as e:
            raise ValueError(f"eval_images (--eval-images) is {eval_images:,}, but only {e.available:,} images are "
                             f"available in the held-out (test) split of {dataset}"
                             f"{f' with classes {classes}' if classes else ''}; pass --eval-images "
                             f"{e.available} or fewer (0 skips the evaluation).") from e
    if world > 1 and rank == 0:
        dist.barrier()
    if train_set.images.shape[0] < train_config.batch_size:
        raise ValueError(f"{len(train_set)} training images are fewer than batch_size={train_config.batch_size}.")
    unet_config = unet_preset(model, int(train_set.images.shape[1]))
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the caller's random state is untouched
        torch.manual_seed(train_config.seed)
        net = UNet(unet_config)
    warm_start = _warm_start(net, D, init_from) if init_from is not None else None
    diffusion = ColdDiffusion(net.to(device), D, loss=loss)
    run_dir = Path(out_dir).expanduser() if out_dir is not None else None
    training_data = None if train_set.origin is None else train_set.origin.to_dict()
    trainer = Trainer(diffusion, train_set.images, train_config, out_dir=run_dir, device=device, data_note=data_note,
                      init_from=warm_start, training_data=training_data, run={"task": task, "dataset": dataset})
    resumed = run_dir is not None and trainer.resume()
    where = str(device) if world == 1 else (f"{world} processes ({dist.get_backend()}, global batch "
                                            f"{world * train_config.batch_size}), rank 0 on {device}")
    if rank == 0:
        if warm_start is not None and not resumed:
            print(f"warm start from {warm_start['file']} ({warm_start['steps']:,} steps, SHA-256 "
                  f"{warm_start['sha256'][:12]}…)", flush=True)
        print(f"{'resuming ' + str(run_dir) + ' at step ' + str(trainer.step) if resumed else 'new run'}: {D!r}, "
              f"UNet '{model}' ({net.num_parameters():,} parameters), {steps:,} steps of batch "
              f"{train_config.batch_size}×{train_config.grad_accum}, lr {train_config.lr:g}, on {where}; data: "
              f"{train_set.source}", flush=True)
    start = time.perf_counter()
    trainer.train(progress=progress)
    seconds = time.perf_counter() - start
    report: dict[str, Any] = {"task": task, "degradation": describe_degradation(D), "steps": trainer.step,
                              "wall_seconds_this_session": round(seconds, 1),
                              "wall_seconds_all_sessions": round(trainer.train_seconds, 1)}
    if world > 1:
        report["processes"] = world
    ema = trainer.ema.eval()
    info = {"format": FORMAT, "coldlib_version": coldlib.__version__, "model": unet_config.to_dict(),
            "degradation": describe_degradation(D), "data": data_note, "training_data": training_data,
            "steps": trainer.step,
            "train": {**asdict(train_config), "wall_seconds": round(trainer.train_seconds, 1)}, "metrics": None,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "hardware": _hardware(device, world)}
    if rank != 0:  # rank 0 evaluates and writes; the others are done once training is
        return LoadedModel(ema, D, info, None), report
    if held_out is not None:
        check_held_out(train_set, held_out, name="this run", verbose=False)  # never score on trained-on images
        D_eval = D if degradation is not None else _mixing_pool(D, mix_with, mix_classes, "test", image_size)[0]
        report["metrics"] = evaluate_restoration(ColdDiffusion(ema, D_eval, loss=loss), held_out.float().to(device),
                                                 generator=torch.Generator().manual_seed(EVAL_Z_SEED))
        report["held_out"] = f"{len(held_out)} images: {held_out.source}"
        report["metrics_protocol"] = {"images": len(held_out), "held_out": held_out.source,
                                      "z_seed": EVAL_Z_SEED, "ssim": SSIM_CONVENTION}
        info["metrics"] = report["metrics"]
    if run_dir is not None:
        (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    final = sum(trainer.losses[-20:]) / max(1, len(trainer.losses[-20:]))
    print(f"trained {trainer.step:,} steps in {seconds:.0f} s this session; mean L1 loss of the last "
          f"{min(20, len(trainer.losses))} steps: {final:.4f}", flush=True)
    path = None
    if export is not None:
        path = trainer.export(export, metrics=report.get("metrics"), metrics_protocol=report.get("metrics_protocol"),
                              hardware=info["hardware"])
        print(f"exported {path}", flush=True)
    return LoadedModel(ema, D, info, path), report


def _warm_start(net: UNet, D: Degradation, init_from: str | Path) -> dict[str, Any]:
    """Copy the weights of the checkpoint ``init_from`` into ``net``; return where they came from."""
    start = load_model(init_from)  # verifies the SHA-256 its sidecar records
    if start.model.config != net.config:
        raise ValueError(f"init_from={str(init_from)!r} holds a UNet {start.model.config.to_dict()}, but this run "
                         f"builds {net.config.to_dict()}: pick the matching --model (and image size).")
    if describe_degradation(start.degradation) != describe_degradation(D):
        raise ValueError(f"init_from={str(init_from)!r} was trained for {start.degradation!r}, but this run "
                         f"trains for {D!r}: warm-start only from a model of the same task and preset.")
    net.load_state_dict(start.model.state_dict())
    return {"file": start.path.name, "sha256": sha256_of(start.path), "steps": int(start.config["steps"]),
            "data": start.config.get("data")}


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
            f"held-out metrics{_how_measured(config.get('metrics_protocol'))}: "
            f"{describe_metrics(config.get('metrics'))}")


def _how_measured(protocol: dict | None) -> str:
    """" (2,000 images; SSIM: ...)" from a checkpoint's ``metrics_protocol``; "" if it records none."""
    if not protocol:
        return ""
    parts = [f"{protocol['images']:,} images" if "images" in protocol else None,
             f"SSIM: {protocol['ssim']}" if "ssim" in protocol else None]
    return " (" + "; ".join(p for p in parts if p) + ")" if any(parts) else ""


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

    *Training.* Otherwise one line says why, and :func:`train` runs with these arguments (a UNet preset
    ``model``, ``steps`` optimizer steps on ``load_images(dataset, "train", limit=limit, classes=classes)``,
    the preset degradation or ``degradation``, batch ``batch_size``, Adam ``lr``, and any further
    :class:`~coldlib.training.TrainConfig` field in ``train_options``). Nothing is written unless ``out_dir``
    is given: then the run keeps ``out_dir/state.safetensors`` (so calling again resumes it) and exports the
    EMA weights to ``out_dir/<name>.safetensors``.

    Either way the result is a :class:`~coldlib.checkpoints.LoadedModel` (EMA weights, eval mode, on
    ``device``) whose ``config`` has the same keys as a checkpoint's ``.json``.
    """
    if degradation is not None and not isinstance(degradation, Degradation):
        raise ValueError(f"degradation must be a coldlib Degradation; got {type(degradation).__name__}.")
    D = degradation if degradation is not None else preset_for(task, dataset)  # a typo fails early, listing presets
    registry = read_registry()  # re-read: a checkpoint registered after import counts too
    if name in registry:
        entry = registry[name]
        mismatched = [f"{key} {entry[key]!r} (asked for {wanted!r})" for key, wanted in
                      (("task", task), ("dataset", dataset)) if key in entry and entry[key] != wanted]
        if mismatched:
            raise ValueError(f"the shipped checkpoint {name!r} in {registry_path()} has {', '.join(mismatched)}; "
                             "ask for the matching task and dataset, or pick another name.")
        loaded = load_shipped(name, device=pick_device() if device is None else device)
        print(_describe_loaded(name, loaded), flush=True)
        if describe_degradation(loaded.degradation) != describe_degradation(D):
            print(f"note: its degradation differs from the one asked for ({D!r}); the "
                  "checkpoint's own degradation is used.", flush=True)
        return loaded
    where = registry_path()
    why = (f"{where} does not exist" if not where.is_file() else f"{where} has no entry {name!r} (it has: "
           f"{', '.join(sorted(registry)) or 'none'})")
    print(f"no shipped checkpoint {name!r} ({why}; shipped checkpoints live in {checkpoint_dir()}), so "
          "training a fresh one.", flush=True)
    run_dir = Path(out_dir).expanduser() if out_dir is not None else None
    loaded, _ = train(task, dataset, steps=steps, model=model, out_dir=run_dir,
                      export=None if run_dir is None else run_dir / name, limit=limit, classes=classes,
                      degradation=degradation, device=device, progress=progress, batch_size=batch_size, lr=lr,
                      seed=seed, **train_options)
    return loaded

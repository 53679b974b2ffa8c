"""Saving and loading restorers, shipped checkpoints, and resumable training state.

A saved model is two files side by side:

* ``<name>.safetensors``: the UNet's ``state_dict`` in float32 (save the EMA weights: they are what the paper
  samples and evaluates with);
* ``<name>.json``: everything needed to rebuild and judge it (the UNet config, the degradation config, the data
  it saw, the number of steps, the training settings, optional metrics, time and hardware).

Nothing here uses pickle: ``torch.load`` on a downloaded file can run arbitrary code, safetensors cannot. Every
write goes to a temporary file in the same folder, is flushed to disk, then renamed over the target, so an
interrupted save never leaves a half-written checkpoint behind.

The course ships a few trained models in ``data/checkpoints`` with a ``registry.json`` pinning their SHA-256;
:func:`load_shipped` verifies the hash before loading. Training state for resuming (weights, EMA, Adam moments,
random-number-generator states) goes into one safetensors file with JSON metadata
(:func:`save_training_state`, :func:`optimizer_to_tensors`, :func:`rng_to_tensors`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

import coldlib

from .degradations import Degradation, from_config
from .unet import UNet, UNetConfig

__all__ = [
    "FORMAT", "LoadedModel", "save_model", "load_model", "sha256_of", "checkpoint_dir", "registry_path",
    "read_registry", "SHIPPED", "load_shipped", "register_shipped", "save_training_state", "load_training_state",
    "optimizer_to_tensors", "optimizer_from_tensors", "rng_to_tensors", "rng_from_tensors",
]

FORMAT = "coldlib-checkpoint/1"
_SUFFIX = ".safetensors"
_META_KEY = "coldlib"  # the safetensors metadata entry holding a training state's JSON
_REQUIRED = ("format", "model", "degradation", "data", "steps")


# --------------------------------------------------------------------------------------------- file helpers


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (POSIX; not possible on Windows)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def sha256_of(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _split_path(path: str | Path) -> tuple[Path, Path]:
    """(weights, sidecar) for a stem, a ``.safetensors`` path or a ``.json`` path.

    Stems may contain dots (``blur_mnist_v1.2``), so a suffix is only stripped when it is one of ours.
    """
    p = Path(path).expanduser()
    name = p.name
    for suffix in (_SUFFIX, ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + _SUFFIX), p.with_name(name + ".json")


def _read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; ``ValueError`` if it is damaged (never pickle)."""
    raw = path.read_bytes()  # not mmap: the file may be replaced while we hold it (Windows locks mapped files)
    if raw.startswith(b"version https://git-lfs"):
        raise ValueError(f"{what} {path} is a Git LFS pointer, not the weights; run `git lfs pull` in the "
                         "repository (or download the file itself) and try again.")
    try:
        tensors = _st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
    except Exception as e:  # SafetensorError, UnicodeDecodeError, JSONDecodeError, ...
        raise ValueError(f"{what} {path} is corrupted or truncated ({type(e).__name__}: {e}); re-download or "
                         "retrain it.") from e
    meta = header.get("__metadata__") or {}
    return tensors, meta


# ----------------------------------------------------------------------------------------- models on disk


@dataclass
class LoadedModel:
    """What :func:`load_model` returns: a UNet in eval mode, its degradation, the sidecar config and the path.

    ``loaded.diffusion()`` pairs them into a :class:`ColdDiffusion`.
    """

    model: UNet
    degradation: Degradation
    config: dict[str, Any]
    path: Path

    def diffusion(self, loss: str = "l1") -> Any:
        """A :class:`coldlib.diffusion.ColdDiffusion` around the loaded model and degradation."""
        from .diffusion import ColdDiffusion

        return ColdDiffusion(self.model, self.degradation, loss=loss)


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip ``torch.compile`` (``_orig_mod``) and ``DataParallel``/DDP (``module``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def save_model(path_stem: str | Path, model: UNet, degradation: Degradation, *, data: str, steps: int,
               train: dict | None = None, metrics: dict | None = None, hardware: str | None = None) -> Path:
    """Save ``model`` as ``<stem>.safetensors`` (float32 weights) plus ``<stem>.json`` (config); return the former.

    Pass the EMA model. ``data`` says what it was trained on (e.g.
    "MNIST train, 60,000 images, 32 px"), ``steps`` how many optimizer steps, ``train`` the settings (lr,
    batch, EMA decay, ...), ``metrics`` an evaluation (e.g. from :func:`coldlib.evaluation.evaluate_restoration`).
    """
    model = _unwrap(model)
    if not isinstance(model, UNet):
        raise ValueError(f"save_model saves a coldlib UNet (it records the UNetConfig to rebuild it); got "
                         f"{type(model).__name__}. Pass diffusion.model (or the EMA copy), not the ColdDiffusion.")
    if not isinstance(degradation, Degradation):
        raise ValueError(f"degradation must be a coldlib Degradation; got {type(degradation).__name__}.")
    if not isinstance(data, str) or not data.strip():
        raise ValueError("data must be a non-empty string saying what the model was trained on, e.g. "
                         "'MNIST train (60,000 images, 32 px)'.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int (optimizer steps taken); got {steps!r}.")
    try:
        degradation_config = degradation.config()
    except NotImplementedError as e:
        raise ValueError(f"{type(degradation).__name__} cannot be saved: {e}") from e
    config = {
        "format": FORMAT,
        "coldlib_version": coldlib.__version__,
        "model": model.config.to_dict(),
        "degradation": degradation_config,
        "data": data,
        "steps": steps,
        "train": dict(train or {}),
        "metrics": metrics,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware,
    }
    try:
        sidecar = json.dumps(config, indent=2, sort_keys=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ValueError(f"the checkpoint config is not JSON-serialisable ({e}); pass plain numbers, strings, "
                         "lists and dicts in train= and metrics=.") from e
    tensors = {k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().to("cpu"))
               .contiguous().clone() for k, v in model.state_dict().items()}
    weights, json_path = _split_path(path_stem)
    _atomic_write(weights, _st_save(tensors, metadata={"format": FORMAT}))
    _atomic_write(json_path, sidecar.encode())
    return weights


def _shipped_hint(weights: Path) -> str:
    names = {entry.get("file") for entry in _registry_or_empty().values()}
    if weights.name in names:
        return (f" It is one of the course's shipped checkpoints: they live in {checkpoint_dir()} (from a clone of "
                "the course repository; run `git lfs pull` if you cloned without LFS). Set COLDLIB_CHECKPOINT_DIR "
                "if you keep them elsewhere, and load them with coldlib.checkpoints.load_shipped(name).")
    return " Check the path, or train and save one with coldlib.checkpoints.save_model."


def _read_sidecar(json_path: Path) -> dict[str, Any]:
    if not json_path.is_file():
        raise FileNotFoundError(f"the checkpoint's config file {json_path} is missing; a coldlib checkpoint is a "
                                ".safetensors file plus a .json beside it with the same name (save_model writes "
                                "both). Copy the .json too, or re-save the model.")
    try:
        config = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"the checkpoint config {json_path} is not valid JSON ({e}); re-download or re-save "
                         "it.") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{json_path} is not a coldlib checkpoint config: format is {found!r}, expected "
                         f"{FORMAT!r}. Save models with coldlib.checkpoints.save_model.")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ValueError(f"the checkpoint config {json_path} lacks {missing}; re-save it with save_model.")
    return config


def _check_state_dict(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path) -> None:
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    shapes = sorted(k for k in set(loaded) & set(expected) if loaded[k].shape != expected[k].shape)
    if not (missing or unexpected or shapes):
        return

    def show(keys: list[str], n: int = 5) -> str:
        return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")

    parts = []
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    if shapes:
        parts.append("shape mismatches: " + show([f"{k} {tuple(loaded[k].shape)} vs {tuple(expected[k].shape)}"
                                                  for k in shapes]))
    raise ValueError(f"the weights in {path} do not match the UNet its .json describes ({'; '.join(parts)}). "
                     "The two files come from different models: copy the matching pair, or re-save.")


def load_model(path: str | Path, device: str | torch.device = "cpu", expected_sha256: str | None = None, *,
               degradation: Degradation | None = None) -> LoadedModel:
    """Load a checkpoint written by :func:`save_model` (give the stem or the ``.safetensors`` path).

    The UNet is returned in eval mode on ``device``. With ``expected_sha256``
    the weights file is verified first. ``degradation`` overrides the one in the config (needed only for a
    degradation of your own, which :func:`coldlib.degradations.from_config` cannot rebuild).
    """
    weights, json_path = _split_path(path)
    if not weights.is_file():
        raise FileNotFoundError(f"no checkpoint weights at {weights}.{_shipped_hint(weights)}")
    config = _read_sidecar(json_path)
    if expected_sha256 is not None:
        actual = sha256_of(weights)
        if actual != expected_sha256.strip().lower():
            raise ValueError(f"{weights} has SHA-256 {actual}, expected {expected_sha256}: the file is corrupted, "
                             "truncated or a different version; re-download or retrain it.")
    tensors, _ = _read_safetensors(weights, "checkpoint")
    try:
        unet_config = UNetConfig.from_dict(config["model"])
        model = UNet(unet_config)
    except (TypeError, KeyError, ValueError) as e:
        raise ValueError(f"the UNet config in {json_path} is invalid ({e}); re-save the model.") from e
    _check_state_dict(tensors, model.state_dict(), weights)
    model.load_state_dict(tensors, strict=True)
    if degradation is None:
        try:
            degradation = from_config(config["degradation"])
        except (TypeError, KeyError, ValueError) as e:
            raise ValueError(f"cannot rebuild the degradation recorded in {json_path} ({e}). For a degradation "
                             "of your own, pass it: load_model(path, degradation=MyDegradation(...)).") from e
    elif json.loads(json.dumps(degradation.config())) != config["degradation"]:
        # a different degradation would feed the model steps it was not trained on, silently
        raise ValueError(f"the degradation passed to load_model ({degradation.config()}) differs from the one "
                         f"the model was trained with ({config['degradation']}, recorded in {json_path}).")
    return LoadedModel(model.to(device).eval(), degradation, config, weights)


# --------------------------------------------------------------------------------------- shipped checkpoints


def _repo_checkpoint_dir() -> Path:
    return Path(coldlib.__file__).resolve().parents[1] / "data" / "checkpoints"


def checkpoint_dir() -> Path:
    """Where shipped checkpoints live: ``$COLDLIB_CHECKPOINT_DIR``, else the repository's ``data/checkpoints``.
    """
    env = os.environ.get("COLDLIB_CHECKPOINT_DIR", "").strip()
    return Path(env).expanduser() if env else _repo_checkpoint_dir()


def registry_path() -> Path:
    """``registry.json`` in :func:`checkpoint_dir`: shipped name → file, sha256, task, dataset."""
    return checkpoint_dir() / "registry.json"


def read_registry() -> dict[str, dict]:
    """The shipped-checkpoint registry; ``{}`` if ``registry.json`` does not exist yet."""
    path = registry_path()
    if not path.is_file():
        return {}
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"the checkpoint registry {path} is not valid JSON ({e}); restore it from the "
                         "repository (git checkout -- data/checkpoints/registry.json).") from e
    if not isinstance(registry, dict) or not all(isinstance(v, dict) and "file" in v and "sha256" in v
                                                 for v in registry.values()):
        raise ValueError(f"the checkpoint registry {path} must map names to {{'file', 'sha256', 'task', "
                         "'dataset'}; restore it from the repository.")
    return registry


def _registry_or_empty() -> dict[str, dict]:
    try:
        return read_registry()
    except ValueError:  # a damaged registry must not break `import coldlib`; load_shipped reports it
        return {}


#: Shipped checkpoints known when coldlib was imported (``{}`` until the course's models are registered).
#: :func:`load_shipped` re-reads ``registry.json``, so it also sees checkpoints registered later.
SHIPPED: dict[str, dict] = _registry_or_empty()


def load_shipped(name: str, device: str | torch.device = "cpu") -> LoadedModel:
    """Load one of the course's trained models by name, verifying its SHA-256 from ``registry.json``.
    """
    registry = read_registry()
    if name not in registry:
        folder = checkpoint_dir()
        files = sorted(p.name for p in folder.glob(f"*{_SUFFIX}")) if folder.is_dir() else []
        known = ", ".join(sorted(registry)) if registry else (
            f"none: {registry_path()} does not exist yet" if not registry_path().is_file() else "none")
        loose = (f" Unregistered weights in {folder}: {', '.join(files)} (load them with load_model)."
                 if files else "")
        raise ValueError(f"no shipped checkpoint named {name!r}. Shipped checkpoints: {known}.{loose} Train "
                         "your own in lesson 02_training_a_restorer.")
    entry = registry[name]
    weights = checkpoint_dir() / entry["file"]
    if not weights.is_file():
        raise FileNotFoundError(f"the shipped checkpoint {name!r} should be at {weights}, which is missing. It "
                                "comes with a clone of the course repository (run `git lfs pull` if you cloned "
                                "without LFS); set COLDLIB_CHECKPOINT_DIR if you keep the files elsewhere.")
    return load_model(weights, device=device, expected_sha256=entry["sha256"])


def register_shipped(name: str, path: str | Path, task: str, dataset: str) -> dict:
    """Add or update ``name`` in ``registry.json`` with the file's SHA-256; return the entry.

    The checkpoint must
    already sit in :func:`checkpoint_dir` and load cleanly.
    """
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"shipped names use letters, digits, '-', '_' and '.'; got {name!r}.")
    weights, _ = _split_path(path)
    folder = checkpoint_dir().resolve()
    if weights.resolve().parent != folder:
        raise ValueError(f"{weights} is not in the checkpoint folder {folder}; copy the .safetensors and its "
                         ".json there first.")
    load_model(weights)  # refuse to register something that does not load
    entry = {"file": weights.name, "sha256": sha256_of(weights), "task": task, "dataset": dataset}
    registry = read_registry()
    registry[name] = entry
    payload = json.dumps(dict(sorted(registry.items())), indent=2) + "\n"
    _atomic_write(registry_path(), payload.encode())
    SHIPPED.clear()
    SHIPPED.update(registry)
    return entry


# ------------------------------------------------------------------------------------ resumable training


def save_training_state(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write tensors plus a JSON-able ``meta`` dict to one safetensors file, atomically.

    Combine ``{"model." + k: v}``, the EMA, :func:`optimizer_to_tensors` and
    :func:`rng_to_tensors` into ``tensors`` (with their metas in ``meta``) to resume a run exactly.
    """
    bad = [k for k, v in tensors.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"tensors must map str names to torch.Tensor; bad entries: {bad[:5]}.")
    try:
        meta_json = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta must be JSON-serialisable ({e}); keep tensors in `tensors`.") from e
    cpu = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    _atomic_write(Path(path).expanduser(), _st_save(cpu, metadata={_META_KEY: meta_json, "format": FORMAT}))


def load_training_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read what :func:`save_training_state` wrote: ``(tensors on the CPU, meta)``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}; start a fresh run, or check the run folder.")
    tensors, meta = _read_safetensors(path, "training state")
    if _META_KEY not in meta:
        raise ValueError(f"{path} is a safetensors file but not a coldlib training state (no {_META_KEY!r} "
                         "metadata); save it with save_training_state.")
    try:
        return tensors, json.loads(meta[_META_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"the metadata of {path} is corrupted ({e}); resume from an earlier state.") from e


def optimizer_to_tensors(opt_state_dict: dict, prefix: str = "optimizer.") -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-able meta, for :func:`save_training_state`.

    Tensors (Adam's ``exp_avg``, ``exp_avg_sq``, ``step``) keep their dtype, so
    :func:`optimizer_from_tensors` rebuilds the state bit for bit.
    """
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict] = {}
    for pid, entries in opt_state_dict["state"].items():
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise ValueError(f"optimizer state keys must be ints (parameter indices); got {pid!r}.")
        plain, names = {}, []
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}state.{pid}.{key}"] = value
                names.append(key)
            else:
                plain[key] = value
        state_meta[str(pid)] = {"tensors": names, "values": plain}
    groups, tuples = [], []
    for i, group in enumerate(opt_state_dict["param_groups"]):
        g = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):  # e.g. a tensor lr
                tensors[f"{prefix}param_groups.{i}.{key}"] = value
                g[key] = {"__tensor__": f"{prefix}param_groups.{i}.{key}"}
            else:
                if isinstance(value, tuple):
                    tuples.append([i, key])
                g[key] = value
        groups.append(g)
    return tensors, {"state": state_meta, "param_groups": groups, "tuples": tuples, "prefix": prefix}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Rebuild the ``state_dict`` that :func:`optimizer_to_tensors` split, for ``optimizer.load_state_dict``.
    """
    prefix = meta["prefix"]
    try:
        state = {}
        for pid, entry in meta["state"].items():
            values = dict(entry["values"])
            for key in entry["tensors"]:
                values[key] = tensors[f"{prefix}state.{pid}.{key}"]
            state[int(pid)] = values
        groups = []
        for group in meta["param_groups"]:
            groups.append({k: tensors[v["__tensor__"]] if isinstance(v, dict) and "__tensor__" in v else v
                           for k, v in group.items()})
    except KeyError as e:
        raise ValueError(f"the training state lacks optimizer tensor {e}; it was saved with a different "
                         "prefix or is incomplete.") from e
    for i, key in meta["tuples"]:
        groups[i][key] = tuple(groups[i][key])
    return {"state": state, "param_groups": groups}


def rng_to_tensors(prefix: str = "rng.") -> tuple[dict[str, torch.Tensor], dict]:
    """The global random states (torch CPU and CUDA as uint8 tensors; Python ``random`` and NumPy as JSON).

    A ``torch.Generator`` of your own: save ``gen.get_state()`` as a tensor.
    """
    tensors = {f"{prefix}torch": torch.get_rng_state()}
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for i in range(n_cuda):
        tensors[f"{prefix}cuda.{i}"] = torch.cuda.get_rng_state(i)
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {"prefix": prefix, "cuda_devices": n_cuda,
            "python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    return tensors, meta


def rng_from_tensors(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Restore what :func:`rng_to_tensors` saved. CUDA states are restored for the GPUs both runs have.
    """
    prefix = meta["prefix"]
    torch.set_rng_state(tensors[f"{prefix}torch"])
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for i in range(min(n_cuda, meta["cuda_devices"])):
        torch.cuda.set_rng_state(tensors[f"{prefix}cuda.{i}"], i)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))

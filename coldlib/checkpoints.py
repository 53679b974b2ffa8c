"""Model files: a network's float32 weights (safetensors) plus a JSON sidecar that says how to rebuild it.

A saved model is two files side by side:

* ``<name>.safetensors``: the network's ``state_dict`` in float32 (for restorers, save the EMA weights: they
  are what the paper samples and evaluates with);
* ``<name>.json``: everything needed to rebuild and judge it (for restorers: the UNet config, the degradation
  config, the data it saw, the number of steps, the training settings, optional metrics, time and hardware),
  and the SHA-256 of the weights, which every load verifies.

Restorers (:func:`save_model`, :func:`load_model`) and the MNIST feature network
(:mod:`coldlib.evaluation.classifier`) share one writer and one reader (:func:`write_checkpoint`,
:func:`read_checkpoint`). Nothing here uses pickle: ``torch.load`` on a downloaded file can run arbitrary code,
safetensors cannot. Every write goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so an interrupted save never leaves a half-written file behind. The pair is replaced as a
pair: while new weights are renamed into place, the previous ones stay beside them as
``<name>.safetensors.previous`` until the new sidecar is in place too, so an export interrupted at any point
(Ctrl-C, a full disk, a killed process) leaves the previous model loadable (:func:`read_checkpoint` falls
back to the weights its sidecar's SHA-256 names).

The course's shipped models and their registry live in :mod:`coldlib.shipped`; a training run's resumable
state in :mod:`coldlib.training.state`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

import coldlib

from .degradations import Degradation, from_config
from .diffusion import ColdDiffusion
from .unet import UNet, UNetConfig
from .validate import check_int

__all__ = ["FORMAT", "LoadedModel", "save_model", "load_model", "sha256_of", "write_checkpoint", "read_checkpoint", "sidecar_json",
           "describe_degradation", "read_json"]

FORMAT = "coldlib-checkpoint/1"
_SUFFIX = ".safetensors"
_PREVIOUS = ".previous"  # <name>.safetensors.previous: the last good weights while an export replaces the pair
_REQUIRED = ("format", "model", "degradation", "data", "steps")
# The sidecar fields load_model and the lessons read, and the JSON type each must have.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {"model": (dict,), "degradation": (dict,), "data": (str,), "steps": (int,),
                                             "train": (dict,), "metrics": (dict, type(None)), "sha256": (str,),
                                             "training_data": (dict, type(None))}


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


def read_json(path: Path, what: str, fix: str) -> Any:
    """The JSON in ``path``; ``ValueError`` naming the file and ``fix`` if it is not UTF-8 JSON or nests absurdly."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"the {what} {path} is not valid JSON ({e}); {fix}.") from e
    except RecursionError as e:  # e.g. [[[[...]]]] thousands deep: Python's parser gives up, with a bare traceback
        raise ValueError(f"the {what} {path} nests its JSON too deeply to read (no coldlib file nests more than a "
                         f"few levels): it is damaged or not a coldlib file; {fix}.") from e


def _previous_path(weights: Path) -> Path:
    return weights.with_name(weights.name + _PREVIOUS)


def _good_weights(weights: Path, json_path: Path) -> Path | None:
    """The weights file (``weights`` or its ``.previous``) whose SHA-256 the current sidecar records, if any."""
    try:
        recorded = json.loads(json_path.read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError, RecursionError):  # no sidecar, or not one: nothing to keep
        return None
    for candidate in (weights, _previous_path(weights)):
        if candidate.is_file() and (recorded is None and candidate == weights or sha256_of(candidate) == recorded):
            return candidate
    return None


def _keep_previous(weights: Path, json_path: Path) -> tuple[Path | None, Path | None]:
    """Before a pair is replaced: ``(backup, good)``, the previous good weights set aside and where they were.

    The backup is a hard link (a copy where links are not possible), so renaming new weights over ``weights``
    leaves it intact. A backup left by an interrupted export that still matches the sidecar is kept as is.
    """
    good, backup = _good_weights(weights, json_path), _previous_path(weights)
    if good == backup:
        return backup, good
    backup.unlink(missing_ok=True)
    if good is None:
        return None, None
    try:
        os.link(weights, backup)
    except OSError:  # a file system without hard links
        shutil.copyfile(weights, backup)
    return backup, good


def sidecar_json(config: dict) -> str:
    """``config`` as indented JSON, with ``training_data["ranges"]`` on one line.

    A class-filtered training set (e.g. MNIST's 5,851 training eights) has thousands of index ranges; one
    line each would make a sidecar of 20,000 lines that nobody can read.
    """
    record = config.get("training_data")
    if not isinstance(record, dict) or "ranges" not in record:
        return json.dumps(config, indent=2)
    marker = "__coldlib_ranges__"
    text = json.dumps({**config, "training_data": {**record, "ranges": marker}}, indent=2)
    return text.replace(json.dumps(marker), json.dumps(record["ranges"], separators=(",", ":")))


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


def _parse_safetensors(raw: bytes, path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of the bytes of a safetensors file; ``ValueError`` if damaged (never pickle)."""
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


def write_checkpoint(path_stem: str | Path, state_dict: dict[str, torch.Tensor], sidecar: dict[str, Any], *,
                     fmt: str, metadata: dict[str, str] | None = None) -> Path:
    """Write ``<stem>.safetensors`` (floating tensors as float32) and ``<stem>.json``; return the former.

    The sidecar gets ``format`` = ``fmt`` and the weights' ``sha256``; ``metadata`` (strings) goes into the
    safetensors header beside ``format``. A sidecar that is not JSON-serialisable is refused before anything
    is written.
    """
    config = {"format": fmt, **sidecar}
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"the checkpoint config is not JSON-serialisable ({e}); pass plain numbers, strings, "
                         "lists and dicts.") from e
    tensors = {k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().to("cpu"))
               .contiguous().clone() for k, v in state_dict.items()}
    payload = _st_save(tensors, metadata={**(metadata or {}), "format": fmt})
    config["sha256"] = hashlib.sha256(payload).hexdigest()
    weights, json_path = _split_path(path_stem)
    weights.parent.mkdir(parents=True, exist_ok=True)
    backup, good = _keep_previous(weights, json_path)
    replaced = False
    try:
        _atomic_write(weights, payload)
        replaced = True
        _atomic_write(json_path, (sidecar_json(config) + "\n").encode())
    except BaseException:
        # Put the previous pair back. If even that fails (or the process dies first), the backup stays and
        # read_checkpoint loads it, because the old sidecar records its hash.
        try:
            if backup is not None and replaced:
                os.replace(backup, weights)
            elif backup is not None and good == weights:
                backup.unlink()
        except BaseException:
            pass
        raise
    if backup is not None:
        backup.unlink(missing_ok=True)
    return weights


def read_checkpoint(path: str | Path, *, fmt: str, what: str = "checkpoint", fix: str = "re-download or re-save it",
                    expected_sha256: str | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, str], Path]:
    """Read what :func:`write_checkpoint` wrote: ``(tensors, sidecar, safetensors metadata, weights path)``.

    ``path`` is the stem, the ``.safetensors`` or the ``.json`` path. The sidecar must exist, be JSON and have
    format ``fmt``. The weights' SHA-256 is checked against the sidecar's ``sha256`` whenever it records one,
    and against ``expected_sha256`` if given: a flipped byte anywhere in the file is refused. ``fix`` ends
    every error message (what the user should do).
    """
    weights, json_path = _split_path(path)
    if not weights.is_file():
        raise FileNotFoundError(f"no {what} weights at {weights}; {fix}.")
    if not json_path.is_file():
        raise FileNotFoundError(f"the {what}'s sidecar {json_path} (its config) is missing: a coldlib {what} is a "
                                f".safetensors file plus a .json beside it with the same name; copy the .json too, "
                                f"or {fix}.")
    sidecar = read_json(json_path, f"{what} config", fix)
    if not isinstance(sidecar, dict) or sidecar.get("format") != fmt:
        found = sidecar.get("format") if isinstance(sidecar, dict) else type(sidecar).__name__
        raise ValueError(f"{json_path} is not a coldlib {what} config: format is {found!r}, expected {fmt!r}; "
                         f"{fix}.")
    if not isinstance(sidecar.get("sha256", ""), str) or not isinstance(expected_sha256 or "", str):
        raise ValueError(f"the SHA-256 in {json_path.name} (or expected_sha256) must be a hex string; got "
                         f"{sidecar.get('sha256')!r} / {expected_sha256!r}; {fix}.")
    expectations = [(e.strip().lower(), source) for e, source in ((sidecar.get("sha256"), json_path.name),
                                                                 (expected_sha256, "expected_sha256")) if e is not None]

    def mismatch(data: bytes) -> tuple[str, str, str] | None:
        actual = hashlib.sha256(data).hexdigest()
        return next(((actual, e, source) for e, source in expectations if actual != e), None)

    raw = weights.read_bytes()  # not mmap: the file may be replaced while we hold it (Windows locks mapped files)
    wrong = mismatch(raw)
    previous = _previous_path(weights)
    if wrong is not None and previous.is_file() and mismatch(kept := previous.read_bytes()) is None:
        # An export was interrupted between its two files: the sidecar still describes the previous weights.
        warnings.warn(f"{weights.name} does not match {json_path.name} (an export was interrupted between its two "
                      f"files); loaded the previous weights {previous.name}, which it describes. Export again to "
                      "finish the new model.", UserWarning, stacklevel=3)
        raw, weights, wrong = kept, previous, None
    if wrong is not None:
        actual, expected, source = wrong
        lfs = " (it is a Git LFS pointer: run `git lfs pull`)" if raw.startswith(b"version https://git-lfs") else ""
        raise ValueError(f"{weights} has SHA-256 {actual} but {source} says {expected}: the file is corrupted, "
                         f"truncated or from a different run{lfs}; {fix}.")
    tensors, metadata = _parse_safetensors(raw, weights, what)
    return tensors, sidecar, metadata, weights


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

    def diffusion(self, loss: str = "l1") -> ColdDiffusion:
        """A :class:`coldlib.diffusion.ColdDiffusion` around the loaded model and degradation."""
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
               train: dict | None = None, metrics: dict | None = None, metrics_protocol: dict | None = None,
               hardware: str | None = None, training_data: dict | None = None) -> Path:
    """Save ``model`` as ``<stem>.safetensors`` (float32 weights) plus ``<stem>.json`` (config); return the former.

    Pass the EMA model. ``data`` says what it was trained on (e.g.
    "MNIST train, 60,000 images, 32 px"), ``steps`` how many optimizer steps, ``train`` the settings (lr,
    batch, EMA decay, ...), ``metrics`` an evaluation (e.g. from :func:`coldlib.evaluation.evaluate_restoration`)
    and ``metrics_protocol`` how it was measured (images, SSIM convention, seed of ``z``). ``training_data``
    (:meth:`coldlib.data.Origin.to_dict` of the training images) lets :func:`coldlib.data.check_held_out` prove
    that an evaluation never uses an image the model was trained on.
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
    check_int(steps, "steps", minimum=0, hint=" (optimizer steps taken)")
    try:
        degradation_config = degradation.config()
    except NotImplementedError as e:
        raise ValueError(f"{type(degradation).__name__} cannot be saved: {e}") from e
    sidecar = {
        "coldlib_version": coldlib.__version__,
        "model": model.config.to_dict(),
        "degradation": degradation_config,
        "data": data,
        **({"training_data": training_data} if training_data is not None else {}),
        "steps": steps,
        "train": dict(train or {}),
        "metrics": metrics,
        **({"metrics_protocol": metrics_protocol} if metrics_protocol else {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware,
    }
    # The weights carry the degradation's type too, so a sidecar swapped in from another model is caught.
    return write_checkpoint(path_stem, model.state_dict(), sidecar, fmt=FORMAT,
                            metadata={"degradation": str(degradation_config.get("type", type(degradation).__name__))})


def _check_state_dict(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, *,
                      subject: str | None = None, fix: str | None = None) -> None:
    """Refuse tensors that ``load_state_dict`` would reject with a bare traceback, or silently cast.

    Keys, shapes and dtypes must all equal the model's: a float16 or float64 tensor is an error, not a cast.
    ``subject`` and ``fix`` word the message (default: a checkpoint whose two files do not match).
    """
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    both = sorted(set(loaded) & set(expected))
    shapes = [k for k in both if loaded[k].shape != expected[k].shape]
    dtypes = [k for k in both if loaded[k].dtype != expected[k].dtype and k not in shapes]
    if not (missing or unexpected or shapes or dtypes):
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
    if dtypes:
        parts.append("dtype mismatches: " + show([f"{k} {loaded[k].dtype} vs {expected[k].dtype}" for k in dtypes]))
    subject = subject or f"the weights in {path} do not match the UNet its .json describes"
    fix = fix or ("The two files come from different models: copy the matching pair, or re-save (save_model "
                  "writes float32).")
    raise ValueError(f"{subject} ({'; '.join(parts)}). {fix}")


def _check_fields(config: dict[str, Any], json_path: Path) -> None:
    """Every field load_model and the lessons read must exist and have its JSON type (a string 'steps' is an error)."""
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ValueError(f"the checkpoint config {json_path} lacks {missing}; re-save it with save_model.")
    wrong = [f"{k!r} is {type(value).__name__} {str(value)[:40]!r}, not {' or '.join(t.__name__ for t in types)}"
             for k, types in _FIELD_TYPES.items() if k in config
             for value in [config[k]] if not isinstance(value, types) or isinstance(value, bool)]
    if not wrong and config["steps"] < 0:
        wrong = [f"'steps' is {config['steps']}, not a count >= 0"]
    if wrong:
        raise ValueError(f"the checkpoint config {json_path} has fields of the wrong type ({'; '.join(wrong)}): it "
                         "was edited by hand or damaged; restore it, or re-save the model with save_model.")


def describe_degradation(D: Degradation) -> dict[str, Any]:
    """``D.config()`` as plain JSON, or, for a degradation that does not describe itself (or not as JSON), its
    type, T and repr: enough to record which degradation a run trained, and to compare two of them."""
    try:
        return json.loads(json.dumps(D.config()))
    except (NotImplementedError, TypeError, ValueError):
        return {"type": type(D).__name__, "T": D.T, "repr": repr(D)}


def load_model(path: str | Path, device: str | torch.device = "cpu", expected_sha256: str | None = None, *,
               degradation: Degradation | None = None) -> LoadedModel:
    """Load a checkpoint written by :func:`save_model` (give the stem or the ``.safetensors`` path).

    The UNet is returned in eval mode on ``device``. The weights are verified against the SHA-256 the
    sidecar records (and ``expected_sha256`` if given). ``degradation`` overrides the one in the config
    (needed only for a degradation of your own, which :func:`coldlib.degradations.from_config` cannot rebuild).
    """
    tensors, config, metadata, weights = read_checkpoint(
        path, fmt=FORMAT, expected_sha256=expected_sha256,
        fix="re-download it (shipped checkpoints: coldlib.shipped.load_shipped(name) says where they live), or "
            "retrain and save it with coldlib.checkpoints.save_model")
    json_path = _split_path(path)[1]
    _check_fields(config, json_path)
    recorded = config["degradation"].get("type")
    if "degradation" in metadata and metadata["degradation"] != recorded:
        raise ValueError(f"the weights in {weights} were trained with a {metadata['degradation']} degradation but "
                         f"{json_path.name} describes a {recorded}: the two files come from different models. "
                         "Copy the matching pair, or re-save the model.")
    try:
        unet_config = UNetConfig.from_dict(config["model"])
        model = UNet(unet_config)
    except (TypeError, KeyError, ValueError, AttributeError, RuntimeError) as e:
        raise ValueError(f"the UNet config in {json_path} is invalid ({type(e).__name__}: {e}); re-save the "
                         "model.") from e
    _check_state_dict(tensors, model.state_dict(), weights)
    model.load_state_dict(tensors, strict=True)
    if degradation is None:
        try:
            degradation = from_config(config["degradation"])
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            raise ValueError(f"cannot rebuild the degradation recorded in {json_path} ({e}). For a degradation "
                             "of your own, pass it: load_model(path, degradation=MyDegradation(...)).") from e
    elif describe_degradation(degradation) != config["degradation"]:
        # a different degradation would feed the model steps it was not trained on, silently
        raise ValueError(f"the degradation passed to load_model ({describe_degradation(degradation)}) differs from "
                         f"the one the model was trained with ({config['degradation']}, recorded in {json_path}).")
    return LoadedModel(model.to(device).eval(), degradation, config, weights)

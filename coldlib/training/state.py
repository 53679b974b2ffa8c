"""A training run's resumable state: weights, EMA, Adam's moments and random-number-generator states.

Everything goes into one safetensors file (``state.safetensors`` in the run folder) with JSON metadata, written
atomically, so a run killed at any moment resumes from its last state as if it had never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save as _st_save

from .. import checkpoints
from ..checkpoints import _parse_safetensors

__all__ = ["save_training_state", "load_training_state", "optimizer_to_tensors", "optimizer_from_tensors"]

_META_KEY = "coldlib"  # the safetensors metadata entry holding a training state's JSON
_FORMAT = "coldlib-training-state/1"


def save_training_state(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write tensors plus a JSON-able ``meta`` dict to one safetensors file, atomically.

    Combine ``{"model." + k: v}``, the EMA, :func:`optimizer_to_tensors` and generator states
    (``generator.get_state()``) into ``tensors``, with their metas in ``meta``, to resume a run exactly.
    """
    bad = [k for k, v in tensors.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"tensors must map str names to torch.Tensor; bad entries: {bad[:5]}.")
    try:
        meta_json = json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta must be JSON-serialisable ({e}); keep tensors in `tensors`.") from e
    cpu = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    # through the module attribute, so tests can watch which process writes
    payload = _st_save(cpu, metadata={_META_KEY: meta_json, "format": _FORMAT})
    checkpoints._atomic_write(Path(path).expanduser(), payload)


def load_training_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read what :func:`save_training_state` wrote: ``(tensors on the CPU, meta)``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}; start a fresh run, or check the run folder.")
    tensors, meta = _parse_safetensors(path.read_bytes(), path, "training state")
    if _META_KEY not in meta:
        raise ValueError(f"{path} is a safetensors file but not a coldlib training state (no {_META_KEY!r} "
                         "metadata); save it with save_training_state.")
    try:
        parsed = json.loads(meta[_META_KEY])
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"the metadata of {path} is corrupted ({type(e).__name__}); resume from an earlier state, "
                         "or delete the file to start afresh.") from e
    if not isinstance(parsed, dict):
        raise ValueError(f"the metadata of {path} is a {type(parsed).__name__}, not a dict: the file is damaged; "
                         "resume from an earlier state, or delete the file to start afresh.")
    return tensors, parsed


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

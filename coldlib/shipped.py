"""The course's shipped models: where they live and the registry that pins each file's SHA-256.

Trained models ship in the repository's ``data/checkpoints`` (or ``$COLDLIB_CHECKPOINT_DIR``) with a
``registry.json`` mapping each name to its file, SHA-256, task and dataset. :func:`load_shipped` verifies the
hash before loading, so a damaged or swapped file is refused with a message that says how to get it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

import coldlib

from .checkpoints import _SUFFIX, LoadedModel, _atomic_write, _split_path, load_model, read_json, sha256_of

__all__ = ["checkpoint_dir", "registry_path", "read_registry", "SHIPPED", "load_shipped", "register_shipped"]


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
    fix = "restore it from the repository (git checkout -- data/checkpoints/registry.json)"
    registry = read_json(path, "checkpoint registry", fix)
    if not isinstance(registry, dict):
        raise ValueError(f"the checkpoint registry {path} must map names to {{'file', 'sha256', 'task', "
                         f"'dataset'}}; it holds a {type(registry).__name__}; {fix}.")
    for name, entry in registry.items():
        if not isinstance(entry, dict) or "file" not in entry or "sha256" not in entry:
            raise ValueError(f"the checkpoint registry {path} must map names to {{'file', 'sha256', 'task', "
                             f"'dataset'}}; its entry {name!r} is {str(entry)[:80]!r}; {fix}.")
        wrong = [f"{k!r} is {type(v).__name__} {str(v)[:40]!r}" for k, v in entry.items()
                 if k in ("file", "sha256", "task", "dataset") and not isinstance(v, str)]
        if wrong:
            raise ValueError(f"the checkpoint registry {path}: entry {name!r} has fields of the wrong type "
                             f"({'; '.join(wrong)}; each must be a string); {fix}.")
        if Path(entry["file"]).name != entry["file"]:  # a path would load a file from outside the folder
            raise ValueError(f"the checkpoint registry {path}: entry {name!r} names the file {entry['file']!r}, "
                             f"a path; it must be a file name in {path.parent}; {fix}.")
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

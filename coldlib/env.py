"""Runtime environment: Colab detection, fast/offline switches, device, seeding and the data directory.

Every lesson starts with the same setup cell, which calls these helpers.

Environment variables read here (all optional):

- ``COLDLIB_FAST``: ``1/true/yes`` shrinks training in the notebooks (CI sets it).
- ``COLDLIB_OFFLINE``: ``1/true/yes`` forbids any download attempt in :mod:`coldlib.data`.
- ``COLDLIB_DEVICE``: ``cuda``, ``cuda:1``, ``mps`` or ``cpu`` forces the device.
- ``COLDLIB_DATA_DIR``: the folder that holds (or receives) datasets.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

import coldlib

_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no", "")


def in_colab() -> bool:
    """Return True when running inside Google Colab.
    """
    return "google.colab" in sys.modules


def _env_flag(name: str) -> bool:
    """Parse a boolean environment variable strictly; unknown values raise ValueError."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"Environment variable {name}={raw!r} is not understood. "
        f"Set it to one of {', '.join(_TRUE)} (on) or {', '.join(v for v in _FALSE if v)} or empty (off)."
    )


def fast_mode() -> bool:
    """Return True when ``COLDLIB_FAST`` asks for shrunken training (CI and quick previews).

    Accepted values: ``1``, ``true``, ``yes`` (on); ``0``, ``false``, ``no`` or unset/empty (off).
    Anything else raises ValueError.
    """
    return _env_flag("COLDLIB_FAST")


def progress_bars(requested: bool) -> bool:
    """Whether to show a progress bar the caller asked for: ``requested``, unless ``TQDM_DISABLE`` is set.

    ``TQDM_DISABLE`` is tqdm's own switch (``1/true/yes``). tqdm reads it only for arguments that are not passed,
    and coldlib passes ``disable=`` explicitly, so coldlib honours it here. ``make render`` sets it: a bar
    saved in a notebook is a frozen widget that shows a stale count.
    """
    return bool(requested) and os.environ.get("TQDM_DISABLE", "").strip().lower() not in _TRUE


def offline() -> bool:
    """Return True when ``COLDLIB_OFFLINE`` forbids downloads; data code then never touches the network.

    Same values as :func:`fast_mode`.
    """
    return _env_flag("COLDLIB_OFFLINE")


def _available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        return device.index is None or device.index < torch.cuda.device_count()
    if device.type == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return False


def lesson_device(fast: bool) -> torch.device:
    """:func:`pick_device`, and in fast mode on a CPU one torch thread.

    CI runs the lessons' small batches on a busy, shared 2-core CPU, where one intra-op thread is several
    times faster than OpenMP threads spinning against each other; a learner's full runs keep every thread.
    """
    device = pick_device()
    if fast and device.type == "cpu":
        torch.set_num_threads(1)
    return device


def pick_device(prefer: str | None = None, *, name: str = "prefer") -> torch.device:
    """Choose the compute device: ``prefer``, else ``COLDLIB_DEVICE``, else cuda, then mps, then cpu.

    A forced device (argument or environment variable) that is not available raises ValueError
    instead of silently falling back; ``name`` is what the message calls the argument.
    """
    source = name
    if prefer is None:
        env = os.environ.get("COLDLIB_DEVICE", "").strip()
        if env:
            prefer, source = env, "COLDLIB_DEVICE"
    if prefer is not None:
        if not isinstance(prefer, str):
            raise ValueError(f"{source} must be a string such as 'cuda', 'mps' or 'cpu', got {type(prefer).__name__}.")
        try:
            device = torch.device(prefer)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{source}={prefer!r} is not a device name; use 'cuda', 'cuda:0', 'mps' or 'cpu'.") from err
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"{source}={prefer!r}: coldlib supports only 'cuda', 'mps' and 'cpu'.")
        if not _available(device):
            raise ValueError(
                f"{source}={prefer!r} was requested but is not available on this machine. "
                "Pass prefer=None (and unset COLDLIB_DEVICE) to pick automatically, or choose 'cpu'."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _available(torch.device("mps")):
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16).

    Only then is bf16 autocast faster than fp32 for training on the CPU; without it PyTorch emulates bf16 and
    a training step gets many times slower (measured on an AVX2-only CPU: ``bench/bench_training.py``).
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # PyTorch 2.6+; older releases: assume not
    if capabilities is None:
        return False
    found = capabilities()
    return bool(found.get("avx512_bf16") or found.get("amx_bf16"))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch (CPU and all CUDA devices) and return a seeded CPU Generator.

    Pass the returned generator to samplers and loaders for reproducible draws.
    ``seed`` must be an int in [0, 2**32 - 1] (NumPy's range).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {type(seed).__name__} {seed!r}.")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32 - 1], got {seed}; pick a smaller non-negative number.")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def data_dir() -> Path:
    """Resolve the data directory; this is the only place that decides where datasets live.

    Order: ``COLDLIB_DATA_DIR`` (must be an existing folder), then the repository's ``data/`` folder
    (a clone or editable install), then ``~/.cache/coldlib/data`` (created if needed).
    Nothing is written into the returned folder except by an explicit download.
    """
    env = os.environ.get("COLDLIB_DATA_DIR", "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"COLDLIB_DATA_DIR={env!r} is not an existing folder. Create it, point the variable at the "
                "folder that holds your datasets, or unset it to use the default location."
            )
        return path.resolve()
    repo_data = Path(coldlib.__file__).resolve().parents[1] / "data"
    if repo_data.is_dir():
        return repo_data
    cache = Path.home() / ".cache" / "coldlib" / "data"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def describe_environment() -> dict[str, str]:
    """Summarise the runtime (versions, device, switches, data folder) as strings for the setup cell.
    """
    device = pick_device()
    mps = getattr(torch.backends, "mps", None)
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "coldlib": getattr(coldlib, "__version__", "unknown"),
        "device": str(device),
        "cuda_available": str(torch.cuda.is_available()),
        "mps_available": str(bool(mps and mps.is_available())),
        "colab": str(in_colab()),
        "fast_mode": str(fast_mode()),
        "offline": str(offline()),
        "data_dir": str(data_dir()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info

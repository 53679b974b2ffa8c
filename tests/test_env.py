"""Tests for coldlib.env: switches, device choice, seeding, data directory (Lesson: 00_setup_and_tour)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision  # noqa: F401  (import before the fixtures patch torch.cuda: torch._dynamo inspects it on import)

import coldlib
from coldlib import env


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend neither CUDA nor MPS exists, whatever this machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv("COLDLIB_DEVICE", raising=False)


@pytest.mark.parametrize("func,var", [(env.fast_mode, "COLDLIB_FAST"), (env.offline, "COLDLIB_OFFLINE")])
def test_flag_parsing(monkeypatch, func, var):
    for value in ("1", "true", "yes", "TRUE", " Yes "):
        monkeypatch.setenv(var, value)
        assert func() is True, value
    for value in ("0", "false", "no", "", "No"):
        monkeypatch.setenv(var, value)
        assert func() is False, value
    monkeypatch.delenv(var)
    assert func() is False


@pytest.mark.parametrize("func,var", [(env.fast_mode, "COLDLIB_FAST"), (env.offline, "COLDLIB_OFFLINE")])
@pytest.mark.parametrize("bad", ["maybe", "2", "on"])
def test_flag_rejects_unknown_values(monkeypatch, func, var, bad):
    monkeypatch.setenv(var, bad)
    with pytest.raises(ValueError) as info:
        func()
    message = str(info.value)
    assert var in message and repr(bad) in message and "true" in message and "false" in message


def test_in_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert env.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert env.in_colab() is True


def test_pick_device_is_cpu_without_accelerators(no_accelerator):
    assert env.pick_device() == torch.device("cpu")
    assert env.pick_device("cpu") == torch.device("cpu")


def test_pick_device_refuses_unavailable_or_unknown(no_accelerator, monkeypatch):
    for prefer in ("cuda", "mps", "cuda:0"):
        with pytest.raises(ValueError, match="not available"):
            env.pick_device(prefer)
    with pytest.raises(ValueError, match="device name"):
        env.pick_device("gpu please")
    with pytest.raises(ValueError, match="only"):
        env.pick_device("meta")
    monkeypatch.setenv("COLDLIB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="COLDLIB_DEVICE"):
        env.pick_device()
    assert env.pick_device("cpu") == torch.device("cpu")  # an explicit argument wins over the variable
    monkeypatch.setenv("COLDLIB_DEVICE", "cpu")
    assert env.pick_device() == torch.device("cpu")


def test_pick_device_prefers_cuda_when_present(monkeypatch):
    monkeypatch.delenv("COLDLIB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.pick_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert env.pick_device() == torch.device("mps")


def _draws(gen: torch.Generator) -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.rand(3, generator=gen).tolist()


def test_seed_everything_is_deterministic():
    first = _draws(env.seed_everything(123))
    second = _draws(env.seed_everything(123))
    other = _draws(env.seed_everything(124))
    assert first == second
    assert all(a != b for a, b in zip(first, other))
    assert isinstance(env.seed_everything(0), torch.Generator)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", True, None])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        env.seed_everything(bad)


def test_data_dir_env_var_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path))
    assert env.data_dir() == tmp_path.resolve()
    assert list(tmp_path.iterdir()) == []  # resolving never writes into the folder


def test_data_dir_env_var_must_exist(monkeypatch, tmp_path):
    missing = tmp_path / "nope"
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(missing))
    with pytest.raises(FileNotFoundError) as info:
        env.data_dir()
    assert "COLDLIB_DATA_DIR" in str(info.value) and str(missing) in str(info.value)
    assert not missing.exists()


def test_data_dir_repo_then_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("COLDLIB_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fake_pkg = tmp_path / "repo" / "coldlib" / "__init__.py"
    monkeypatch.setattr(coldlib, "__file__", str(fake_pkg))
    cache = tmp_path / "home" / ".cache" / "coldlib" / "data"
    assert env.data_dir() == cache and cache.is_dir()  # no repo data/ folder: the user cache, created
    (tmp_path / "repo" / "data").mkdir(parents=True)
    assert env.data_dir() == (tmp_path / "repo" / "data").resolve()  # a clone's data/ folder beats the cache


def test_data_dir_ignores_empty_env_var(monkeypatch):
    monkeypatch.setenv("COLDLIB_DATA_DIR", "")
    assert env.data_dir() != Path("").resolve()


def test_describe_environment(monkeypatch, tmp_path, no_accelerator):
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLDLIB_FAST", "1")
    info = env.describe_environment()
    for key in ("python", "torch", "torchvision", "coldlib", "device", "cuda_available", "mps_available",
                "colab", "fast_mode", "offline", "data_dir"):
        assert isinstance(info[key], str), key
    assert info["device"] == "cpu" and info["fast_mode"] == "True" and info["cuda_available"] == "False"
    assert info["coldlib"] == coldlib.__version__ and info["data_dir"] == str(tmp_path.resolve())


def test_lesson_device_uses_one_thread_only_in_fast_mode_on_a_cpu(monkeypatch):
    import torch

    from coldlib.env import lesson_device

    monkeypatch.setenv("COLDLIB_DEVICE", "cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert lesson_device(False).type == "cpu" and torch.get_num_threads() == 2
        assert lesson_device(True).type == "cpu" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)

"""coldlib.training.train_or_load: loads a registered checkpoint, trains when there is none, refuses damage.

Every test uses its own checkpoint folder (COLDLIB_CHECKPOINT_DIR in tmp_path); nothing is written into
data/checkpoints. The training test needs the offline MNIST files (COLDLIB_DATA_DIR, as in test_data.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import coldlib.checkpoints as ck
import coldlib.shipped as shipped
from coldlib.experiments import preset
from coldlib.training import describe_metrics, train_or_load
from coldlib.unet import UNet, unet_preset, unet_preset_name

_DATA = Path(os.environ.get("COLDLIB_DATA_DIR", "") or "/nonexistent")
needs_mnist = pytest.mark.skipif(not (_DATA / "MNIST" / "raw").is_dir(),
                                 reason="set COLDLIB_DATA_DIR to a folder with MNIST/raw (offline MNIST)")

METRICS = {"Degraded": {"SSIM": 0.3, "RMSE": 0.29, "PSNR": 10.9}, "Direct": {"SSIM": 0.7, "RMSE": 0.15, "PSNR": 16.5}}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "checkpoints"
    path.mkdir()
    monkeypatch.setenv("COLDLIB_CHECKPOINT_DIR", str(path))
    monkeypatch.setattr(shipped, "SHIPPED", {})  # register_shipped updates this dict in place
    return path


def _register_stand_in(folder: Path, name: str = "mnist_blur", task: str = "blur", dataset: str = "mnist") -> UNet:
    torch.manual_seed(0)
    model = UNet(unet_preset("tiny", 1)).eval()
    path = ck.save_model(folder / name, model, preset("blur", "mnist"), data="stand-in, no training", steps=7,
                         train={"batch_size": 8, "grad_accum": 1}, metrics=METRICS,
                         metrics_protocol={"images": 1234, "ssim": "a stand-in convention"})
    shipped.register_shipped(name, path, task=task, dataset=dataset)
    return model


def test_loads_a_registered_checkpoint(folder: Path, capsys: pytest.CaptureFixture) -> None:
    model = _register_stand_in(folder)
    loaded = train_or_load("mnist_blur", task="blur", dataset="mnist", steps=10_000, device="cpu")
    out = capsys.readouterr().out
    assert "loaded the shipped checkpoint 'mnist_blur'" in out and "7 steps" in out and "stand-in" in out
    assert "Direct: SSIM 0.700" in out and "UNet tiny" in out
    assert "held-out metrics (1,234 images; SSIM: a stand-in convention): Degraded" in out
    assert loaded.path == folder / "mnist_blur.safetensors" and loaded.config["steps"] == 7
    assert not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert loaded.degradation.config() == preset("blur", "mnist").config()


def test_registered_for_another_task_is_an_error(folder: Path) -> None:
    _register_stand_in(folder, task="inpaint")
    with pytest.raises(ValueError, match="task 'inpaint'"):
        train_or_load("mnist_blur", task="blur", dataset="mnist", steps=1, device="cpu")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_registered_file_raises_a_clear_error(folder: Path, damage: str) -> None:
    _register_stand_in(folder)
    weights = folder / "mnist_blur.safetensors"
    raw = bytearray(weights.read_bytes())
    if damage == "flip":
        raw[-1] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="SHA-256.*corrupted"):
        train_or_load("mnist_blur", task="blur", dataset="mnist", steps=1, device="cpu")


def test_registered_but_missing_file_raises(folder: Path) -> None:
    _register_stand_in(folder)
    (folder / "mnist_blur.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        train_or_load("mnist_blur", task="blur", dataset="mnist", steps=1, device="cpu")


@needs_mnist
@pytest.mark.slow
def test_trains_when_absent_and_writes_nothing(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    kwargs = dict(task="blur", dataset="mnist", steps=2, model="tiny", batch_size=4, grad_accum=1, limit=16,
                  device="cpu", progress=False)
    loaded = train_or_load("mnist_blur", **kwargs)
    out = capsys.readouterr().out
    assert "no shipped checkpoint 'mnist_blur'" in out and "does not exist" in out and "trained 2 steps" in out
    assert torch.equal(torch.get_rng_state(), before), "the global random state must not change"
    assert loaded.path is None and list(folder.iterdir()) == []
    assert loaded.config["steps"] == 2 and loaded.config["train"]["batch_size"] == 4
    assert unet_preset_name(loaded.config["model"]) == "tiny" and not loaded.model.training
    x = torch.zeros(2, 1, 32, 32)
    assert loaded.diffusion().sample(x, method="improved").shape == x.shape
    again = train_or_load("mnist_blur", **kwargs)  # same seed, same data: the same weights
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value), key

    run = tmp_path / "run"  # with out_dir: a resumable state and an exported checkpoint
    saved = train_or_load("other", out_dir=run, **kwargs)
    assert saved.path == run / "other.safetensors" and (run / "state.safetensors").is_file()
    assert ck.load_model(saved.path).config["steps"] == 2
    capsys.readouterr()
    train_or_load("other", out_dir=run, **{**kwargs, "steps": 3})
    assert "resuming" in capsys.readouterr().out and ck.load_model(run / "other").config["steps"] == 3


def test_helpers() -> None:
    assert unet_preset_name(unet_preset("small", 1).to_dict()) == "small"
    as_json = {**unet_preset("tiny", 3).to_dict(), "mults": [1, 2]}
    assert unet_preset_name(as_json) == "tiny"
    assert unet_preset_name({**as_json, "base": 7}) is None
    assert describe_metrics(None) == "no metrics stored"
    assert describe_metrics(METRICS).startswith("Degraded: SSIM 0.300, RMSE 0.290, PSNR 10.90; Direct")


@needs_mnist
def test_trains_animorphosis_with_a_given_degradation(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coldlib.data import load_images
    from coldlib.degradations import ImageMixing

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    zeros = load_images("mnist", classes=[0], limit=8).float()
    kwargs = dict(task="mixing", dataset="mnist", steps=2, model="tiny", batch_size=4, grad_accum=1, limit=16,
                  classes=[8], device="cpu", progress=False)
    loaded = train_or_load("mnist_mixing", degradation=ImageMixing(100, pool=zeros), **kwargs)
    assert loaded.degradation.pool is not None and "only classes [8]" in loaded.config["data"]
    with pytest.raises(ValueError, match="needs the images to mix in"):
        train_or_load("mnist_mixing", **kwargs)  # the preset has no images to mix in
    # any degradation trains (the task is then a label, and the result records what ran) ...
    blurred = train_or_load("mnist_mixing", degradation=preset("blur", "mnist"), **kwargs)
    assert blurred.config["degradation"]["type"] == "GaussianBlur"
    # ... and only a preset asked for (preset_dataset) must match
    with pytest.raises(ValueError, match="must be of type ImageMixing with T=100"):
        train_or_load("mnist_mixing", degradation=preset("blur", "mnist"), preset_dataset="mnist", **kwargs)

"""Tests for coldlib.checkpoints: model files, shipped registry, resumable training state.

Lesson: 02_training_a_restorer. Tiny UNets on 16 px images only, so the file runs in a few seconds on a CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from coldlib import checkpoints as ck
from coldlib import shipped
from coldlib.training import state as training_state
from coldlib.degradations import GaussianBlur, GaussianMask
from coldlib.experiments import preset
from coldlib.unet import UNet, unet_preset


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(unet_preset("tiny", 1))


@pytest.fixture
def blur() -> GaussianBlur:
    return preset("blur", "mnist")


@pytest.fixture
def saved(tmp_path: Path, model: UNet, blur: GaussianBlur) -> Path:
    return ck.save_model(tmp_path / "m", model, blur, data="unit-test images", steps=7, train={"lr": 2e-5},
                         metrics={"Direct": {"PSNR": float("inf")}}, hardware="cpu")


def _x() -> torch.Tensor:
    return torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_round_trip(tmp_path: Path, model: UNet, saved: Path) -> None:
    assert saved == tmp_path / "m.safetensors" and (tmp_path / "m.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temp files left
    loaded = ck.load_model(saved)
    assert not loaded.model.training and loaded.path == saved
    assert isinstance(loaded.degradation, GaussianBlur)
    assert loaded.degradation.config() == preset("blur", "mnist").config()
    cfg = loaded.config
    assert cfg["format"] == ck.FORMAT and cfg["steps"] == 7 and cfg["data"] == "unit-test images"
    assert cfg["train"] == {"lr": 2e-5} and cfg["hardware"] == "cpu"
    assert cfg["metrics"]["Direct"]["PSNR"] == float("inf")
    assert {"coldlib_version", "model", "degradation", "created"} <= set(cfg)
    assert all(v.dtype == torch.float32 for v in loaded.model.state_dict().values())
    model.eval()
    t = torch.tensor([3, 20])
    assert torch.equal(loaded.model(_x(), t), model(_x(), t))
    assert loaded.diffusion().T == 20


def test_accepts_stem_weights_or_json_path(tmp_path: Path, model: UNet, blur: GaussianBlur) -> None:
    ck.save_model(str(tmp_path / "run.v1.2"), model, blur, data="d", steps=0)  # a dot in the stem
    for p in ("run.v1.2", "run.v1.2.safetensors", "run.v1.2.json"):
        assert ck.load_model(tmp_path / p).path == tmp_path / "run.v1.2.safetensors"


def test_save_rejects_bad_inputs(tmp_path: Path, model: UNet, blur: GaussianBlur) -> None:
    with pytest.raises(ValueError, match="UNet"):
        ck.save_model(tmp_path / "x", torch.nn.Linear(2, 2), blur, data="d", steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        ck.save_model(tmp_path / "x", model, blur, data="d", steps=-1)
    with pytest.raises(ValueError, match="data"):
        ck.save_model(tmp_path / "x", model, blur, data="", steps=1)
    with pytest.raises(ValueError, match="JSON"):
        ck.save_model(tmp_path / "x", model, blur, data="d", steps=1, train={"opt": object()})


def test_interrupted_save_keeps_old_file(tmp_path: Path, model: UNet, blur: GaussianBlur, saved: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = saved.read_bytes()

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with torch.no_grad():
        model.stem.weight.add_(1.0)
    with pytest.raises(OSError):
        ck.save_model(tmp_path / "m", model, blur, data="d", steps=8)
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_missing_files(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        ck.load_model(tmp_path / "nope")
    (tmp_path / "m.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"m\.json.*missing"):
        ck.load_model(saved)


def test_bad_sidecar(tmp_path: Path, saved: Path) -> None:
    side = tmp_path / "m.json"
    cfg = json.loads(side.read_text())
    side.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ck.load_model(saved)
    side.write_text(json.dumps({**cfg, "format": "something-else/9"}))
    with pytest.raises(ValueError, match="something-else/9"):
        ck.load_model(saved)
    side.write_text(json.dumps({k: v for k, v in cfg.items() if k != "degradation"}))
    with pytest.raises(ValueError, match="degradation"):
        ck.load_model(saved)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_weights(saved: Path, damage: str) -> None:
    raw = saved.read_bytes()
    saved.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": os.urandom(64), "empty": b""}[damage])
    # the sidecar records the weights' SHA-256, so the damage is caught before the file is parsed
    with pytest.raises(ValueError, match="SHA-256 .* but m.json says .*corrupted, truncated.*re-download"):
        ck.load_model(saved)
    # a sidecar without a hash (written before hashes were recorded): the parser still refuses the file
    side = saved.with_suffix(".json")
    side.write_text(json.dumps({k: v for k, v in json.loads(side.read_text()).items() if k != "sha256"}))
    with pytest.raises(ValueError, match="corrupted or truncated.*re-download"):
        ck.load_model(saved)


def test_flipped_byte_in_the_middle_is_refused(saved: Path) -> None:
    raw = bytearray(saved.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # still a valid safetensors file, with one weight slightly off
    saved.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="SHA-256"):
        ck.load_model(saved)


def test_weights_from_another_degradation_are_refused(tmp_path: Path, model: UNet, blur: GaussianBlur) -> None:
    # the weights of a masking model with the sidecar of a blur model (hash updated, so only the type differs)
    ck.save_model(tmp_path / "mask", model, GaussianMask(5, kernel_std=0.1, initial_mask=11), data="x", steps=1)
    ck.save_model(tmp_path / "blur", model, blur, data="x", steps=1)
    side = json.loads((tmp_path / "blur.json").read_text())
    side["sha256"] = ck.sha256_of(tmp_path / "mask.safetensors")
    (tmp_path / "mask.json").write_text(json.dumps(side))
    with pytest.raises(ValueError, match="trained with a GaussianMask degradation but mask.json describes a "
                                         "GaussianBlur"):
        ck.load_model(tmp_path / "mask")


def test_lfs_pointer(saved: Path) -> None:
    saved.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(ValueError, match="git lfs pull"):
        ck.load_model(saved)


def test_sha256(saved: Path) -> None:
    good = ck.sha256_of(saved)
    assert len(good) == 64
    ck.load_model(saved, expected_sha256=good.upper())
    with pytest.raises(ValueError, match="SHA-256"):
        ck.load_model(saved, expected_sha256="0" * 64)


def test_weights_not_matching_config(tmp_path: Path, saved: Path) -> None:
    side = tmp_path / "m.json"
    cfg = json.loads(side.read_text())
    side.write_text(json.dumps({**cfg, "model": {**cfg["model"], "base": 8, "groups": 4}}))
    with pytest.raises(ValueError, match=r"shape mismatches: down\.0\.0\.conv1\.bias \(16,\) vs \(8,\)"):
        ck.load_model(saved)
    side.write_text(json.dumps(cfg))
    from safetensors.torch import load_file, save_file

    tensors = load_file(saved)
    tensors.pop("stem.bias")
    tensors["extra.weight"] = torch.zeros(1)
    save_file(tensors, saved, metadata={"format": ck.FORMAT})
    side.write_text(json.dumps({**cfg, "sha256": ck.sha256_of(saved)}))  # a consistent pair, just the wrong keys
    with pytest.raises(ValueError, match=r"missing keys: stem\.bias.*unexpected keys: extra\.weight"):
        ck.load_model(saved)


def test_custom_degradation_override(tmp_path: Path, model: UNet) -> None:
    class MyOwn(GaussianMask):
        def config(self):
            return {"type": "MyOwn", "T": self.T}

    mine = MyOwn(5, kernel_std=0.1, initial_mask=1, random_position=False)
    saved = ck.save_model(tmp_path / "m", model, mine, data="unit-test images", steps=1)
    with pytest.raises(ValueError, match="degradation=MyDegradation"):
        ck.load_model(saved)
    assert ck.load_model(saved, degradation=mine).degradation is mine


def test_shipped_registry(tmp_path: Path, model: UNet, blur: GaussianBlur, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ckpts"
    monkeypatch.setenv("COLDLIB_CHECKPOINT_DIR", str(folder))
    monkeypatch.setattr(shipped, "SHIPPED", {})
    assert shipped.checkpoint_dir() == folder and shipped.read_registry() == {}
    with pytest.raises(ValueError, match="does not exist yet"):
        shipped.load_shipped("blur_mnist")
    path = ck.save_model(folder / "blur_mnist", model, blur, data="d", steps=3)
    with pytest.raises(ValueError, match="Unregistered weights.*blur_mnist.safetensors"):
        shipped.load_shipped("blur_mnist")
    elsewhere = ck.save_model(tmp_path / "other", model, blur, data="d", steps=3)
    with pytest.raises(ValueError, match="not in the checkpoint folder"):
        shipped.register_shipped("other", elsewhere, task="blur", dataset="mnist")

    entry = shipped.register_shipped("blur_mnist", path, task="blur", dataset="mnist")
    assert entry == {"file": "blur_mnist.safetensors", "sha256": ck.sha256_of(path), "task": "blur",
                     "dataset": "mnist"}
    assert json.loads((folder / "registry.json").read_text()) == {"blur_mnist": entry}
    assert shipped.SHIPPED == {"blur_mnist": entry}
    assert shipped.load_shipped("blur_mnist").config["steps"] == 3
    with pytest.raises(ValueError, match="Shipped checkpoints: blur_mnist"):
        shipped.load_shipped("celeba_blur")

    raw = bytearray(path.read_bytes())  # flip one weight byte: still parses, but the hash catches it
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="SHA-256"):
        shipped.load_shipped("blur_mnist")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="shipped checkpoint 'blur_mnist'"):
        shipped.load_shipped("blur_mnist")
    with pytest.raises(FileNotFoundError, match="load_shipped"):  # a shipped file name gets the how-to-get-it hint
        ck.load_model(folder / "blur_mnist")


def test_checkpoint_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLDLIB_CHECKPOINT_DIR", raising=False)
    assert shipped.checkpoint_dir() == Path(ck.coldlib.__file__).resolve().parents[1] / "data" / "checkpoints"


def test_training_state_round_trip(tmp_path: Path) -> None:
    tensors = {"a": torch.arange(6, dtype=torch.float64).reshape(2, 3), "b": torch.tensor(3, dtype=torch.int64),
               "view": torch.arange(10.0)[2:5]}
    meta = {"step": 12, "nested": {"x": [1, 2.5, None]}}
    path = tmp_path / "state.safetensors"
    training_state.save_training_state(path, tensors, meta)
    got, got_meta = training_state.load_training_state(path)
    assert got_meta == meta and set(got) == set(tensors)
    assert all(torch.equal(got[k], tensors[k]) and got[k].dtype == tensors[k].dtype for k in tensors)
    with pytest.raises(FileNotFoundError):
        training_state.load_training_state(tmp_path / "missing.safetensors")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        training_state.load_training_state(path)
    with pytest.raises(ValueError, match="JSON"):
        training_state.save_training_state(path, tensors, {"bad": object()})


def _step(model: UNet, opt: torch.optim.Optimizer) -> None:
    x = torch.rand(2, 1, 16, 16) * 2 - 1  # drawn from the global RNG, so resuming must restore it too
    t = torch.randint(1, 21, (2,))
    loss = (model(x, t) - x).abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.slow
def test_resume_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = unet_preset("tiny", 1)
    model = UNet(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(2):
        _step(model, opt)
    generator = torch.Generator().manual_seed(5)  # a run's own generator, as the Trainer keeps one
    opt_t, opt_meta = training_state.optimizer_to_tensors(opt.state_dict())
    rng_t = {"rng.torch": torch.get_rng_state(), "rng.generator": generator.get_state()}
    model_t = {f"model.{k}": v for k, v in model.state_dict().items()}
    training_state.save_training_state(tmp_path / "s.safetensors", {**model_t, **opt_t, **rng_t},
                                       {"optimizer": opt_meta, "step": 2})
    _step(model, opt)  # the uninterrupted run
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    expected_draws = (float(torch.rand((), generator=generator)), float(torch.rand(())))

    torch.manual_seed(123)  # a fresh process: different RNG, fresh model and optimizer
    generator = torch.Generator().manual_seed(0)
    resumed = UNet(cfg)
    opt2 = torch.optim.Adam(resumed.parameters(), lr=1e-3, betas=(0.9, 0.99))
    tensors, meta = training_state.load_training_state(tmp_path / "s.safetensors")
    resumed.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state = training_state.optimizer_from_tensors(tensors, meta["optimizer"])
    assert state["param_groups"][0]["betas"] == (0.9, 0.99)
    opt2.load_state_dict(state)
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.generator"])
    _step(resumed, opt2)
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, expected[k]), k
    assert (float(torch.rand((), generator=generator)), float(torch.rand(()))) == expected_draws


def test_optimizer_tensor_lr_and_missing_tensor() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=torch.tensor(0.01))
    p.grad = torch.ones(3)
    opt.step()
    tensors, meta = training_state.optimizer_to_tensors(opt.state_dict(), prefix="opt.")
    assert all(k.startswith("opt.") for k in tensors)
    state = training_state.optimizer_from_tensors(tensors, json.loads(json.dumps(meta)))
    assert torch.equal(state["param_groups"][0]["lr"], torch.tensor(0.01))
    assert torch.equal(state["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    tensors.pop("opt.state.0.exp_avg")
    with pytest.raises(ValueError, match="exp_avg"):
        training_state.optimizer_from_tensors(tensors, meta)


def test_load_model_refuses_a_different_degradation(tmp_path):
    D = preset("blur", "mnist")
    model = UNet(unet_preset("tiny", 1))
    ck.save_model(tmp_path / "m", model, D, data="toy", steps=1)
    assert ck.load_model(tmp_path / "m", degradation=preset("blur", "mnist")).degradation.T == 20
    with pytest.raises(ValueError, match="differs from the one"):
        ck.load_model(tmp_path / "m", degradation=GaussianBlur([1.0, 2.0], kernel_size=5))

"""More bad input, by class: nothing lost, nothing silent, no bare tracebacks, one pipeline, no hang.

Each test feeds one class of mistake (an interrupted export, a run folder made for something else, a NaN
restorer, a corrupted data file, a half-configured torchrun, ...) and checks that the answer is a clear
error (what was wrong, what to do) and that nothing good was lost on the way.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from coldlib import checkpoints as ck
from coldlib.degradations import Degradation, GaussianMask, check_degradation
from coldlib.diffusion import ColdDiffusion
from coldlib.experiments import preset
from coldlib.training import TrainConfig, Trainer, train
from coldlib.training.trainer import NonFiniteLoss
from coldlib.unet import UNet, UNetConfig, unet_preset
from tests.test_training import make_trainer, params, toy_images

MNIST_RAW = Path(os.environ.get("COLDLIB_DATA_DIR", "/nonexistent")) / "MNIST" / "raw"


def _has(name: str) -> bool:
    return (MNIST_RAW / name).is_file() or (MNIST_RAW / (name + ".gz")).is_file()


needs_mnist_test = pytest.mark.skipif(not (_has("t10k-images-idx3-ubyte") and _has("t10k-labels-idx1-ubyte")),
                                      reason="needs MNIST's test files in COLDLIB_DATA_DIR")


def tiny_unet(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(unet_preset("tiny", 1))


def blur() -> Degradation:
    return preset("blur", "mnist")


def digits(b: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def cli_error(argv: list[str], capsys) -> str:
    """Run the training CLI; it must exit with status 2 and a message (no traceback). Return the message."""
    from coldlib.training.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err, err
    return err


# ================================================================ 2. nothing lost
def _save_pair(stem: Path, seed: int, steps: int) -> UNet:
    model = tiny_unet(seed)
    ck.save_model(stem, model, blur(), data="toy", steps=steps)
    return model


def _assert_is(stem: Path, model: UNet, steps: int) -> None:
    loaded = ck.load_model(stem)
    assert loaded.config["steps"] == steps and torch.equal(params(loaded.model), params(model))


@pytest.mark.parametrize("mode", ["once", "from then on"])
@pytest.mark.parametrize("n", [1, 2])  # an export renames twice: the weights, then the sidecar
def test_an_export_interrupted_at_any_rename_keeps_the_previous_pair(tmp_path, monkeypatch, n, mode):
    stem = tmp_path / "model"
    old = _save_pair(stem, seed=0, steps=1)
    real, calls = os.replace, []

    def replace(src, dst):  # Ctrl-C at the n-th rename ("from then on": the rollback's rename fails too)
        calls.append(dst)
        if len(calls) == n or (mode == "from then on" and len(calls) > n):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        _save_pair(stem, seed=1, steps=2)
    monkeypatch.setattr(os, "replace", real)
    with pytest.warns(UserWarning, match="interrupted") if mode == "from then on" and n == 2 else _no_warning():
        _assert_is(stem, old, steps=1)  # the previous good pair, whole
    new = _save_pair(stem, seed=1, steps=2)  # and the next export completes and cleans up
    _assert_is(stem, new, steps=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_an_export_killed_between_its_files_still_loads_the_previous_model(tmp_path, monkeypatch):
    from coldlib.checkpoints import _atomic_write

    stem = tmp_path / "model"
    old = _save_pair(stem, seed=0, steps=1)
    calls = []

    def write(path, payload):  # the process dies after the weights, before the sidecar: no rollback runs
        calls.append(path)
        if len(calls) == 2:
            raise SystemExit("killed")
        _atomic_write(path, payload)

    def replace(src, dst):  # ... so the rollback's rename fails too
        if len(calls) > 1:
            raise SystemExit("killed")
        os.rename(src, dst)

    monkeypatch.setattr(ck, "_atomic_write", write)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit):
        _save_pair(stem, seed=1, steps=2)
    monkeypatch.undo()
    assert (tmp_path / "model.safetensors.previous").is_file()  # new weights beside the old sidecar
    with pytest.warns(UserWarning, match="an export was interrupted.*model.safetensors.previous"):
        _assert_is(stem, old, steps=1)


def test_trainer_export_is_atomic_too(tmp_path, monkeypatch):
    trainer = make_trainer(steps=2)
    trainer.data_note = "toy squares"
    trainer.train(progress=False)
    first = trainer.export(tmp_path / "m")
    before = ck.load_model(first)
    trainer.train(4, progress=False)
    monkeypatch.setattr(ck, "_atomic_write", _fail_on_call(2, ck._atomic_write))
    with pytest.raises(KeyboardInterrupt):
        trainer.export(tmp_path / "m")
    monkeypatch.undo()
    after = ck.load_model(tmp_path / "m")
    assert after.config["steps"] == 2 and torch.equal(params(after.model), params(before.model))


def _fail_on_call(n: int, fn):
    calls = []

    def wrapped(*args):
        calls.append(args)
        if len(calls) == n:
            raise KeyboardInterrupt
        return fn(*args)

    return wrapped


def test_resuming_refuses_a_run_folder_made_for_another_degradation(tmp_path):
    first = make_trainer(tmp_path, steps=3)
    first.train(progress=False)
    saved = first.state_path.read_bytes()
    other = make_trainer(tmp_path, steps=3, degradation=GaussianMask(10, kernel_std=0.1))
    with pytest.raises(ValueError, match=r"made for something else.*degradation: the folder's run has .*GaussianBlur"
                                         r".*GaussianMask.*another run folder \(--out / out_dir\).*delete"):
        other.resume()
    assert first.state_path.read_bytes() == saved and other.step == 0


def test_train_refuses_to_resume_another_tasks_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    common = dict(model="tiny", limit=8, batch_size=4, grad_accum=1, progress=False, out_dir=tmp_path / "run")
    train("decolor", "photos", steps=1, **common)
    saved = (tmp_path / "run" / "state.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"degradation: the folder's run has .*Decolorize.*task: the folder's run "
                                         r"has decolor, this one snow"):
        train("snow", "photos", steps=2, **common)
    with pytest.raises(ValueError, match=r"network: the folder's run has .*'base': 16.*'base': 32"):
        train("decolor", "photos", steps=2, **{**common, "model": "small"})
    assert (tmp_path / "run" / "state.safetensors").read_bytes() == saved


@pytest.mark.parametrize("flag", ["--out", "--export"])
def test_an_unwritable_out_or_export_is_found_before_any_data_is_read(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path / "no-data-here"))  # reading data would fail differently
    (tmp_path / "a_file").write_text("x")
    argv = ["--task", "blur", "--dataset", "mnist", "--out", str(tmp_path / "run")]
    argv += [flag, str(tmp_path / "a_file" / "inside")]
    err = cli_error(argv, capsys)
    assert f"{flag} " in err and "a_file is a file, not a folder" in err
    assert not (tmp_path / "run").exists()


def test_train_checks_writability_before_reading_data(tmp_path, monkeypatch):
    import tempfile

    from coldlib.training import run

    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the writability check")

    monkeypatch.setattr(run, "load_images", no_data)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="export .*a_file is a file"):
        train("blur", "mnist", steps=1, export=tmp_path / "a_file" / "m")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(ValueError, match=r"out_dir \(--out\) .* is not writable \(Permission denied\)"):
        train("blur", "mnist", steps=1, out_dir=tmp_path / "run")


# ================================================================ 3. nothing silent
@pytest.mark.parametrize("settings, match", [
    ({"lr": float("inf")}, "lr must be a finite number > 0"),
    ({"lr": 0}, "lr must be a finite number > 0"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"lr": "1e-3"}, "lr must be a finite number > 0"),
    ({"ema_decay": float("nan")}, "ema_decay must be in"),
    ({"ema_start": -1}, "ema_start must be an int >= 0"),
    ({"flip": "yes"}, "flip must be True or False"),
    ({"seed": -1}, "seed must be an int from 0 to 2\\*\\*64 - 1"),
    ({"seed": 2**64}, "seed must be an int from 0 to 2\\*\\*64 - 1"),
])
def test_train_config_validates_like_the_cli(settings, match, monkeypatch):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**settings)
    monkeypatch.setenv("COLDLIB_DATA_DIR", "/no-data-here")
    with pytest.raises(ValueError, match=match):  # train() too, before any data is read
        train("blur", "mnist", steps=1, **settings)


@pytest.mark.parametrize("settings, match", [
    ({"device": "gpu"}, r"device \(--device\)='gpu' is not a device name"),  # torch's own error is a bare RuntimeError
    ({"loss": "l3"}, "loss must be 'l1'"),
    ({"task": ""}, "task must be a non-empty string"),
    ({"degradation": "blur"}, "degradation must be a coldlib Degradation"),
])
def test_train_refuses_other_bad_arguments_before_reading_data(settings, match, monkeypatch):
    from coldlib.training import run

    monkeypatch.setattr(run, "load_images", lambda *a, **k: pytest.fail("data was read"))
    kwargs = {"task": "blur", "dataset": "mnist", "steps": 1, **settings}
    with pytest.raises(ValueError, match=match):
        train(kwargs.pop("task"), kwargs.pop("dataset"), **kwargs)


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_state(tmp_path):
    trainer = make_trainer(tmp_path, steps=6)  # a checkpoint every 3 steps
    real = trainer._loss_fn

    def loss(x0, t, z):  # the loss goes NaN at step 4
        value = real(x0, t, z)
        return value * float("nan") if trainer.step == 3 else value

    trainer._loss_fn = loss
    with pytest.raises(NonFiniteLoss, match=r"step 4: the loss is nan.*state.safetensors still holds the last good "
                                            r"state \(step 3\).*Lower the learning rate"):
        trainer.train(progress=False)
    assert trainer.step == 3 and all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())
    again = make_trainer(tmp_path, steps=6)
    assert again.resume() and again.step == 3 and torch.equal(params(again.model), params(trainer.model))


class _Restorer(nn.Module):
    """A restorer with one weight whose output is broken on purpose (NaN, or another dtype)."""

    def __init__(self, broken: str) -> None:
        super().__init__()
        self.w, self.broken = nn.Parameter(torch.zeros(())), broken

    def forward(self, x, t):
        out = x * 0.5 + self.w
        if self.broken == "nan":
            return torch.where((t >= 3)[:, None, None, None], torch.full_like(out, float("nan")), out)
        return out.double()


@pytest.mark.parametrize("method", ["direct", "naive", "improved"])
def test_a_restorer_returning_nan_is_caught_in_the_samplers_with_the_step(method):
    diffusion = ColdDiffusion(_Restorer("nan"), blur())
    with pytest.raises(ValueError, match=r"NaN or infinite values for 2 of 2 images \(at t = [0-9]+\)"):
        diffusion.sample(digits(), t=5, method=method)


def test_a_restorer_returning_nan_is_caught_in_estimate_t():
    diffusion = ColdDiffusion(_Restorer("nan"), blur())
    with pytest.raises(ValueError, match="estimate_t, trying step 3: the restorer returned NaN"):
        diffusion.estimate_t(digits())


def test_a_restorer_returning_another_dtype_is_caught():
    diffusion = ColdDiffusion(_Restorer("float64"), blur())
    for call in (lambda: diffusion.sample(digits(), t=4), lambda: diffusion.estimate_t(digits())):
        with pytest.raises(ValueError, match="returned torch.float64 on cpu for x_t of torch.float32"):
            call()


@pytest.mark.parametrize("candidates", [[2.9], [2.0], [0], [21], [True], "12", 5, [], torch.tensor([1.0, 2.0])])
def test_estimate_t_takes_whole_steps_in_range_only(candidates):
    diffusion = ColdDiffusion(tiny_unet().eval(), blur())
    with pytest.raises(ValueError, match="candidates must be (a list of )?integer steps in 1..20"):
        diffusion.estimate_t(digits(), candidates=candidates)


def test_estimate_t_accepts_numpy_and_tensor_steps():
    diffusion = ColdDiffusion(tiny_unet().eval(), blur())
    for candidates in ([np.int64(2), 7], torch.tensor([2, 7]), range(2, 8, 5)):
        assert set(diffusion.estimate_t(digits(), candidates=candidates).tolist()) <= {2, 7}


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_a_checkpoint_tensor_of_another_dtype_is_refused_not_cast(tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    stem = tmp_path / "m"
    _save_pair(stem, seed=0, steps=1)
    weights = stem.with_suffix(".safetensors")
    tensors = load_file(weights)
    tensors["stem.weight"] = tensors["stem.weight"].to(dtype)
    save_file(tensors, weights, metadata={"format": ck.FORMAT, "degradation": "GaussianBlur"})
    side = stem.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), "sha256": ck.sha256_of(weights)}))
    with pytest.raises(ValueError, match=f"dtype mismatches: stem.weight {dtype} vs torch.float32"):
        ck.load_model(stem)


def _jpeg_with_orientation(orientation: int) -> tuple[bytes, Image.Image]:
    pixels = np.zeros((24, 40), np.uint8)
    pixels[:8, :8] = 255  # a bright corner shows which way is up
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue(), image


def test_an_uploaded_jpegs_exif_orientation_is_applied_and_noted():
    from PIL import ImageOps

    from coldlib.upload import prepare_image

    data, _ = _jpeg_with_orientation(6)
    prepared = prepare_image(data, channels=1, size=24)
    assert any("EXIF orientation tag (6)" in note and "turned 90° clockwise" in note for note in prepared.notes)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))  # what a photo viewer shows
    png = io.BytesIO()
    upright.save(png, format="PNG")
    assert torch.equal(prepared.x, prepare_image(png.getvalue(), channels=1, size=24).x)
    plain = prepare_image(_jpeg_with_orientation(1)[0], channels=1, size=24)
    assert not any("EXIF" in note for note in plain.notes)


def test_a_folder_of_grey_images_says_it_was_loaded_as_three_channels(tmp_path):
    from coldlib.data import load_images

    for i in range(10):
        Image.fromarray(np.full((16, 16), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
    images = load_images(f"folder:{tmp_path}", image_size=16)
    assert images.images.shape[1] == 3
    assert "all its images are grey, loaded as three equal channels (R = G = B)" in images.source
    Image.fromarray(np.zeros((16, 16, 3), np.uint8) + np.array([255, 0, 0], np.uint8)).save(tmp_path / "0.png")
    assert "8 of its 9 images are grey" in load_images(f"folder:{tmp_path}", image_size=16).source


# ================================================================ 4. no bare tracebacks
def test_a_run_folder_whose_network_size_differs_names_the_sizes(tmp_path):
    from coldlib.training.state import load_training_state, save_training_state

    make_trainer(tmp_path, steps=2).train(progress=False)
    torch.manual_seed(0)
    bigger = Trainer(ColdDiffusion(UNet(UNetConfig(channels=1, base=8, mults=(1, 2), attention=False, groups=4)),
                                   blur()), toy_images(), TrainConfig(steps=2, batch_size=4), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"network: the folder's run has .*'base': 16.*this one .*'base': 8"):
        bigger.resume()
    tensors, meta = load_training_state(tmp_path / "state.safetensors")  # a state without the run's identity
    save_training_state(tmp_path / "state.safetensors", tensors, {k: v for k, v in meta.items() if k != "identity"})
    with pytest.raises(ValueError, match=r"the network in .* differs from this run's \(shape mismatches: .*\(16,\) "
                                         r"vs \(8,\).*Delete .*state.safetensors"):
        bigger.resume()


@pytest.mark.parametrize("drop", ["rng.generator", "optimizer", "step"])
def test_a_state_file_missing_keys_says_which(tmp_path, drop):
    from coldlib.training.state import load_training_state, save_training_state

    make_trainer(tmp_path, steps=2).train(progress=False)
    tensors, meta = load_training_state(tmp_path / "state.safetensors")
    tensors.pop(drop, None)
    meta.pop(drop, None)
    save_training_state(tmp_path / "state.safetensors", tensors, meta)
    fresh = make_trainer(tmp_path, steps=2)
    with pytest.raises(ValueError, match=f"lacks the entry '{drop}'.*Delete .*to start afresh"):
        fresh.resume()
    assert fresh.step == 0


@pytest.fixture
def mnist_copy(tmp_path, monkeypatch):
    """A data folder with a copy of MNIST's test files (uncompressed where available), offline."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        source = MNIST_RAW / name
        if source.is_file():
            shutil.copy(source, raw / name)
        else:
            (raw / name).write_bytes(gzip.decompress((MNIST_RAW / (name + ".gz")).read_bytes()))
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    return raw


@needs_mnist_test
@pytest.mark.parametrize("damage, match", [
    ("swap", r"t10k-images-idx3-ubyte is not an MNIST idx file of images .*swapped"),
    ("truncate", r"t10k-images-idx3-ubyte is not an MNIST idx file of images .*damaged or truncated"),
    ("not gzip", r"t10k-images-idx3-ubyte.gz is not a valid gzip file"),
    ("truncated gzip", r"t10k-images-idx3-ubyte.gz is not a valid gzip file \(EOFError"),
    ("fewer labels", r"holds 10,000 images but 5,000 labels"),
])
def test_corrupted_or_swapped_mnist_files_are_named(mnist_copy, damage, match):
    from coldlib.data import load_images

    images, labels = mnist_copy / "t10k-images-idx3-ubyte", mnist_copy / "t10k-labels-idx1-ubyte"
    raw = images.read_bytes()
    if damage == "swap":
        images.write_bytes(labels.read_bytes())
        labels.write_bytes(raw)
    elif damage == "truncate":
        images.write_bytes(raw[:5000])
    elif damage == "fewer labels":
        data = bytearray(labels.read_bytes()[: 8 + 5000])
        data[4:8] = (5000).to_bytes(4, "big")
        labels.write_bytes(bytes(data))
    else:
        images.unlink()
        gz = images.with_suffix(".gz")
        gz.write_bytes(b"not a gzip file" if damage == "not gzip" else gzip.compress(raw)[:5000])
    with pytest.raises(ValueError, match=match) as error:
        load_images("mnist", "test", limit=4)
    assert "Delete" in str(error.value) and "download it again" in str(error.value)


def test_absurdly_nested_or_mistyped_sidecar_json_is_refused(tmp_path):
    stem = tmp_path / "m"
    _save_pair(stem, seed=0, steps=1)
    side = stem.with_suffix(".json")
    good = json.loads(side.read_text())
    side.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nests its JSON too deeply"):
        ck.load_model(stem)
    for field, value in [("steps", "ten"), ("steps", True), ("model", [1, 2]), ("data", 3), ("train", "fast")]:
        side.write_text(json.dumps({**good, field: value}))
        with pytest.raises(ValueError, match=f"fields of the wrong type \\('{field}' is"):
            ck.load_model(stem)
    side.write_text(json.dumps({**good, "model": {**good["model"], "base": -4}}))
    with pytest.raises(ValueError, match="the UNet config in .* is invalid"):
        ck.load_model(stem)


def test_absurdly_nested_or_mistyped_registry_json_is_refused(tmp_path, monkeypatch):
    from coldlib.shipped import read_registry

    monkeypatch.setenv("COLDLIB_CHECKPOINT_DIR", str(tmp_path))
    registry = tmp_path / "registry.json"
    for text, match in [("[" * 100_000 + "]" * 100_000, "nests its JSON too deeply"),
                        ('{"a": {"file": 3, "sha256": "ab"}}', "'file' is int"),
                        ('{"a": {"file": "../../x.safetensors", "sha256": "ab"}}', "a path; it must be a file name"),
                        ("[1, 2]", "holds a list")]:
        registry.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_registry()


def test_a_half_precision_restorer_works_on_a_cpu():
    diffusion = ColdDiffusion(tiny_unet().half().eval(), blur())
    x = digits().half()
    out = diffusion.sample(x, t=4, method="improved")
    assert out.dtype == torch.float16 and bool(torch.isfinite(out).all())
    assert diffusion.estimate_t(x, candidates=[2, 4]).dtype == torch.long


def test_t_as_uint64_works_and_bool_is_refused():
    D, x = blur(), digits()
    for dtype in (torch.uint16, torch.uint32, torch.uint64):
        assert torch.equal(D(x, torch.tensor([1, 5], dtype=dtype)), D(x, torch.tensor([1, 5])))
    with pytest.raises(ValueError, match="t must lie in 0..T = 0..20; got values up to 18446744073709551615"):
        D(x, torch.tensor([2**64 - 1, 1], dtype=torch.uint64))
    diffusion = ColdDiffusion(tiny_unet().eval(), D)
    for t in (True, torch.tensor([True, False])):
        with pytest.raises(ValueError, match="not a bool"):
            diffusion.sample(x, t=t)


def test_a_seed_out_of_range_is_refused_everywhere(capsys):
    from coldlib.evaluation.classifier import train_classifier
    from coldlib.generation import fit_channel_mean_prior

    with pytest.raises(ValueError, match="seed must be an int from 0 to 2\\*\\*64 - 1"):
        train_classifier(torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long), steps=1, seed=2**70)
    with pytest.raises(ValueError, match="seed must be an int from 0 to 4,294,967,295"):
        fit_channel_mean_prior(torch.zeros(4, 3, 8, 8), seed=2**40)
    err = cli_error(["--task", "blur", "--dataset", "mnist", "--seed", str(2**70), "--out", "/tmp/unused"], capsys)
    assert "seed must be an int from 0 to 2**64 - 1" in err


def test_too_many_eval_images_names_the_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    err = cli_error(["--task", "decolor", "--dataset", "photos", "--limit", "8", "--steps", "1", "--eval-images",
                     "5000", "--out", str(tmp_path)], capsys)
    assert "--eval-images" in err and "only 844 images are available" in err and "limit=" not in err
    assert "--eval-images 844 or fewer" in err


def test_a_folder_dataset_without_a_preset_names_the_flag(tmp_path, capsys):
    err = cli_error(["--task", "blur", "--dataset", f"folder:{tmp_path}", "--out", str(tmp_path / "run")], capsys)
    assert "has no degradation preset" in err and "--preset-dataset" in err and "--degradation" in err


@pytest.mark.parametrize("options, match", [
    ({"background": "white"}, "background must be None or an int grey level"),
    ({"background": 0.5}, "background must be None or an int grey level"),
    ({"background": True}, "background must be None or an int grey level"),
    ({"background": 300}, "background must be None or an int grey level"),
    ({"size": True}, "size must be a positive int"),
    ({"size": 32.0}, "size must be a positive int"),
    ({"channels": True}, "channels must be 1 or 3"),
    ({"invert": "no"}, "invert must be True or False"),
    ({"max_bytes": 1.5}, "max_bytes must be a positive int"),
])
def test_prepare_image_options_of_the_wrong_type(options, match):
    from coldlib.upload import prepare_image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match=match):
        prepare_image(buffer.getvalue(), **{"channels": 1, "size": 32, **options})


@pytest.mark.parametrize("text, match", [
    ("# Lesson\nnot JSON at all", "not JSON"),
    ('{"registry": 1}', "no 'cells' list"),
    ("[1, 2, 3]", "its JSON is not an object"),
    ('{"cells": [{"outputs": 3}]}', "cell 0 is not a notebook cell"),
    ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
])
def test_render_problems_on_a_file_that_is_not_a_notebook(text, match):
    from coldlib.render import render_problems

    with pytest.raises(ValueError, match=f"this is not a Jupyter notebook: .*{match}"):
        render_problems(text, "")


# ================================================================ 5. one pipeline for every degradation
class RotateFade(Degradation):
    """A learner's degradation: turn by t · 9° and fade towards black (valid, and not a preset)."""

    def degrade(self, x0, t, z):
        angle = torch.deg2rad(t.to(x0.dtype) * 90.0 / self.T)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = torch.nn.functional.affine_grid(matrix, list(x0.shape), align_corners=False)
        turned = torch.nn.functional.grid_sample(x0 + 1, grid, align_corners=False) - 1
        fade = (t.to(x0.dtype) / self.T * 0.5)[:, None, None, None]
        return (1 - fade) * turned - fade


class RotateFadeSaved(RotateFade):
    def config(self) -> dict:
        return {"type": "RotateFadeSaved", "T": self.T}


def test_the_default_probe_passes_a_valid_rotation_plus_fade():
    assert all(r.passed for r in check_degradation(RotateFade(10)))


def test_a_failure_names_the_probe_and_how_to_pass_ones_own_images():
    class Milder(RotateFade):
        def degrade(self, x0, t, z):
            return super().degrade(x0, self.T - t, z) if int(t.max()) > 0 else x0

    failed = [r for r in check_degradation(Milder(10), raise_on_failure=False) if not r.passed]
    assert failed and all("default probe" in r.detail and "x=" in r.detail for r in failed)
    failed = [r for r in check_degradation(Milder(10), x=digits(4), raise_on_failure=False) if not r.passed]
    assert failed and all("your batch x" in r.detail for r in failed)


def test_train_takes_a_learners_own_degradation(tmp_path, monkeypatch):
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    common = dict(model="tiny", limit=8, batch_size=4, grad_accum=1, progress=False)
    loaded, report = train("my rotation", "mnist", steps=1, degradation=RotateFadeSaved(10),
                           export=tmp_path / "mine", **common)
    assert report["task"] == "my rotation" and report["degradation"] == {"type": "RotateFadeSaved", "T": 10}
    assert ck.load_model(loaded.path).config["degradation"] == {"type": "RotateFadeSaved", "T": 10}
    # one that cannot describe itself trains too (the report says which ran), but cannot be exported
    _, report = train("my rotation", "mnist", steps=1, degradation=RotateFade(10), **common)
    assert report["degradation"]["type"] == "RotateFade" and report["degradation"]["repr"] == "RotateFade(T=10)"
    with pytest.raises(ValueError, match="export needs a degradation that describes itself"):
        train("my rotation", "mnist", steps=1, degradation=RotateFade(10), export=tmp_path / "x", **common)
    with pytest.raises(ValueError, match="like the preset for blur/mnist that preset_dataset asks for"):
        train("blur", "mnist", steps=1, degradation=RotateFade(10), preset_dataset="mnist", **common)


def test_the_cli_takes_a_learners_own_degradation(tmp_path, monkeypatch, capsys):
    from coldlib.training.cli import main

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    (tmp_path / "my_fade.py").write_text(
        "from coldlib.degradations import Degradation\n\n"
        "class MyFade(Degradation):\n"
        "    def degrade(self, x0, t, z):\n"
        "        f = (t.to(x0.dtype) / self.T)[:, None, None, None]\n"
        "        return (1 - f) * x0 - f\n\n"
        "    def config(self):\n"
        "        return {'type': 'MyFade', 'T': self.T}\n\n"
        "def make():\n"
        "    return MyFade(7)\n")
    report = main(["--task", "fade", "--dataset", "mnist", "--degradation", f"{tmp_path / 'my_fade.py'}:make",
                   "--model", "tiny", "--limit", "8", "--batch-size", "4", "--grad-accum", "1", "--steps", "1",
                   "--eval-images", "0", "--out", str(tmp_path / "run"), "--export", str(tmp_path / "fade"),
                   "--no-progress", "--device", "cpu"])
    assert report["degradation"] == {"type": "MyFade", "T": 7}
    assert "MyFade(T=7)" in capsys.readouterr().out
    err = cli_error(["--task", "fade", "--dataset", "mnist", "--degradation", f"{tmp_path / 'my_fade.py'}:nope",
                     "--out", str(tmp_path / "run2")], capsys)
    assert "could not be loaded (AttributeError" in err


# ================================================================ 6. no hang
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_half_configured_torchrun_does_not_hang(tmp_path, monkeypatch, capsys, rank):
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    for name, value in (("WORLD_SIZE", "2"), ("RANK", rank), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", str(_free_port())), ("COLDLIB_DIST_TIMEOUT", "1")):
        monkeypatch.setenv(name, value)
    start = time.perf_counter()
    err = cli_error(["--task", "decolor", "--dataset", "photos", "--limit", "8", "--steps", "1", "--device", "cpu",
                     "--out", str(tmp_path / "run")], capsys)
    assert time.perf_counter() - start < 30
    assert re.search(r"could not join torchrun's process group \(WORLD_SIZE=2, RANK=\d, MASTER_ADDR=127.0.0.1, "
                     r"MASTER_PORT=\d+; waited up to 1 s\)", err)
    assert "Launch every process with torchrun" in err and "unset WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT" in err
    assert not (tmp_path / "run").exists()


def test_a_bad_timeout_setting_is_refused(monkeypatch):
    from coldlib.training.cli import _dist_timeout

    monkeypatch.setenv("COLDLIB_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="COLDLIB_DIST_TIMEOUT='soon' must be a number of seconds > 0"):
        _dist_timeout()

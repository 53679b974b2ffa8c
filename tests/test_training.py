"""Training: the loss goes down, EMA follows the paper's schedule, and a killed run resumes exactly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from coldlib.checkpoints import load_model
from coldlib.degradations import GaussianMask
from coldlib.experiments import preset
from coldlib.diffusion import ColdDiffusion
from coldlib.training import TrainConfig, Trainer
from coldlib.unet import UNet, unet_preset

REPO = Path(__file__).resolve().parents[1]


def toy_images(n: int = 64, c: int = 1, size: int = 16) -> torch.Tensor:
    """Bright squares at four places on a dark ground: a problem a tiny UNet learns in a few dozen steps."""
    x = torch.zeros(4, c, size, size, dtype=torch.uint8)
    q = size // 4
    for i, (r, col) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        x[i, :, r * q : (r + 2) * q, col * q : (col + 2) * q] = 255
    return x.repeat(n // 4, 1, 1, 1)



def make_trainer(out_dir=None, steps=6, degradation=None, **overrides) -> Trainer:
    torch.manual_seed(0)
    model = UNet(unet_preset("tiny", 1))
    D = degradation or preset("blur", "mnist")
    config = TrainConfig(steps=steps, batch_size=4, grad_accum=2, checkpoint_every=3, ema_start=2, ema_every=1,
                         ema_decay=0.9, **overrides)
    return Trainer(ColdDiffusion(model, D), toy_images(), config, out_dir=out_dir, device="cpu")


def params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.state_dict().values()])


@pytest.mark.slow
def test_loss_decreases_on_a_tiny_problem():
    trainer = make_trainer(steps=30, lr=3e-3)
    x0 = trainer.images.float() / 127.5 - 1
    t = torch.arange(len(x0)) % 20 + 1
    with torch.no_grad():
        before = float(trainer.diffusion.loss(x0, t))
    trainer.train(progress=False)
    with torch.no_grad():
        after = float(trainer.diffusion.loss(x0, t))
    assert after < 0.5 * before, (before, after)


def test_ema_is_reset_before_start_then_averages():
    trainer = make_trainer(steps=1)
    trainer.train(progress=False)
    assert torch.equal(params(trainer.ema), params(trainer.model))  # step 1 < ema_start: a copy
    trainer.train(steps=4, progress=False)
    assert not torch.equal(params(trainer.ema), params(trainer.model))


@pytest.mark.parametrize("degradation", [None, GaussianMask(10, kernel_std=0.1)], ids=["blur", "random-mask"])
@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, degradation):
    straight = make_trainer(tmp_path / "a", degradation=degradation)
    straight.train(progress=False)

    first = make_trainer(tmp_path / "b", degradation=degradation)
    first.train(steps=3, progress=False)  # checkpoint_every=3: state written at step 3
    del first
    torch.manual_seed(123)  # a new process would not share the global RNG either
    second = make_trainer(tmp_path / "b", degradation=degradation)
    assert second.resume() and second.step == 3
    second.train(progress=False)

    assert second.step == straight.step == 6
    # Exact, on any CPU: both runs execute the same kernels on the same shapes, in one process and thread count, from
    # the same restored state; only a difference between two machines could change the float sums, and there is none.
    assert second.losses == pytest.approx(straight.losses, abs=0)
    assert torch.equal(params(second.model), params(straight.model))
    assert torch.equal(params(second.ema), params(straight.ema))


def test_resume_without_a_checkpoint_is_a_fresh_start(tmp_path):
    assert make_trainer(tmp_path / "none").resume() is False
    with pytest.raises(ValueError, match="out_dir"):
        make_trainer(None).save_checkpoint()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")


def _cli(out: Path, steps: int, export: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "coldlib.training", "--task", "blur", "--dataset", "folder:" + str(out.parent / "imgs"),
           "--image-size", "16", "--model", "tiny", "--steps", str(steps), "--batch-size", "4", "--grad-accum", "1",
           "--checkpoint-every", "2", "--ema-start", "2", "--eval-images", "0", "--out", str(out), "--no-progress",
           "--preset-dataset", "mnist", "--device", "cpu"]
    return cmd + (["--export", str(export)] if export else [])


@pytest.mark.slow
def test_cli_killed_run_resumes_to_the_same_weights(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(20):
        arr = (torch.rand(16, 16, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(tmp_path / "imgs" / f"{i:02d}.png")
    env = {**os.environ, "COLDLIB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    steps = 12

    subprocess.run(_cli(tmp_path / "straight", steps, tmp_path / "straight_model"), env=env, check=True,
                   capture_output=True, cwd=tmp_path)

    # Kill a second run with SIGKILL once its first checkpoint exists, then run the same command again.
    proc = subprocess.Popen(_cli(tmp_path / "killed", steps), env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "state.safetensors"
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists(), "the run should have written a checkpoint before being killed"
    rerun = subprocess.run(_cli(tmp_path / "killed", steps, tmp_path / "killed_model"), env=env, check=True,
                           capture_output=True, text=True, cwd=tmp_path)
    resumed = re.search(r"resuming \S+ at step (\d+)", rerun.stdout)
    assert resumed and 0 < int(resumed[1]) < steps, rerun.stdout  # killed mid-way, not after the end

    a = load_model(tmp_path / "straight_model")
    b = load_model(tmp_path / "killed_model")
    assert a.config["steps"] == b.config["steps"] == steps
    assert torch.equal(params(a.model), params(b.model))


@pytest.mark.parametrize("extra, match", [
    (["--task", "mixing", "--preset-dataset", "mnist"], "needs the images to mix in"),
    (["--task", "blur", "--mix-with", "photos"], "is for --task mixing"),
])
def test_cli_mixing_arguments(tmp_path, monkeypatch, capsys, extra, match):
    from coldlib.training.cli import main

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exit_:  # argparse-style: the message on stderr, exit status 2, no traceback
        main(["--dataset", "photos", "--limit", "8", "--steps", "1", "--out", str(tmp_path), *extra])
    assert exit_.value.code == 2 and re.search(match, capsys.readouterr().err)


def test_cli_checks_eval_images_before_training(tmp_path, monkeypatch, capsys):
    from coldlib.training.cli import main

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exit_:
        main(["--task", "decolor", "--dataset", "photos", "--limit", "8", "--steps", "1", "--eval-images", "5000",
              "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "only 844 images are available" in capsys.readouterr().err


def test_cli_refuses_bad_arguments_before_reading_data(tmp_path, monkeypatch, capsys):
    from coldlib.training.cli import main

    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path / "no-data-here"))  # reading data would fail differently
    (tmp_path / "a_file").write_text("x")
    for argv, match in [(["--task", "blurr", "--dataset", "mnist"], "no preset for task='blurr'"),
                        (["--task", "blur", "--dataset", "mnst"], "no preset for task='blur', dataset='mnst'"),
                        (["--task", "blur", "--dataset", "mnist", "--steps", "0"], "--steps: must be a positive"),
                        (["--task", "blur", "--dataset", "mnist", "--ema-decay", "1.5"], "ema_decay must be in"),
                        (["--task", "blur", "--dataset", "mnist", "--lr", "-1"], "--lr: must be a positive"),
                        (["--task", "blur", "--dataset", "mnist", "--out", str(tmp_path / "a_file")],
                         "is an existing file")]:
        argv = argv if "--out" in argv else [*argv, "--out", str(tmp_path / "run")]
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and match in err and "Traceback" not in err, (argv, err)
        assert not (tmp_path / "run").exists()
    assert not (tmp_path / "state.safetensors").exists()  # failed before the first step


@pytest.mark.parametrize("native", [True, False])
def test_auto_mixed_precision_uses_bf16_on_a_cpu_only_where_it_is_native(monkeypatch, native):
    from coldlib.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    auto = trainer_module.autocast_dtype_for(TrainConfig(mixed_precision="auto"), cpu)
    assert auto == (torch.bfloat16 if native else None)
    assert trainer_module.autocast_dtype_for(TrainConfig(mixed_precision="no"), cpu) is None
    assert trainer_module.autocast_dtype_for(TrainConfig(mixed_precision="bf16"), cpu) == torch.bfloat16



def test_warm_start_begins_from_the_given_weights_and_records_them(tmp_path, monkeypatch):
    from coldlib.checkpoints import sha256_of
    from coldlib.training import train

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    common = dict(model="tiny", limit=16, batch_size=4, grad_accum=1, ema_start=0, ema_every=1, progress=False)
    first, _ = train("decolor", "photos", steps=2, export=tmp_path / "first", **common)
    weights = first.path
    # lr 1e-12 (about 0): Adam's normalised step moves a weight by about lr at most (1e-12, below a float32 ulp of
    # most weights), so the warm-started model equals the one it started from (measured: 0); 1e-6 holds on any CPU
    second, _ = train("decolor", "photos", steps=1, lr=1e-12, seed=5, init_from=weights, export=tmp_path / "second",
                      **common)
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    cold, _ = train("decolor", "photos", steps=1, lr=1e-12, seed=5, **common)  # the same run from seed 5
    assert not torch.allclose(params(cold.model), params(second.model))
    recorded = load_model(second.path).config["train"]["init_from"]
    assert recorded["sha256"] == sha256_of(weights) and recorded["steps"] == 2 and recorded["file"] == weights.name
    with pytest.raises(ValueError, match="same task and preset"):
        train("snow", "photos", steps=1, init_from=weights, **common)
    with pytest.raises(ValueError, match="pick the matching --model"):
        train("decolor", "photos", steps=1, init_from=weights, **{**common, "model": "small"})


def test_export_records_how_its_metrics_were_measured(tmp_path, monkeypatch):
    from coldlib.evaluation import SSIM_CONVENTION
    from coldlib.training import train

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    loaded, report = train("decolor", "photos", steps=1, model="tiny", limit=8, batch_size=4, grad_accum=1,
                           eval_images=3, export=tmp_path / "m", progress=False)
    config = load_model(loaded.path).config
    assert config["metrics"] == report["metrics"] and set(config["metrics"]) >= {"Direct", "Algorithm 2"}
    assert config["metrics_protocol"]["images"] == 3 and config["metrics_protocol"]["ssim"] == SSIM_CONVENTION
    # the sidecar records exactly which images it trained on, so an evaluation can prove it never saw them
    from coldlib.data import Origin, check_held_out, load_images

    seen = Origin.from_dict(config["training_data"])
    assert (seen.dataset, seen.split, seen.indices.tolist()) == ("photos", "train", list(range(8)))
    assert check_held_out(loaded, load_images("photos", "test", limit=5), verbose=False).startswith("held out")
    with pytest.raises(ValueError, match="5 of these 5 images were used to train"):
        check_held_out(loaded, load_images("photos", "train", limit=5), verbose=False)


@pytest.mark.skipif(not (Path(os.environ.get("COLDLIB_DATA_DIR", "/nonexistent")) / "MNIST" / "raw").is_dir(),
                    reason="needs MNIST in COLDLIB_DATA_DIR")
def test_hot_noise_task_trains_without_a_mixing_pool(monkeypatch):
    """GaussianNoise subclasses ImageMixing but draws its own z: it must not ask for --mix-with."""
    from coldlib.training import train

    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    loaded, report = train("noise", "mnist", steps=1, model="tiny", limit=8, batch_size=4, grad_accum=1,
                           progress=False)
    assert report["steps"] == 1 and type(loaded.degradation).__name__ == "GaussianNoise"

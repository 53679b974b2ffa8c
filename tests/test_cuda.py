"""CUDA checks: the same results on a GPU as on the CPU, mixed-precision training steps, and a torchrun run over NCCL.

Every test here is marked ``cuda`` and skipped when ``torch.cuda.is_available()`` is False (this project's CI and
development machines have no GPU). ``python bench/gpu_check.py`` runs them on a GPU machine as its first part
(``pytest tests/test_cuda.py -m cuda``) and records the outcome of each in its ``gpu_check.json``.

(a) Every preset degradation (``list_presets()``) gives on CUDA what it gives on the CPU, to 1e-5, at several t and
    with a different t per image; its random ingredient z is drawn once on the CPU and moved.
(b) The three samplers (direct, naive, improved) agree between CUDA and the CPU for a seeded UNet (TF32 off).
(c) A ``Trainer`` step with bf16 autocast and channels_last gives a finite loss and moves every weight, eager and
    under ``torch.compile``.
(d) ``torchrun --nproc_per_node=<GPUs> -m coldlib.training ... --device cuda`` trains and writes its state; with
    one GPU torchrun sets WORLD_SIZE=1 and the CLI then trains in one plain process with no process group (no
    NCCL), which the test records instead of claiming otherwise. A separate check joins a real NCCL group of as
    many processes as GPUs (one is enough) and all-reduces.

If ``COLDLIB_CUDA_NOTES`` names a file, tests append JSON lines ``{"test": ..., "note": ...}`` to it (the GPU
check copies them into its report).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from coldlib.degradations import ImageMixing, map_z
from coldlib.diffusion import METHODS, ColdDiffusion
from coldlib.experiments import experiment, list_presets, preset
from coldlib.unet import UNet, unet_preset

REPO = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False here); "
                                        "bench/gpu_check.py runs these tests on the device machine"),
]


def note(test: str, text: str) -> None:
    """Say something the report should show (printed, and appended to $COLDLIB_CUDA_NOTES if set)."""
    print(f"NOTE {test}: {text}")
    path = os.environ.get("COLDLIB_CUDA_NOTES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, "note": text}) + "\n")


@pytest.fixture
def no_tf32():
    """Full fp32 matrix products and convolutions on the GPU, as on the CPU (TF32 keeps only 10 mantissa bits)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _channels(dataset: str) -> int:
    return 1 if dataset == "mnist" else 3


def _images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth-ish test images in [-1, 1] (random values would hide nothing, but real structure is nicer to debug)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, max(2, size // 4), max(2, size // 4), generator=g)
    return (torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1
            ).clamp(-1, 1)


def _draw_z(D, x0: torch.Tensor, seed: int):
    """The random ingredient for ``x0``, drawn on the CPU (mixing presets have no pool: then a second image)."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(D, ImageMixing) and type(D).draw_z is ImageMixing.draw_z and D.pool is None:
        return _images(x0.shape[0], x0.shape[1], x0.shape[-1], seed=seed + 1)
    return D.draw_z(x0, g)


def _to(z, device):
    return map_z(z, lambda f: f.to(device)) if z is not None else None


# ------------------------------------------------------------------------------------------ (a) degradations
@pytest.mark.parametrize("task,dataset", list_presets(), ids=[f"{t}-{d}" for t, d in list_presets()])
def test_preset_degradation_matches_cpu(task, dataset, no_tf32):
    D = preset(task, dataset)
    size, channels, T = experiment(task, dataset).image_size, _channels(dataset), D.T
    x0 = _images(4, channels, size)
    z = _draw_z(D, x0, seed=1)
    steps = [1, max(1, T // 2), T, torch.tensor([T, 0, 1, max(1, (2 * T) // 3)])]  # the last: one t per image
    worst = 0.0
    for t in steps:
        cpu = D(x0, t, z)
        gpu = D(x0.cuda(), t.cuda() if isinstance(t, torch.Tensor) else t, _to(z, "cuda"))
        assert gpu.device.type == "cuda", f"{task}/{dataset}: the result left the GPU ({gpu.device})"
        gap = float((gpu.cpu() - cpu).abs().max())
        worst = max(worst, gap)
        assert gap <= 1e-5, f"{task}/{dataset} ({D!r}) at t={t.tolist() if isinstance(t, torch.Tensor) else t}: " \
                            f"CUDA differs from the CPU by {gap:.3g} (> 1e-5)"
    print(f"{task}/{dataset}: max |CUDA - CPU| = {worst:.2g}")


# ------------------------------------------------------------------------------------------ (b) samplers
@pytest.mark.parametrize("task", ["blur", "inpaint"])  # deterministic, and with a z (the hole's position)
def test_samplers_match_cpu(task, no_tf32):
    D = preset(task, "mnist")
    # The "tiny" UNet with the attention block of the larger presets (SDPA has its own CUDA kernels); the CPU
    # side of the comparison is what costs time here.
    config = replace(unet_preset("tiny", 1), attention=True)
    torch.manual_seed(0)
    net = UNet(config).eval()
    cpu_run = ColdDiffusion(net, D)
    gpu_run = ColdDiffusion(UNet(config).eval(), D)
    gpu_run.model.load_state_dict(net.state_dict())
    gpu_run.model.cuda()
    x0 = _images(4, 1, 32)
    z = _draw_z(D, x0, seed=2)
    per_image = torch.tensor([D.T, D.T // 2, 1, 0])
    for t in (D.T, per_image):
        xt = D(x0, t, z)
        for method in METHODS:
            cpu = cpu_run.sample(xt, t, method=method, z=z)
            gpu = gpu_run.sample(xt.cuda(), t.cuda() if isinstance(t, torch.Tensor) else t, method=method,
                                 z=_to(z, "cuda"))
            gap = float((gpu.cpu() - cpu).abs().max())
            assert torch.isfinite(gpu).all(), f"{task}, {method}: non-finite values on CUDA"
            assert gap <= 1e-3, f"{task}, {method}, t={t if isinstance(t, int) else t.tolist()}: CUDA differs " \
                                f"from the CPU by {gap:.3g} (> 1e-3)"


# ------------------------------------------------------------------------------------------ (c) training steps
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "torch.compile"])
def test_trainer_step_bf16_channels_last(compile):
    # The MNIST-size setting of bench/gpu_check.py's throughput table (small UNet, batch 64): a compiled graph
    # of the same shapes is then in torch.compile's on-disk cache for the benchmark.
    from coldlib.training import TrainConfig, Trainer  # here: importing it (torchvision, torchmetrics) takes seconds

    torch.manual_seed(0)
    diffusion = ColdDiffusion(UNet(unet_preset("small", 1)), preset("blur", "mnist"))
    images = torch.randint(0, 256, (256, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(batch_size=64, grad_accum=1, mixed_precision="bf16", channels_last=True, compile=compile,
                         lr=4e-4, ema_start=0, ema_every=1, ema_decay=0.999, seed=0)
    trainer = Trainer(diffusion, images, config, device="cuda")
    assert trainer.autocast_dtype is torch.bfloat16
    assert trainer.model.stem.weight.is_contiguous(memory_format=torch.channels_last), "weights not channels_last"
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    losses = [trainer.train_step() for _ in range(2)]
    assert all(math.isfinite(loss) for loss in losses), f"non-finite loss: {losses}"
    unchanged = [name for name, p in trainer.model.named_parameters() if torch.equal(p.detach(), before[name])]
    assert not unchanged, f"{len(unchanged)} parameters did not move after 2 steps: {unchanged[:5]}"
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters()), "autocast must keep fp32 weights"


# ------------------------------------------------------------------------------------------ (d) torchrun
def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""), "OMP_NUM_THREADS": "1"}


def _torchrun(nproc: int, *args: str) -> list[str]:
    # python -m torch.distributed.run is what the torchrun script runs; --standalone: a local rendezvous, free port.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]


def test_torchrun_training_cli(tmp_path):
    gpus = torch.cuda.device_count()
    out = tmp_path / "run"
    cmd = _torchrun(gpus, "-m", "coldlib.training", "--task", "blur", "--dataset", "mnist", "--model", "tiny",
                    "--steps", "20", "--batch-size", "8", "--grad-accum", "1", "--eval-images", "0", "--device",
                    "cuda", "--no-progress", "--out", str(out))
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    assert (out / "state.safetensors").is_file(), f"no state.safetensors in {out}: {sorted(os.listdir(out))}"
    from coldlib.training.state import load_training_state

    _, meta = load_training_state(out / "state.safetensors")
    assert meta["step"] == 20
    if gpus > 1:
        assert f'"processes": {gpus}' in done.stdout and "nccl" in done.stdout, done.stdout[-4000:]
        assert meta.get("world_size") == gpus
        note("test_torchrun_training_cli", f"DDP over NCCL with {gpus} processes (one per GPU): 20 steps, "
                                           f"global batch {8 * gpus}, state.safetensors written")
    else:
        assert "world_size" not in meta
        note("test_torchrun_training_cli", "1 GPU: torchrun ran 1 process with WORLD_SIZE=1, so coldlib.training "
                                           "trained without a process group (no NCCL, no DDP); it succeeded and "
                                           "wrote state.safetensors. NCCL itself: see test_nccl_all_reduce.")


NCCL_SCRIPT = """
import os, torch, torch.distributed as dist
rank = int(os.environ["LOCAL_RANK"])
device = torch.device("cuda", rank)
torch.cuda.set_device(device)
dist.init_process_group("nccl", device_id=device)
world = dist.get_world_size()
x = torch.full((1024,), float(dist.get_rank() + 1), device=device)
dist.all_reduce(x)
assert torch.all(x == world * (world + 1) / 2), x[:4]
dist.barrier(device_ids=[rank])
if dist.get_rank() == 0:
    version = torch.cuda.nccl.version()
    version = ".".join(map(str, version)) if isinstance(version, tuple) else version
    print(f"NCCL_OK world={world} backend={dist.get_backend()} nccl={version}")
dist.destroy_process_group()
"""


def test_nccl_all_reduce(tmp_path):
    """A real NCCL group of one process per GPU (a 1-rank communicator on one GPU) under torchrun."""
    gpus = torch.cuda.device_count()
    script = tmp_path / "nccl_check.py"
    script.write_text(NCCL_SCRIPT)
    done = subprocess.run(_torchrun(gpus, str(script)), env=_env(), capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0 and "NCCL_OK" in done.stdout, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n" \
                                                              f"{done.stderr[-3000:]}"
    line = next(line for line in done.stdout.splitlines() if line.startswith("NCCL_OK"))
    note("test_nccl_all_reduce", f"{line} ({gpus} process(es), one per GPU)")

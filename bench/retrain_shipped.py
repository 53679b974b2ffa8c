"""Retrain the shipped MNIST models with the exact commands the model card gives, a few at a time.

    python bench/retrain_shipped.py [--workers 2] [--names mnist_blur mnist_noise ...] [--classifier]

Each model runs :func:`coldlib.experiments.shipped_command` (``python -m coldlib.training ...``) in its own
process with one torch thread (``OMP_NUM_THREADS=1``), ``--workers`` at a time, writing its run folder
``runs/<name>`` and its export ``runs/<name>/export/<name>``. The queue is resumable: re-running it resumes
every unfinished run from its ``state.safetensors`` and skips exports that already exist. ``--eval-images 0``:
the held-out metrics are measured afterwards by ``bench/eval_restorers.py`` / ``bench/eval_generators.py`` on
the test split, so the training processes spend their time training. ``--classifier`` also retrains the
feature network of FD_MNIST-CNN (``python -m coldlib.evaluation.classifier``) into ``runs/mnist_classifier``.

Copying the exports into ``data/checkpoints`` and registering them is a separate, deliberate step, after the
runs are checked: ``python bench/retrain_shipped.py --install --names ...`` adds to each sidecar the record of
the images it trained on (``training_data``, :meth:`coldlib.data.Origin.to_dict`, recomputed from the recipe's
dataset and classes with :func:`coldlib.data.load_images`), replaces the machine's data path by
``$COLDLIB_DATA_DIR``, names the CPU, copies both files into ``data/checkpoints`` and registers them
(``coldlib.shipped.register_shipped``). The held-out metrics are then measured by ``bench/eval_restorers.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coldlib.experiments import shipped_command

MNIST_MODELS = ("mnist_blur", "mnist_blur_generation", "mnist_pixelate", "mnist_inpaint", "mnist_noise",
                "mnist_inpaint_generation", "mnist_mixing")
ROOT = Path(__file__).resolve().parents[1]


def _command(name: str) -> list[str]:
    if name == "mnist_classifier":
        return [sys.executable, "-m", "coldlib.evaluation.classifier", "--out", "runs/mnist_classifier/mnist_classifier"]
    args = shlex.split(shipped_command(name))
    assert args[:3] == ["python", "-m", "coldlib.training"], args
    return [sys.executable, *args[1:], "--eval-images", "0", "--no-progress"]


def _done(name: str) -> bool:
    stem = "mnist_classifier" if name == "mnist_classifier" else f"export/{name}"
    return (ROOT / "runs" / name / f"{stem}.json").is_file()


def _run(name: str) -> tuple[str, int, float]:
    if _done(name):
        print(f"[retrain] {name}: export exists, skipped", flush=True)
        return name, 0, 0.0
    (ROOT / "runs" / name).mkdir(parents=True, exist_ok=True)
    cmd = _command(name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print(f"[retrain] {time.strftime('%H:%M:%S')} start {name}: {shlex.join(cmd)}", flush=True)
    start = time.perf_counter()
    with open(ROOT / "runs" / name / "train.log", "a") as log:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    print(f"[retrain] {time.strftime('%H:%M:%S')} {name} exit {rc} after {seconds:.0f} s", flush=True)
    return name, rc, seconds


def _cpu() -> str:
    """The CPU's model name and the vector features that decide its speed (and bf16's) here."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(have) or 'no AVX2'}), {os.cpu_count()} cores"


def install(name: str) -> None:
    """Record the training images in the export's sidecar, copy it into data/checkpoints and register it."""
    from coldlib.checkpoints import sidecar_json
    from coldlib.data import load_images
    from coldlib.env import data_dir
    from coldlib.training.trainer import TrainConfig, autocast_dtype_for
    from coldlib.experiments import shipped_experiment, shipped_recipe
    from coldlib.shipped import checkpoint_dir, register_shipped

    stem = ROOT / "runs" / name / "export" / name
    config = json.loads(stem.with_suffix(".json").read_text())
    args = list(shipped_recipe(name))
    classes = [int(args[args.index("--classes") + 1])] if "--classes" in args else None
    dataset = args[args.index("--dataset") + 1]
    train_set = load_images(dataset, "train", classes=classes)
    if train_set.source.split(";")[0] not in config["data"]:
        raise SystemExit(f"{name}: the run's data note {config['data'][:120]!r} is not {train_set.source[:120]!r}")
    config["training_data"] = train_set.origin.to_dict()
    here = str(data_dir())
    config = json.loads(json.dumps(config).replace(here, "$COLDLIB_DATA_DIR"))
    threads = config["hardware"].split(",")[-1].strip()  # "1 threads": what the trainer recorded
    precision = config["train"].get("mixed_precision")
    if precision == "auto":
        import torch

        dtype = autocast_dtype_for(TrainConfig(steps=1, mixed_precision="auto"), torch.device("cpu"))
        precision = f"auto (here: {'bf16 autocast' if dtype is torch.bfloat16 else 'float32'})"
    config["hardware"] = f"{_cpu()}; {threads.replace('1 threads', '1 torch thread')}; mixed precision {precision}"
    target = checkpoint_dir() / f"{name}.safetensors"
    shutil.copyfile(stem.with_suffix(".safetensors"), target)
    target.with_suffix(".json").write_text(sidecar_json(config) + "\n")
    entry = register_shipped(name, target, shipped_experiment(name).task, dataset)
    print(f"[retrain] installed {name}: SHA-256 {entry['sha256']}; trained on {train_set.origin.describe()}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--names", nargs="+", default=list(MNIST_MODELS), choices=[*MNIST_MODELS, "mnist_classifier"])
    p.add_argument("--classifier", action="store_true", help="also retrain mnist_classifier (first)")
    p.add_argument("--install", action="store_true", help="install finished exports into data/checkpoints")
    args = p.parse_args(argv)
    if args.install:
        for name in args.names:
            install(name)
        return 0
    names = (["mnist_classifier"] if args.classifier else []) + list(args.names)
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(_run, names))
    failed = [n for n, rc, _ in results if rc]
    print(f"[retrain] done; failed: {failed or 'none'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

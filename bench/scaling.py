"""How MNIST deblurring quality scales with training compute: Direct and Algorithm 2 at several budgets.

    python bench/scaling.py train BUDGET [BUDGET ...]      # e.g. tiny:1000 small:1000 (resumable run folders)
    python bench/scaling.py evaluate [--every 5] [--out bench/results/scaling_mnist_blur.json]
    python bench/scaling.py                                 # both, for the default budgets

A budget ``size:steps`` trains the UNet preset ``size`` on ``preset("blur", "mnist")`` with the shipped
``mnist_blur`` recipe (batch 32 × 2, Adam lr 4e-4, L1, seed 0) scaled to its length: the EMA starts after a
quarter of the steps with decay ``1 - 4/steps`` (so ``small:4000`` is exactly ``mnist_blur``'s recipe,
``--ema-start 1000 --ema-decay 0.999``, and shorter runs are not dominated by their early weights). Runs live
in ``runs/scaling/<size>_<steps>`` and resume when the command is repeated. ``small:4000`` is the shipped
``mnist_blur`` checkpoint itself when its sidecar records that recipe (no second training).

Training compute is counted as the issue and the paper's comparison need it: steps × images per step ×
parameters ("parameter-image updates"); the forward FLOPs per image (``torch.utils.flop_counter``) and the
measured training wall time are stored beside it. The paper's point (56.6 M parameters, 700,000 steps of 64
images) is written into the output with its source, so a plot can put it on the same axes.

``evaluate`` scores every budget on every ``--every``-th image of MNIST's official *test* split (2,000 images
spread over the whole split by default, the model card's subset; never
trained on: the check is :func:`coldlib.data.check_held_out`) with Direct and Algorithm 2, SSIM in the
authors' convention and RMSE over all pixels in [0, 1], each with a 95 % bootstrap interval over the test
images (:func:`coldlib.evaluation.evaluate_restoration` with ``intervals=True``), and writes one JSON file
that lesson 09 plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from coldlib.render import machine_description

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUDGETS = ("tiny:500", "tiny:2000", "small:500", "small:4000")
DEFAULT_OUT = ROOT / "bench" / "results" / "scaling_mnist_blur.json"
IMAGES_PER_STEP = 64  # batch 32 x 2 micro-batches, as the paper and every shipped model
PAPER = {"label": "paper (Bansal et al., Table 1, MNIST deblurring)", "parameters": 56_612_916, "steps": 700_000,
         "images_per_step": 64, "Direct": {"SSIM": 0.757, "RMSE": 0.142}, "Algorithm 2": {"SSIM": 0.718, "RMSE": 0.154},
         "source": "the authors' ConvNeXt UNet (dim 64, mults 1,2,4,8; 56,612,916 parameters for one channel) trained "
                   "700,000 steps of batch 32 x 2; SSIM/RMSE from the paper's Table 1"}


def _parse(budget: str) -> tuple[str, int]:
    from coldlib.unet import UNET_PRESETS

    size, _, steps = budget.partition(":")
    if size not in UNET_PRESETS or not steps.isdigit() or int(steps) < 4:
        raise SystemExit(f"budget {budget!r}: want size:steps with size in {sorted(UNET_PRESETS)}, e.g. tiny:1000")
    return size, int(steps)


def _recipe(steps: int) -> dict:
    return {"batch_size": 32, "grad_accum": 2, "lr": 4e-4, "ema_start": steps // 4, "ema_every": 1,
            "ema_decay": 1 - 4 / steps, "seed": 0}


def _run_dir(size: str, steps: int) -> Path:
    return ROOT / "runs" / "scaling" / f"{size}_{steps}"


def _shipped_matches(size: str, steps: int) -> bool:
    """True when the shipped mnist_blur is this budget (same network, steps and recipe)."""
    from coldlib.shipped import checkpoint_dir

    path = checkpoint_dir() / "mnist_blur.json"
    if not path.is_file():
        return False
    from coldlib.unet import unet_preset_name

    cfg = json.loads(path.read_text())
    train = cfg.get("train", {})
    want = _recipe(steps)
    return (unet_preset_name(cfg["model"]) == size and cfg["steps"] == steps
            and all(abs(float(train.get(k, -1)) - float(v)) < 1e-9 for k, v in want.items())
            and (cfg.get("training_data") or {}).get("split") == "train")


def train_budget(budget: str) -> Path:
    """Train (or resume, or find) one budget; return its checkpoint path."""
    from coldlib.shipped import checkpoint_dir
    from coldlib.training import train

    size, steps = _parse(budget)
    if _shipped_matches(size, steps):
        print(f"[scaling] {budget}: the shipped mnist_blur has this recipe; not retrained", flush=True)
        return checkpoint_dir() / "mnist_blur.safetensors"
    out = _run_dir(size, steps)
    export = out / "export" / f"blur_{size}_{steps}"
    if export.with_suffix(".json").is_file():
        return export.with_suffix(".safetensors")
    train("blur", "mnist", steps=steps, model=size, out_dir=out, export=export, progress=False,
          mixed_precision="auto", checkpoint_every=max(50, steps // 10), **_recipe(steps))
    return export.with_suffix(".safetensors")


def _seconds_per_step(size: str, steps: int = 10) -> float:
    """Seconds per training step of UNet ``size`` with the shipped recipe, on this machine, now.

    The recorded training wall times of the runs are not comparable (they ran beside other jobs, and some were
    paused while lessons rendered), so the time a budget costs is its steps times this one measurement, made
    for every size back to back in one process (the same load for both).
    """
    from coldlib.data import load_images
    from coldlib.diffusion import ColdDiffusion
    from coldlib.experiments import preset
    from coldlib.training import TrainConfig, Trainer
    from coldlib.unet import UNet, unet_preset

    images = load_images("mnist", "train", limit=2048).images
    torch.manual_seed(0)
    trainer = Trainer(ColdDiffusion(UNet(unet_preset(size, 1)), preset("blur", "mnist")), images,
                      TrainConfig(steps=steps + 2, batch_size=32, grad_accum=2, lr=4e-4, ema_start=0),
                      device=torch.device("cpu"))
    trainer.train(steps=2, progress=False)  # warm-up: first-call allocations and kernel selection
    start = time.perf_counter()
    trainer.train(progress=False)
    return (time.perf_counter() - start) / steps


def _flops_per_image(model: torch.nn.Module) -> int:
    x, t = torch.zeros(1, 1, 32, 32), torch.ones(1, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.cpu()(x, t)
    return int(counter.get_total_flops())


def evaluate(budgets: list[str], every: int, out: Path) -> dict:
    from coldlib.checkpoints import load_model
    from coldlib.data import check_held_out, load_images
    from coldlib.diffusion import ColdDiffusion
    from coldlib.evaluation import EVAL_Z_SEED, SSIM_CONVENTION, evaluate_restoration

    test = load_images("mnist", "test").every(every)
    speed = {size: _seconds_per_step(size) for size in sorted({_parse(b)[0] for b in budgets})}
    print(f"[scaling] seconds per training step, measured now: {speed}", flush=True)
    rows = []
    for budget in budgets:
        size, steps = _parse(budget)
        path = train_budget(budget)
        loaded = load_model(path)
        check_held_out(loaded, test, name=f"the {budget} model")
        start = time.perf_counter()
        result = evaluate_restoration(ColdDiffusion(loaded.model, loaded.degradation), test.float(),
                                      methods=("direct", "improved"), intervals=True,
                                      generator=torch.Generator().manual_seed(EVAL_Z_SEED))
        seconds = time.perf_counter() - start
        params = loaded.model.num_parameters()
        row = {"budget": budget, "network": size, "parameters": params, "steps": steps,
               "images_per_step": IMAGES_PER_STEP, "compute": steps * IMAGES_PER_STEP * params,
               "forward_flops_per_image": _flops_per_image(loaded.model),
               "train_wall_seconds_recorded": loaded.config["train"].get("wall_seconds"),
               "seconds_per_step": round(speed[size], 3),
               "train_seconds_at_measured_speed": round(steps * speed[size], 1),
               "train_hardware": loaded.config.get("hardware"), "checkpoint": str(path.relative_to(ROOT)),
               "eval_seconds": round(seconds, 1)}
        for column in ("Direct", "Algorithm 2"):
            row[column] = {metric: result.intervals[column][metric].to_dict() for metric in ("SSIM", "RMSE")}
        print(f"[scaling] {budget}: Direct SSIM {result.intervals['Direct']['SSIM']}, Algorithm 2 SSIM "
              f"{result.intervals['Algorithm 2']['SSIM']} ({seconds:.0f} s)", flush=True)
        rows.append(row)
    report = {
        "what": "mnist_blur Direct and Algorithm 2 against training compute (bench/scaling.py)",
        "command": "python bench/scaling.py " + " ".join(sys.argv[1:]),
        "compute_unit": "steps x images per step x parameters",
        "test_images": {"count": len(test), "source": test.source},
        "intervals": "95% percentile bootstrap over the test images (coldlib.evaluation.intervals)",
        "ssim": SSIM_CONVENTION, "z_seed": EVAL_Z_SEED,
        "hardware": f"{machine_description()}, {torch.get_num_threads()} torch thread(s)",
        "speed": "seconds_per_step: 10 training steps (batch 32 x 2, bf16 autocast where the CPU has it natively) "
                 "of each network, measured back to back by this command; train_seconds_at_measured_speed = steps x "
                 "that. train_wall_seconds_recorded is what each run recorded (beside other jobs, some paused for "
                 "renders): not comparable across runs",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
        "paper": {**PAPER, "compute": PAPER["steps"] * PAPER["images_per_step"] * PAPER["parameters"]},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"[scaling] wrote {out}", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("action", nargs="?", default="all", choices=["all", "train", "evaluate"])
    p.add_argument("budgets", nargs="*", default=list(DEFAULT_BUDGETS))
    p.add_argument("--every", type=int, default=5, help="every K-th test image (default 5: 2,000 images)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    budgets = args.budgets or list(DEFAULT_BUDGETS)
    for b in budgets:
        _parse(b)
    if args.action in ("all", "train"):
        for b in budgets:
            train_budget(b)
    if args.action in ("all", "evaluate"):
        evaluate(budgets, args.every, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

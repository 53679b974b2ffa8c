"""Command line training: ``python -m coldlib.training --task blur --dataset mnist --steps 20000 --out runs/x``.

Re-running the same command after a crash or a kill resumes from ``<out>/state.safetensors``. At the end
the EMA weights are evaluated on the held-out split (the paper's columns) and exported with ``--export``.
The work is done by :func:`coldlib.training.train`; this module parses and checks the arguments (before any
data is read: a typo fails at once, argparse-style, without a traceback) and joins torchrun's process group.

Launched by ``torchrun`` (``torchrun --nproc_per_node=N -m coldlib.training ...``), every process trains a
slice of each global batch of ``N × --batch-size`` images with DistributedDataParallel: NCCL with one GPU
per process (``cuda:LOCAL_RANK``) when CUDA is available, else gloo on the CPU (``--device cpu`` forces it).
Rank 0 alone prints, checkpoints, evaluates and exports; re-running the same command resumes as above.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from ..data import KNOWN_NAMES
from ..env import pick_device
from ..experiments import experiment
from ..unet import UNET_PRESETS
from .run import train
from .trainer import TrainConfig


def _positive_int(text: str) -> int:
    value = int(text)  # argparse turns a ValueError into "invalid _positive_int value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m coldlib.training", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, help="degradation kind: blur, inpaint, pixelate, snow, decolor, ...")
    p.add_argument("--dataset", required=True, help=", ".join(KNOWN_NAMES))
    p.add_argument("--preset-dataset", help="whose degradation preset to use (default: the dataset's own)")
    p.add_argument("--image-size", type=_positive_int, help="image side (default: the dataset's)")
    p.add_argument("--model", default="small", choices=sorted(UNET_PRESETS))
    p.add_argument("--steps", type=_positive_int, default=TrainConfig.steps)
    p.add_argument("--batch-size", type=_positive_int, default=TrainConfig.batch_size,
                   help="images per micro-batch (--grad-accum of them per step); under torchrun, per process")
    p.add_argument("--grad-accum", type=_positive_int, default=TrainConfig.grad_accum)
    p.add_argument("--lr", type=_positive_float, default=TrainConfig.lr)
    p.add_argument("--ema-start", type=_non_negative_int, default=TrainConfig.ema_start)
    p.add_argument("--ema-every", type=_positive_int, default=TrainConfig.ema_every)
    p.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay)
    p.add_argument("--checkpoint-every", type=_positive_int, default=TrainConfig.checkpoint_every)
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--loss", default="l1", choices=["l1", "l2"])
    p.add_argument("--flip", action="store_true", help="random horizontal flips (colour data)")
    p.add_argument("--limit", type=_positive_int, help="use only the first N training images")
    p.add_argument("--classes", type=int, nargs="+", help="train only on images with these labels (e.g. 8)")
    p.add_argument("--mix-with", help="--task mixing (animorphosis): the dataset whose images are mixed in (z)")
    p.add_argument("--mix-classes", type=int, nargs="+", help="only these labels of --mix-with (e.g. 0)")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available); under torchrun: cuda (NCCL, "
                   "cuda:LOCAL_RANK) or cpu (gloo)")
    p.add_argument("--mixed-precision", default="auto", choices=["auto", "bf16", "no"])
    p.add_argument("--compile", action="store_true", help="torch.compile the training loss")
    p.add_argument("--init-from", help="warm start: the weights of this checkpoint (e.g. a shipped one) instead of "
                                        "random ones; same --model and task")
    p.add_argument("--out", required=True, help="run folder: state.safetensors and losses live here")
    p.add_argument("--export", help="write the EMA weights to <EXPORT>.safetensors + .json when done")
    p.add_argument("--eval-images", type=_non_negative_int, default=500, help="held-out images for the final metrics")
    p.add_argument("--no-progress", action="store_true")
    return p


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse bad arguments before any data is read, the way argparse does (usage, message, exit status 2)."""
    try:
        experiment(args.task, args.preset_dataset or args.dataset)
        TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                    ema_start=args.ema_start, ema_every=args.ema_every, ema_decay=args.ema_decay,
                    checkpoint_every=args.checkpoint_every, seed=args.seed)
    except ValueError as e:
        parser.error(str(e))
    if not (args.dataset in KNOWN_NAMES or args.dataset.startswith("folder:")):
        parser.error(f"unknown --dataset {args.dataset!r}; choose one of {', '.join(KNOWN_NAMES)}.")
    if Path(args.out).expanduser().is_file():
        parser.error(f"--out {args.out} is an existing file; it must be a run folder (new, or one to resume).")
    if args.mix_classes and not args.mix_with:
        parser.error("--mix-classes needs --mix-with (the dataset whose images are mixed in).")


def _torchrun_world() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment; (1, 0, 0) for a plain ``python -m``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _init_distributed(requested: str | None, local_rank: int) -> torch.device:
    """Join torchrun's process group: NCCL on ``cuda:LOCAL_RANK``, or gloo on the CPU; return the device."""
    device = pick_device(requested)
    if device.type == "mps":
        raise ValueError("distributed training runs on CUDA GPUs (NCCL) or CPUs (gloo), not on MPS; pass "
                         "--device cpu, or launch one process with python -m coldlib.training.")
    if device.type == "cuda":
        if device.index is not None and device.index != local_rank:
            raise ValueError(f"under torchrun each process uses cuda:LOCAL_RANK (here cuda:{local_rank}); pass "
                             "--device cuda (choose GPUs with CUDA_VISIBLE_DEVICES), not a GPU index.")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible; "
                             "pass --nproc_per_node at most the number of GPUs.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return device


def _run(args: argparse.Namespace, device: torch.device) -> dict:
    _, report = train(args.task, args.dataset, steps=args.steps, model=args.model, out_dir=args.out,
                      export=args.export, image_size=args.image_size, limit=args.limit, classes=args.classes,
                      preset_dataset=args.preset_dataset, mix_with=args.mix_with, mix_classes=args.mix_classes,
                      loss=args.loss, eval_images=args.eval_images, device=device, progress=not args.no_progress,
                      init_from=args.init_from,
                      batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr, ema_start=args.ema_start,
                      ema_every=args.ema_every, ema_decay=args.ema_decay, checkpoint_every=args.checkpoint_every,
                      seed=args.seed, flip=args.flip, mixed_precision=args.mixed_precision, compile=args.compile)
    print(json.dumps(report, indent=2), flush=True)  # under torchrun, only rank 0's stdout is shown
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(args, parser)
    world, rank, local_rank = _torchrun_world()
    try:
        if world == 1:
            return _run(args, pick_device(args.device))
        device = _init_distributed(args.device, local_rank)
        try:
            with contextlib.ExitStack() as stack:
                if rank != 0:  # only rank 0 prints (the others would repeat the data notes); errors reach stderr
                    stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
                return _run(args, device)
        finally:
            dist.destroy_process_group()
    except (ValueError, FileNotFoundError) as e:  # our own clear messages: no traceback, argparse's exit status
        parser.exit(2, f"{parser.prog}: error: {e}\n")


if __name__ == "__main__":
    main()

"""Command line training: ``python -m coldlib.training --task blur --dataset mnist --steps 20000 --out runs/x``.

Re-running the same command after a crash or a kill resumes from ``<out>/state.safetensors``. At the end
the EMA weights are evaluated on the held-out split (the paper's columns) and exported with ``--export``.
The work is done by :func:`coldlib.training.train`; this module parses and checks the arguments (before any
data is read: a typo fails at once, argparse-style, without a traceback) and joins torchrun's process group.

Launched by ``torchrun`` (``torchrun --nproc_per_node=N -m coldlib.training ...``), every process trains a
slice of each global batch of ``N × --batch-size`` images with DistributedDataParallel: NCCL with one GPU
per process (``cuda:LOCAL_RANK``) when CUDA is available, else gloo on the CPU (``--device cpu`` forces it).
Rank 0 alone prints, checkpoints, evaluates and exports; re-running the same command resumes as above.
A process that finds WORLD_SIZE/RANK set but no peer waits at most ``COLDLIB_DIST_TIMEOUT`` seconds (default
60) for them, then says which variables to fix, rather than hang.

``--degradation`` trains any degradation, a learner's own included: a built-in's JSON config
(``'{"type": "GaussianBlur", "T": 30, ...}'``) or ``FILE.py:NAME`` / ``MODULE:NAME``, naming a Degradation
(or a function of no arguments that returns one); ``--task`` is then only a label.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

from ..data import KNOWN_NAMES
from ..degradations import Degradation, from_config
from ..env import pick_device
from ..unet import UNET_PRESETS
from .run import check_writable, preset_for, train
from .trainer import TrainConfig

#: How long a process waits for torchrun's other processes, in seconds (an environment variable overrides it).
DIST_TIMEOUT_ENV, DIST_TIMEOUT_DEFAULT = "COLDLIB_DIST_TIMEOUT", 60.0


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
    p.add_argument("--preset-dataset", help="whose degradation preset to use (default: the dataset's own; needed "
                                             "for a folder: dataset)")
    p.add_argument("--degradation", help="a degradation instead of the preset: a built-in's JSON config, or "
                                          "FILE.py:NAME / MODULE:NAME of your own (--task is then a label)")
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


def load_degradation(spec: str) -> Degradation:
    """The degradation ``--degradation`` names: a JSON config of a built-in, or ``FILE.py:NAME`` / ``MODULE:NAME``.

    ``NAME`` is a :class:`Degradation` instance or a function (or class) that returns one when called without
    arguments. ``ValueError`` says what is wrong with the spec.
    """
    if spec.lstrip().startswith("{"):
        try:
            return from_config(json.loads(spec))
        except (json.JSONDecodeError, RecursionError, TypeError, ValueError) as e:
            raise ValueError(f"--degradation {spec!r} is not a degradation config ({e}); give the JSON of a "
                             "built-in's config(), e.g. '{\"type\": \"GaussianBlur\", \"T\": 20, ...}', or "
                             "FILE.py:NAME for one of your own.") from e
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise ValueError(f"--degradation {spec!r}: give FILE.py:NAME or MODULE:NAME (e.g. my_rotation.py:Rotate), "
                         "or a built-in's JSON config.")
    try:
        if where.endswith(".py"):
            file = Path(where).expanduser()
            if not file.is_file():
                raise FileNotFoundError(f"no such file {file}")
            module_spec = importlib.util.spec_from_file_location(file.stem, file)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[file.stem] = module  # so the class can be found again by name (e.g. for pickling)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        thing = getattr(module, name)
        D = thing() if callable(thing) and not isinstance(thing, Degradation) else thing
    except Exception as e:  # the learner's own code: any error, reported with where it came from
        raise ValueError(f"--degradation {spec!r} could not be loaded ({type(e).__name__}: {e}).") from e
    if not isinstance(D, Degradation):
        raise ValueError(f"--degradation {spec!r} gave a {type(D).__name__}, not a coldlib Degradation; NAME must be "
                         "a Degradation or a function of no arguments that returns one.")
    return D


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse bad arguments before any data is read, the way argparse does (usage, message, exit status 2)."""
    try:
        if args.degradation is not None:
            args.degradation = load_degradation(args.degradation)
        if args.degradation is None or args.preset_dataset is not None:
            preset_for(args.task, args.dataset, args.preset_dataset)
        TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                    ema_start=args.ema_start, ema_every=args.ema_every, ema_decay=args.ema_decay,
                    checkpoint_every=args.checkpoint_every, seed=args.seed)
        if not (args.dataset in KNOWN_NAMES or args.dataset.startswith("folder:")):
            raise ValueError(f"unknown --dataset {args.dataset!r}; choose one of {', '.join(KNOWN_NAMES)}.")
        if args.mix_classes and not args.mix_with:
            raise ValueError("--mix-classes needs --mix-with (the dataset whose images are mixed in).")
        if _torchrun_world()[1] == 0:  # rank 0 alone writes (other nodes need not see the folders)
            check_writable(args.out, "--out")
            if args.export is not None:
                check_writable(args.export, "--export", stem=True)
    except ValueError as e:
        parser.error(str(e))


def _torchrun_world() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment; (1, 0, 0) for a plain ``python -m``."""
    values = []
    for name, default, minimum in (("WORLD_SIZE", 1, 1), ("RANK", 0, 0), ("LOCAL_RANK", 0, 0)):
        text = os.environ.get(name, "").strip()
        try:
            value = int(text) if text else default
        except ValueError:
            value = -1
        if value < minimum:
            raise ValueError(f"the environment variable {name}={text!r} must be an integer >= {minimum}; torchrun "
                             "sets it. Launch with torchrun, or unset WORLD_SIZE, RANK and LOCAL_RANK to train in "
                             "one process.")
        values.append(value)
    return values[0], values[1], values[2]


def _init_distributed(requested: str | None, local_rank: int) -> torch.device:
    """Join torchrun's process group: NCCL on ``cuda:LOCAL_RANK``, or gloo on the CPU; return the device."""
    device = pick_device(requested, name="--device")
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
    # Only the rendezvous (meeting the other processes) is bounded by the short wait: once every process has
    # joined, the store and the collectives get torch's usual timeout, so a long download or evaluation on
    # rank 0 while the others wait at a barrier is not cut short.
    timeout = _dist_timeout()
    world, rank, _ = _torchrun_world()
    try:
        store, rank, world = next(dist.rendezvous("env://", rank=rank, world_size=world, timeout=timeout))
    except Exception as e:  # torch's rendezvous errors (DistStoreError, DistNetworkError, ValueError) omit the fix
        found = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in ("WORLD_SIZE", "RANK", "MASTER_ADDR",
                                                                             "MASTER_PORT"))
        why = " ".join(str(e).split())[:200].rstrip(".")
        raise TimeoutError(f"could not join torchrun's process group ({found}; waited up to "
                           f"{timeout.total_seconds():g} s): {type(e).__name__}: {why}. WORLD_SIZE and RANK say this "
                           "is one of several processes, but its peers did not meet it at MASTER_ADDR:MASTER_PORT. "
                           "Launch every process with torchrun (torchrun --nproc_per_node=N -m coldlib.training ...), "
                           "or unset WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT to train in one process. "
                           f"({DIST_TIMEOUT_ENV} sets how long to wait.)") from e
    store.set_timeout(default_pg_timeout)
    if device.type == "cuda":
        dist.init_process_group("nccl", store=store, rank=rank, world_size=world, device_id=device)
    else:
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    return device


def _dist_timeout() -> datetime.timedelta:
    """How long to wait for the other processes: ``COLDLIB_DIST_TIMEOUT`` seconds, else 60."""
    text = os.environ.get(DIST_TIMEOUT_ENV, "").strip()
    try:
        seconds = float(text) if text else DIST_TIMEOUT_DEFAULT
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{DIST_TIMEOUT_ENV}={text!r} must be a number of seconds > 0 (default "
                         f"{DIST_TIMEOUT_DEFAULT:g}).")
    return datetime.timedelta(seconds=seconds)


def _run(args: argparse.Namespace, device: torch.device) -> dict:
    _, report = train(args.task, args.dataset, steps=args.steps, model=args.model, out_dir=args.out,
                      export=args.export, image_size=args.image_size, limit=args.limit, classes=args.classes,
                      degradation=args.degradation, preset_dataset=args.preset_dataset, mix_with=args.mix_with,
                      mix_classes=args.mix_classes,
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
            return _run(args, pick_device(args.device, name="--device"))
        device = _init_distributed(args.device, local_rank)
        try:
            with contextlib.ExitStack() as stack:
                if rank != 0:  # only rank 0 prints (the others would repeat the data notes); errors reach stderr
                    stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
                return _run(args, device)
        finally:
            dist.destroy_process_group()
    except (ValueError, FileNotFoundError, TimeoutError) as e:  # our own clear messages: no traceback, exit 2
        parser.exit(2, f"{parser.prog}: error: {e}\n")


if __name__ == "__main__":
    main()

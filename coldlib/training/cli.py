"""Command line training: ``python -m coldlib.training --task blur --dataset mnist --steps 20000 --out runs/x``.

Re-running the same command after a crash or a kill resumes from ``<out>/state.safetensors``. At the end
the EMA weights are evaluated on the held-out split (the paper's columns) and exported with ``--export``.

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
import platform
import time
from pathlib import Path

import torch
import torch.distributed as dist

from .. import degradations
from ..data import load_images
from ..diffusion import ColdDiffusion
from ..env import pick_device, seed_everything
from ..evaluation.metrics import evaluate_restoration  # imported up front: a run must not pick up code edited mid-run
from .run import PRESET_DATASET
from .trainer import TrainConfig, Trainer
from ..unet import UNET_PRESETS, UNet, unet_preset


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m coldlib.training", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, help="degradation kind: blur, inpaint, pixelate, snow, decolor, ...")
    p.add_argument("--dataset", required=True, help="mnist, fashion_mnist, cifar10, celeba, photos, folder:<path>")
    p.add_argument("--preset-dataset", help="whose degradation preset to use (default: the dataset's own)")
    p.add_argument("--image-size", type=int, help="image side (default: the dataset's)")
    p.add_argument("--model", default="small", choices=sorted(UNET_PRESETS))
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                   help="images per micro-batch (--grad-accum of them per step); under torchrun, per process")
    p.add_argument("--grad-accum", type=int, default=TrainConfig.grad_accum)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--ema-start", type=int, default=TrainConfig.ema_start)
    p.add_argument("--ema-every", type=int, default=TrainConfig.ema_every)
    p.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay)
    p.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", default="l1", choices=["l1", "l2"])
    p.add_argument("--flip", action="store_true", help="random horizontal flips (colour data)")
    p.add_argument("--limit", type=int, help="use only the first N training images")
    p.add_argument("--classes", type=int, nargs="+", help="train only on images with these labels (e.g. 8)")
    p.add_argument("--mix-with", help="--task mixing (animorphosis): the dataset whose images are mixed in (z)")
    p.add_argument("--mix-classes", type=int, nargs="+", help="only these labels of --mix-with (e.g. 0)")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available); under torchrun: cuda (NCCL, "
                   "cuda:LOCAL_RANK) or cpu (gloo)")
    p.add_argument("--mixed-precision", default="auto", choices=["auto", "bf16", "no"])
    p.add_argument("--compile", action="store_true", help="torch.compile the training loss")
    p.add_argument("--out", required=True, help="run folder: state.safetensors and losses live here")
    p.add_argument("--export", help="write the EMA weights to <EXPORT>.safetensors + .json when done")
    p.add_argument("--eval-images", type=int, default=500, help="held-out images for the final metrics")
    p.add_argument("--no-progress", action="store_true")
    return p


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


def _mixing_with(args: argparse.Namespace, D: degradations.Degradation, split: str):
    """Animorphosis: the preset's ImageMixing with a pool of ``--mix-with`` images (their ``split``)."""
    if type(D) is not degradations.ImageMixing:
        raise ValueError(f"--mix-with is for --task mixing (animorphosis); --task {args.task} mixes nothing in.")
    if not args.mix_with:
        raise ValueError("--task mixing needs the images to mix in: pass --mix-with DATASET (and --mix-classes to "
                         "pick labels), e.g. --dataset mnist --classes 8 --mix-with mnist --mix-classes 0.")
    pool = load_images(args.mix_with, split, image_size=args.image_size, classes=args.mix_classes)
    return degradations.ImageMixing(D.T, pool=pool.float()), pool.source


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    world, rank, local_rank = _torchrun_world()
    if world == 1:
        return _main(args, pick_device(args.device), world, rank, local_rank)
    device = _init_distributed(args.device, local_rank)
    try:
        with contextlib.ExitStack() as stack:
            if rank != 0:  # only rank 0 prints (the others would repeat the data notes); errors still reach stderr
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
            return _main(args, device, world, rank, local_rank)
    finally:
        dist.destroy_process_group()


def _main(args: argparse.Namespace, device: torch.device, world: int, rank: int, local_rank: int) -> dict:
    main_rank = rank == 0
    seed_everything(args.seed)  # the initial weights; the run's own randomness comes from its generator
    preset_ds = args.preset_dataset or PRESET_DATASET.get(args.dataset, args.dataset)
    D = degradations.preset(args.task, preset_ds)
    if world > 1 and local_rank != 0:
        dist.barrier()  # one process per machine downloads (if needed) before the others read the files
    train_set = load_images(args.dataset, "train", image_size=args.image_size, limit=args.limit, classes=args.classes)
    data_note = train_set.source
    if type(D) is degradations.ImageMixing or args.mix_with:
        D, mixed_in = _mixing_with(args, D, "train")
        data_note += f"; mixed with: {mixed_in}"
    held_out = None
    if rank == 0 and args.eval_images > 0:  # loaded now, so a bad --eval-images fails before training, not after
        held_out = load_images(args.dataset, "test", image_size=args.image_size, limit=args.eval_images,
                               classes=args.classes)
    if world > 1 and local_rank == 0:
        dist.barrier()
    channels = train_set.images.shape[1]
    model = UNet(unet_preset(args.model, channels)).to(device)
    diffusion = ColdDiffusion(model, D, loss=args.loss)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                         ema_start=args.ema_start, ema_every=args.ema_every, ema_decay=args.ema_decay,
                         checkpoint_every=args.checkpoint_every, seed=args.seed,
                         flip=args.flip, mixed_precision=args.mixed_precision, compile=args.compile)
    trainer = Trainer(diffusion, train_set.images, config, out_dir=args.out, device=device, data_note=data_note)
    resumed = trainer.resume()
    where = str(device) if world == 1 else (f"{world} processes ({dist.get_backend()}, global batch "
                                            f"{world * args.batch_size}), rank 0 on {device}")
    if main_rank:
        print(f"{'resumed at step ' + str(trainer.step) if resumed else 'new run'}: {D!r}, UNet '{args.model}' "
              f"({model.num_parameters():,} parameters) on {where}; data: {train_set.source}", flush=True)
    start = time.perf_counter()
    trainer.train(progress=not args.no_progress)
    seconds = time.perf_counter() - start
    report: dict = {"steps": trainer.step, "wall_seconds_this_session": round(seconds, 1),
                    "wall_seconds_all_sessions": round(trainer.train_seconds, 1)}
    if world > 1:
        report["processes"] = world
    if not main_rank:  # rank 0 evaluates and writes; the others are done once training is
        return report
    if held_out is not None:
        D_eval = _mixing_with(args, D, "test")[0] if args.mix_with else D  # held-out images to mix in, too
        ema_diffusion = ColdDiffusion(trainer.ema, D_eval, loss=args.loss)
        report["metrics"] = evaluate_restoration(ema_diffusion, held_out.float().to(device),
                                                 generator=torch.Generator().manual_seed(1234))
        report["held_out"] = f"{len(held_out)} images: {held_out.source}"
    Path(args.out, "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2), flush=True)
    if args.export:
        hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                    else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
        if world > 1:
            hardware = f"{world} processes × {hardware}"
        path = trainer.export(args.export, metrics=report.get("metrics"), hardware=hardware)
        print(f"exported {path}")
    return report


if __name__ == "__main__":
    main()

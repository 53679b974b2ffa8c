"""Training a restorer: Adam, EMA, gradient accumulation, mixed precision, checkpoints that resume exactly.

Lesson: 02_training_a_restorer.

All randomness of a run (batch order, flips, steps t, the degradation's z) comes from one generator owned
by the trainer, and its state is saved in every checkpoint with the step, the weights, the EMA weights and
Adam's moments. A run killed mid-way therefore continues from its last checkpoint as if it had never
stopped. Checkpoints are safetensors files written atomically (a crash mid-write leaves the old one).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import (
    load_training_state,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_model,
    save_training_state,
)
from .diffusion import ColdDiffusion

__all__ = ["TrainConfig", "Trainer"]


@dataclass
class TrainConfig:
    """Training settings. The paper: Adam lr 2e-5, batch 32 × 2 accumulation, EMA 0.995 every 10 steps
    from step 2000, 700k steps. We default to a 10× larger learning rate because our runs are short."""

    steps: int = 5_000
    batch_size: int = 32
    grad_accum: int = 2
    lr: float = 2e-4
    ema_decay: float = 0.995
    ema_every: int = 10
    ema_start: int = 2_000
    checkpoint_every: int = 500
    seed: int = 0
    flip: bool = False
    mixed_precision: str = "auto"  # "auto": bf16 on CUDA when supported, else fp32; or "bf16" / "no"
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "ema_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int; got {value!r}.")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1); got {self.ema_decay}.")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise ValueError(f"mixed_precision must be 'auto', 'bf16' or 'no'; got {self.mixed_precision!r}.")


def _autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.mixed_precision == "no":
        return None
    if config.mixed_precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None  # bf16 autocast on CPUs is usually slower than fp32


class Trainer:
    """Trains ``diffusion.model`` on ``images`` (uint8 or [-1, 1] float, (N, C, H, W)).

    Lesson: 02_training_a_restorer. ``out_dir`` holds ``state.safetensors`` (resumable) and
    ``losses.json``; :meth:`export` writes the EMA weights as a shippable checkpoint.
    """

    def __init__(self, diffusion: ColdDiffusion, images: torch.Tensor, config: TrainConfig | None = None, *,
                 out_dir: str | Path | None = None, device: torch.device | str | None = None,
                 data_note: str = "") -> None:
        self.config = config or TrainConfig()
        self.device = torch.device(device) if device is not None else next(diffusion.model.parameters()).device
        if images.ndim != 4 or images.shape[0] < self.config.batch_size:
            raise ValueError(f"images must be (N, C, H, W) with N >= batch_size={self.config.batch_size}; got "
                             f"{tuple(images.shape)}.")
        self.images = images
        self.diffusion = diffusion.to(self.device)
        self.model = diffusion.model
        if self.config.channels_last and self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.step = 0
        self.losses: list[float] = []
        self.train_seconds = 0.0  # wall time spent in train(), summed over resumed sessions
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.data_note = data_note
        self.autocast_dtype = _autocast_dtype(self.config, self.device)
        self._loss_fn = torch.compile(self.diffusion.loss) if self.config.compile else self.diffusion.loss

    # ------------------------------------------------------------------ one optimisation step
    def next_batch(self) -> torch.Tensor:
        idx = torch.randint(0, self.images.shape[0], (self.config.batch_size,), generator=self.generator)
        x = self.images[idx]
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
        if self.config.flip:
            flip = torch.rand(x.shape[0], generator=self.generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def train_step(self) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(self.config.grad_accum):
            x0 = self.next_batch()
            t = torch.randint(1, self.diffusion.T + 1, (x0.shape[0],), generator=self.generator)
            z = self.diffusion.degradation.draw_z(x0.cpu(), self.generator)
            z = _to_device(z, self.device)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                loss = self._loss_fn(x0, t.to(self.device), z)
            (loss / self.config.grad_accum).backward()
            total += float(loss.detach())
        self.optimizer.step()
        self.step += 1
        self._update_ema()
        return total / self.config.grad_accum

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.step < self.config.ema_start:  # the paper resets the EMA to the live weights early on
            self.ema.load_state_dict(self.model.state_dict())
        elif self.step % self.config.ema_every == 0:
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1 - self.config.ema_decay)
            for e, b in zip(self.ema.buffers(), self.model.buffers()):
                e.copy_(b)

    # ------------------------------------------------------------------ the loop
    def train(self, steps: int | None = None, *, progress: bool = True) -> list[float]:
        """Train until ``steps`` (default: ``config.steps``) optimiser steps have been taken in total."""
        target = self.config.steps if steps is None else steps
        bar = tqdm(total=target, initial=self.step, disable=not progress, desc="training")
        last = time.perf_counter()
        while self.step < target:
            loss = self.train_step()
            now = time.perf_counter()
            self.train_seconds += now - last
            last = now
            self.losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if self.out_dir is not None and (self.step % self.config.checkpoint_every == 0 or self.step == target):
                self.save_checkpoint()
        bar.close()
        return self.losses

    # ------------------------------------------------------------------ checkpoints
    @property
    def state_path(self) -> Path:
        if self.out_dir is None:
            raise ValueError("this Trainer has no out_dir; pass out_dir=... to save or resume checkpoints.")
        return self.out_dir / "state.safetensors"

    def save_checkpoint(self) -> Path:
        """Write everything needed to resume (atomically) to ``out_dir/state.safetensors``."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        opt_tensors, opt_meta = optimizer_to_tensors(self.optimizer.state_dict())
        tensors.update({f"opt.{k}": v for k, v in opt_tensors.items()})
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {"step": self.step, "optimizer": opt_meta, "config": asdict(self.config), "losses": self.losses,
                "train_seconds": self.train_seconds}
        save_training_state(self.state_path, {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, meta)
        return self.state_path

    def resume(self) -> bool:
        """Continue from ``out_dir/state.safetensors`` if it exists; returns whether it did."""
        if not self.state_path.exists():
            return False
        tensors, meta = load_training_state(self.state_path)
        pick = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
        self.model.load_state_dict(pick("model."))
        self.ema.load_state_dict(pick("ema."))
        self.optimizer.load_state_dict(optimizer_from_tensors(pick("opt."), meta["optimizer"]))
        self.generator.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step = int(meta["step"])
        self.losses = list(meta["losses"])
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        return True

    def export(self, stem: str | Path, *, metrics: dict | None = None, hardware: str | None = None) -> Path:
        """Save the EMA weights and config as a shippable checkpoint ``<stem>.safetensors`` + ``.json``.

        ``train["wall_seconds"]`` is the training time of all sessions of the run (resumes included).
        """
        train = dict(asdict(self.config), wall_seconds=round(self.train_seconds, 1))
        return save_model(stem, self.ema, self.diffusion.degradation, data=self.data_note, steps=self.step,
                          train=train, metrics=metrics, hardware=hardware)


def _to_device(z, device: torch.device):
    if z is None or isinstance(z, torch.Tensor):
        return None if z is None else z.to(device)
    return type(z)(*(f.to(device) for f in z))  # NamedTuple ingredients such as SnowField

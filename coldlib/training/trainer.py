"""Training a restorer: Adam, EMA, gradient accumulation, mixed precision, checkpoints that resume exactly.

All randomness of a run (batch order, flips, steps t, the degradation's z) comes from one generator owned
by the trainer, and its state is saved in every checkpoint with the step, the weights, the EMA weights and
Adam's moments. A run killed mid-way therefore continues from its last checkpoint as if it had never
stopped. Checkpoints are safetensors files written atomically (a crash mid-write leaves the old one).

Under ``torch.distributed`` (``torchrun --nproc_per_node=N -m coldlib.training ...``) the trainer wraps the
model in DistributedDataParallel and acts as its own distributed sampler: every rank holds the same
generator state, draws the randomness of the *global* batch (``N × batch_size`` indices, flips, steps and
``z``) and keeps its own slice. An N-process run with ``batch_size`` B therefore takes the same steps as a
one-process run with batch N·B (up to the order of float sums), and rank 0's saved generator state is every
rank's, so resuming stays exact. Only rank 0 prints progress and writes files; the EMA is updated on every
rank from the same (all-reduced) weights, so it is the same everywhere.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..checkpoints import _check_state_dict, _split_path, _unwrap, describe_degradation, save_model
from ..degradations import check_images, map_z
from ..diffusion import ColdDiffusion
from ..env import cpu_has_native_bf16, progress_bars
from .state import load_training_state, optimizer_from_tensors, optimizer_to_tensors, save_training_state
from ..validate import check_int, check_positive_float, check_seed

__all__ = ["TrainConfig", "Trainer", "autocast_dtype_for", "NonFiniteLoss"]


class NonFiniteLoss(ArithmeticError, ValueError):
    """Training met a NaN or infinite loss (or weights); the step was not taken and nothing bad was saved."""


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
    mixed_precision: str = "auto"  # "auto": bf16 on CUDA and on CPUs with native bf16, else fp32; "bf16" / "no"
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        # The same checks as the command line's: lr=inf would train every weight to NaN and lr=0 change
        # nothing, both without a word.
        for name in ("steps", "batch_size", "grad_accum", "ema_every", "checkpoint_every"):
            check_int(getattr(self, name), f"TrainConfig.{name}")
        check_int(self.ema_start, "TrainConfig.ema_start", minimum=0)
        check_positive_float(self.lr, "TrainConfig.lr", hint=" (Adam's learning rate, e.g. 2e-4)")
        if isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float)) \
                or not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1); got {self.ema_decay!r}.")
        check_seed(self.seed, "TrainConfig.seed")
        for name in ("flip", "channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be True or False; got {getattr(self, name)!r}.")
        if self.mixed_precision not in ("auto", "bf16", "no"):
            raise ValueError(f"mixed_precision must be 'auto', 'bf16' or 'no'; got {self.mixed_precision!r}.")


def autocast_dtype_for(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``config.mixed_precision`` means on ``device`` (None: fp32, no autocast)."""
    if config.mixed_precision == "no":
        return None
    if config.mixed_precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_native_bf16():  # emulated bf16 is far slower than fp32
        return torch.bfloat16
    return None


def _distributed() -> tuple[int, int]:
    """(world size, rank): (1, 0) unless a ``torch.distributed`` process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class Trainer:
    """Trains ``diffusion.model`` on ``images`` (uint8 or [-1, 1] float, (N, C, H, W)).

    ``out_dir`` holds ``state.safetensors`` (resumable);
    :meth:`export` writes the EMA weights as a shippable checkpoint. The state records what the run trains
    (:meth:`identity`: the degradation, the network, the image size, the dataset, and ``run``'s entries such
    as the task), and :meth:`resume` refuses a folder made for something else instead of overwriting it.

    Built while a ``torch.distributed`` process group is initialised (e.g. under ``torchrun``), it trains
    data-parallel: ``config.batch_size`` is the batch of *each* process, the global batch is
    ``world_size × batch_size``, every rank must be given the same images and config, and ``device`` must
    be this rank's GPU (``cuda:LOCAL_RANK``) or the CPU (gloo). Rank 0 prints progress, writes checkpoints
    and exports; :meth:`resume` reads the checkpoint on rank 0 and broadcasts it, so other nodes need not
    see the run folder. Each rank's global torch RNG (dropout) is reseeded every step from
    (seed, step, rank), so dropout differs between ranks and resumes exactly.
    """

    def __init__(self, diffusion: ColdDiffusion, images: torch.Tensor, config: TrainConfig | None = None, *,
                 out_dir: str | Path | None = None, device: torch.device | str | None = None,
                 data_note: str = "", init_from: dict | None = None, training_data: dict | None = None,
                 run: dict | None = None) -> None:
        self.config = config or TrainConfig()
        self.device = torch.device(device) if device is not None else next(diffusion.model.parameters()).device
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] < self.config.batch_size:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be (N, C, H, W) with N >= batch_size={self.config.batch_size}; got {got}.")
        # uint8 images in [0, 255] are converted batch by batch (x / 127.5 - 1); floats must already be in
        # [-1, 1] (checked here, once), and any other dtype is refused rather than guessed at.
        if images.dtype != torch.uint8:
            if not images.is_floating_point():
                raise ValueError(f"images must be uint8 in [0, 255] or float in [-1, 1]; got dtype {images.dtype}. "
                                 "Convert [0, 255] integers with images.to(torch.uint8).")
            check_images(images, channels=diffusion.degradation.channels, name="images", limit=1.0,
                         owner=type(diffusion.degradation).__name__,
                         hint=" The Trainer also takes uint8 images in [0, 255] as they are.")
        else:
            check_images(images[:1].float(), channels=diffusion.degradation.channels, name="images",
                         owner=type(diffusion.degradation).__name__)  # shape and channels; the values all fit
        self.images = images
        self.world_size, self.rank = _distributed()
        self.diffusion = diffusion.to(self.device)
        self.model = diffusion.model
        if self.config.channels_last and self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        train_diffusion = self.diffusion
        if self.world_size > 1:
            self._check_ranks_agree()
            device_ids = None
            if self.device.type == "cuda":
                device_ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
            # DDP broadcasts rank 0's weights to every rank; the EMA starts from them too.
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
            self.ema.load_state_dict(self.model.state_dict())
            train_diffusion = ColdDiffusion(self.ddp, diffusion.degradation, loss=diffusion.loss_type)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        self.generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        self.step = 0
        self.losses: list[float] = []
        self.train_seconds = 0.0  # wall time spent in train(), summed over resumed sessions
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.data_note = data_note
        self.training_data = training_data  # which images (coldlib.data.Origin.to_dict()), for the sidecar
        self.init_from = init_from  # where a warm-started model's weights came from (recorded by export)
        self.run = dict(run or {})  # what the caller knows the run is for (task, dataset), beyond what is seen here
        self.saved_step: int | None = None  # the step of the last state written to (or read from) out_dir
        self.autocast_dtype = autocast_dtype_for(self.config, self.device)
        self._loss_fn = torch.compile(train_diffusion.loss) if self.config.compile else train_diffusion.loss

    @property
    def is_main(self) -> bool:
        """Whether this process prints and writes files: always in one process, rank 0 under DDP."""
        return self.rank == 0

    # ------------------------------------------------------------------ distributed helpers
    @property
    def _comm_device(self) -> torch.device:
        """Where small collectives' tensors live: this rank's GPU with NCCL, else the CPU (gloo)."""
        if self.device.type == "cuda" and "nccl" in str(dist.get_backend()):
            return self.device if self.device.index is not None else torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def _barrier(self) -> None:
        if self.world_size == 1:
            return
        if self._comm_device.type == "cuda":
            dist.barrier(device_ids=[self._comm_device.index])
        else:
            dist.barrier()

    def _reseed_global_rng(self) -> None:
        """Dropout draws from the global RNG: give each rank its own stream, a function of (seed, step, rank)."""
        seed = ((self.config.seed * 1_000_003 + self.step) * 65_537 + self.rank) % 2**63
        torch.random.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            torch.cuda.default_generators[index].manual_seed(seed)

    def _check_ranks_agree(self) -> None:
        """Refuse to train if ranks were given different settings or images (each would sample another batch)."""
        images = self.images
        flat = images.reshape(-1)  # a strided sample of about a million values is enough to tell data sets apart
        sample = flat[:: max(1, flat.numel() // 1_000_000)]
        mine = {"config": asdict(self.config), "images": [list(images.shape), str(images.dtype)],
                "checksum": float(sample.double().sum())}
        everyone: list = [None] * self.world_size
        dist.all_gather_object(everyone, mine)
        odd = [r for r, theirs in enumerate(everyone) if theirs != everyone[0]]
        if odd:
            raise ValueError(f"ranks {odd} were given other settings or images than rank 0 (rank 0: "
                             f"{everyone[0]}; rank {odd[0]}: {everyone[odd[0]]}). Launch every process with the "
                             "same command and data.")

    # ------------------------------------------------------------------ one optimisation step
    def _global_images(self) -> torch.Tensor:
        """The images of the global batch (``world_size × batch_size``), as [-1, 1] floats, flipped if asked."""
        n = self.world_size * self.config.batch_size
        idx = torch.randint(0, self.images.shape[0], (n,), generator=self.generator)
        x = self.images[idx]
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
        if self.config.flip:
            flip = torch.rand(x.shape[0], generator=self.generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def _mine(self) -> slice:
        return slice(self.rank * self.config.batch_size, (self.rank + 1) * self.config.batch_size)

    def _to_train_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def next_micro_batch(self) -> tuple[torch.Tensor, torch.Tensor, object]:
        """``(x0, t, z)`` for this process: its slice of a global batch's images, steps and degradation ``z``."""
        x = self._global_images()
        t = torch.randint(1, self.diffusion.T + 1, (x.shape[0],), generator=self.generator)
        z = self.diffusion.degradation.draw_z(x.cpu(), self.generator)
        if self.world_size > 1:
            mine = self._mine()
            x, t, z = x[mine], t[mine], map_z(z, lambda f: f[mine])
        return self._to_train_device(x), t.to(self.device), map_z(z, lambda f: f.to(self.device))

    def train_step(self) -> float:
        """One optimiser step (``grad_accum`` micro-batches); returns the loss averaged over them (and ranks)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world_size > 1:  # dropout: other masks on each rank, reproducible from the step alone
            self._reseed_global_rng()
        total = 0.0
        for i in range(self.config.grad_accum):
            x0, t, z = self.next_micro_batch()
            # DDP all-reduces gradients only on the last micro-batch; the others just accumulate locally.
            last = i == self.config.grad_accum - 1
            sync = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
            with sync:
                with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                    enabled=self.autocast_dtype is not None):
                    loss = self._loss_fn(x0, t, z)
                (loss / self.config.grad_accum).backward()
            total += float(loss.detach())
        if self.world_size > 1:
            mean = torch.tensor([total], dtype=torch.float64, device=self._comm_device)
            dist.all_reduce(mean)
            total = float(mean) / self.world_size
        if not math.isfinite(total):  # every rank sees the same reduced loss, so every rank stops here
            self.optimizer.zero_grad(set_to_none=True)  # the weights stay those of the last good step
            raise NonFiniteLoss(f"training stopped at step {self.step + 1}: the loss is {total} (not finite), so that "
                                f"step was not taken and nothing was saved after it. {self._last_good()} Lower the "
                                "learning rate (lr, --lr), check the images for NaN or extreme values, or train in "
                                "float32 (mixed_precision='no', --mixed-precision no); then run again to resume from "
                                "the last good state.")
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

    def _last_good(self) -> str:
        """Where the last good state is, for a message about a run that stopped."""
        if self.out_dir is not None and self.saved_step is not None:
            return f"{self.state_path} still holds the last good state (step {self.saved_step})."
        return f"The weights in memory are those after step {self.step}."

    def identity(self) -> dict:
        """What this run trains, as recorded in its state and compared by :meth:`resume`."""
        net = _unwrap(self.model)
        config = getattr(net, "config", None)
        network = (config.to_dict() if hasattr(config, "to_dict") else
                   {"type": type(net).__name__, "parameters": sum(p.numel() for p in net.parameters())})
        dataset = self.run.get("dataset", (self.training_data or {}).get("dataset"))
        identity = {**self.run, **({"dataset": dataset} if dataset is not None else {}),
                    "degradation": describe_degradation(self.diffusion.degradation), "network": network,
                    "image shape (C, H, W)": list(self.images.shape[1:])}
        return json.loads(json.dumps(identity, default=str))  # as the state file will hold it (tuples as lists)

    # ------------------------------------------------------------------ the loop
    def train(self, steps: int | None = None, *, progress: bool = True) -> list[float]:
        """Train until ``steps`` (default: ``config.steps``) optimiser steps have been taken in total.

        A NaN or infinite loss raises :class:`NonFiniteLoss` naming the step, before that step changes the
        weights; the last state on disk stays the last good one, so running again resumes from it.

        Under DDP every rank must call it; it returns on all ranks once the final checkpoint is on disk.
        """
        target = self.config.steps if steps is None else steps
        bar = tqdm(total=target, initial=self.step, disable=not progress_bars(progress) or not self.is_main, desc="training")
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
                self.save_checkpoint()  # rank 0 only; the others wait for it in the next step's all-reduce
        bar.close()
        if self.out_dir is not None:
            self._barrier()
        return self.losses

    # ------------------------------------------------------------------ checkpoints
    @property
    def state_path(self) -> Path:
        if self.out_dir is None:
            raise ValueError("this Trainer has no out_dir; pass out_dir=... to save or resume checkpoints.")
        return self.out_dir / "state.safetensors"

    def save_checkpoint(self) -> Path:
        """Write everything needed to resume (atomically) to ``out_dir/state.safetensors``.

        Under DDP only rank 0 writes (every rank holds the same state); other ranks return the path at once.
        """
        if not self.is_main:
            return self.state_path
        bad = [k for k, v in [*self.model.state_dict().items(), *self.ema.state_dict().items()]
               if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:  # never write a NaN state over a good one
            raise NonFiniteLoss(f"the weights are not finite after step {self.step} ({', '.join(bad[:3])}...), so "
                                f"they were not saved. {self._last_good()} Lower the learning rate (lr, --lr) and "
                                "run again.")
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
                "train_seconds": self.train_seconds, "identity": self.identity()}
        if self.world_size > 1:
            meta["world_size"] = self.world_size
        save_training_state(self.state_path, {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, meta)
        self.saved_step = self.step
        return self.state_path

    def resume(self) -> bool:
        """Continue from ``out_dir/state.safetensors`` if it exists; returns whether it did.

        Under DDP every rank must call it: rank 0 reads the file and broadcasts it to the others.
        """
        if self.world_size > 1:
            payload: list = [None]
            if self.is_main and self.state_path.exists():
                try:
                    payload = [load_training_state(self.state_path)]
                except (OSError, ValueError) as e:  # tell every rank, rather than leave them waiting
                    payload = [f"{type(e).__name__}: {e}"]
            dist.broadcast_object_list(payload, src=0, device=self._comm_device)
            if payload[0] is None:
                return False
            if isinstance(payload[0], str):
                raise ValueError(f"rank 0 could not read the training state: {payload[0]}")
            tensors, meta = payload[0]
        else:
            if not self.state_path.exists():
                return False
            tensors, meta = load_training_state(self.state_path)
        self._check_same_run(meta)
        pick = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
        fix = (f"Delete {self.state_path} (or pass another run folder) to start afresh; the file is damaged, or "
               "was not written by coldlib's Trainer for this network.")
        # Everything is read and checked before anything is changed, so a bad file leaves the trainer as it was.
        _check_state_dict(pick("model."), self.model.state_dict(), self.state_path, fix=fix,
                          subject=f"the network in {self.state_path} differs from this run's")
        _check_state_dict(pick("ema."), self.ema.state_dict(), self.state_path, fix=fix,
                          subject=f"the EMA network in {self.state_path} differs from this run's")
        try:
            optimizer = optimizer_from_tensors(pick("opt."), meta["optimizer"])
            generator, torch_rng = tensors["rng.generator"], tensors["rng.torch"]
            for state in (generator, torch_rng):
                torch.Generator().set_state(state)  # a wrong tensor raises here, on a scratch generator
            step, losses = int(meta["step"]), [float(v) for v in meta["losses"]]
            seconds, saved_world = float(meta.get("train_seconds", 0.0)), int(meta.get("world_size", 1))
            self.optimizer.load_state_dict(optimizer)  # checks the groups before it changes anything
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            what = f"lacks the entry {e}" if isinstance(e, KeyError) else f"cannot be read ({type(e).__name__}: {e})"
            raise ValueError(f"the training state {self.state_path} {what}. {fix}") from e
        if saved_world != self.world_size and self.is_main:
            warnings.warn(f"{self.state_path} was written by a run of {saved_world} process(es) and resumes on "
                          f"{self.world_size}: the global batch changes from {saved_world * self.config.batch_size} "
                          f"to {self.world_size * self.config.batch_size} images, so the run will not match an "
                          "uninterrupted one.", stacklevel=2)
        self.model.load_state_dict(pick("model."))
        self.ema.load_state_dict(pick("ema."))
        self.generator.set_state(generator)
        torch.set_rng_state(torch_rng)
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step, self.losses, self.train_seconds = step, losses, seconds
        self.saved_step = step
        return True

    def _check_same_run(self, meta: dict) -> None:
        """Refuse to resume a state made for another task, degradation, dataset, image size or network."""
        saved = meta.get("identity")
        if not isinstance(saved, dict):  # a state from before identities were recorded: nothing to compare
            return
        mine = self.identity()
        differ = [f"{key}: the folder's run has {saved[key]}, this one {mine[key]}"
                  for key in sorted(set(saved) & set(mine)) if saved[key] != mine[key]]
        if differ:
            folder = self.state_path.parent
            raise ValueError(f"{folder} holds a run made for something else, so it is not resumed (that would "
                             f"overwrite it): " + "; ".join(differ) + f". To start a new run, pass another run "
                             f"folder (--out / out_dir), or delete {folder} to discard the old run; to continue "
                             "the old run, use the settings it was made with.")

    def export(self, stem: str | Path, *, metrics: dict | None = None, metrics_protocol: dict | None = None,
               hardware: str | None = None) -> Path:
        """Save the EMA weights and config as a shippable checkpoint ``<stem>.safetensors`` + ``.json``.

        ``train["wall_seconds"]`` is the training time of all sessions of the run (resumes included). Under
        DDP only rank 0 writes (``train`` then also records ``world_size``); other ranks return the path at once.
        """
        if not self.is_main:
            return _split_path(stem)[0]
        train = dict(asdict(self.config), wall_seconds=round(self.train_seconds, 1))
        if self.init_from is not None:
            train["init_from"] = self.init_from
        if self.world_size > 1:
            train["world_size"] = self.world_size
        return save_model(stem, self.ema, self.diffusion.degradation, data=self.data_note, steps=self.step,
                          train=train, training_data=self.training_data, metrics=metrics,
                          metrics_protocol=metrics_protocol, hardware=hardware)



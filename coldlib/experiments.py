"""One record per task on a dataset: the paper's degradation, its numbers, its recipe, and what we ship.

An :class:`Experiment` holds everything the course knows about, say, deblurring MNIST: the degradation the
paper used (with its schedule), the image size, the paper's table rows, the paper's training command, and
the shipped checkpoints trained for it with the exact command that made each. Every other table of the
course is a view of :data:`EXPERIMENTS`: :func:`preset` (the degradation), :func:`list_presets`,
:func:`paper_table` (the paper's numbers), :func:`paper_command` and :func:`shipped_command`.

Where the numbers come from: ``notebooks/paper_notes.md`` (sections (a) degradations, (b) training, (d) the
paper's tables). Datasets the paper did not use borrow the setting of one it did (:data:`DATASET_ALIASES`):
the offline colour photos use CIFAR-10's (same 32 px size), FashionMNIST uses MNIST's.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .degradations import (
    Decolorize,
    Degradation,
    GaussianBlur,
    GaussianMask,
    GaussianNoise,
    ImageMixing,
    InpaintGeneration,
    Pixelate,
    Snow,
)
from .validate import check_int

__all__ = ["Experiment", "EXPERIMENTS", "DATASET_ALIASES", "experiment", "preset", "list_presets", "paper_table",
           "shipped_experiment", "shipped_recipe", "command", "shipped_command", "paper_command"]

Rows = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Experiment:
    """A task on a dataset (``task`` as in ``preset(task, dataset)``; "pixelate" is the paper's super-resolution).

    ``make_degradation`` builds the paper's degradation; ``paper`` holds the paper's table rows ("Degraded",
    "Direct", "Algorithm 2" → metric → value; ``None`` where the paper reports nothing for it);
    ``paper_recipe`` the paper's training setting as ``python -m coldlib.training`` arguments (``None``: the
    paper trains nothing for it, e.g. our MNIST generators); ``shipped`` maps each shipped checkpoint trained
    for this experiment to the exact arguments that made it (``--out``/``--export``/``--eval-images`` aside).
    """

    task: str
    dataset: str
    make_degradation: Callable[[], Degradation]
    image_size: int
    paper: Rows | None = None
    paper_recipe: tuple[str, ...] | None = None
    shipped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.task, self.dataset

    def degradation(self) -> Degradation:
        """A fresh instance of the paper's degradation for this task and dataset."""
        return self.make_degradation()

    def paper_command(self, gpus: int = 1) -> str:
        """The paper-scale training command; with ``gpus`` > 1, the per-process batch keeps the paper's global one."""
        if self.paper_recipe is None:
            raise ValueError(f"the paper trains no model for {self.task}/{self.dataset}; paper recipes exist for "
                             + ", ".join(f"{t}/{d}" for (t, d), e in EXPERIMENTS.items() if e.paper_recipe))
        args = list(self.paper_recipe)
        if gpus > 1:
            i = args.index("--batch-size") + 1
            batch = int(args[i])
            if batch % gpus:
                raise ValueError(f"the paper's batch {batch} does not split evenly over {gpus} GPUs; pick a divisor.")
            args[i] = str(batch // gpus)
        return command(args, f"runs/paper_{self.task}_{self.dataset}", gpus)


# ------------------------------------------------------------------------------------------- the recipes

_PAPER = ("--model", "paper", "--steps", "700000", "--batch-size", "32", "--grad-accum", "2", "--lr", "2e-5")
_CELEBA = ("--dataset", "celeba", "--image-size", "128")  # the paper's "CelebA" is CelebA-HQ at 128 px
_AFHQ = ("--dataset", "folder:/path/to/afhq", "--image-size", "128", "--preset-dataset", "afhq")


def _paper(task: str, *data: str, flip: bool = True, train: tuple[str, ...] = _PAPER) -> tuple[str, ...]:
    return ("--task", task, *data, *(("--flip",) if flip else ()), *train)


_SMALL_CPU = ("--model", "small", "--batch-size", "32", "--grad-accum", "2", "--lr", "4e-4", "--ema-every", "1",
              "--checkpoint-every", "200")
_SHORT = (*_SMALL_CPU, "--steps", "1200", "--ema-start", "400", "--ema-decay", "0.995")
_GENERATION = (*_SMALL_CPU, "--steps", "1200", "--ema-start", "800", "--ema-decay", "0.995")


def _shipped(task: str, dataset: str, *rest: str) -> tuple[str, ...]:
    return ("--task", task, "--dataset", dataset, *rest)


# ---------------------------------------------------------------------------------------- the experiments

def _blur_generation(T: int, kernel: int) -> Callable[[], Degradation]:
    return lambda: GaussianBlur.from_routine("exponential", T, 0.01, kernel, "circular", to_mean_at_T=True)


_ALL = [
    # Deblurring (Table 1)
    Experiment("blur", "mnist", lambda: GaussianBlur.from_routine("constant", 20, 7.0, 11, "circular"), 32,
               paper={"Degraded": {"FID": 438.59, "SSIM": 0.287, "RMSE": 0.287},
                      "Direct": {"FID": 5.10, "SSIM": 0.757, "RMSE": 0.142},
                      "Algorithm 2": {"FID": 4.69, "SSIM": 0.718, "RMSE": 0.154}},
               paper_recipe=_paper("blur", "--dataset", "mnist", flip=False),
               shipped={"mnist_blur": _shipped("blur", "mnist", "--model", "small", "--steps", "4000", "--batch-size",
                                               "32", "--grad-accum", "2", "--lr", "4e-4", "--ema-start", "1000",
                                               "--ema-every", "1", "--ema-decay", "0.999", "--checkpoint-every",
                                               "250")}),
    Experiment("blur", "cifar10", lambda: GaussianBlur.from_routine("special_6", 50, 0.0, 11, "reflect"), 32,
               paper={"Degraded": {"FID": 298.60, "SSIM": 0.315, "RMSE": 0.136},
                      "Direct": {"FID": 83.69, "SSIM": 0.775, "RMSE": 0.071},
                      "Algorithm 2": {"FID": 80.08, "SSIM": 0.773, "RMSE": 0.075}},
               paper_recipe=_paper("blur", "--dataset", "cifar10")),
    Experiment("blur", "celeba", lambda: GaussianBlur.from_routine("exponential", 200, 0.01, 15, "reflect"), 128,
               paper={"Degraded": {"FID": 382.81, "SSIM": 0.254, "RMSE": 0.193},
                      "Direct": {"FID": 36.37, "SSIM": 0.607, "RMSE": 0.083},
                      "Algorithm 2": {"FID": 26.14, "SSIM": 0.568, "RMSE": 0.093}},
               paper_recipe=_paper("blur", *_CELEBA)),
    # Inpainting (Table 2: only the FIDs are known)
    Experiment("inpaint", "mnist", lambda: GaussianMask(50, kernel_std=0.1, initial_mask=11, random_position=True), 32,
               paper={"Direct": {"FID": 2.24}, "Algorithm 2": {"FID": 1.61}},
               paper_recipe=_paper("inpaint", "--dataset", "mnist", flip=False),
               shipped={"mnist_inpaint": _shipped("inpaint", "mnist", *_SHORT)}),
    Experiment("inpaint", "cifar10", lambda: GaussianMask(50, kernel_std=0.1, initial_mask=11, random_position=True),
               32, paper={"Direct": {"FID": 9.97}, "Algorithm 2": {"FID": 8.92}},
               paper_recipe=_paper("inpaint", "--dataset", "cifar10")),
    Experiment("inpaint", "celeba", lambda: GaussianMask(100, kernel_std=0.2, initial_mask=1, random_position=False),
               128, paper={"Direct": {"FID": 7.74}, "Algorithm 2": {"FID": 5.73}},
               paper_recipe=_paper("inpaint", *_CELEBA, train=("--model", "paper", "--steps", "350000",
                                                                "--batch-size", "100", "--grad-accum", "2", "--lr",
                                                                "2e-5"))),
    # Super-resolution (Table 3)
    Experiment("pixelate", "mnist", lambda: Pixelate(3), 32,
               paper={"Degraded": {"FID": 368.56, "SSIM": 0.178, "RMSE": 0.231},
                      "Direct": {"FID": 4.05, "SSIM": 0.823, "RMSE": 0.114},
                      "Algorithm 2": {"FID": 4.33, "SSIM": 0.820, "RMSE": 0.115}},
               paper_recipe=_paper("pixelate", "--dataset", "mnist", flip=False),
               shipped={"mnist_pixelate": _shipped("pixelate", "mnist", *_SHORT)}),
    Experiment("pixelate", "cifar10", lambda: Pixelate(3), 32,
               paper={"Degraded": {"FID": 358.99, "SSIM": 0.279, "RMSE": 0.146},
                      "Direct": {"FID": 169.94, "SSIM": 0.420, "RMSE": 0.152},
                      "Algorithm 2": {"FID": 152.76, "SSIM": 0.411, "RMSE": 0.155}},
               paper_recipe=_paper("pixelate", "--dataset", "cifar10")),
    Experiment("pixelate", "celeba", lambda: Pixelate(4), 128,
               paper={"Degraded": {"FID": 349.85, "SSIM": 0.335, "RMSE": 0.225},
                      "Direct": {"FID": 112.84, "SSIM": 0.400, "RMSE": 0.196},
                      "Algorithm 2": {"FID": 96.92, "SSIM": 0.381, "RMSE": 0.201}},
               paper_recipe=_paper("pixelate", *_CELEBA)),
    # Desnowification and colorization (Table 4: no numbers found)
    Experiment("snow", "cifar10", lambda: Snow(200, threshold=(1.15, 0.70), motion_sigma=(0.05, 16.0)), 32,
               paper_recipe=_paper("snow", "--dataset", "cifar10"),
               shipped={"photos_snow": _shipped("snow", "photos", "--flip", *_SHORT)}),
    Experiment("snow", "celeba", lambda: Snow(200, threshold=(1.15, 0.55), motion_sigma=(0.05, 20.0)), 128,
               paper_recipe=_paper("snow", *_CELEBA, train=("--model", "paper", "--steps", "700000", "--batch-size",
                                                             "16", "--grad-accum", "2", "--lr", "2e-5"))),
    Experiment("decolor", "cifar10", lambda: Decolorize(20), 32, paper_recipe=_paper("decolor", "--dataset", "cifar10"),
               shipped={"photos_decolor": _shipped("decolor", "photos", "--flip", *_SHORT)}),
    Experiment("decolor", "celeba", lambda: Decolorize(20), 64,
               paper_recipe=_paper("decolor", "--dataset", "celeba", "--image-size", "64")),
    # Generation at 128 px (the paper's) ...
    Experiment("blur_generation", "celeba", _blur_generation(300, 27), 128,
               paper_recipe=_paper("blur_generation", *_CELEBA)),
    Experiment("blur_generation", "afhq", _blur_generation(300, 27), 128,
               paper_recipe=_paper("blur_generation", *_AFHQ)),
    Experiment("noise", "celeba", lambda: GaussianNoise(200), 128, paper_recipe=_paper("noise", *_CELEBA)),
    Experiment("noise", "afhq", lambda: GaussianNoise(200), 128, paper_recipe=_paper("noise", *_AFHQ)),
    Experiment("inpaint_generation", "celeba", lambda: InpaintGeneration(750, kernel_std=0.05, initial_mask=1), 128,
               paper_recipe=_paper("inpaint_generation", *_CELEBA)),
    Experiment("mixing", "celeba", lambda: ImageMixing(200), 128,
               paper_recipe=_paper("mixing", *_CELEBA, "--mix-with", "folder:/path/to/afhq")),
    # ... and at 32 px on MNIST (our choice; the paper generates only at 128 px): T = 100 for every kind, so cold
    # (blur, reveal, mixing) and hot (noise) sample with the same number of network passes.
    Experiment("blur_generation", "mnist", _blur_generation(100, 11), 32,
               shipped={"mnist_blur_generation": _shipped("blur_generation", "mnist", *_GENERATION)}),
    Experiment("noise", "mnist", lambda: GaussianNoise(100), 32,
               shipped={"mnist_noise": _shipped("noise", "mnist", *_GENERATION)}),
    Experiment("inpaint_generation", "mnist", lambda: InpaintGeneration(100, kernel_std=0.1, initial_mask=1), 32,
               shipped={"mnist_inpaint_generation": _shipped("inpaint_generation", "mnist", *_SHORT)}),
    Experiment("mixing", "mnist", lambda: ImageMixing(100), 32,
               shipped={"mnist_mixing": _shipped("mixing", "mnist", "--classes", "8", "--mix-with", "mnist",
                                                 "--mix-classes", "0", *_SHORT)}),
]

#: (task, dataset) → its :class:`Experiment`.
EXPERIMENTS: dict[tuple[str, str], Experiment] = {e.key: e for e in _ALL}

#: Datasets the paper did not use → the paper dataset whose settings they borrow (same image size).
DATASET_ALIASES: dict[str, str] = {"photos": "cifar10", "fashion_mnist": "mnist"}


def experiment(task: str, dataset: str) -> Experiment:
    """The record for ``task`` on ``dataset`` (``"photos"`` and ``"fashion_mnist"`` borrow CIFAR-10's and MNIST's)."""
    key = (task, DATASET_ALIASES.get(dataset, dataset))
    if key not in EXPERIMENTS:
        raise ValueError(f"no preset for task={task!r}, dataset={dataset!r}; known: "
                         + ", ".join(f"{t}/{d}" for t, d in list_presets())
                         + f" (and the aliases {', '.join(f'{a}→{b}' for a, b in DATASET_ALIASES.items())}).")
    return EXPERIMENTS[key]


def preset(task: str, dataset: str) -> Degradation:
    """The paper's degradation for ``task`` on ``dataset``, e.g. ``preset("blur", "mnist")``."""
    return experiment(task, dataset).degradation()


def list_presets() -> list[tuple[str, str]]:
    """Every (task, dataset) pair :func:`preset` knows (aliases aside)."""
    return sorted(EXPERIMENTS)


def paper_table(task: str, dataset: str) -> Rows | None:
    """The paper's table rows for ``task`` on ``dataset`` ("Sampled" is called "Algorithm 2"), or ``None``."""
    return experiment(task, dataset).paper


def shipped_experiment(name: str) -> Experiment:
    """The experiment the shipped checkpoint ``name`` was trained for."""
    for e in _ALL:
        if name in e.shipped:
            return e
    raise ValueError(f"no recipe for {name!r}; shipped recipes: "
                     + ", ".join(n for e in _ALL for n in e.shipped) + ".")


def shipped_recipe(name: str) -> tuple[str, ...]:
    """The ``python -m coldlib.training`` arguments that made the shipped checkpoint ``name``."""
    return shipped_experiment(name).shipped[name]


def command(args: tuple[str, ...] | list[str], out: str, gpus: int = 1) -> str:
    """The shell command for ``args`` writing to run folder ``out`` (``torchrun`` when ``gpus`` > 1).

    Re-running the same command resumes the run.
    """
    check_int(gpus, "gpus")
    launcher = "python -m coldlib.training" if gpus == 1 else f"torchrun --nproc_per_node={gpus} -m coldlib.training"
    name = out.rstrip("/").split("/")[-1]
    return f"{launcher} {shlex.join(args)} --out {shlex.quote(out)} --export {shlex.quote(out + '/export/' + name)}"


def shipped_command(name: str) -> str:
    """How the shipped checkpoint ``name`` was trained."""
    return command(shipped_recipe(name), f"runs/{name}")


def paper_command(task: str, dataset: str, gpus: int = 1) -> str:
    """The paper-scale training command for ``task`` on ``dataset``."""
    key = (task, dataset)
    if key not in EXPERIMENTS:
        raise ValueError(f"no paper recipe for {key}; known: "
                         + ", ".join(f"{t}/{d}" for (t, d), e in EXPERIMENTS.items() if e.paper_recipe))
    return EXPERIMENTS[key].paper_command(gpus)

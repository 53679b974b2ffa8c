"""Training commands in one place: how each shipped checkpoint was made, and the paper-scale settings.

``SHIPPED_RECIPES`` are the exact ``python -m coldlib.training`` arguments that produced the checkpoints in
``data/checkpoints`` (``tests/test_recipes.py`` checks them against each checkpoint's recorded settings).
``PAPER_RECIPES`` are the paper's settings (``shared/reference/paper.md`` section (b)): 700,000 steps of batch
32 × 2 at lr 2e-5 (CelebA inpainting: 350,000 steps of batch 100 × 2; CelebA snow: batch 16 × 2), at the
paper's image sizes, with the "paper" UNet preset (34.4M parameters; the authors' networks have 35.8M and
56.6M). They are GPU runs (hours to days per model at 128 px, depending on the GPU), which ``torchrun`` spreads over
several.
"""

from __future__ import annotations

import shlex

__all__ = ["SHIPPED_RECIPES", "PAPER_RECIPES", "command", "shipped_command", "paper_command"]

_SMALL_CPU = ["--model", "small", "--batch-size", "32", "--grad-accum", "2", "--lr", "4e-4", "--ema-every", "1",
              "--checkpoint-every", "200"]
_SHORT = [*_SMALL_CPU, "--steps", "1200", "--ema-start", "400", "--ema-decay", "0.995"]
_GENERATION = [*_SMALL_CPU, "--steps", "2400", "--ema-start", "800", "--ema-decay", "0.995"]

#: name → the arguments of ``python -m coldlib.training`` that made the shipped checkpoint (``--out``/``--export``
#: and ``--eval-images`` aside).
SHIPPED_RECIPES: dict[str, list[str]] = {
    "mnist_blur": ["--task", "blur", "--dataset", "mnist", "--model", "small", "--steps", "4000", "--batch-size", "32",
                   "--grad-accum", "2", "--lr", "4e-4", "--ema-start", "1000", "--ema-every", "1", "--ema-decay",
                   "0.999", "--checkpoint-every", "250"],
    "mnist_pixelate": ["--task", "pixelate", "--dataset", "mnist", *_SHORT],
    "mnist_inpaint": ["--task", "inpaint", "--dataset", "mnist", *_SHORT],
    "photos_snow": ["--task", "snow", "--dataset", "photos", "--flip", *_SHORT],
    "photos_decolor": ["--task", "decolor", "--dataset", "photos", "--flip", *_SHORT],
    "mnist_blur_generation": ["--task", "blur_generation", "--dataset", "mnist", *_GENERATION],
    "mnist_noise": ["--task", "noise", "--dataset", "mnist", *_GENERATION],
    "mnist_inpaint_generation": ["--task", "inpaint_generation", "--dataset", "mnist", *_SHORT],
    "mnist_mixing": ["--task", "mixing", "--dataset", "mnist", "--classes", "8", "--mix-with", "mnist",
                     "--mix-classes", "0", *_SHORT],
}

_PAPER = ["--model", "paper", "--steps", "700000", "--batch-size", "32", "--grad-accum", "2", "--lr", "2e-5"]
_CELEBA = ["--dataset", "celeba", "--image-size", "128"]  # the paper's "CelebA" is CelebA-HQ at 128 px
_AFHQ = ["--dataset", "folder:/path/to/afhq", "--image-size", "128", "--preset-dataset", "afhq"]

#: (task, dataset) → the paper's setting as ``python -m coldlib.training`` arguments.
PAPER_RECIPES: dict[tuple[str, str], list[str]] = {
    ("blur", "mnist"): ["--task", "blur", "--dataset", "mnist", *_PAPER],
    ("blur", "cifar10"): ["--task", "blur", "--dataset", "cifar10", "--flip", *_PAPER],
    ("blur", "celeba"): ["--task", "blur", *_CELEBA, "--flip", *_PAPER],
    ("inpaint", "mnist"): ["--task", "inpaint", "--dataset", "mnist", *_PAPER],
    ("inpaint", "cifar10"): ["--task", "inpaint", "--dataset", "cifar10", "--flip", *_PAPER],
    ("inpaint", "celeba"): ["--task", "inpaint", *_CELEBA, "--flip", "--model", "paper", "--steps", "350000",
                            "--batch-size", "100", "--grad-accum", "2", "--lr", "2e-5"],
    ("pixelate", "mnist"): ["--task", "pixelate", "--dataset", "mnist", *_PAPER],
    ("pixelate", "cifar10"): ["--task", "pixelate", "--dataset", "cifar10", "--flip", *_PAPER],
    ("pixelate", "celeba"): ["--task", "pixelate", *_CELEBA, "--flip", *_PAPER],
    ("snow", "cifar10"): ["--task", "snow", "--dataset", "cifar10", "--flip", *_PAPER],
    ("snow", "celeba"): ["--task", "snow", *_CELEBA, "--flip", "--model", "paper", "--steps", "700000",
                         "--batch-size", "16", "--grad-accum", "2", "--lr", "2e-5"],
    ("decolor", "cifar10"): ["--task", "decolor", "--dataset", "cifar10", "--flip", *_PAPER],
    ("decolor", "celeba"): ["--task", "decolor", "--dataset", "celeba", "--image-size", "64", "--flip", *_PAPER],
    ("blur_generation", "celeba"): ["--task", "blur_generation", *_CELEBA, "--flip", *_PAPER],
    ("blur_generation", "afhq"): ["--task", "blur_generation", *_AFHQ, "--flip", *_PAPER],
    ("noise", "celeba"): ["--task", "noise", *_CELEBA, "--flip", *_PAPER],
    ("noise", "afhq"): ["--task", "noise", *_AFHQ, "--flip", *_PAPER],
    ("inpaint_generation", "celeba"): ["--task", "inpaint_generation", *_CELEBA, "--flip", *_PAPER],
    ("mixing", "celeba"): ["--task", "mixing", *_CELEBA, "--mix-with", "folder:/path/to/afhq", "--flip", *_PAPER],
}


def command(args: list[str], out: str, gpus: int = 1) -> str:
    """The shell command for ``args`` writing to run folder ``out`` (``torchrun`` when ``gpus`` > 1).

    Re-running the same command resumes the run.
    """
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a positive int; got {gpus!r}.")
    launcher = "python -m coldlib.training" if gpus == 1 else f"torchrun --nproc_per_node={gpus} -m coldlib.training"
    name = out.rstrip("/").split("/")[-1]
    return f"{launcher} {shlex.join(args)} --out {shlex.quote(out)} --export {shlex.quote(out + '/export/' + name)}"


def shipped_command(name: str) -> str:
    """How the shipped checkpoint ``name`` was trained."""
    if name not in SHIPPED_RECIPES:
        raise ValueError(f"no recipe for {name!r}; shipped recipes: {', '.join(SHIPPED_RECIPES)}.")
    return command(SHIPPED_RECIPES[name], f"runs/{name}")


def paper_command(task: str, dataset: str, gpus: int = 1) -> str:
    """The paper-scale training command for ``task`` on ``dataset``.

    With ``gpus`` > 1 the per-process batch is divided so the global batch stays the paper's.
    """
    key = (task, dataset)
    if key not in PAPER_RECIPES:
        raise ValueError(f"no paper recipe for {key}; known: " + ", ".join(f"{t}/{d}" for t, d in PAPER_RECIPES))
    args = list(PAPER_RECIPES[key])
    if gpus > 1:
        i = args.index("--batch-size") + 1
        batch = int(args[i])
        if batch % gpus:
            raise ValueError(f"the paper's batch {batch} does not split evenly over {gpus} GPUs; pick a divisor.")
        args[i] = str(batch // gpus)
    return command(args, f"runs/paper_{task}_{dataset}", gpus)

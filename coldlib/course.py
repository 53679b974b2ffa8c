"""The course itself: where the repository lives, Colab links, and the ordered map of lessons.

Lesson: 00_setup_and_tour (the lesson map and the "Open in Colab" badges at the top of every notebook).

This module is the ONE place that holds the repository address. If the course is hosted elsewhere (a
fork, another branch or a release tag), change :data:`REPO` and :data:`BRANCH` here, then paste
:func:`colab_badge_markdown` into each notebook's header and :func:`colab_setup_cell` as its first code
cell; ``tests/test_course.py`` checks that every notebook agrees with this module. (The notebooks
cannot import it for those two cells: in Colab they run before coldlib is installed.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["REPO", "BRANCH", "Lesson", "LESSONS", "github_url", "clone_url", "colab_url",
           "colab_badge_markdown", "colab_setup_cell", "lesson", "lesson_table_markdown"]

REPO = "coldlib-course/cold-diffusion-course"
"""``owner/name`` of the course repository on GitHub."""

BRANCH = "main"
"""The branch (or tag) that the Colab links and the Colab setup cell use."""

_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _repo_path(notebook_path: str | PurePosixPath) -> str:
    """Normalise a notebook path relative to the repository root, e.g. ``notebooks/01_degradations.ipynb``."""
    path = PurePosixPath(str(notebook_path).replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"notebook_path must be relative to the repository root (like "
                         f"'notebooks/01_degradations.ipynb'); got {str(notebook_path)!r}.")
    if path.suffix != ".ipynb":
        raise ValueError(f"notebook_path must name an .ipynb file (Colab opens notebooks, not the paired .py); "
                         f"got {str(notebook_path)!r}.")
    return path.as_posix().removeprefix("./")


def github_url(path: str = "") -> str:
    """The GitHub page of ``path`` (a file or folder relative to the repository root) on :data:`BRANCH`."""
    base = f"https://github.com/{REPO}"
    return f"{base}/blob/{BRANCH}/{path}" if path else base


def clone_url() -> str:
    """The address ``git clone`` uses in the Colab setup cell of every notebook."""
    return f"https://github.com/{REPO}.git"


def colab_setup_cell() -> str:
    """The exact source of every lesson's first code cell (a test checks each notebook against it).

    Lesson: 00_setup_and_tour. In Colab it clones the course, installs coldlib from the clone
    (non-editable, so it imports at once; no exact pins, so pip keeps what Colab ships and adds only what is
    missing), and points coldlib at the clone's data and shipped checkpoints. Elsewhere it does nothing.
    """
    return f"""# Setup. In Colab: fetch the course and install coldlib. pip keeps every package Colab already ships
# (coldlib asks only for lower bounds, which Colab meets) and adds the few it lacks. Elsewhere: nothing to do,
# coldlib is installed by `make course` or `pip install -e .` (see the README).
import importlib
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    REPO_DIR = "/content/cold-diffusion-course"
    if not os.path.isdir(REPO_DIR):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{BRANCH}",
                        "{clone_url()}", REPO_DIR], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", REPO_DIR], check=True)
    importlib.invalidate_caches()
    os.makedirs(os.path.join(REPO_DIR, "data"), exist_ok=True)
    os.environ.setdefault("COLDLIB_DATA_DIR", os.path.join(REPO_DIR, "data"))
    os.environ.setdefault("COLDLIB_CHECKPOINT_DIR", os.path.join(REPO_DIR, "data", "checkpoints"))"""


def colab_url(notebook_path: str | PurePosixPath) -> str:
    """The URL that opens ``notebook_path`` (relative to the repository root) in Google Colab.

    Lesson: 00_setup_and_tour. Example: ``colab_url("notebooks/01_degradations.ipynb")``.
    """
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/{_repo_path(notebook_path)}"


def colab_badge_markdown(notebook_path: str | PurePosixPath) -> str:
    """The "Open in Colab" badge (Markdown) for ``notebook_path``; the header cell of each lesson holds it.

    Lesson: 00_setup_and_tour.
    """
    return f"[![Open In Colab]({_BADGE_IMAGE})]({colab_url(notebook_path)})"


@dataclass(frozen=True)
class Lesson:
    """One lesson of the course. ``stem`` is the notebook file name without suffix, e.g. ``01_degradations``.

    ``planned`` lessons are announced in the map but have no notebook yet.
    """

    number: int
    stem: str
    title: str
    summary: str
    planned: bool = False

    @property
    def path(self) -> str:
        """The notebook's path relative to the repository root."""
        return f"notebooks/{self.stem}.ipynb"


LESSONS: tuple[Lesson, ...] = (
    Lesson(0, "00_setup_and_tour", "Setup and a tour of cold diffusion",
           "What cold diffusion claims, the training objective and both samplers in words, and a check of your "
           "environment and data."),
    Lesson(1, "01_degradations", "Degradations: blur, pixelation, masks, snow, decolorization, mixing, noise",
           "Each degradation D(x, t) of the paper derived in a few lines, explored with a slider, and computed "
           "in closed form."),
    Lesson(2, "02_training_a_restorer", "Training a restoration network",
           "The L1 objective R(D(x, t), t) ≈ x in four lines, the UNet and its timestep embedding, training "
           "and exact resuming, the train-or-load pattern, and MNIST restorations at every t."),
    Lesson(3, "03_sampling_naive_vs_improved", "Sampling: Algorithm 1 versus Algorithm 2",
           "Both samplers in ten lines, why the update x - D(x̂, t) + D(x̂, t-1) forgives restoration errors, "
           "and the paper's deblurring table on held-out MNIST."),
    Lesson(4, "04_inpainting_and_super_resolution", "Inpainting and super-resolution",
           "Gaussian-mask holes (random or centred) and ×2-per-step pixelation, a hole position z held fixed by "
           "the samplers, Direct / Algorithm 1 / Algorithm 2 with the paper's Tables 2 and 3, and restoring "
           "images degraded elsewhere from an estimated step t."),
    Lesson(5, "05_snow_and_decolorization", "Desnowification and colorization",
           "Snow from a random field and fading to grey on CIFAR-10 (offline: colour photo crops), what "
           "Algorithm 2 keeps exactly for each, the evaluation protocol with Inception FID when available, and "
           "restoring a PIL-grey photo."),
    Lesson(6, "06_generation_from_blur", "Generation from blur and symmetry breaking",
           "Blur to the mean from a Gaussian-mixture start over mean colours, Algorithm 1 vs 2 from the same "
           "starts, perfect vs broken symmetry (0.002 noise), scored with FD_MNIST-CNN and spread against a "
           "real-vs-real floor."),
    Lesson(7, "07_hot_cold_reveal_and_animorphosis", "Hot versus cold, revealing, animorphosis and the choice of T",
           "Hot diffusion with fixed vs re-estimated noise (DDIM) and why the samplers order as they do, hot vs "
           "cold beside the paper's FIDs, revealing digits from a colour, animorphosis (eights from zeros "
           "offline; cats into dogs (CIFAR-10, trained in the lesson) with a network), and an optional "
           "measurement of the effect of T."),
    Lesson(8, "08_your_own_degradation", "Your own degradation",
           "Rotation (and zoom) written in ten lines against the Degradation interface, the property checker "
           "catching four realistic bugs, then training, Direct / Algorithm 1 / Algorithm 2, evaluation, and "
           "save and reload with load_model(degradation=...)."),
    Lesson(9, "09_reproducing_the_paper", "Reproducing the paper",
           "Every shipped checkpoint evaluated with one protocol beside the paper's tables, the exact command "
           "behind each, and the paper-scale commands for one GPU or many."),
)
"""The lessons in order. Lesson: 00_setup_and_tour prints this map."""


def lesson(stem: str) -> Lesson:
    """The :class:`Lesson` whose notebook is ``stem`` (e.g. ``"01_degradations"``); ``KeyError`` if unknown."""
    for item in LESSONS:
        if item.stem == stem:
            return item
    raise KeyError(f"no lesson {stem!r}; known: {', '.join(item.stem for item in LESSONS)}")


def lesson_table_markdown() -> str:
    """The lesson map as a Markdown table (number, title with Colab link, summary, status).

    Lesson: 00_setup_and_tour.
    """
    rows = ["| # | Lesson | What you learn | Status |", "|---|---|---|---|"]
    for item in LESSONS:
        if item.planned:
            name, status = f"{item.title} (`{item.stem}`)", "planned"
        else:
            name, status = f"[{item.title}]({colab_url(item.path)}) (`{item.stem}`)", "available"
        rows.append(f"| {item.number:02d} | {name} | {item.summary} | {status} |")
    return "\n".join(rows)

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Setup and a tour of cold diffusion
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/00_setup_and_tour.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/00_setup_and_tour.ipynb)
#
# This course follows *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise*
# (Bansal et al., arXiv [2208.09392](https://arxiv.org/abs/2208.09392)). Diffusion models are usually
# explained through noise. The paper trains and samples the same way with **deterministic** image
# transforms (blur, masking, pixelation, snow) and still gets restoration and even generation. This
# notebook checks your setup and gives the big picture; every later lesson fills in one part.
#
# **Learning objectives**
# - State the paper's thesis: the diffusion recipe works with *any* degradation $D(x, t)$, noise or not.
# - See the same image under hot (noise) and cold (blur, mask, pixelation, snow) degradations.
# - Write down the training objective and the two samplers (Algorithms 1 and 2) in formulas.
# - Check that your environment and the course data work, and know where the data came from.
#
# **Prerequisites:** Python and basic PyTorch tensors. Knowing DDPM helps but is not needed.
#
# **Estimated time:** about 20 minutes of reading.
#
# **Run time:** 8 s for the whole lesson in full mode on a 2-core CPU (Intel(R) Xeon(R) Processor), no GPU, measured by `make render` on 2026-12-07.

# %%
# Setup. In Colab: fetch the course and install coldlib. pip keeps every package Colab already ships
# (coldlib asks only for lower bounds, which Colab meets) and adds the few it lacks. Elsewhere: nothing to do,
# coldlib is installed by `make course` or `pip install -e .` (see the README).
import importlib
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    REPO_DIR = "/content/cold-diffusion-course"
    if not os.path.isdir(REPO_DIR):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "main",
                        "https://github.com/coldlib-course/cold-diffusion-course.git", REPO_DIR], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", REPO_DIR], check=True)
    importlib.invalidate_caches()
    os.makedirs(os.path.join(REPO_DIR, "data"), exist_ok=True)
    os.environ.setdefault("COLDLIB_DATA_DIR", os.path.join(REPO_DIR, "data"))
    os.environ.setdefault("COLDLIB_CHECKPOINT_DIR", os.path.join(REPO_DIR, "data", "checkpoints"))

# %%
import torch
from IPython.display import Markdown, display

import coldlib
from coldlib.course import LESSONS, lesson_table_markdown
from coldlib.data import load_images
from coldlib.degradations import GaussianNoise
from coldlib.experiments import list_presets, preset
from coldlib.env import describe_environment, fast_mode, pick_device, seed_everything
from coldlib.plotting import compare_degradations, show_images, showcase

FAST = fast_mode()  # COLDLIB_FAST=1 (set by CI) shrinks anything slow; this lesson is fast either way
generator = seed_everything(0)
device = pick_device()
print(f"coldlib {coldlib.__version__} · torch {torch.__version__} · device {device} · FAST={FAST}")

# %% [markdown]
# ## 1. Environment check
#
# `describe_environment()` collects what matters when something goes wrong: versions, the device, the
# switches (`COLDLIB_FAST`, `COLDLIB_OFFLINE`) and the data folder. Paste it into any bug report.

# %%
info = describe_environment()
width = max(map(len, info))
for key, value in info.items():
    print(f"{key:<{width}}  {value}")
assert info["fast_mode"] == str(FAST) and info["coldlib"] == coldlib.__version__

# %% [markdown]
# ## 2. Data check
#
# All data goes through `coldlib.data.load_images`, which returns an `ImageSet`: uint8 images
# `(N, C, H, W)`, labels, and a one-line `source` saying exactly what the data is. `load_images`
# prints that line the first time it loads a dataset in a session (it stays in `ImageSet.source`).
# **Read it.**
# MNIST follows the paper's protocol: models train on the official 60,000-image training split and are
# evaluated on the 10,000 test images, whether torchvision downloads the files or finds them in the data
# folder (`COLDLIB_DATA_DIR`). Only a folder that holds the test split alone, with no network to fetch
# the rest, makes `load_images` fall back to training on test images 0–7,999 and holding out 8,000–9,999;
# its printed line then says `TEST-ONLY FALLBACK` in capitals. Every `ImageSet` also records which images
# it holds (`origin`), so `coldlib.data.check_held_out` can prove that a model is never scored on an image
# it was trained on. The cell below prints which case this run is in.
#
# The colour images are the offline photos: 32×32 crops of scikit-image's sample photographs, split by
# photo (the crops of two photos are held out). `showcase` picks textured, colourful crops, one per
# photo, because flat crops make every degradation look the same.

# %%
mnist = load_images("mnist", split="train")  # prints mnist.source the first time
photos = load_images("photos", split="train")
assert "MNIST" in mnist.source and "photos" in photos.source
print("MNIST protocol of this run:", "the test-only fallback (see the line above)" if "FALLBACK" in mnist.source
      else f"the paper's: the official training split ({len(mnist):,} images) for training")

digits = mnist.float(slice(0, 8))  # float32 in [-1, 1], shape (8, 1, 32, 32)
colour = photos.float(showcase(photos.float(), photos.labels, k=8))
assert digits.shape == (8, 1, 32, 32) and colour.shape == (8, 3, 32, 32)
assert digits.min() >= -1 and digits.max() <= 1
assert mnist.labels is not None and len(mnist.labels) == len(mnist)
print(f"MNIST: {len(mnist):,} images; labels of the first 8: {mnist.labels[:8].tolist()}")
print(f"photos: {len(photos):,} crops")

# %%
show_images(torch.cat([digits.expand(-1, 3, -1, -1), colour]), nrow=8, title="MNIST digits and photo crops")

# %% [markdown]
# ## 3. What cold diffusion is, in one figure
#
# A diffusion model has two parts.
#
# - A **degradation** $D(x_0, t)$, $t = 0, \dots, T$, with $D(x_0, 0) = x_0$. It gets worse as $t$
#   grows. In standard ("hot") diffusion it is Gaussian noise,
#   $D(x_0, t) = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,z$ with $z \sim \mathcal N(0, I)$.
# - A **restoration network** $R_\theta(x_t, t) \approx x_0$ that undoes it.
#
# The usual explanations of why diffusion generates images (Langevin dynamics, score matching,
# variational inference) all need that noise. Bansal et al. ask whether it is essential, and answer no:
# swap the noise for blur, a growing hole, pixelation or snow, keep the training recipe and the
# sampler's structure, and the model still restores and can even generate. These degradations
# involve no noise, or only a random choice made once, such as where the hole or the snowflakes go.
# That is what "cold" means.
#
# Below, one MNIST digit and one photo crop under the degradations this course uses, at the same
# fractions of each one's own $T$, with the paper's settings for each dataset (`preset(kind, dataset)`).
# The photo uses the CIFAR-10 settings, which are meant for the same 32×32 size. The CIFAR-10 blur is
# deliberately mild: that is the paper's setting.

# %%
digit, photo = digits[:1], colour[:1]
hot_and_cold_mnist = {
    "noise (hot)": GaussianNoise(200),
    "blur": preset("blur", "mnist"),
    "mask": preset("inpaint", "mnist"),
    "pixelate": preset("pixelate", "mnist"),
    "snow": preset("snow", "cifar10"),  # the paper has no MNIST snow; CIFAR-10's is for the same 32×32 size
}
compare_degradations(hot_and_cold_mnist, digit, generator=generator, title="MNIST digit: hot vs cold")

# %%
hot_and_cold_photos = {
    "noise (hot)": GaussianNoise(200),
    "blur": preset("blur", "cifar10"),
    "mask": preset("inpaint", "cifar10"),
    "pixelate": preset("pixelate", "cifar10"),
    "snow": preset("snow", "cifar10"),
    "decolor": preset("decolor", "cifar10"),
}
compare_degradations(hot_and_cold_photos, photo, generator=generator, title="photo crop: hot vs cold")

# %%
# Every degradation is a plain object: T, a schedule, and D(x0, t) with one step per image.
for name, D in hot_and_cold_photos.items():
    x_t = D(colour, torch.full((len(colour),), D.T))  # the most degraded state, whole batch at once
    assert torch.equal(D(colour, 0), colour), name  # t = 0 is the identity
    print(f"{name:12s} {D!r}\n{'':12s} schedule entries: {list(D.schedule)}; |D(x, T) - x| = "
          f"{(x_t - colour).abs().mean():.3f}")

# %% [markdown]
# ## 4. Training and sampling, in formulas
#
# **Training** (Lesson 02). Draw a clean image $x_0$ and a step $t \in \{1, \dots, T\}$. Degrade it,
# ask the network for the clean image back, and penalise the error. The paper uses the L1 norm:
#
# $$\min_\theta \; \mathbb E_{x_0,\,t}\;\big\| R_\theta\big(D(x_0, t), t\big) - x_0 \big\|_1 .$$
#
# The network predicts the clean image $x_0$ directly, not the noise. Hot diffusion usually predicts the
# noise, but with no noise there is nothing else to predict.
#
# **Sampling** (Lesson 03) starts from a degraded image $x_T$. For restoration that is a degraded test
# image; for generation it is something simple to draw, such as a flat colour for blur. It then walks
# $t = T, T-1, \dots, 1$ with $\hat x_0 = R_\theta(x_t, t)$:
#
# - **Algorithm 1 (naive):** $x_{t-1} = D(\hat x_0, t-1)$. Restore, then degrade a little less.
# - **Algorithm 2 (improved):** $x_{t-1} = x_t - D(\hat x_0, t) + D(\hat x_0, t-1)$. Keep the current
#   image and move it by the change that one step of $D$ makes to the estimate.
#
# With a perfect restorer both algorithms return $x_0$. The difference is what happens to the
# restorer's mistakes. If the estimate is the same $\hat x_0 = x_0 + \delta$ at every step,
# Algorithm 2's sum telescopes to $x_0 + \delta - D(\delta, T)$ for a linear $D$: the part of the
# error that *survives* the full degradation cancels. Algorithm 1 keeps all of $\delta$. The paper
# finds that for cold degradations Algorithm 2 works far better than Algorithm 1, and our shipped models
# mostly agree, with exceptions the model card measures (for super-resolution, with only three steps,
# Algorithm 1 ties or wins; for hot, noise-based generation, Algorithm 1 with fixed noise scored best). Here is
# that effect with a fake "restorer" that is always 0.3 too bright. Circular blur keeps each image's
# mean, so a constant error survives the blur and cancels.

# %%
D = preset("blur", "mnist")
x0 = digits[:4]
delta = torch.full_like(x0, 0.3)


def fake_restorer(x_t: torch.Tensor, t: int) -> torch.Tensor:
    """Stands in for a trained network: the right answer plus a constant mistake."""
    return x0 + delta


x_naive = x_improved = D(x0, D.T)
for t in range(D.T, 0, -1):
    x_naive = D(fake_restorer(x_naive, t), t - 1)  # Algorithm 1
    x_hat = fake_restorer(x_improved, t)
    x_improved = x_improved - D(x_hat, t) + D(x_hat, t - 1)  # Algorithm 2
err_naive, err_improved = (x_naive - x0).abs().mean().item(), (x_improved - x0).abs().mean().item()
print(f"mean |error|: Algorithm 1 = {err_naive:.4f}, Algorithm 2 = {err_improved:.6f}")
assert abs(err_naive - 0.3) < 1e-4 and err_improved < 1e-4

# %% [markdown]
# Real networks make messier mistakes than a constant, and Lesson 03 compares both algorithms with a
# trained one. For an error that the degradation wipes out, try Exercise 2.
#
# ## 5. The lesson map
#
# `coldlib.course.LESSONS` is the map of the course. Each lesson has one notebook, and each notebook
# has its own Colab badge. Planned lessons are listed so you can see where this is going.

# %%
display(Markdown(lesson_table_markdown()))
assert [item.number for item in LESSONS] == sorted(item.number for item in LESSONS)

# %% [markdown]
# ## Exercises
#
# 1. **The interface.** For every pair in `coldlib.experiments.list_presets()`, build the degradation with
#    `preset(kind, dataset)` and check that $D(x, 0) = x$ on suitable images: one-channel digits for
#    MNIST presets, photo crops otherwise. Mixing needs a second image: pass `z=` explicitly.
# 2. **An error the degradation cannot see.** In the sampler cell, replace the constant mistake by a
#    checkerboard, `delta = 0.3 * (-1) ** (i + j)` over pixel coordinates `(i, j)`. Predict each
#    algorithm's error before you run it.
# 3. **Held-out data.** Load `load_images("mnist", split="test")`. Check that the train and test parts
#    together have 70,000 images (10,000 under the test-only fallback), and that no test image appears in
#    the training part.
#
# Solutions follow; try first.

# %%
# Solution 1: t = 0 is the identity for every preset (a "mixing" preset needs z, the image mixed in).
for kind, dataset in list_presets():
    D = preset(kind, dataset)
    x = digits[:2] if dataset == "mnist" else colour[:2]
    z = (digits if dataset == "mnist" else colour)[2:4] if kind == "mixing" else None
    assert torch.equal(D(x, 0, z), x), (kind, dataset)
print(f"D(x, 0) == x for all {len(list_presets())} presets")

# %%
# Solution 2: a checkerboard is wiped out by the blur (D(delta, T) ≈ 0), so nothing cancels; both keep it.
i, j = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
delta = 0.3 * (-1.0) ** (i + j)
D = preset("blur", "mnist")
x_naive = x_improved = D(x0, D.T)
for t in range(D.T, 0, -1):
    x_naive = D(x0 + delta, t - 1)
    x_improved = x_improved - D(x0 + delta, t) + D(x0 + delta, t - 1)
print(f"|D(delta, T)| = {D(delta.expand_as(x0), D.T).abs().mean():.2e}; errors: Algorithm 1 "
      f"{(x_naive - x0).abs().mean():.4f}, Algorithm 2 {(x_improved - x0).abs().mean():.4f}")
assert torch.allclose(x_improved, x0 + delta, atol=1e-3)

# %%
# Solution 3: the paper's protocol is 60,000 / 10,000 (the test-only fallback splits the test split 8,000 / 2,000).
mnist_test = load_images("mnist", split="test")
assert len(mnist) + len(mnist_test) in (10_000, 70_000)
train_keys = {image.tobytes() for image in mnist.images.numpy()}  # exact pixel content of every image
duplicates = sum(image.tobytes() in train_keys for image in mnist_test.images.numpy())
print(f"train {len(mnist):,} + test {len(mnist_test):,} images; test images also in train: {duplicates}")
assert duplicates == 0

# %% [markdown]
# ## Check your understanding
#
# 1. What is "cold" about cold diffusion, and which degradation in the figures is the "hot" one?
#    <details><summary>Answer</summary>Cold degradations are deterministic, or random only through a
#    choice made once (where the hole or the snowflakes go). Gaussian noise is the hot one: fresh
#    randomness is its whole point.</details>
# 2. What does the restoration network take as input, and what does it output?
#    <details><summary>Answer</summary>The degraded image $D(x_0, t)$ and the step $t$. It outputs an
#    estimate of the clean image $x_0$ (not the noise), trained with an L1 loss.</details>
# 3. With the same estimate $\hat x_0 = x_0 + \delta$ at every step, what do Algorithms 1 and 2 return
#    for a linear $D$?
#    <details><summary>Answer</summary>Algorithm 1 returns $x_0 + \delta$. Algorithm 2 returns
#    $x_0 + \delta - D(\delta, T)$: the part of the error that survives the full degradation cancels.
#    </details>
# 4. Suppose a run printed "TEST-ONLY FALLBACK". What does that change about the results you will see?
#    <details><summary>Answer</summary>Models trained in that run learn from the first 8,000 images of
#    MNIST's official test split and are evaluated on the remaining 2,000, not on the 60,000 / 10,000
#    split: fewer training images, fewer test images, numbers not directly comparable with the paper's.
#    The shipped models were trained on the training split, so they never saw any test image and can be
#    evaluated in either case.</details>
#
# ## Summary
#
# - Cold diffusion keeps the diffusion recipe (degrade, learn to restore, sample step by step) and
#   swaps Gaussian noise for any degradation $D(x, t)$, deterministic or not.
# - Training is plain regression: $\min_\theta \|R_\theta(D(x_0, t), t) - x_0\|_1$.
# - Algorithm 2, $x_{t-1} = x_t - D(\hat x_0, t) + D(\hat x_0, t-1)$, cancels the restorer's errors
#   that survive the degradation; Algorithm 1 does not.
# - `coldlib` gives every degradation the same interface `D(x0, t, z=None)`, and `load_images` always
#   says which data you are using.
#
# ## References
#
# - A. Bansal, E. Borgnia, H.-M. Chu, J. S. Li, H. Kazemi, F. Huang, M. Goldblum, J. Geiping,
#   T. Goldstein. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392).
#   Code: [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models).
# - J. Ho, A. Jain, P. Abbeel. *Denoising Diffusion Probabilistic Models.* NeurIPS 2020,
#   [arXiv:2006.11239](https://arxiv.org/abs/2006.11239).
# - J. Song, C. Meng, S. Ermon. *Denoising Diffusion Implicit Models.* ICLR 2021,
#   [arXiv:2010.02502](https://arxiv.org/abs/2010.02502).
# - D. Hendrycks, T. Dietterich. *Benchmarking Neural Network Robustness to Common Corruptions and
#   Perturbations* (ImageNet-C, the source of the snow degradation). ICLR 2019,
#   [arXiv:1903.12261](https://arxiv.org/abs/1903.12261).
#
# Next: [01 · Degradations](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/01_degradations.ipynb).

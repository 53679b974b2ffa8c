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
# # 03 · Sampling: Algorithm 1 versus Algorithm 2
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/03_sampling_naive_vs_improved.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/03_sampling_naive_vs_improved.ipynb)
#
# Lesson 02 trained a restorer $R(x_t, t) \approx x_0$. One pass of it already restores an image. A
# diffusion model instead walks back step by step, $x_T \to x_{T-1} \to \dots \to x_0$, and the paper
# gives two ways to take a step. The naive one (Algorithm 1) looks obvious and works badly for cold
# degradations; the improved one (Algorithm 2) looks odd and works. This lesson writes both in a few
# lines, watches them on held-out digits, shows *why* Algorithm 2 forgives the restorer's mistakes,
# and measures both against the paper's deblurring table.
#
# **Learning objectives**
# - Write Algorithm 1, $x_{s-1} = D(\hat x_0, s-1)$, and Algorithm 2,
#   $x_{s-1} = x_s - D(\hat x_0, s) + D(\hat x_0, s-1)$, as loops from $s = T$ down to 1.
# - Derive the paper's first-order argument: if $D(x, s) \approx x + s\,e$, Algorithm 2 follows the true
#   path $D(x_0, s)$ whatever the restorer predicts; Algorithm 1 inherits every error.
# - Read a sampling trajectory: the states $x_s$ and the predictions $\hat x_0$ along the way.
# - Evaluate restorations the paper's way (Degraded / Direct / Algorithm 1 / Algorithm 2; SSIM, RMSE, and
#   a Fréchet distance in place of FID) and say what differs between our setting and the paper's.
# - Restore a blurry image of your own (an upload), starting from its estimated step.
#
# **Prerequisites:** [02 · Training a restorer](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/02_training_a_restorer.ipynb).
#
# **Estimated time:** 45–60 minutes of reading and exercises.
#
# **Run time:** 1 min 28 s for the whole lesson in full mode on a 2-core CPU (Intel(R) Xeon(R) Processor), no GPU, measured by `make render` on 2026-12-07.

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
from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from coldlib.data import check_held_out, load_images
from coldlib.degradations import Degradation
from coldlib.diffusion import SAMPLER_NAMES
from coldlib.env import fast_mode, lesson_device, seed_everything
from coldlib.evaluation import (FD_MNIST_CNN, evaluate_restoration, format_frechet_table, frechet_floor,
                                mnist_cnn_features, rmse, verdicts)
from coldlib.experiments import paper_table
from coldlib.plotting import labelled_rows
from coldlib.training import train_or_load
from coldlib.unet import unet_preset_name
from coldlib.widgets import frame_slider

FAST = fast_mode()  # COLDLIB_FAST=1 (CI): a 64-image evaluation instead of 500, a shorter fallback run
generator = seed_everything(0)
device = lesson_device(FAST)  # in FAST mode on a CPU: one thread (faster on a busy, shared CI machine)
print(f"device {device} · FAST={FAST}")

# The restorer of Lesson 02: the shipped model if it is there, else a short run with the same recipe.
fallback = dict(model="tiny", steps=40, batch_size=16, grad_accum=1) if FAST else \
    dict(model="small", steps=1000, batch_size=32, grad_accum=2)
restorer = train_or_load("mnist_blur", task="blur", dataset="mnist", device=device, **fallback)
R = restorer.diffusion()  # ColdDiffusion: R.model is the UNet, R.degradation the blur it was trained for
D, T = R.degradation, R.T
held_out = load_images("mnist", split="test")  # the printed lines say which images
check_held_out(restorer, held_out, name="the restorer")  # proves it never trained on them (raises otherwise)
x0 = held_out.float(slice(0, 8)).to(device)
x_T = D(x0, T)  # the starting point of every sampler below: fully blurred held-out digits
print(f"{D!r}; {len(held_out):,} held-out images")

# %% [markdown]
# ## 1. Both algorithms, by hand
#
# Both samplers start from the degraded $x_T$ and walk $s = T, T-1, \dots, 1$. At each step they ask
# the restorer for its current estimate $\hat x_0 = R(x_s, s)$ and then differ in one line:
#
# - **Algorithm 1 (naive):** $x_{s-1} = D(\hat x_0, s-1)$. Restore, then degrade a little less. The
#   current state $x_s$ is thrown away; only the estimate survives.
# - **Algorithm 2 (improved):** $x_{s-1} = x_s - D(\hat x_0, s) + D(\hat x_0, s-1)$. Keep the current
#   state, and move it by the change that one step of $D$ makes to the estimate.
#
# With a perfect restorer, $\hat x_0 = x_0$, both give $x_{s-1} = D(x_0, s-1)$: the true path back. They
# differ in what they do with a restorer's mistakes (section 3). The loop:

# %%
Restorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_s, s per image) -> estimate of x0


@torch.no_grad()
def sample_by_hand(restore: Restorer, D: Degradation, x_T: torch.Tensor, improved: bool) -> list[torch.Tensor]:
    """Algorithm 1 or 2 from x_T; returns the states [x_T, x_{T-1}, ..., x_0]."""
    x, states = x_T, [x_T]
    for s in range(D.T, 0, -1):  # s = T, T-1, ..., 1
        x0_hat = restore(x, torch.full((len(x),), s, device=x.device))  # R(x_s, s)
        if improved:
            x = x - D(x0_hat, s) + D(x0_hat, s - 1)  # Algorithm 2
        else:
            x = D(x0_hat, s - 1)  # Algorithm 1
        states.append(x)
    return states


naive_by_hand = sample_by_hand(R.model, D, x_T, improved=False)[-1]
improved_by_hand = sample_by_hand(R.model, D, x_T, improved=True)[-1]
assert torch.allclose(naive_by_hand, R.sample(x_T, method="naive"), atol=1e-4)
assert torch.allclose(improved_by_hand, R.sample(x_T, method="improved"), atol=1e-4)
direct = R.sample(x_T, method="direct")  # one pass: R(x_T, T)
assert torch.allclose(direct, R.model(x_T, torch.full((len(x0),), T, device=device)), atol=1e-5)
for name, out in [("degraded x_T", x_T), ("direct R(x_T, T)", direct), ("Algorithm 1", naive_by_hand),
                  ("Algorithm 2", improved_by_hand)]:
    print(f"{name:18s} mean |x - x0| = {(out - x0).abs().mean():.4f}")
print("by hand == ColdDiffusion.sample(method='naive' / 'improved')")

# %% [markdown]
# `ColdDiffusion.sample` is the same loop. Because every `coldlib` degradation is computed in closed
# form, each step costs two degradations whatever $s$ is; the authors' code re-applies $s$ blurs from
# scratch for each term, $T^2$ convolutions per image in all.
#
# ## 2. Watching the samplers
#
# `sample(..., return_trajectory=True)` also returns what the sampler visited: the states
# $x_T, \dots, x_0$ and the predictions $\hat x_0 = R(x_s, s)$ made along the way. We compute both
# trajectories once; the slider below only swaps pictures. (The last state $x_0$ has no prediction of
# its own; its panel repeats the final image.)

# %%
trajectories = {SAMPLER_NAMES[method]: R.sample(x_T, method=method, return_trajectory=True)  # "Algorithm 1", ...
                for method in ["naive", "improved"]}
frames, show = {}, slice(0, 4)  # four digits on screen
for name, traj in trajectories.items():
    assert traj.steps == list(range(T, -1, -1)) and traj.xt.shape[0] == T + 1 and traj.x0_hat.shape[0] == T
    frames[f"{name}: x_s"] = traj.xt[:, show]
    frames[f"{name}: x̂0 = R(x_s, s)"] = torch.cat([traj.x0_hat, traj.xt[-1:]])[:, show]  # pad the last step
assert torch.allclose(trajectories["Algorithm 2"].xt[-1], improved_by_hand, atol=1e-4)
step_titles = [f"step {k} of {T}: s = {s}" + (" (final)" if s == 0 else "")
               for k, s in enumerate(trajectories["Algorithm 1"].steps)]

# %% tags=["nbval-ignore-output"]
frame_slider(frames, titles=step_titles, description="step", nrow=2)

# %% [markdown]
# The static version: the states (rows "x_s") and the predictions (rows "x̂0") of both algorithms for
# one digit, at a few steps.


# %%
s_columns = [T, 3 * T // 4, T // 2, T // 4, 2, 1, 0]
k_columns = [T - s for s in s_columns]  # index into the trajectory: step k holds s = T - k
digit = 0
labelled_rows([(label, frames[key][k_columns, digit]) for label, key in [
    ("Alg. 1: x_s", "Algorithm 1: x_s"), ("Alg. 1: x̂0", "Algorithm 1: x̂0 = R(x_s, s)"),
    ("Alg. 2: x_s", "Algorithm 2: x_s"), ("Alg. 2: x̂0", "Algorithm 2: x̂0 = R(x_s, s)")]],
    [f"s={s}" for s in s_columns], "sampling one held-out digit (the x̂0 column at s=0 repeats the final x_0)")

# %% [markdown]
# Look at the rows "x_s". Algorithm 1's states are blurred *predictions*: at every step it re-blurs
# the restorer's latest guess, so whatever the guess gets wrong is baked into the next input.
# Algorithm 2's states look like the true blurred image at each step, and sharpen gradually.
#
# ## 3. Why Algorithm 2 tolerates restoration errors
#
# The paper's argument is first order. Suppose that, near the data, one step of the
# degradation adds a fixed change: $D(x, s) \approx x + s\,e$ for some direction $e$. Let the restorer
# be wrong, $\hat x_0 = x_0 + \delta$, with any error $\delta$. If $x_s = D(x_0, s)$ is on the true path,
#
# $$x_{s-1} = x_s - D(\hat x_0, s) + D(\hat x_0, s-1)
#   = (x_0 + s\,e) - (\hat x_0 + s\,e) + (\hat x_0 + (s-1)\,e) = x_0 + (s-1)\,e = D(x_0, s-1).$$
#
# The estimate cancels: Algorithm 2 stays on the true path **whatever** $\hat x_0$ is. Algorithm 1 gives
# $D(\hat x_0, s-1) = D(x_0, s-1) + \delta$, off by the whole error at every step.
#
# Real degradations are not exactly of that form, but many are close to it from one step to the next.
# Let's check the argument numerically, first with a degradation that has exactly this form,
# $D(x, t) = x + (t/T)\,e$, then with the (linear) MNIST blur. The restorer is a fake: the right answer
# plus a smooth error that changes at every step.

# %%
class Drift(Degradation):
    """D(x, t) = x + (t/T)·e: every step adds the same fixed image e/T (the first-order model, exactly)."""

    def __init__(self, T: int, e: torch.Tensor) -> None:
        super().__init__(T)
        self.e = e

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: object) -> torch.Tensor:
        return x0 + (t.to(x0.dtype) / self.T).view(-1, 1, 1, 1) * self.e.to(x0)


def smooth_field(n: int, amplitude: float, gen: torch.Generator) -> torch.Tensor:
    """n smooth random 32×32 images: random mixes of the four longest waves that fit the (circular) image,
    scaled to a mean |value| of ``amplitude``."""
    i = torch.arange(32.0)
    field = torch.zeros(n, 1, 32, 32)
    for kx, ky in [(1, 0), (0, 1), (1, 1), (1, -1)]:
        weight = torch.randn(n, 1, 1, 1, generator=gen)
        phase = 2 * torch.pi * torch.rand(n, 1, 1, 1, generator=gen)
        field += weight * torch.cos(2 * torch.pi * (kx * i[None, :] + ky * i[:, None]) / 32 + phase)
    return amplitude * field / field.abs().mean(dim=(1, 2, 3), keepdim=True)


error_gen = torch.Generator().manual_seed(1)
errors = smooth_field(T + 1, 0.3, error_gen).to(device)  # errors[s]: the fake restorer's mistake at step s


def fake_restorer(x_s: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The right answer plus a smooth error that differs from step to step (same for every image)."""
    return x0 + errors[s[0]]


def distance_to_true_path(states: list[torch.Tensor], D: Degradation) -> torch.Tensor:
    """mean |x_s - D(x0, s)| for s = T, ..., 0 (states come from sample_by_hand)."""
    return torch.stack([(x - D(x0, T - k)).abs().mean() for k, x in enumerate(states)]).cpu()


e = torch.linspace(-1, 1, 32, device=device).view(1, 1, 1, 32).expand(1, 1, 32, 32)  # a fixed direction
toy_cases = {"drift: D(x, t) = x + (t/T)·e": Drift(T, e), "MNIST blur": D}
distances = {}
for case, D_case in toy_cases.items():
    start = D_case(x0, T)
    for improved, algorithm in [(False, "Algorithm 1"), (True, "Algorithm 2")]:
        distances[case, algorithm] = distance_to_true_path(sample_by_hand(fake_restorer, D_case, start, improved),
                                                           D_case)
    print(f"{case:30s} final mean |x_0 - x0|: Algorithm 1 {distances[case, 'Algorithm 1'][-1]:.4f}, "
          f"Algorithm 2 {distances[case, 'Algorithm 2'][-1]:.2e}")

drift = "drift: D(x, t) = x + (t/T)·e"
assert distances[drift, "Algorithm 2"].max() < 1e-5  # exactly on the true path, at every step
assert torch.allclose(distances[drift, "Algorithm 1"][1:], errors.abs().mean(dim=(1, 2, 3)).cpu().flip(0)[:-1])
assert distances["MNIST blur", "Algorithm 2"][-1] < 0.5 * distances["MNIST blur", "Algorithm 1"][-1]

# %%
fig = plt.figure(figsize=(9, 3))
plt.close(fig)
axes = fig.subplots(1, 2)
s_axis = list(range(T, -1, -1))
for ax, case in zip(axes, toy_cases):
    for algorithm, style in [("Algorithm 1", "o-"), ("Algorithm 2", "s-")]:
        ax.plot(s_axis, distances[case, algorithm], style, ms=3, label=algorithm)
    ax.set(xlabel="step s (sampling runs right to left)", ylabel="mean |x_s - D(x0, s)|", title=case)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle("distance from the true path, with a fake restorer that is wrong by a smooth error", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# With the drift, Algorithm 2 stays on the true path to rounding error, however wrong the restorer is,
# and Algorithm 1 is exactly as wrong as the restorer at every step.
#
# Blur is linear but not a drift, so the cancellation is partial. Subtract the true path from
# Algorithm 2's update: an error $\delta_s$ made at step $s$ moves the state off the path by
# $D(\delta_s, s-1) - D(\delta_s, s)$, the change that *one more blur step* makes to the error, not by
# the error itself. A smooth error changes little under one more blur step, so most of it cancels; an
# error in fine detail, which one blur step erases, does not (Lesson 00's Exercise 2 is the extreme
# case). An error made early, at large $s$, is nearly free: both terms are already blurred to almost
# nothing. Seen from the last step, $x_0 = x_1 - D(\hat x_0, 1) + \hat x_0$: the part of the image that
# survives one blur step comes from $x_1$, which is on the true path, and only what the blur destroyed
# comes from the restorer.
#
# ## 4. Error along the way, with the trained restorer
#
# The same measurement with the real restorer on the eight held-out digits: how far each state is
# from the true path $D(x_0, s)$, and how good the restorer's estimate $\hat x_0 = R(x_s, s)$ is at each
# step.

# %%
fig = plt.figure(figsize=(9, 3))
plt.close(fig)
axes = fig.subplots(1, 2)
true_path = torch.stack([D(x0, s) for s in s_axis])  # (T + 1, B, 1, 32, 32): D(x0, T), ..., D(x0, 0)
along = {}
for name, traj in trajectories.items():
    along[name, "state"] = (traj.xt - true_path).abs().mean(dim=(1, 2, 3, 4)).cpu()
    along[name, "estimate"] = (traj.x0_hat - x0).abs().mean(dim=(1, 2, 3, 4)).cpu()
    axes[0].plot(s_axis, along[name, "state"], "o-", ms=3, label=name)
    axes[1].plot(s_axis[:-1], along[name, "estimate"], "o-", ms=3, label=name)
axes[0].set(ylabel="mean |x_s - D(x0, s)|", title="state vs the true path")
axes[1].set(ylabel="mean |R(x_s, s) - x0|", title="the restorer's estimate vs x0")
for ax in axes:
    ax.set_xlabel("step s (sampling runs right to left)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
for name in trajectories:
    print(f"{name}: final mean |x_0 - x0| = {along[name, 'state'][-1]:.4f}; best estimate along the way "
          f"{along[name, 'estimate'].min():.4f} at s = {s_axis[int(along[name, 'estimate'].argmin())]}")
fig

# %% [markdown]
# Read the left panel from right to left. Both samplers start on the true path: $x_T$ is the true
# degraded image. Algorithm 1 leaves the path at once, because its next state is a re-blurred estimate
# rather than the image it was given. Algorithm 2 stays close to the path for as long as the restorer's
# errors are ones that one more blur step does not change, and drifts off in the last, mildly blurred
# steps, where the remaining errors are fine detail. The right panel asks a different question: is the
# restorer's *first* estimate, $R(x_T, T)$, its best one? If it is, expect the direct restoration to
# beat both samplers on pixel metrics in the table below, as it does in the paper. Your curves depend on
# how well the restorer was trained: with a short stand-in (trained only when the shipped checkpoint is
# missing) they are noisier and closer together.
#
# ## 5. The paper's table: Degraded, Direct, Algorithm 1, Algorithm 2
#
# The paper reports deblurring on MNIST (its Table 1) as three columns: the degraded input $x_T$,
# the direct restoration $R(x_T, T)$, and the output of Algorithm 2 ("Sampled"). We add Algorithm 1.
# `evaluate_restoration` runs all of them on the same held-out images and measures, on images mapped to
# $[0, 1]$ as in the paper:
#
# - **RMSE**, the root of the mean squared pixel error over all pixels (lower is better);
# - **SSIM**, structural similarity (Wang et al., 2004): it compares local means, contrasts and
#   correlations in 11×11 Gaussian windows and averages them (1 = identical). We use the authors' own
#   implementation, `pytorch_msssim`, which averages only windows that lie fully inside the image;
#   libraries that pad the borders instead read about 0.08 higher on MNIST, so only this convention can
#   stand beside the paper's column;
# - **PSNR**, $10 \log_{10}(1/\text{MSE})$ in decibels, per image (higher is better);
# - **FD_MNIST-CNN**, a Fréchet distance: fit a Gaussian to the features that a small MNIST classifier
#   (shipped with the course) extracts from the restored images, another to those of the clean images,
#   and measure how far apart the two are (lower is better). It asks whether the results *look like
#   digits as a set*, not whether each matches its original: the role FID plays in the paper. FID uses an
#   Inception network trained on photographs, which needs a download, so the paper's FIDs are not
#   comparable with ours and the table leaves them out. With few images a Fréchet distance reads high
#   (the covariance is estimated from few samples): compare columns of one table, not tables of
#   different sizes. The note under the table gives the **real-vs-real floor** at the same number of
#   images: how far two disjoint sets of real digits are apart, the best any method could read.
#
# Every number carries a 95 % **bootstrap interval** over the images (`intervals=True`): resample the
# evaluation images with replacement many times, recompute the metric, keep the middle 95 %. Two methods
# are called *ahead* of one another only when their intervals do not overlap, and *level* otherwise
# (`coldlib.evaluation.verdicts`); a difference in the third decimal of two point estimates is no evidence.

# %%
n_eval = 64 if FAST else (10_000 if device.type == "cuda" else 500)  # a CPU: 41 network passes per image
x_eval = held_out.float(slice(0, n_eval)).to(device)
results = evaluate_restoration(R, x_eval, batch_size=64, generator=torch.Generator().manual_seed(0),
                               frechet="mnist-cnn", progress=True, intervals=True)
assert set(results) == {"Degraded", "Direct", "Algorithm 1", "Algorithm 2"}
real_digits = load_images("mnist", split="train", limit=4 * n_eval).float()  # real digits for the floor
floor = frechet_floor(mnist_cnn_features(real_digits, device=device), n_eval)
display(Markdown(format_frechet_table(results, paper=paper_table("blur", "mnist"), floor=floor)))
print(f"measured on the first {n_eval:,} of {len(held_out):,} held-out images")
for line in verdicts(results.intervals, metrics=("SSIM", "RMSE", FD_MNIST_CNN)):
    print(line)

# %% [markdown]
# **Our setting is not the paper's**, so read the two sides of the table as a sanity check, not a
# reproduction:
#
# - **Data.** Both train on MNIST's 60,000-image training split; the paper evaluates on all 10,000 test
#   images, this table on the first `n_eval` of them (the lines printed below say which; the model card
#   has a 2,000-image subset spread over the whole split). The paper also augments MNIST with random crops
#   and flips.
# - **Compute.** The paper's MNIST restorer is a 56.6M-parameter ConvNeXt UNet trained for 700,000 steps
#   of 64 images. Ours is far smaller and trained far shorter; the exact numbers are printed below, read
#   from the checkpoint's config.
# - **Metrics.** SSIM and RMSE follow the authors' conventions (above); our Fréchet distance is not
#   their FID.
# - **The Degraded column.** Our $x_T$ at the paper's stated setting (20 steps of an 11×11 Gaussian with
#   σ = 7, circular padding) is an almost flat grey image, so its SSIM is near 0, while the paper's cell
#   reads 0.287, the same value as its RMSE cell. Two explanations fit a number like that: the paper's
#   evaluation blurred less than its stated setting (then its restorer started from more information
#   than ours), or the SSIM cell repeats the RMSE cell by mistake. Lesson 09 measures which one the
#   data support; our RMSE column is printed below against the paper's.

# %%
config = restorer.config
train_settings = config.get("train") or {}
images_per_step = train_settings.get("batch_size", 0) * train_settings.get("grad_accum", 1)
print(f"our training data: {config['data']}")
print(f"our evaluation:    the first {n_eval:,} of {len(held_out):,} held-out images: {held_out.source}")
print("paper:             MNIST train (60,000 images); evaluated on the MNIST test split (10,000 images)")
print(f"our restorer:      UNet {unet_preset_name(config['model']) or '(custom)'} with "
      f"{restorer.model.num_parameters():,} parameters, {config['steps']:,} steps of {images_per_step} images "
      f"({'the shipped checkpoint' if restorer.path is not None else 'trained in this session'})")
print("paper:             ConvNeXt UNet with 56,612,916 parameters, 700,000 steps of 64 images")
print(f"compute ratio:     {56_612_916 / restorer.model.num_parameters():.0f}× fewer parameters, "
      f"{700_000 * 64 / max(1, config['steps'] * images_per_step):,.0f}× fewer training images seen")
for line in verdicts(results.intervals, rows=("Degraded", "Direct", "Algorithm 2"), metrics=("SSIM", "RMSE"),
                     paper=paper_table("blur", "mnist")):
    if "paper" in line:  # ours against the paper's number, from our interval
        print(line)

# %% [markdown]
# Things to look for in your table. In the paper, Direct is slightly *ahead* of Algorithm 2 on SSIM and
# RMSE, while Algorithm 2 wins on FID: a one-pass restoration regresses to a safe average, which scores
# well on pixel metrics; the sampler commits to sharper detail, which looks more like real digits but is
# penalised pixel by pixel when the detail is not exactly right. The verdicts printed under the table
# (ahead only when the intervals separate) say whether our restorer shows the same pattern; our Fréchet
# column plays the part of the paper's FID.
# Algorithm 1 is not in the paper's table at all; the paper illustrates it instead, in blur-based
# generation, where it piles up artifacts. Expect it last on every metric here, by a wide margin on the
# Fréchet distance: its re-blurred estimates lose the strokes. With a short training run (the fallback
# when the shipped checkpoint is missing) every column is worse than the paper's and the ordering can change: the restorer's errors are
# then large, and no sampler can undo an error that the blur erases.
#
# ## 6. Restore your own image
#
# Every blurred digit so far came from our own $D$. A blurry file from elsewhere does not say how blurry
# it is, so `UploadRestorer` first estimates its step: for each $s$ it restores, $\hat x_0 = R(x, s)$,
# blurs again, and keeps the $s$ whose $D(\hat x_0, s)$ best matches the file (`ColdDiffusion.estimate_t`;
# lesson 04 looks closer). Then it runs Direct and Algorithm 2 from that step. It reads the file to grey
# at 32 × 32 px and lists every change it made; a file it cannot read without guessing (not an image, too
# large, CMYK, transparent pixels) is refused with the reason. Until you upload, it shows a bundled digit
# blurred by PIL's `GaussianBlur` (radius 5), not by our $D$. MNIST digits are light on dark: pass
# `invert=True` for a dark pen on white paper.

# %%
from coldlib.widgets import UploadRestorer

own = UploadRestorer(R, size=32, example="digit_blurred.png")
display(own)  # with a live kernel: the upload button and three pictures; they follow your uploads
mine = own.result
print(f"{mine.name}: estimated step {mine.t_hat} of {T}")
assert 1 <= mine.t_hat <= T and mine.improved.shape == mine.x.shape
own.figure()  # a static copy of the pictures, for viewers without a live kernel

# %% [markdown]
# Read the estimate printed above against our schedule: each of our steps blurs with σ = 7, so PIL's
# radius-5 blur lands a few steps in, and a milder file would fall below step 1, where the estimate can
# only say 1. Compare the two restorations in the pictures: the file is not exactly on our forward path,
# and Algorithm 2, which keeps what one step of $D$ does not change, keeps part of that difference, while
# Direct replaces the whole image by the restorer's estimate. A blurry photo of your own is further from
# the path still: expect less.
#
# ## Exercises
#
# 1. **Partially degraded inputs.** A sampler can start at any step. Blur the digits to $t = 5$ only,
#    and restore with `R.sample(D(x0, 5), t=5, method=...)` for all three methods. Which errors are
#    smaller than when starting from $T$, and why?
# 2. **A useless restorer.** With the drift degradation of section 3, replace the fake restorer by one
#    that always returns zeros. Predict what Algorithm 2 returns. Then explain why this does *not* mean
#    restorers are unnecessary (hint: what does $x_T$ already tell you about $x_0$ for the drift?).
# 3. **One table cell by hand.** Compute the Direct column's RMSE for the first 64 evaluation images with
#    `coldlib.evaluation.rmse`, and compare with `evaluate_restoration(R, ..., methods=("direct",))`.
#
# Solutions follow; try first.

# %%
# Solution 1. Starting from a mildly blurred image, all methods do better: there is less to undo.
x_5 = D(x0, 5)
print(f"degraded to t=5: mean |x_5 - x0| = {(x_5 - x0).abs().mean():.4f}")
for method in ["direct", "naive", "improved"]:
    from_5 = (R.sample(x_5, t=5, method=method) - x0).abs().mean()
    from_T = (R.sample(x_T, method=method) - x0).abs().mean()
    print(f"{method:8s} from t=5: {from_5:.4f}   from t=T: {from_T:.4f}")

# %%
# Solution 2. Algorithm 2 is exact with ANY restorer for the drift: x_{s-1} = x_s - e/T at every step.
drift_D = toy_cases[drift]
zeros = sample_by_hand(lambda x, s: torch.zeros_like(x), drift_D, drift_D(x0, T), improved=True)[-1]
print(f"drift, restorer = 0: Algorithm 2 error {(zeros - x0).abs().max():.2e}")
assert torch.allclose(zeros, x0, atol=1e-5)

# %% [markdown]
# For the drift, $x_0 = x_T - e$: the degradation is trivially invertible and loses no information, so
# there is nothing left to learn. Blur throws information away (by $t = T$ only a smudge is left), and
# the restorer must supply what was lost. Algorithm 2 only makes sure its *smooth* mistakes cancel
# instead of accumulating.

# %%
# Solution 3. RMSE over all pixels in [0, 1], on R(x_T, T) for the first 64 evaluation images.
x64 = x_eval[:64]
by_hand = rmse(R.sample(D(x64, T), method="direct"), x64)
by_library = evaluate_restoration(R, x64, methods=("direct",))["Direct"]["RMSE"]
print(f"Direct RMSE on 64 images: by hand {by_hand:.5f}, evaluate_restoration {by_library:.5f}")
assert abs(by_hand - by_library) < 1e-5

# %% [markdown]
# ## Check your understanding
#
# 1. With a perfect restorer, what do Algorithms 1 and 2 return?
#    <details><summary>Answer</summary>Both return $x_0$: with $\hat x_0 = x_0$ both updates give
#    $x_{s-1} = D(x_0, s-1)$, so they walk the true path down to $D(x_0, 0) = x_0$.</details>
# 2. In one sentence, why does Algorithm 2 forgive errors that Algorithm 1 keeps?
#    <details><summary>Answer</summary>It moves the current state by the *difference*
#    $D(\hat x_0, s-1) - D(\hat x_0, s)$; to first order that difference does not depend on $\hat x_0$,
#    so the estimate's error cancels, while Algorithm 1 replaces the state by $D(\hat x_0, s-1)$ and keeps
#    the whole error.</details>
# 3. Which restoration errors does Algorithm 2 *not* cancel for blur?
#    <details><summary>Answer</summary>Errors that one blur step changes a lot: fine detail (high
#    frequencies). Smooth errors pass through a blur step almost unchanged and cancel.</details>
# 4. Why must a sampler keep the degradation's random ingredient $z$ fixed (for masks or snow)?
#    <details><summary>Answer</summary>Algorithm 2 subtracts $D(\hat x_0, s, z)$ from $x_s$; if $z$
#    changed, the difference would be dominated by the change of hole or snow, not by one step of
#    degradation. `ColdDiffusion.sample` requires the $z$ that made $x_T$.</details>
# 5. The paper's Direct column beats Algorithm 2 on SSIM and RMSE. Does that make the sampler pointless?
#    <details><summary>Answer</summary>No. Pixel metrics reward a cautious average; FID, which measures
#    whether results look like real data, favours Algorithm 2 in the paper (4.69 vs 5.10 on MNIST); your
#    FD_MNIST-CNN column says whether it does for our restorer. For generation,
#    where there is no single right answer, only the sampler works.</details>
#
# ## Summary
#
# - Algorithm 1, $x_{s-1} = D(\hat x_0, s-1)$, re-degrades the restorer's estimate at every step and
#   keeps its errors.
# - Algorithm 2, $x_{s-1} = x_s - D(\hat x_0, s) + D(\hat x_0, s-1)$, moves the current state by one step
#   of the degradation; if $D(x, s) \approx x + s\,e$ it follows the true path whatever $\hat x_0$ is.
# - For blur, smooth errors cancel and fine-detail errors do not.
# - `evaluate_restoration` measures Degraded / Direct / Algorithm 1 / Algorithm 2 on the same images, with
#   the authors' SSIM and RMSE and a Fréchet distance (FD_MNIST-CNN) in place of FID; our numbers come from
#   far less data and compute than the paper's, and say so.
# - An image blurred elsewhere is restored from its estimated step (`UploadRestorer`, `estimate_t`).
#
# ## References
#
# - A. Bansal et al. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392) (Algorithms 1 and 2, and Table 1). Code:
#   [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models).
# - J. Song, C. Meng, S. Ermon. *Denoising Diffusion Implicit Models.* ICLR 2021,
#   [arXiv:2010.02502](https://arxiv.org/abs/2010.02502) (with Gaussian noise and a re-estimated noise,
#   Algorithm 2 becomes deterministic DDIM sampling).
# - J. Ho, A. Jain, P. Abbeel. *Denoising Diffusion Probabilistic Models.* NeurIPS 2020,
#   [arXiv:2006.11239](https://arxiv.org/abs/2006.11239).
# - Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli. *Image Quality Assessment: From Error
#   Visibility to Structural Similarity* (SSIM). IEEE Transactions on Image Processing, 2004.
# - M. Heusel et al. *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium*
#   (FID). NeurIPS 2017, [arXiv:1706.08500](https://arxiv.org/abs/1706.08500).
#
# Next: Lesson 04 applies the same recipe to inpainting and super-resolution.

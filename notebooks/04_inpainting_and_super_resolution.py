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
# # 04 · Inpainting and super-resolution
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/04_inpainting_and_super_resolution.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/04_inpainting_and_super_resolution.ipynb)
#
# Lessons 02 and 03 trained a deblurring restorer and sampled from it. The recipe never looked inside
# the degradation, so it should carry over to any other one. This lesson tries two more from the paper:
# **inpainting**, where a Gaussian-shaped hole grows over the image, and **super-resolution**, where
# every step halves the resolution. One new ingredient appears: the hole can sit anywhere, and its
# position $z$ has to be held fixed from the degradation through to the sampler. We rebuild both
# operators inline, train (or load) a restorer for each, compare the three samplers with the paper's
# Tables 2 and 3, and then restore digits that were damaged *somewhere else*, by tools that know nothing
# of our forward process.
#
# **Learning objectives**
# - Write the paper's inpainting operator, $D(x_0, t) = \big(\prod_{i<t} M_i\big) \odot x_0$ with
#   Gaussian holes $M_i$, and its pixelation operator (each step halves the resolution), and check both
#   against `coldlib`.
# - Handle a degradation with a random ingredient: draw the hole position $z$ once and hand the same
#   $z$ to the degradation, the samplers and the evaluation.
# - Compare Direct, Algorithm 1 and Algorithm 2 on held-out digits for both tasks, and read our numbers
#   beside the paper's Tables 2 and 3, including what the paper does not report.
# - Restore an image degraded elsewhere (a digit shrunk with PIL, a digit with a painted grey blob):
#   estimate its step with `ColdDiffusion.estimate_t` and run Algorithm 2 from there; then upload your own.
#
# **Prerequisites:** [02 · Training a restorer](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/02_training_a_restorer.ipynb)
# and [03 · Sampling: Algorithm 1 versus Algorithm 2](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/03_sampling_naive_vs_improved.ipynb).
#
# **Estimated time:** 60 minutes of reading and exercises.
#
# **Run time:** 1 min 57 s for the whole lesson in full mode on a 2-core CPU (Intel(R) Xeon(R) Processor), no GPU, measured by `make render` on 2026-12-07.

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
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from PIL import Image

from coldlib.data import check_held_out, load_images
from coldlib.degradations import GaussianMask
from coldlib.diffusion import ColdDiffusion, compare_samplers
from coldlib.env import fast_mode, lesson_device, seed_everything
from coldlib.evaluation import FD_MNIST_CNN, check_no_mixing, evaluate_restoration, rmse, verdicts
from coldlib.experiments import paper_table, preset
from coldlib.plotting import degradation_grid, labelled_rows, show_images
from coldlib.training import TrainConfig, Trainer, train_or_load
from coldlib.unet import UNet, unet_preset, unet_preset_name
from coldlib.widgets import frame_slider, sampler_frames, t_slider

FAST = fast_mode()  # COLDLIB_FAST=1 (CI): tiny training runs and a 32-image evaluation
generator = seed_everything(0)
device = lesson_device(FAST)  # in FAST mode on a CPU: one thread (faster on a busy, shared CI machine)
print(f"device {device} · FAST={FAST}")

mnist = load_images("mnist", split="train")  # the printed lines say which images: read them
held_out = load_images("mnist", split="test")  # check_held_out (section 4) proves no model trained on them
x0 = held_out.float(slice(0, 8)).to(device)  # eight held-out digits, used throughout
D_hole = preset("inpaint", "mnist")  # the paper's MNIST inpainting: T = 50, a hole at a random position
D_pix = preset("pixelate", "mnist")  # the paper's MNIST super-resolution: T = 3, ×2 per step
print(D_hole, D_pix, sep="\n")

# %% [markdown]
# ## 1. Inpainting: a Gaussian hole that fades to grey
#
# The paper's inpainting operator multiplies the image by a mask at every step. Step $i$ uses
# $M_i = 1 - G_i / \max G_i$, where $G_i$ is a Gaussian of width $\sigma_i = 0.1\,(i + 11)$ pixels, so
# the holes grow from $\sigma = 1.1$ to $6.0$ px over $T = 50$ steps. After $t$ steps the image is
#
# $$D(x_0, t) = \Big(\prod_{i=0}^{t-1} M_i\Big) \odot x_0 = m_t \odot x_0 ,$$
#
# a product of ever wider holes. Images live in $[-1, 1]$, so multiplying by 0 sends a pixel to 0:
# **mid-grey**. On MNIST's black background ($-1$) the hole shows up as a grey disc, which will matter:
# the restorer can *see* where the hole is.
#
# **Where the hole is.** In the authors' `Random_Incremental` mode the masks live on a canvas twice the
# image size, and each image sees a $32 \times 32$ window of it at its own offset $z = (o_y, o_x)$,
# drawn uniformly from $\{0, \dots, 32\}^2$. The hole's centre lands at pixel $(31 - o_y, 31 - o_x)$.
# That offset is the degradation's **random ingredient**: `D.draw_z(x0)` draws one per image, and every
# call that must show the same hole (degrading, sampling, evaluating) needs the same $z$. By hand:

# %%
def hole_mask_by_hand(t: int, offset: tuple[int, int], sigmas: list[float], side: int = 32) -> torch.Tensor:
    """The (side, side) mask m_t: the product of the first t Gaussian holes, seen through the window at ``offset``."""
    canvas = 2 * side
    r = torch.arange(canvas + 1, dtype=torch.float64) - canvas // 2  # distance to the canvas centre, one axis
    mask = torch.ones(canvas + 1, canvas + 1, dtype=torch.float64)
    for sigma in sigmas[:t]:
        mask = mask * (1 - torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2)))  # 1 - G_i / max G_i
    mask = mask[1:, 1:]  # the authors drop the first row and column: the centre moves to (31, 31)
    oy, ox = offset
    return mask[oy : oy + side, ox : ox + side]


z = D_hole.draw_z(x0, generator)  # (8, 2): one hole offset per image, drawn once
t = 30
by_hand = torch.stack([hole_mask_by_hand(t, tuple(o.tolist()), D_hole.sigmas) for o in z.cpu()])
by_hand = by_hand[:, None].float().to(device) * x0
assert torch.allclose(by_hand, D_hole(x0, t, z), atol=1e-5)
print(f"hole offsets z = {z.tolist()}\nby hand == coldlib's GaussianMask at t = {t}")

# %% [markdown]
# `coldlib` precomputes the cumulative masks $m_t$ once per image size, so any $t$ costs one multiply;
# the authors' code multiplies the $t$ masks again on every call, with Python loops over the batch.
# Slide $t$ below (all frames were computed once, the slider only swaps pictures):

# %% tags=["nbval-ignore-output"]
t_slider(D_hole, x0[:4], z=z[:4])

# %% [markdown]
# The static version, and next to it the **centred** variant. The paper centres the hole for CelebA
# (`preset("inpaint", "celeba")`: $T = 100$ on $128 \times 128$ faces); here we keep MNIST's schedule and
# only fix the position, `GaussianMask(..., random_position=False)`. A centred hole has no random
# ingredient: `draw_z` returns `None`.

# %%
steps = [0, 5, 10, 20, 30, 40, 50]
D_centred = GaussianMask(D_hole.T, kernel_std=D_hole.kernel_std, initial_mask=D_hole.initial_mask,
                         random_position=False)
assert D_centred.draw_z(x0) is None
display(degradation_grid(D_hole, x0[:4], steps, z=z[:4], title=f"random hole: {D_hole!r}"))
degradation_grid(D_centred, x0[:4], steps, title=f"centred hole: {D_centred!r}")

# %% [markdown]
# How much of the image does the hole take? For the centred hole we can read it off the masks: the
# share of pixels with $m_t < 1/2$, i.e. more than half faded.

# %%
masks_centred = D_centred.cumulative_masks(32, 32, torch.device("cpu"), torch.float64)  # (T + 1, 32, 32)
for t_show in [10, 25, 50]:
    print(f"t = {t_show:2d}: {(masks_centred[t_show] < 0.5).double().mean():.0%} of the pixels more than half "
          f"faded; smallest mask value {masks_centred[t_show].min():.2g}")

# %% [markdown]
# At $t = T$ a bit over half of the image is gone, the middle completely: on MNIST that is most of
# the digit. A random hole can fall partly outside the image, so it often hides less.
#
# ## 2. Super-resolution: pixelation, ×2 per step
#
# The super-resolution operator halves the resolution at every step and enlarges the result back with
# nearest neighbours, so the image keeps its size and gets blockier. After $t$ steps every
# $2^t \times 2^t$ block holds one value; with $T = 3$ a $32 \times 32$ digit ends as $4 \times 4$
# blocks of 8 px. The authors shrink with bicubic interpolation *without* antialiasing, which is only
# roughly a block average (it differs by up to 0.28 at $t = 1$). `coldlib` uses the exact block average
# (their "area" variant), so $t$ steps are the same as one average-pool by $2^t$:

# %%
def pixelate_by_hand(x: torch.Tensor, t: int) -> torch.Tensor:
    """Average each 2^t × 2^t block, then repeat the block's mean over the block."""
    k = 2**t
    return F.avg_pool2d(x, k).repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


for t in range(D_pix.T + 1):
    assert torch.allclose(pixelate_by_hand(x0, t), D_pix(x0, t), atol=1e-6)
# Pixelating a pixelated image again changes nothing at the same or a finer block size:
assert torch.allclose(D_pix(D_pix(x0, 2), 1), D_pix(x0, 2), atol=1e-6)
assert torch.allclose(D_pix(D_pix(x0, 1), 2), D_pix(x0, 2), atol=1e-6)
print("by hand == coldlib's Pixelate at t = 0..3; D(D(x, s), t) == D(x, max(s, t))")

# %% [markdown]
# The last two lines say that $D$ is a **projection**: $D(D(x, s), t) = D(x, \max(s, t))$. Section 7
# and Exercise 2 use this. Slide $t$ (only four frames: $T = 3$):

# %% tags=["nbval-ignore-output"]
t_slider(D_pix, x0[:4])

# %%
degradation_grid(D_pix, x0[:4], list(range(D_pix.T + 1)), title=f"{D_pix!r}: 32, 16, 8 and 4 blocks per side")

# %% [markdown]
# ## 3. Training with a random ingredient: a short live run
#
# The objective does not change: draw $t \sim \mathcal U\{1..T\}$, degrade, and regress on $x_0$ with an
# L1 loss. The only new thing is $z$. `ColdDiffusion.loss` draws a fresh hole position for every image at
# every step (`D.draw_z`), so the restorer sees holes everywhere. It is **not told** where the hole
# is: it has to find the grey disc itself. Here is what one training batch looks like:

# %%
t_batch = torch.randint(1, D_hole.T + 1, (8,), generator=generator).to(device)
z_batch = D_hole.draw_z(x0, generator)
print("steps t:", t_batch.tolist())
show_images(D_hole(x0, t_batch, z_batch), nrow=8, title="a training batch: each digit with its own t and hole")

# %% [markdown]
# The same `Trainer` as in Lesson 02, for a few dozen steps (a few hundred outside FAST mode):

# %%
live_steps, live_batch = (20, 16) if FAST else (200, 32)
torch.manual_seed(0)
live = ColdDiffusion(UNet(unet_preset("tiny", 1)), D_hole)
trainer = Trainer(live, mnist.images, TrainConfig(steps=live_steps, batch_size=live_batch, grad_accum=1, lr=4e-4),
                  device=device, data_note=mnist.source)
losses = trainer.train()
window = min(10, len(losses))
print(f"{trainer.step} steps of batch {live_batch} with the tiny UNet on inpainting; L1 loss {losses[0]:.3f} "
      f"at the first step, {sum(losses[-window:]) / window:.3f} over the last {window}")
assert trainer.step == live_steps and len(losses) == live_steps

# %% [markdown]
# The loss falls fast at first. Most pixels of most training images are visible and only need to be
# copied, and MNIST is mostly black background, so a network that copies its input and paints the grey
# disc black already scores well. Filling a large hole with the right strokes, at large $t$, is a small
# share of the loss, and it is learned much later.
#
# ## 4. Train or load the two restorers
#
# As in Lesson 03, `train_or_load` loads the course's trained model if it is registered in
# `data/checkpoints/registry.json` (hash-verified), and otherwise says why and trains a stand-in with the
# same recipe: a short run here, a very short one in FAST mode. The lines printed below say which of the
# two happened; everything after works either way, only less well with a stand-in.

# %%
fallback = dict(model="tiny", steps=40, batch_size=16, grad_accum=1) if FAST else \
    dict(model="small", steps=1000, batch_size=32, grad_accum=2)
restorers = {task: train_or_load(f"mnist_{task}", task=task, dataset="mnist", device=device, **fallback)
             for task in ("inpaint", "pixelate")}
R_hole, R_pix = restorers["inpaint"].diffusion(), restorers["pixelate"].diffusion()
D_hole, D_pix = R_hole.degradation, R_pix.degradation  # each model's own degradation from here on
for task, loaded in restorers.items():
    print(f"{task:8s}: {'the shipped checkpoint' if loaded.path is not None else 'trained in this session'}, "
          f"{loaded.model.num_parameters():,} parameters, {loaded.config['steps']:,} steps; {loaded.degradation!r}")
    check_held_out(loaded, held_out, name=f"the {task} restorer")  # raises if it trained on any of them

# %% [markdown]
# ## 5. Direct, Algorithm 1 and Algorithm 2, side by side
#
# The samplers of Lesson 03 work unchanged; the one rule is to pass the $z$ that made $x_T$, which
# `sample` holds fixed along the run (it refuses to guess). For the mask, Algorithm 2 has a telling form.
# With $D(x, s) = m_s \odot x$,
#
# $$x_{s-1} = x_s - m_s \odot \hat x_0 + m_{s-1} \odot \hat x_0 = x_s + (m_{s-1} - m_s) \odot \hat x_0 .$$
#
# Each step *adds* the estimate only in the ring that step $s$ had faded ($m_{s-1} - m_s$), so the hole
# is filled from its rim inwards, each ring from a fresh estimate, and **pixels the hole never touched
# are never changed**. Summing the steps, $x_0 = x_T + \sum_s (m_{s-1} - m_s) \odot \hat x_0^{(s)}$. Algorithm
# 1 instead returns its last estimate, $D(\hat x_0, 0) = \hat x_0$, and Direct returns the first; the
# network redraws every pixel in both. We check the formula on the trajectory:

# %%
T_hole, T_pix = D_hole.T, D_pix.T
z_show = D_hole.draw_z(x0, generator)
x_T = {"inpaint": D_hole(x0, T_hole, z_show), "pixelate": D_pix(x0, T_pix)}
# compare_samplers: Direct, and the trajectories of Algorithms 1 and 2, from the same x_T and z
runs = {"inpaint": compare_samplers(R_hole, x_T["inpaint"], z_show),
        "pixelate": compare_samplers(R_pix, x_T["pixelate"], None)}

traj = runs["inpaint"]["Algorithm 2"]
m = torch.stack([D_hole.masks(x0, torch.full((len(x0),), s, device=device), z_show) for s in range(T_hole + 1)])
rebuilt = x_T["inpaint"] + sum((m[s - 1] - m[s])[:, None] * traj.x0_hat[T_hole - s] for s in range(T_hole, 0, -1))
assert torch.allclose(rebuilt, traj.xt[-1], atol=1e-4)
visible = m[T_hole][:, None] > 0.99  # pixels the hole hardly touched
for name, out in [("Direct", runs["inpaint"]["Direct"]), ("Algorithm 1", runs["inpaint"]["Algorithm 1"].xt[-1]),
                  ("Algorithm 2", traj.xt[-1])]:
    print(f"{name:12s} mean |change| of the visible pixels: {(out - x_T['inpaint'])[visible].abs().mean():.4f}")

# %% [markdown]
# Now watch them. For each task, the panels show Direct (the same at every step), the states $x_s$ of
# Algorithms 1 and 2, and Algorithm 2's estimates $\hat x_0 = R(x_s, s)$. Everything is computed above;
# the sliders only swap pictures. (The last state $x_0$ has no estimate of its own; its panel repeats the
# final image.)

# %%
hole_frames, hole_titles = sampler_frames(runs["inpaint"], "inpaint")
pix_frames, pix_titles = sampler_frames(runs["pixelate"], "pixelate")

# %% tags=["nbval-ignore-output"]
frame_slider(hole_frames, titles=hole_titles, description="step", nrow=2)

# %% tags=["nbval-ignore-output"]
frame_slider(pix_frames, titles=pix_titles, description="step", nrow=2)

# %% [markdown]
# The static version: one digit along each sampler's path (rows "x_s" are states, "x̂0" estimates), then
# the final results for all eight digits.


# %%
def path_rows(task: str, s_columns: list[int], digit: int = 0) -> list[tuple[str, torch.Tensor]]:
    frames, T = (hole_frames, T_hole) if task == "inpaint" else (pix_frames, T_pix)
    k = [T - s for s in s_columns]  # trajectory index: step k holds s = T - k
    return [(f"{task}, {label}", frames[key][k, digit]) for label, key in
            [("Alg. 1: x_s", "Alg. 1: x_s"), ("Alg. 2: x_s", "Alg. 2: x_s"), ("Alg. 2: x̂0", "Alg. 2: x̂0 = R(x_s, s)")]]


hole_columns = [50, 40, 30, 20, 10, 5, 1, 0]
display(labelled_rows(path_rows("inpaint", hole_columns), [f"s={s}" for s in hole_columns],
                      "inpainting one held-out digit (the x̂0 column at s=0 repeats the final x_0)"))
labelled_rows(path_rows("pixelate", [3, 2, 1, 0]), [f"s={s}" for s in [3, 2, 1, 0]],
              "super-resolution of the same digit (T = 3)", scale=1.0)

# %%
for task, title in [("inpaint", "inpainting"), ("pixelate", "super-resolution")]:
    r = runs[task]
    finals = [("clean x0", x0), ("degraded x_T", x_T[task]), ("Direct", r["Direct"]),
              ("Algorithm 1", r["Algorithm 1"].xt[-1]), ("Algorithm 2", r["Algorithm 2"].xt[-1])]
    display(labelled_rows([(name, images) for name, images in finals], [f"digit {b}" for b in range(len(x0))],
                          f"{title}: final results on eight held-out digits"))
    print(title + ": " + "; ".join(f"{name} RMSE {rmse(images, x0):.3f}" for name, images in finals[1:]))

# %% [markdown]
# What to look for (the details depend on how well your restorers were trained; the FAST-mode stand-ins
# have barely started). In inpainting, Algorithm 2's results keep every visible stroke exactly as it was
# and fill only the hole, while Direct and Algorithm 1 redraw the whole digit and can smudge or move
# strokes outside the hole. Algorithm 1 re-fades its own estimate at every step, so a wrong estimate is
# never corrected by the input. With only three steps, super-resolution gives the samplers little room
# to differ: all three start from the same $4 \times 4$ blocks. Exercise 2 shows that Algorithm 2 keeps
# those blocks *exactly*: pixelate its output again and you get $x_T$ back.
#
# ## 6. The paper's tables: inpainting (Table 2) and super-resolution (Table 3)
#
# `evaluate_restoration` (Lesson 03) runs Degraded / Direct / Algorithm 1 / Algorithm 2 on held-out
# images, with one hole position per image drawn from a seeded generator and shared by every column. We
# add one more column, **FD_MNIST-CNN**: the Fréchet distance between the features of the clean and the
# restored images, taken from a small MNIST classifier that ships with the course
# (`evaluate_restoration(..., frechet="mnist-cnn")`, measured on the same images in the same pass). It
# measures, like FID, whether restorations *look like* real digits, but it is **not** the paper's FID, which uses an
# Inception network: the two have different scales and are never put in one table. The paper's FIDs
# appear in a separate table below, for reference only.

# %%
# Held-out images per task, sized by the device: inpainting costs 101 network passes per image (T = 50), so a
# CPU measures a few hundred (its intervals say how little that pins down) and a GPU thousands; the model
# card has the same protocol on 2,000 test digits (inpainting) and all 10,000 (super-resolution).
n_eval = ({"inpaint": 32, "pixelate": 64} if FAST else {"inpaint": 2000, "pixelate": 10000} if device.type == "cuda"
          else {"inpaint": 200, "pixelate": 500})
models = {"inpaint": R_hole, "pixelate": R_pix}
results = {}
for task, R in models.items():
    x_eval = held_out.float(slice(0, n_eval[task])).to(device)
    results[task] = evaluate_restoration(R, x_eval, batch_size=64, generator=torch.Generator().manual_seed(0),
                                         frechet="mnist-cnn", progress=True, intervals=True)
    assert set(results[task]) == {"Degraded", "Direct", "Algorithm 1", "Algorithm 2"}
    print(f"{task}: measured on the first {n_eval[task]:,} of {len(held_out):,} held-out images")

# %% [markdown]
# The paper's numbers, from `coldlib.experiments.paper_table` where it has them. For inpainting we could
# only find the paper's FIDs (Table 2): its SSIM and RMSE, and every number of its Degraded column, are
# unknown to us, so the tables say "not reported". Algorithm 1 is in neither of the paper's tables. Our
# numbers carry their 95 % bootstrap intervals over the images (Lesson 03), and the lines under each
# table compare rows, and ours with the paper, from those intervals: *ahead* only when they separate.

# %%
PAPER = {
    "inpaint": paper_table("inpaint", "mnist"),  # Table 2, MNIST: FIDs only ("Sampled" = Algorithm 2)
    "pixelate": paper_table("pixelate", "mnist"),  # Table 3, MNIST
}


def paper_cell(paper: dict[str, dict[str, float]], row: str, metric: str) -> str:
    value = paper.get(row, {}).get(metric)
    return "not reported" if value is None else f"{value:.2f}" if metric == "FID" else f"{value:.3f}"


def ours_beside_paper(results, paper: dict[str, dict[str, float]]) -> str:
    """Our SSIM, RMSE, PSNR and FD_MNIST-CNN (with intervals) beside the paper's SSIM and RMSE (no FID here)."""
    check_no_mixing(results)  # refuses a table that would hold FD_MNIST-CNN and Inception FID together
    lines = ["| Column | SSIM | SSIM (paper) | RMSE | RMSE (paper) | PSNR | FD_MNIST-CNN (ours; not FID) |",
             "|---|---|---|---|---|---|---|"]
    for row in results:
        iv = results.intervals[row]
        lines.append(f"| {row} | {iv['SSIM']:.3f} | {paper_cell(paper, row, 'SSIM')} | {iv['RMSE']:.3f} | "
                     f"{paper_cell(paper, row, 'RMSE')} | {iv['PSNR']:.2f} | {iv[FD_MNIST_CNN]:.1f} |")
    return "\n".join(lines)


def paper_fid_table(paper: dict[str, dict[str, float]], rows: list[str]) -> str:
    lines = ["| Column | FID (paper; Inception, not comparable with FD_MNIST-CNN) |", "|---|---|"]
    return "\n".join(lines + [f"| {row} | {paper_cell(paper, row, 'FID')} |" for row in rows])


for task, title in [("inpaint", "Inpainting, MNIST (the paper's Table 2)"),
                    ("pixelate", "Super-resolution, MNIST (the paper's Table 3)")]:
    display(Markdown(f"**{title}**, ours on {n_eval[task]:,} held-out images (95 % bootstrap intervals)\n\n"
                     + ours_beside_paper(results[task], PAPER[task]) + "\n\n"
                     + paper_fid_table(PAPER[task], list(results[task]))))
    print("\n".join(verdicts(results[task].intervals, metrics=("SSIM", "RMSE", FD_MNIST_CNN), paper=PAPER[task])))

# %% [markdown]
# **Our setting is not the paper's**, so read the two sides as a sanity check, not a reproduction:
#
# - **Data.** Both train on MNIST's 60,000-image training split; the paper evaluates on all 10,000 test
#   images, these tables on the first `n_eval` of them (printed below, with the training data each
#   checkpoint records).
# - **Compute.** The paper's MNIST restorers are 56.6M-parameter ConvNeXt UNets trained for 700,000
#   steps of 64 images. Ours are far smaller and trained far shorter (printed below, from each model's
#   config).
# - **Operators.** Our pixelation is the exact block average; the authors' bicubic shrinking without
#   antialiasing gives slightly different degraded images, so even the Degraded row can differ. For
#   inpainting the authors quantise training images to 8 bits (`--discrete`); we do not.
# - **The authors' evaluation.** Their inpainting and super-resolution scripts report as "Sampled" the
#   last *estimate* $R(x_1, 1)$, not Algorithm 2's final $x_0$, and their inpainting "Degraded" is the
#   state after the first sampler update, not $x_T$ ([paper notes, section (e)](paper_notes.md#e-the-authors-code-bugs-and-inefficiencies)). Our
#   table uses $x_T$ and the final $x_0$; the cell after next measures how much the first choice matters.
# - **Metrics.** SSIM and RMSE follow the authors' conventions (SSIM by their own library,
#   `pytorch_msssim`, which averages only windows fully inside the image; Lesson 03). FD_MNIST-CNN
#   is computed on our (small) evaluation set, and Fréchet distances grow as sets shrink: compare them
#   only between rows of the same table.

# %%
held_out_note = held_out.source
for task, loaded in restorers.items():
    config = loaded.config
    train_settings = config.get("train") or {}
    images_per_step = train_settings.get("batch_size", 0) * train_settings.get("grad_accum", 1)
    print(f"{task}:")
    print(f"  our training data: {config['data']}")
    print(f"  our evaluation:    the first {n_eval[task]:,} of {len(held_out):,} held-out images: {held_out_note}")
    print(f"  our restorer:      UNet {unet_preset_name(config['model']) or '(custom)'} with "
          f"{loaded.model.num_parameters():,} parameters, {config['steps']:,} steps of {images_per_step} images "
          f"({'the shipped checkpoint' if loaded.path is not None else 'trained in this session'}); "
          f"{700_000 * 64 / max(1, config['steps'] * images_per_step):,.0f}× fewer training images seen than the paper")
print("paper:               MNIST train (60,000 images), evaluated on the MNIST test split (10,000 images); "
      "ConvNeXt UNet with 56,612,916 parameters, 700,000 steps of 64 images")

# %% [markdown]
# The authors' "Sampled" column against ours, on the eight digits of section 5: RMSE of the last estimate
# $R(x_1, 1)$ and of Algorithm 2's final $x_0 = x_1 - D(\hat x_0, 1) + \hat x_0$. They differ in what
# comes from the input: the final $x_0$ keeps what survives one step of $D$ from $x_1$.

# %%
for task in ("inpaint", "pixelate"):
    traj = runs[task]["Algorithm 2"]
    print(f"{task:8s}: RMSE of the last estimate R(x_1, 1) {rmse(traj.x0_hat[-1], x0):.4f}, "
          f"of the final x_0 {rmse(traj.xt[-1], x0):.4f}")

# %% [markdown]
# Things to look for in your tables. In the paper's Table 3 (super-resolution), Direct is slightly
# ahead of Algorithm 2 on MNIST on every metric, FID included (on CIFAR-10 and CelebA, Algorithm 2 wins on
# FID); with $T = 3$ steps there is little for the sampler
# to do. For inpainting the paper reports only FID, where Algorithm 2 wins (1.61 against 2.24). With a
# short training run every column of ours is worse than the paper's and the order can change.
#
# ## 7. Restoring images that were degraded elsewhere
#
# So far every degraded image came from our own $D$, with a known $t$ (and $z$). A real damaged image
# does not say how damaged it is. `ColdDiffusion.estimate_t(x)` guesses it: for each candidate step $s$
# it restores, $\hat x_0 = R(x, s)$, degrades again, and keeps the $s$ for which $D(\hat x_0, s)$ best
# explains $x$. Then `sample(x, t=t_hat)` starts Algorithm 2 there, each image at its own step. The
# authors' scripts cannot do this: their test functions degrade clean test images themselves and always
# start at $T$, so there is no way in for an image that is already degraded (their issue #20 asks
# exactly this, for snow).
#
# ### 7a. A digit shrunk with PIL
#
# A low-resolution file is what super-resolution is for. We make some the usual way: save the digit as
# an 8-bit image and shrink it with PIL's bicubic filter (which, unlike the authors' operator, does
# antialias), to $16$, $8$ or $4$ pixels a side. To show them at $32 \times 32$ we enlarge them again,
# in two common ways: **nearest** neighbours (big square pixels) or **bicubic** (smooth).

# %%
def pil_resize(x: torch.Tensor, side: int, enlarge: str) -> torch.Tensor:
    """Each image of x (B, 1, 32, 32) in [-1, 1]: to 8 bits, shrunk to side × side (PIL bicubic), and enlarged
    back to 32 × 32 with PIL's ``enlarge`` filter ("nearest" or "bicubic")."""
    back = {"nearest": Image.Resampling.NEAREST, "bicubic": Image.Resampling.BICUBIC}[enlarge]
    out = []
    for img in x.cpu():
        pixels = ((img[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        small = Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC)
        out.append(torch.from_numpy(np.asarray(small.resize((32, 32), back)).copy()))
    return (torch.stack(out)[:, None].float() / 127.5 - 1).to(x.device)


def mean_error(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float((x - reference).abs().mean())


digits = x0[:4]
sides = {16: 1, 8: 2, 4: 3}  # blocks of 32/side px: the step of our pixelation with the same block size
low_res, restored_sr = {}, {}
for enlarge in ("nearest", "bicubic"):
    for side, t_block in sides.items():
        x_low = pil_resize(digits, side, enlarge)
        t_hat = R_pix.estimate_t(x_low)  # one guess per image, in 1..T
        out = R_pix.sample(x_low, t=t_hat, method="improved")
        assert torch.allclose(D_pix(out, t_hat), D_pix(x_low, t_hat), atol=1e-4)  # see below
        low_res[enlarge, side], restored_sr[enlarge, side] = x_low, out
        print(f"{side:2d} px, enlarged {enlarge:7s}: our block size is t = {t_block}; estimate_t says "
              f"{t_hat.tolist()}; mean |x - x0|: as given {mean_error(x_low, digits):.3f}, "
              f"after Algorithm 2 from t_hat {mean_error(out, digits):.3f}")

# %%
side = 8
rows = [("clean x0", digits)]
for enlarge in ("nearest", "bicubic"):
    rows += [(f"PIL {side} px, {enlarge}", low_res[enlarge, side]), ("Alg. 2 from t_hat", restored_sr[enlarge, side])]
projected = R_pix.sample(D_pix(low_res["bicubic", side], sides[side]), t=sides[side], method="improved")
rows.append((f"bicubic, D(x, {sides[side]}) first", projected))
labelled_rows(rows, [f"digit {b}" for b in range(len(digits))], f"digits shrunk to {side} × {side} px by PIL, restored",
              scale=1.0)

# %% [markdown]
# What you should see with a well-trained restorer (the FAST-mode stand-in guesses less reliably):
#
# - **Big pixels (nearest).** These are close to our forward process: blocks of one value each, only
#   the values come from PIL's filter instead of a block average. `estimate_t` finds the block size
#   ($t = 1, 2, 3$ for 16, 8, 4 px), and Algorithm 2 restores them well: about as well as our own
#   $D(x_0, t)$ at 16 and 8 px, less well at 4 px: PIL's shrinking filter spans several blocks, so its
#   values differ most from block averages when the blocks are large.
# - **Smooth (bicubic).** The guess is often too small: a smooth image is one that a *mild* pixelation
#   hardly changes, so $D(\hat x_0, 1)$ explains it well. And Algorithm 2 barely improves it, or makes
#   it worse. The `assert` above is the reason: for pixelation Algorithm 2 keeps $D(x_0, \hat t) = D(x, \hat t)$
#   exactly (Exercise 2 proves it), and it keeps the smooth within-block variation of the input, which
#   our $D$ never produces and the sampler never removes.
# - **The fix** uses what we know about the file, its size: $8$ px means blocks of 4, $t = 2$. Since $D$
#   is a projection, $D(x, 2)$ puts the image on our forward path, and Algorithm 2 from there gives the
#   last row. It can only be as good as PIL's block values, which are not exact block averages.
#
# ### 7b. A digit with a painted grey blob
#
# Now inpainting. We paint a soft grey disc (value 0, what our holes fade to) of a different radius on
# each digit. A disc with a 1.5-pixel soft edge is not one of our masks: those are products of
# Gaussians. For a random-position restorer there is one more thing to supply: the hole's position $z$,
# which `estimate_t` and the sampler need. We know where we painted, and section 1 says how to turn a
# centre into an offset: $z = (31 - \text{row}, 31 - \text{column})$.

# %%
centres = torch.tensor([[12, 14], [17, 18], [15, 11], [19, 16]])
radii = torch.tensor([3.0, 4.0, 5.0, 6.0])
yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
distance = ((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2).sqrt()  # (4, 32, 32)
blob = (1 - ((distance - radii[:, None, None]) / 1.5).clamp(0, 1))[:, None].to(device)  # 1 inside, 0 outside
x_blob = digits * (1 - blob)  # painted mid-grey
z_blob = (31 - centres).to(device)  # our hole's centre on the blob's centre

t_hat = R_hole.estimate_t(x_blob, z=z_blob)
starts = {"Alg. 2 from t_hat": t_hat, "Alg. 2 from T": torch.full_like(t_hat, T_hole),
          "Alg. 2 from t_hat // 4": (t_hat // 4).clamp(min=1)}
blob_out = {name: R_hole.sample(x_blob, t=t0, method="improved", z=z_blob) for name, t0 in starts.items()}
blob_out["Direct at t_hat"] = R_hole.sample(x_blob, t=t_hat, method="direct", z=z_blob)
print(f"blob radii {radii.tolist()} px -> estimate_t: {t_hat.tolist()} (T = {T_hole})")
print(f"mean |x - x0| as painted: {mean_error(x_blob, digits):.4f}")
for name, out in blob_out.items():
    print(f"  {name:22s} {mean_error(out, digits):.4f}")
assert t_hat.shape == (4,) and int(t_hat.min()) >= 1 and int(t_hat.max()) <= T_hole

# %%
labelled_rows([("clean x0", digits), ("painted blob", x_blob), *blob_out.items()],
              [f"radius {r:g} px" for r in radii.tolist()], "grey blobs painted on held-out digits, restored",
              scale=1.0)

# %% [markdown]
# With a well-trained restorer the estimates grow with the blob's radius, and the starting step
# matters in both directions:
#
# - **Too large** ($T$): Algorithm 2 believes the image was faded by $m_T$, a hole much bigger than the
#   blob, and adds $(1 - m_T) \odot \hat x_0$ on top of pixels that were never faded: they count
#   twice. The background around the blob goes towards $-2$ and the strokes towards $2$, hence the
#   largest error of all. The picture hides most of it, because it clips to $[-1, 1]$ and MNIST is
#   nearly black and white; on a photo the damage would show.
# - **Too small**: the sampler only adds back the rings of a hole smaller than the blob, so a grey rim
#   or core is left.
# - **Direct** uses the step only as the network's input, and redraws the whole digit, strokes
#   outside the blob included.
#
# ## 8. Restore your own image
#
# Now a file of yours, for the super-resolution restorer (the inpainting one needs the hole's position
# $z$, which a file does not carry). `UploadRestorer` reads it as section 7 read PIL's digits: to grey,
# cropped to a square, resized to 32 px (a small file is enlarged by whole blocks, nearest neighbour),
# and it lists every change it made; then `estimate_t`, Direct and Algorithm 2 from $\hat t$. Until you
# upload, it shows a bundled file made outside coldlib: a held-out digit that PIL shrank to 8 × 8 px.
# MNIST digits are light on dark, so pass `invert=True` for a dark pen on white paper. A file it cannot
# read without guessing (not an image, too large, CMYK, transparent pixels) is refused with the reason.

# %%
from coldlib.widgets import UploadRestorer

own = UploadRestorer(R_pix, size=32, example="digit_8px.png")
display(own)  # with a live kernel: the upload button and three pictures; they follow your uploads
mine = own.result
print(f"{mine.name}: estimated step {mine.t_hat} of {T_pix} (8 px means blocks of 4: t = 2)")
t_mine = mine.t_hat
assert torch.allclose(D_pix(mine.improved, t_mine), D_pix(mine.x, t_mine), atol=1e-4)  # the blocks kept
own.figure()  # a static copy of the pictures, for viewers without a live kernel

# %% [markdown]
# The `assert` is section 7's: Algorithm 2 keeps the block means of what it was given, whatever the
# network, so the guess of $t$ decides how much it may change. For a photo of a digit you drew, crop it
# close to the digit first: MNIST digits fill their frame up to a thin margin, and a small digit in a
# wide frame is not what the restorer was trained on.
#
# ## Exercises
#
# 1. **Centred holes are one particular $z$.** Check that `D_centred(x, t)` equals `D_hole(x, t, z)` with
#    $z = (16, 16)$ for every image. Then restore centred holes with the random-position restorer by
#    passing that $z$, and compare its error with random holes.
# 2. **Algorithm 2 keeps the blocks.** For pixelation, show that $D(x_{s-1}, s) = D(x_s, s)$ at every
#    step of Algorithm 2 (use the projection property of section 2), and conclude that the output
#    satisfies $D(x_0, T) = x_T$ exactly. Check it numerically. Do Direct and Algorithm 1 satisfy it?
# 3. **A black blob.** Paint the blobs of section 7b with $-1$ (MNIST's background) instead of grey, and
#    run `estimate_t` and Algorithm 2 again. What does the restorer do, and why?
# 4. **(Open)** Find the blob's position automatically instead of passing it: for example, look for the
#    grey pixels (values near 0), or try a grid of offsets $z$ and keep the one whose `estimate_t` fits
#    best.
#
# Solutions to 1–3 follow; try first.

# %%
# Solution 1. The centred hole is the random one with the window in the middle of the canvas.
z_middle = torch.full((len(x0), 2), 16, device=device)
for t_check in [1, 25, T_hole]:
    assert torch.allclose(D_centred(x0, t_check), D_hole(x0, t_check, z_middle), atol=1e-6)
x_centred = D_centred(x0, T_hole)
for name, (xT, zz) in {"centred holes": (x_centred, z_middle),
                       "random holes": (x_T["inpaint"], z_show)}.items():
    out = R_hole.sample(xT, method="improved", z=zz)
    print(f"{name:13s}: mean |x - x0| degraded {mean_error(xT, x0):.4f}, after Algorithm 2 {mean_error(out, x0):.4f}")

# %% [markdown]
# A centred hole at $t = T$ covers the middle of the digit, where most strokes are, so it is usually
# harder than a random one, which often falls partly on background or outside the image. The restorer
# was trained on random holes, so it has seen centred ones too: $z = (16, 16)$ is one of the offsets it
# was trained on.

# %%
# Solution 2. D(., s) applied to Algorithm 2's update: D(x_s, s) - D(D(x̂, s), s) + D(D(x̂, s - 1), s)
#   = D(x_s, s) - D(x̂, s) + D(x̂, s) = D(x_s, s)        (projection: D(D(y, a), b) = D(y, max(a, b))).
# Applying D(., T) instead (T >= s) gives D(x_{s-1}, T) = D(x_s, T), so D(x_0, T) = D(x_T, T) = x_T.
r = runs["pixelate"]
for name, out in [("Direct", r["Direct"]), ("Algorithm 1", r["Algorithm 1"].xt[-1]),
                  ("Algorithm 2", r["Algorithm 2"].xt[-1])]:
    print(f"{name:12s} max |D(x_0, T) - x_T| = {(D_pix(out, T_pix) - x_T['pixelate']).abs().max():.2e}")
assert torch.allclose(D_pix(r["Algorithm 2"].xt[-1], T_pix), x_T["pixelate"], atol=1e-5)

# %% [markdown]
# Only Algorithm 2 keeps the $4 \times 4$ block means of its input; Direct and Algorithm 1 return the
# network's image, whose block means are only approximately right. A super-resolved image that
# shrinks back to exactly the low-resolution input is called *consistent*; here it comes for free.

# %%
# Solution 3. A black blob: the erased strokes look like background.
x_black = digits * (1 - blob) - blob  # painted -1
t_black = R_hole.estimate_t(x_black, z=z_blob)
out_black = R_hole.sample(x_black, t=t_black, method="improved", z=z_blob)
print(f"estimate_t for black blobs: {t_black.tolist()} (grey blobs: {t_hat.tolist()})")
print(f"mean |x - x0|: painted {mean_error(x_black, digits):.4f}, after Algorithm 2 {mean_error(out_black, digits):.4f}")
show_images(torch.cat([x_black, out_black]), nrow=4, title="black blobs (top) and Algorithm 2 (bottom)")

# %% [markdown]
# A black blob on MNIST erases the strokes it covers and leaves pixels that look exactly like
# background. Nothing in the image says a hole is there, and the restorer was never told $z$ (only the
# sampler uses it), so it has no reason to redraw anything; the estimate of $t$ stays small. The paper's
# fade to grey is what makes the hole visible on MNIST. For images without a uniform background, such as
# faces, the difference matters less.
#
# ## Check your understanding
#
# 1. Why must the sampler be given $z$ for random-position holes, but not for centred holes or
#    pixelation?
#    <details><summary>Answer</summary>Algorithm 2 subtracts $D(\hat x_0, s, z)$ from $x_s$; with another
#    $z$ the difference would be dominated by the hole moving, not by one step of fading. Centred holes
#    and pixelation are deterministic: they have no random ingredient (`draw_z` returns `None`).</details>
# 2. In Algorithm 2 for inpainting, what happens to a pixel the hole never reached?
#    <details><summary>Answer</summary>Nothing: $x_{s-1} = x_s + (m_{s-1} - m_s) \odot \hat x_0$, and
#    $m_{s-1} = m_s = 1$ there. Only the rings that a step faded receive the estimate.</details>
# 3. What does `estimate_t` compare, and why does it need the restorer rather than $D$ alone?
#    <details><summary>Answer</summary>For each candidate $s$ it compares $D(R(x, s), s)$ with $x$. Without
#    a clean estimate there is nothing to degrade: with $R$ replaced by the identity, the mildest step
#    always fits best (for masks $|D(x, s) - x| = |(1 - m_s) \odot x|$ can only grow with $s$), whatever
#    the image.</details>
# 4. Why does Algorithm 2 from $t = T$ damage a digit whose grey blob is small?
#    <details><summary>Answer</summary>It assumes the whole area of the large hole $m_T$ was faded, and adds
#    $(1 - m_T) \odot \hat x_0$ there, also on visible pixels, which then count twice (the background goes
#    below $-1$).</details>
# 5. Why can't the authors' code restore a photo that is already snowy or blurry (their issue #20)?
#    <details><summary>Answer</summary>Their test routines take clean test images, degrade them to $T$
#    themselves and sample from there; there is no entry point for an external image, no way to start at
#    another step, and no way to estimate that step. `coldlib` accepts any $x$, a per-image $t$, and
#    `estimate_t`.</details>
#
# ## Summary
#
# - Inpainting multiplies by a product of growing Gaussian holes that fade to grey; super-resolution
#   replaces $2^t \times 2^t$ blocks by their mean. Both are closed forms in `coldlib`.
# - A random hole position $z$ is drawn once and handed to the degradation, every sampler and the
#   evaluation; training draws a fresh one for every image.
# - For masks, Algorithm 2 fills the hole ring by ring and never changes visible pixels; for pixelation
#   it keeps the input's block means exactly.
# - Our tables put our SSIM, RMSE, PSNR and FD_MNIST-CNN beside the paper's Tables 2 and 3 (the paper has
#   only FIDs for inpainting), with far less data and compute, and say so.
# - `estimate_t` plus a per-image starting step restores images degraded elsewhere, as long as the
#   damage resembles our $D$; a smooth enlargement or a hidden hole breaks that assumption.
#   `UploadRestorer` does the same for a file you upload.
#
# ## References
#
# - A. Bansal et al. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392) (inpainting, Table 2; super-resolution, Table 3).
#   Code: [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models);
#   its [issue #20](https://github.com/arpitbansal297/Cold-Diffusion-Models/issues/20) asks how to restore
#   images that are already degraded.
# - J. Ho, A. Jain, P. Abbeel. *Denoising Diffusion Probabilistic Models.* NeurIPS 2020,
#   [arXiv:2006.11239](https://arxiv.org/abs/2006.11239).
# - M. Heusel et al. *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium*
#   (FID, the Fréchet distance that FD_MNIST-CNN borrows). NeurIPS 2017,
#   [arXiv:1706.08500](https://arxiv.org/abs/1706.08500).
# - Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli. *Image Quality Assessment: From Error
#   Visibility to Structural Similarity* (SSIM). IEEE Transactions on Image Processing, 2004.
#
# Next: [05 · Desnowification and colorization](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/05_snow_and_decolorization.ipynb).

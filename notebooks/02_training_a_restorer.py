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
# # 02 · Training a restoration network
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/02_training_a_restorer.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/02_training_a_restorer.ipynb)
#
# Lesson 01 built the degradations $D(x_0, t)$. This lesson trains the other half of cold diffusion: a
# network $R_\theta(x_t, t)$ that undoes them. The objective is plain regression, and the paper's
# recipe fits in four lines. We write those lines, check them against `coldlib`, look at the network,
# train it for a few hundred steps, and see how a run is saved and resumed. Then we load the course's
# trained MNIST deblurring model (or train a short stand-in if it is not there) and watch it restore
# held-out digits at every step $t$.
#
# **Learning objectives**
# - Write the cold diffusion training objective: draw $t \sim \mathcal U\{1, \dots, T\}$, degrade, and
#   minimise $\|R_\theta(D(x_0, t), t) - x_0\|_1$.
# - Explain what the UNet receives (the degraded image *and* the step $t$) and how $t$ enters it.
# - Run `coldlib`'s `Trainer`, read a loss curve, and save and resume a run exactly.
# - Use the train-or-load pattern (`coldlib.training.train_or_load`) and the command-line trainer
#   for full-quality runs on a GPU.
#
# **Prerequisites:** [01 · Degradations](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/01_degradations.ipynb);
# a PyTorch training loop (loss, `backward`, optimiser step).
#
# **Estimated time:** 45–60 minutes of reading and exercises.
#
# **Run time:** 35 s for the whole lesson in full mode on a 2-core CPU (Intel(R) Xeon(R) Processor), no GPU, measured by `make render` on 2026-12-07.

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
import tempfile
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from coldlib.data import check_held_out, load_images
from coldlib.diffusion import ColdDiffusion
from coldlib.env import fast_mode, lesson_device, seed_everything
from coldlib.experiments import preset
from coldlib.plotting import labelled_rows
from coldlib.shipped import checkpoint_dir
from coldlib.training import TrainConfig, Trainer, train_or_load
from coldlib.unet import UNET_PRESETS, UNet, timestep_embedding, unet_preset, unet_preset_name
from coldlib.widgets import frame_slider, frames_over_t

FAST = fast_mode()  # COLDLIB_FAST=1 (CI) shrinks the live training run and the fallback run of section 5
generator = seed_everything(0)
device = lesson_device(FAST)  # in FAST mode on a CPU: one thread (faster on a busy, shared CI machine)
print(f"device {device} · FAST={FAST}")

mnist = load_images("mnist", split="train")  # prints what the data is: read it
D = preset("blur", "mnist")  # the paper's MNIST deblurring setting: T = 20 steps of an 11-tap, σ = 7 blur
print(D)

# %% [markdown]
# ## 1. The objective, in four lines
#
# A restorer is trained on pairs it makes itself. Take a clean image $x_0$, pick a step $t$ uniformly
# from $\{1, \dots, T\}$, degrade it to $x_t = D(x_0, t)$, and ask the network for $x_0$ back:
#
# $$\min_\theta\; \mathbb E_{x_0 \sim \text{data},\; t \sim \mathcal U\{1..T\}}\;
# \big\| R_\theta\big(D(x_0, t),\, t\big) - x_0 \big\|_1 .$$
#
# Three choices are worth noticing. The network predicts the **clean image** (there is no noise to
# predict). The loss is **L1**, the mean absolute error, which the paper uses for every task. And the
# network is told the **step** $t$: the same blurry digit needs more sharpening at $t = 20$ than at
# $t = 2$, and a single network serves every step. In code, for a batch with one $t$ per image:

# %%
x0 = mnist.float(slice(0, 16)).to(device)  # 16 clean digits in [-1, 1]
model = UNet(unet_preset("tiny", channels=1)).to(device)

t = torch.randint(1, D.T + 1, (len(x0),), generator=generator).to(device)  # t ~ U{1..T}, one per image
x_t = D(x0, t)  # degrade each image to its own step
x0_hat = model(x_t, t)  # the restorer's estimate of the clean image
loss = (x0_hat - x0).abs().mean()  # L1 over pixels and images

diffusion = ColdDiffusion(model, D, loss="l1")
assert torch.allclose(loss, diffusion.loss(x0, t), atol=1e-6)
print(f"steps drawn: {t.tolist()}\nL1 loss of the untrained network: {loss.item():.4f} "
      f"(== ColdDiffusion.loss with the same t)")

# %% [markdown]
# `ColdDiffusion(model, D).loss(x0)` draws the steps itself; given `t` it uses ours, which is how the
# `assert` compares the two. The degradation runs without gradients: only the network learns.
# (Degradations with a random ingredient, such as a hole position, also take a `z`; blur has none.)
#
# ## 2. The network: a small UNet that also sees $t$
#
# `coldlib.unet.UNet` is the DDPM-style UNet: residual blocks (GroupNorm, SiLU, 3×3 convolutions) on
# the way down, a bottleneck with one self-attention block, and the way back up with skip connections
# from the matching resolution. Its input and output have the image's shape. The presets differ only in
# width and depth:

# %%
for name in UNET_PRESETS:
    config = unet_preset(name, channels=1)
    print(f"{name:6s} {UNet(config).num_parameters():>12,} parameters   base width {config.base:3d}, "
          f"width multipliers {config.mults}, {config.blocks_per_level} block(s) per level, "
          f"attention {'yes' if config.attention else 'no'}")
print("the paper's MNIST network (a ConvNeXt UNet): 56,612,916 parameters")

# %% [markdown]
# **How $t$ gets in.** The step is turned into a vector of sines and cosines at geometrically spaced
# frequencies (the Transformer's positional encoding, as in DDPM), passed through a two-layer MLP, and
# *added* to the feature maps of every residual block, one value per channel. Each block can therefore
# behave differently at different $t$. Here are the raw features for $t = 0, \dots, 20$. The fast
# waves (left of each half) tell neighbouring steps apart; the slower ones change smoothly, so nearby
# steps get similar vectors. The frequencies are the usual ones, made for up to thousands of steps: with
# $T = 20$ the slowest waves barely move.

# %%
features = timestep_embedding(torch.arange(D.T + 1), dim=32)  # what the tiny UNet's MLP receives
fig = plt.figure(figsize=(7, 2.6))
plt.close(fig)
ax = fig.add_subplot()
image = ax.imshow(features.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax.set(xlabel="feature (16 sines, then 16 cosines; frequency falls left to right)", ylabel="step t",
       title="sinusoidal timestep features")
fig.colorbar(image, ax=ax)
fig

# %% [markdown]
# ## 3. A short training run
#
# `coldlib.training.Trainer` is the paper's loop: Adam, batches drawn at random, $t \sim \mathcal
# U\{1..T\}$ per image, the loss above, and an exponential moving average (EMA) of the weights, which
# is what gets sampled and evaluated. The paper trains with learning rate $2\cdot10^{-5}$ for 700,000
# steps. We train for a few hundred steps (a few dozen in FAST mode), so we use a larger rate. The network is
# sized by the device: the small UNet of the shipped models on a GPU, the tiny one (less than half the cost
# per image) on a CPU, which keeps this lesson within ten minutes there.

# %%
live_steps, live_model, live_batch = (30, "tiny", 16) if FAST else (300, "small" if device.type == "cuda" else "tiny", 32)
torch.manual_seed(0)
live = ColdDiffusion(UNet(unet_preset(live_model, 1)), D)
trainer = Trainer(live, mnist.images, TrainConfig(steps=live_steps, batch_size=live_batch, grad_accum=1, lr=4e-4),
                  device=device, data_note=mnist.source)
losses = trainer.train()
print(f"{trainer.step} steps of batch {live_batch} with the {live_model} UNet; L1 loss "
      f"{losses[0]:.3f} at the first step, {sum(losses[-10:]) / 10:.3f} over the last 10")
assert trainer.step == live_steps and len(losses) == live_steps

# %%
def running_mean(values: list[float], window: int) -> torch.Tensor:
    v = torch.tensor(values)
    window = max(1, min(window, len(v)))
    return v.unfold(0, window, 1).mean(dim=1)


fig = plt.figure(figsize=(6, 3))
plt.close(fig)
ax = fig.add_subplot()
ax.plot(range(1, len(losses) + 1), losses, lw=0.8, alpha=0.5, label="per step")
window = max(1, len(losses) // 10)
ax.plot(range(window, len(losses) + 1), running_mean(losses, window), lw=2, label=f"mean of {window} steps")
ax.set(xlabel="optimizer step", ylabel="L1 loss", title=f"training the {live_model} UNet on MNIST blur")
ax.legend()
ax.grid(alpha=0.3)
fig

# %% [markdown]
# The loss falls fast at first: the network learns the easy part, the average digit and the mean grey
# that the blur preserves. It then falls slowly. The curve is noisy because every batch mixes easy and
# hard steps $t$ (Exercise 2 measures the error step by step). A few hundred steps give blurry but
# recognisable restorations; the shipped model trained for thousands.
#
# ## 4. Saving and resuming a run
#
# Long runs get interrupted. Given an `out_dir`, the trainer writes `state.safetensors` every
# `checkpoint_every` steps and at the end: the weights, the EMA weights, Adam's moments, the step, the
# losses so far and the state of the trainer's random-number generator. A new `Trainer` on the same
# folder calls `resume()` and continues *as if nothing had happened*. Below: one run straight through
# six steps, and one run that stops after three, is thrown away, and is resumed by a fresh trainer.

# %%
resume_config = TrainConfig(steps=6, batch_size=8, grad_accum=1, lr=4e-4, checkpoint_every=3)


def new_trainer(out_dir: Path | None = None) -> Trainer:
    torch.manual_seed(1)  # the same initial weights every time (resume overwrites them anyway)
    return Trainer(ColdDiffusion(UNet(unet_preset("tiny", 1)), D), mnist.images, resume_config,
                   out_dir=out_dir, device=device)


straight = new_trainer()
straight.train(progress=False)

with tempfile.TemporaryDirectory() as run_dir:
    first = new_trainer(Path(run_dir))
    first.train(3, progress=False)  # stop after 3 steps, as if the machine went away
    print("the run folder holds:", sorted(p.name for p in Path(run_dir).iterdir()))
    del first

    second = new_trainer(Path(run_dir))  # a new process would build the same objects
    assert second.step == 0 and second.resume() and second.step == 3
    print(f"resumed at step {second.step}")
    second.train(progress=False)  # continue to resume_config.steps

tolerance = dict(rtol=1e-4, atol=1e-5) if device.type == "cpu" else dict(rtol=1e-2, atol=1e-3)  # see below
assert second.step == straight.step == 6
assert torch.allclose(torch.tensor(second.losses), torch.tensor(straight.losses), **tolerance)
for (key, a), b in zip(straight.ema.state_dict().items(), second.ema.state_dict().values()):
    assert torch.allclose(a, b, **tolerance), key
print("losses, stopped and resumed:", [f"{v:.4f}" for v in second.losses])
print("losses, straight through:   ", [f"{v:.4f}" for v in straight.losses])

# %% [markdown]
# The two runs agree step for step: same batches, same steps $t$, same weights. (On a GPU the last
# digits can differ, because some GPU kernels are not bit-for-bit deterministic and the trainer uses
# bf16 mixed precision there; the check is looser on a GPU for that reason.) The command-line
# trainer of section 7 uses exactly this: run the same command again and it picks up where it stopped.
#
# ## 5. Train or load: the course's trained model
#
# A good MNIST deblurring model takes a few thousand steps, far too long for a lesson on a CPU. The
# course ships one, trained with the command shown in section 7, in `data/checkpoints/` with its
# SHA-256 in `registry.json`. `train_or_load` loads it if it is registered, and verifies the hash
# first. If it is not (a fork without the files, say), it says why and trains a fresh model with the
# same recipe, here a short run, so everything below still works, only less well. A registered file
# that is damaged is an error, not a silent retrain.

# %%
fallback = dict(model="tiny", steps=40, batch_size=16, grad_accum=1) if FAST else \
    dict(model="small", steps=1000, batch_size=32, grad_accum=2)
restorer = train_or_load("mnist_blur", task="blur", dataset="mnist", device=device, **fallback)
R = restorer.diffusion()  # ColdDiffusion(restorer.model, restorer.degradation)
shipped = restorer.path is not None
print(f"checkpoint folder: {checkpoint_dir()} · {'shipped model' if shipped else 'trained just now'}: "
      f"{restorer.model.num_parameters():,} parameters, {restorer.config['steps']:,} steps")
assert R.degradation.config() == D.config()

# %% [markdown]
# ## 6. Restoration at every step $t$
#
# Now the restorer on digits it has never seen. MNIST follows the paper's protocol: training on the
# official 60,000-image training split, evaluation on the 10,000 test images (only a data folder holding
# the test split alone makes the course fall back to test images 0–7,999 for training and 8,000–9,999
# held out, and then says `TEST-ONLY FALLBACK`). `check_held_out` proves, from the records the images and
# the checkpoint carry, that none of these digits was trained on. We degrade six held-out digits to every
# $t$ and restore each one in a single pass,
# $\hat x_0 = R(x_t, t)$: this is the "direct" restoration; Lesson 03 adds the step-by-step samplers.

# %%
held_out = load_images("mnist", split="test")
check_held_out(restorer, held_out, name="this restorer")  # raises if any of them was trained on
x = held_out.float(slice(0, 6)).to(device)

xt_frames = frames_over_t(D, x)[1:]  # (T, B, 1, 32, 32): t = 1..T
steps = torch.arange(1, D.T + 1, device=device).repeat_interleave(len(x))
with torch.no_grad():
    restored = restorer.model(xt_frames.flatten(0, 1), steps).view_as(xt_frames)  # all T·B at once
errors = (restored - x).abs().mean(dim=(1, 2, 3, 4))  # mean |R(x_t, t) - x0| per t
degraded_errors = (xt_frames - x).abs().mean(dim=(1, 2, 3, 4))
for t_show in [1, 5, 10, 20]:
    print(f"t = {t_show:2d}: mean |x_t - x0| = {degraded_errors[t_show - 1]:.3f}, "
          f"mean |R(x_t, t) - x0| = {errors[t_show - 1]:.3f}")

# %% [markdown]
# Move the slider: every frame was computed above, so it only swaps pictures.

# %% tags=["nbval-ignore-output"]
frame_slider({"degraded x_t = D(x0, t)": xt_frames, "restored R(x_t, t)": restored,
              "clean x0": x.expand_as(xt_frames)},
             titles=[f"t = {s} / {D.T} · mean |R(x_t, t) - x0| = {e:.3f}" for s, e in zip(range(1, D.T + 1), errors)],
             value=D.T // 2 - 1)

# %% [markdown]
# The same thing as a static figure, for readers without a live kernel: for each digit, the degraded
# input on one row and the restoration below it.


# %%
t_columns = [1, 2, 3, 5, 10, 15, 20]
columns = [s - 1 for s in t_columns]  # frame k holds t = k + 1
rows = []
for b in range(4):
    rows += [(f"digit {b}: x_t", xt_frames[columns, b]), ("R(x_t, t)", restored[columns, b])]
labelled_rows(rows, [f"t={s}" for s in t_columns],
              "held-out digits: degraded (above) and restored in one pass (below)", label_width=1.4)

# %% [markdown]
# At small $t$ the blur is mild and the restoration is almost perfect. By $t = 20$ the 20 blurs have
# left little more than a grey smudge, and a single pass has to guess a digit from it: the restorations
# get smoother and more generic. Lesson 03 shows that going back step by step does not fix this for
# blur (the paper's Table 1 has the direct restoration ahead on SSIM and RMSE) and explains why the
# improved sampler is still the one to use.
#
# ## 7. Train at full quality (a GPU helps)
#
# The shipped model was trained with the command-line trainer, `python -m coldlib.training`. It is the
# same `Trainer` as above, plus an evaluation on held-out images at the end and an export of the EMA
# weights with their config. Its general form is
#
# ```bash
# python -m coldlib.training --task blur --dataset mnist --model small --steps <N> [recipe flags] \
#     --out runs/mnist_blur --export data/checkpoints/mnist_blur
# ```
#
# and `python -m coldlib.training --help` lists every flag. The exact command for the recipe of the model
# loaded in section 5, read from its config:

# %%
train_settings = {**asdict(TrainConfig()), **(restorer.config.get("train") or {})}  # defaults for missing keys
size = unet_preset_name(restorer.config["model"]) or "small"
command = (f"python -m coldlib.training --task blur --dataset mnist --model {size} "
           f"--steps {restorer.config['steps']} --batch-size {train_settings['batch_size']} "
           f"--grad-accum {train_settings['grad_accum']} --lr {train_settings['lr']:g} "
           f"--ema-start {train_settings['ema_start']} --ema-every {train_settings['ema_every']} "
           f"--ema-decay {train_settings['ema_decay']:g} --out runs/mnist_blur --export data/checkpoints/mnist_blur")
print(command)
if "wall_seconds" in train_settings:
    print(f"training time recorded (the last session only, if the run was resumed): "
          f"{train_settings['wall_seconds']:,.0f} s on {restorer.config.get('hardware') or 'this machine'}")

# %% [markdown]
# What the command does, and how to run it yourself:
#
# - **Where.** From the repository root, in the course's environment. In Colab, choose *Runtime →
#   Change runtime type → GPU*, run this notebook's setup cell, then `!cd /content/cold-diffusion-course
#   && python -m coldlib.training ...`. The device is picked automatically (CUDA, then Apple's MPS, then
#   the CPU); `--device cuda` forces it.
# - **Speed on a GPU.** Mixed precision (bf16) is switched on automatically where the GPU supports it,
#   and `--compile` adds `torch.compile`. On a CPU it is slow: the restorer loaded above records in its
#   sidecar how long its steps took and on what hardware (printed at the end of this section).
# - **Interruptions.** `runs/mnist_blur/state.safetensors` is rewritten every `--checkpoint-every` steps
#   (atomically: a crash never leaves a half-written file). **Re-run the same command to resume**; to
#   train longer, re-run it with a larger `--steps`.
# - **The end of a run.** The EMA weights are evaluated on `--eval-images` held-out images (the columns
#   of the paper's table, Lesson 03) into `runs/mnist_blur/report.json`, and exported to
#   `data/checkpoints/mnist_blur.safetensors` + `.json`, with the data, the steps, the settings and the
#   metrics.

# %%
took = restorer.config["train"]
print(f"the restorer above: {restorer.config['steps']:,} steps of {took['batch_size'] * took['grad_accum']} images in "
      f"{took['wall_seconds']:,.0f} s ({took['wall_seconds'] / restorer.config['steps']:.2f} s per step) on "
      f"{restorer.config.get('hardware') or 'unrecorded hardware'}")

# %% [markdown]
# - **Shipping it.** `coldlib.shipped.register_shipped("mnist_blur",
#   "data/checkpoints/mnist_blur.safetensors", task="blur", dataset="mnist")` records its SHA-256 in
#   `registry.json`; from then on `train_or_load("mnist_blur", ...)` loads it. Set the environment
#   variable `COLDLIB_CHECKPOINT_DIR` to keep your own checkpoints elsewhere.
#
# For the paper's own scale, use `--model paper`, `--lr 2e-5` and `--steps 700000`: days on one GPU. The
# `paper` preset (34.4M parameters, dropout 0.1) is sized like the authors' *other* network, the 35.8M DDPM
# UNet they use for CIFAR-10; their MNIST network, printed above, is a 56.6M ConvNeXt UNet, which `coldlib`
# does not reproduce block for block.
#
# ## Exercises
#
# 1. **L2 instead of L1.** `ColdDiffusion(model, D, loss="l2")` uses the mean squared error. Write it by
#    hand for the batch of section 1 and check it against the library, as we did for L1.
# 2. **Which steps are hard?** Using `xt_frames` and `restored` from section 6, plot the restorer's
#    mean error $|R(x_t, t) - x_0|$ and the degraded image's error $|x_t - x_0|$ against $t$. Where
#    does the restorer help most, relative to the damage?
# 3. **Does the network use $t$?** Restore the same $x_t$ while lying about its step: pass $t = 1$ or
#    $t = T$ instead of the true one. Predict first which lie hurts more for a mildly blurred image.
# 4. **(Open)** Train the live run of section 3 on the pixelation preset, `preset("pixelate", "mnist")`
#    ($T = 3$). Does the loss fall faster or slower than for blur, and why might that be?
#
# Solutions to 1–3 follow; try first.

# %%
# Solution 1. L2: the same four lines with a square instead of an absolute value.
l2 = ((model(x_t, t) - x0) ** 2).mean()
assert torch.allclose(l2, ColdDiffusion(model, D, loss="l2").loss(x0, t), atol=1e-6)
print(f"L2 loss of the untrained tiny network: {l2.item():.4f}")

# %%
# Solution 2. The restorer's error grows with t, but much more slowly than the damage it undoes.
fig = plt.figure(figsize=(6, 3))
plt.close(fig)
ax = fig.add_subplot()
t_axis = range(1, D.T + 1)
ax.plot(t_axis, degraded_errors.cpu(), marker="o", ms=3, label="degraded |x_t - x0|")
ax.plot(t_axis, errors.cpu(), marker="o", ms=3, label="restored |R(x_t, t) - x0|")
ax.set(xlabel="t", ylabel="mean absolute error", title="error of one restoration pass, by step")
ax.legend()
ax.grid(alpha=0.3)
for k in [0, D.T // 2 - 1, D.T - 1]:
    print(f"t = {k + 1:2d}: degraded error {degraded_errors[k]:.3f} -> restored {errors[k]:.3f} "
          f"({errors[k] / degraded_errors[k]:.0%} of it left)")
fig

# %%
# Solution 3. Tell the restorer the wrong step for a mildly blurred image (t = 2).
true_t = 2
x_mild = xt_frames[true_t - 1]
with torch.no_grad():
    for claimed in [1, true_t, D.T]:
        guess = restorer.model(x_mild, torch.full((len(x_mild),), claimed, device=device))
        print(f"x_t at t = {true_t}, restorer told t = {claimed:2d}: mean |R - x0| = {(guess - x).abs().mean():.3f}")

# %% [markdown]
# With a well-trained restorer, claiming $t = T$ for a mildly blurred image over-sharpens it and
# hurts far more than claiming $t = 1$. (With the short FAST-mode stand-in the differences are small:
# it has barely learned to use $t$.)
#
# ## Check your understanding
#
# 1. Why does the restorer predict $x_0$ rather than the "noise", as DDPM usually does?
#    <details><summary>Answer</summary>There is no noise: a cold degradation is deterministic given
#    $x_0$ (and $z$). The only sensible target is the clean image; the paper regresses on it with an L1
#    loss.</details>
# 2. Why is $t$ drawn from $\{1, \dots, T\}$ and not from $\{0, \dots, T\}$?
#    <details><summary>Answer</summary>At $t = 0$, $D(x_0, 0) = x_0$: there is nothing to restore, and
#    the samplers never call the restorer at $t = 0$ (they stop there).</details>
# 3. What does `state.safetensors` contain that the exported checkpoint does not, and why does it
#    matter?
#    <details><summary>Answer</summary>The live weights as well as the EMA, Adam's moments, the step,
#    the losses and the random-number-generator state. Without them a resumed run would restart Adam
#    from zero and draw different batches: it would not continue the same run.</details>
# 4. `train_or_load` found a registered checkpoint whose SHA-256 does not match. Why does it raise
#    instead of quietly training a new model?
#    <details><summary>Answer</summary>A mismatch means a damaged, truncated or different file. Training
#    silently would give worse results without saying why; the error says to re-download it (or
#    `git lfs pull`).</details>
#
# ## Summary
#
# - Training is regression on self-made pairs: $t \sim \mathcal U\{1..T\}$, $x_t = D(x_0, t)$, minimise
#   $\|R_\theta(x_t, t) - x_0\|_1$. `ColdDiffusion.loss` is exactly those four lines.
# - The restorer is a UNet that also receives $t$, as sinusoidal features added to every residual block.
# - `Trainer` saves everything needed to resume (weights, EMA, Adam, step, RNG) to `state.safetensors`; a
#   resumed run continues the same run.
# - `train_or_load(name, ...)` loads a shipped, hash-verified model or, if there is none, trains a
#   stand-in with the same recipe; `python -m coldlib.training` makes full-quality models.
#
# ## References
#
# - A. Bansal et al. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392). Code:
#   [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models).
# - J. Ho, A. Jain, P. Abbeel. *Denoising Diffusion Probabilistic Models* (the UNet and the sinusoidal
#   timestep embedding). NeurIPS 2020, [arXiv:2006.11239](https://arxiv.org/abs/2006.11239).
# - O. Ronneberger, P. Fischer, T. Brox. *U-Net: Convolutional Networks for Biomedical Image
#   Segmentation.* MICCAI 2015, [arXiv:1505.04597](https://arxiv.org/abs/1505.04597).
# - A. Vaswani et al. *Attention Is All You Need* (sinusoidal position encodings). NeurIPS 2017,
#   [arXiv:1706.03762](https://arxiv.org/abs/1706.03762).
# - D. P. Kingma, J. Ba. *Adam: A Method for Stochastic Optimization.* ICLR 2015,
#   [arXiv:1412.6980](https://arxiv.org/abs/1412.6980).
#
# Next: [03 · Sampling: Algorithm 1 versus Algorithm 2](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/03_sampling_naive_vs_improved.ipynb).

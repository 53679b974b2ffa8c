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
# # 05 · Desnowification and colorization
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/05_snow_and_decolorization.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/05_snow_and_decolorization.ipynb)
#
# So far every degradation removed detail: blur, holes, big pixels. The paper's last two restoration
# tasks are different. **Snow** *adds* something (flakes from the ImageNet-C corruption benchmark),
# and **decolorization** removes only the colour and keeps every edge. Both run on colour images, so this
# lesson leaves MNIST for CIFAR-10, the paper's dataset, when it is on disk or can be downloaded (once,
# 170 MB), and otherwise (offline, as in CI) for the course's colour photo crops; the first code cell says
# which, and why. We rebuild both operators inline, train (or load) a restorer for each, compare Direct,
# Algorithm 1 and Algorithm 2, and find out what Algorithm 2 does for operators like these: for
# decolorization it provably keeps the input's grey levels; for snow it subtracts the known snow wherever
# nothing saturated. Last, we colour an image that PIL turned grey (a different grey from ours) and clean
# snow that we did not make.
#
# **Learning objectives**
# - Write the snow operator $D(x, t) = 2\,\mathrm{clip}(u + S_t + \mathrm{rot}_{180}(S_t), 0, 1) - 1$ and the
#   decolorization operator $D(x, t) = (1 - t/T)\,x + (t/T)\,\mathrm{gray}(x)$, and check them against `coldlib`.
# - Explain why snow is *not cumulative* and why its random snow field $z$ must be held fixed by the sampler.
# - Derive what Algorithm 2 keeps exactly for each operator, and verify it on trained models.
# - Evaluate both tasks with the one protocol (Degraded / Direct / Algorithm 1 / Algorithm 2) and say
#   which of the paper's numbers exist (its snow and decolorization tables could not be found).
# - Restore images degraded elsewhere: a PIL greyscale photo and snow of an unknown field.
#
# **Prerequisites:** [03 · Sampling: Algorithm 1 versus Algorithm 2](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/03_sampling_naive_vs_improved.ipynb)
# and [04 · Inpainting and super-resolution](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/04_inpainting_and_super_resolution.ipynb)
# (the random ingredient $z$).
#
# **Estimated time:** 60 minutes of reading and exercises.
#
# **Run time:** 8 min 46 s for the whole lesson in full mode on a 2-core CPU (AMD EPYC), no GPU, measured by `make render` on 2026-11-29.

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
from IPython.display import Markdown, display
from PIL import Image

from coldlib.data import choose_cifar10
from coldlib.degradations import Snow
from coldlib.experiments import preset
from coldlib.diffusion import ColdDiffusion, compare_samplers
from coldlib.env import fast_mode, lesson_device, seed_everything
from coldlib.evaluation import InceptionUnavailable
from coldlib.evaluation import evaluate_restoration, format_table, rmse
from coldlib.plotting import degradation_grid, labelled_rows, show_images, showcase
from coldlib.training import train_or_load
from coldlib.training import TrainConfig, Trainer
from coldlib.unet import UNet, unet_preset
from coldlib.widgets import frame_slider, sampler_frames, t_slider

FAST = fast_mode()  # COLDLIB_FAST=1 (CI): tiny training runs and a 32-image evaluation
generator = seed_everything(0)
device = lesson_device(FAST)  # in FAST mode on a CPU: one thread (faster on a busy, shared CI machine)
print(f"device {device} · FAST={FAST}")

# CIFAR-10 if it is on disk or torchvision can download it, else the offline photo crops: it prints which and why
colour = choose_cifar10(fallback="photos")
train_set = colour.load("train")  # the printed lines say exactly which images: read them
held_out = colour.load("test")  # never used for training (offline: crops of two other photos)
picks = showcase(held_out.images.float(), held_out.labels, k=8)  # colourful, textured held-out images
x0 = held_out.float(picks).to(device)
D_snow = preset("snow", "cifar10")  # the paper's CIFAR-10 snow ("level 3"), T = 200; the photo crops are 32 px too
D_grey = preset("decolor", "cifar10")  # the paper's decolorization, T = 20
print(D_snow, D_grey, sep="\n")
show_images(x0, nrow=8, title=f"eight held-out images ({colour.title}, never used for training)")

# %% [markdown]
# ## 1. Snow: flakes from a random field
#
# The snow comes from ImageNet-C's corruption code. A random **snow field** $B$ (a Gaussian field, drawn
# at $1/2.5$ of the image size and enlarged bicubically, so it is smooth) decides where flakes fall. At
# step $t$:
#
# 1. keep the field where it exceeds a threshold $\tau_t$ (which *falls* from 1.15 to 0.70 over the $T$
#    steps, so more of the field becomes snow), clipped to $[0, 1]$;
# 2. smear it with a motion blur, an 11-tap 1-D Gaussian of width $\sigma_t$ (which *grows* from 0.05 to
#    16), horizontal or vertical per image: that is $S_t$;
# 3. add it twice, as is and rotated by 180°, to the image in $[0, 1]$, $u = (x + 1)/2$, and clip:
#
# $$D(x, t) = 2\,\mathrm{clip}\big(u + S_t + \mathrm{rot}_{180}(S_t),\ 0,\ 1\big) - 1 .$$
#
# Unlike blur, snow is **not cumulative**: $D(x, t)$ is built directly from $x$ and the field, not from
# $D(x, t - 1)$. The field is the random ingredient $z$ (a `SnowField`: the field and the blur direction):
# the same rule as the hole position of Lesson 04 applies, draw it once and hold it fixed. `D.flakes`
# gives $S_t$; the rest is one line:

# %%
z = D_snow.draw_z(x0, generator)
t = 120
S = D_snow.flakes(torch.full((len(x0),), t, device=device), z)  # (8, 1, 32, 32): S_t for each image
by_hand = 2 * ((x0 + 1) / 2 + S + S.flip(-1, -2)).clamp(0, 1) - 1
assert torch.allclose(by_hand, D_snow(x0, t, z), atol=1e-6)
z4 = D_snow.draw_z(x0[:4], torch.Generator(device=x0.device).manual_seed(3))  # a field for the first four images
print(f"by hand == coldlib's Snow at t = {t}; snow covers {(S + S.flip(-1, -2) > 0.05).float().mean():.0%} "
      "of the pixels")

# %% [markdown]
# Slide $t$ (all 201 frames were computed once, in one batched call; the slider only swaps pictures):

# %% tags=["nbval-ignore-output"]
t_slider(D_snow, x0[:4], z=z4)

# %%
snow_steps = [0, 25, 50, 100, 150, 200]
degradation_grid(D_snow, x0[:4], snow_steps, z=z4, title=f"{D_snow!r}")

# %% [markdown]
# Early steps add a few short flakes; late steps add many long streaks. Where the flakes are bright
# enough the clip saturates the pixel to white, and **what was under it is gone**: no restorer can read
# it back from $x_t$, it can only guess. Keep that in mind for section 5.
#
# ## 2. Decolorization: fading to grey
#
# The authors apply $t$ colour-mixing $1 \times 1$ convolutions $W_i = e_i I + (1 - e_i)\,\tfrac13
# \mathbf{1}\mathbf{1}^\top$. With their `Linear` schedule and total removal, the product collapses to a
# straight line between the image and its grey version, where grey is the mean of R, G and B:
#
# $$D(x, t) = (1 - t/T)\,x + (t/T)\,\mathrm{gray}(x), \qquad \mathrm{gray}(x) = \tfrac13(x_R + x_G + x_B)\,\mathbf{1}.$$
#
# Two facts follow at once: the grey level never changes, $\mathrm{gray}(D(x, t)) = \mathrm{gray}(x)$, and
# $D(x, T)$ keeps every edge of the image (only the colour goes). Checked:

# %%
def decolor_by_hand(x: torch.Tensor, t: int, T: int) -> torch.Tensor:
    grey = x.mean(dim=1, keepdim=True).expand_as(x)
    return (1 - t / T) * x + (t / T) * grey


for t in [0, 5, 13, D_grey.T]:
    assert torch.allclose(decolor_by_hand(x0, t, D_grey.T), D_grey(x0, t), atol=1e-6)
    assert torch.allclose(D_grey(x0, t).mean(dim=1), x0.mean(dim=1), atol=1e-6)  # grey level kept
print(f"by hand == coldlib's Decolorize at t = 0, 5, 13, {D_grey.T}; the RGB mean never changes")

# %% tags=["nbval-ignore-output"]
t_slider(D_grey, x0[:4])

# %%
degradation_grid(D_grey, x0[:4], [0, 5, 10, 15, 20], title=f"{D_grey!r}")

# %% [markdown]
# ## 3. A short live run
#
# Nothing in the training recipe changes: $t \sim \mathcal U\{1..T\}$, degrade, regress on $x_0$ with L1.
# For snow, `ColdDiffusion.loss` draws a fresh snow field per image per step. The images are small, so we
# also flip them left–right at random (`TrainConfig(flip=True)`; the authors do the same for CIFAR-10).
# A few dozen steps of the tiny UNet on decolorization (a few hundred outside FAST mode), on the training
# split chosen above (CIFAR-10's 50,000 images online, the photo crops offline):

# %%
live_steps, live_batch = (20, 16) if FAST else (200, 32)
torch.manual_seed(0)
live = ColdDiffusion(UNet(unet_preset("tiny", 3)), D_grey)
trainer = Trainer(live, train_set.images, TrainConfig(steps=live_steps, batch_size=live_batch, grad_accum=1, lr=4e-4,
                                                      flip=True), device=device, data_note=train_set.source)
losses = trainer.train()
window = min(10, len(losses))
print(f"{trainer.step} steps of batch {live_batch}: L1 loss {losses[0]:.3f} at the first step, "
      f"{sum(losses[-window:]) / window:.3f} over the last {window}")
assert trainer.step == live_steps

# %% [markdown]
# The loss starts low and falls quickly: at small $t$ the input is almost the answer, and even at
# $t = T$ the grey image fixes the brightness of every pixel. What is left to learn is the colour, and
# the colour of a grey pixel is a genuine guess (a grey sweater could be red or blue): expect the
# restorer to learn typical colours of typical things, and to be unsure elsewhere.
#
# ## 4. Train or load the two restorers
#
# As in Lessons 03 and 04, `train_or_load` loads the course's trained models if they are registered
# (hash-verified), else it says why and trains stand-ins with the same recipe.
#
# The course's models were trained on the **photo crops** (they are called `photos_snow` and
# `photos_decolor`), and their stand-ins use the same recipe and data. When this lesson runs on CIFAR-10,
# that is a **domain shift**: the restorers meet whole animals and vehicles shrunk to 32 px, where they
# learned from crops of six large photos (an astronaut, a rocket, a retina, ...). Their numbers on CIFAR-10
# say how well they transfer, not what restorers trained on CIFAR-10 (as the paper's) would reach.

# %%
TRAINED_ON = "photos"  # the data of the shipped restorers, and of the stand-ins trained if they are missing
fallback = dict(model="tiny", steps=40, batch_size=16, grad_accum=1, flip=True) if FAST else \
    dict(model="small", steps=1000, batch_size=32, grad_accum=2, flip=True)
restorers = {task: train_or_load(f"photos_{task}", task=task, dataset=TRAINED_ON, device=device, **fallback)
             for task in ("snow", "decolor")}
R_snow, R_grey = restorers["snow"].diffusion(), restorers["decolor"].diffusion()
D_snow, D_grey = R_snow.degradation, R_grey.degradation  # each model's own degradation from here on
for task, loaded in restorers.items():
    print(f"{task:8s}: {'the shipped checkpoint' if loaded.path is not None else 'trained in this session'}, "
          f"{loaded.model.num_parameters():,} parameters, {loaded.config['steps']:,} steps; {loaded.degradation!r}")
shift_note = (f"Domain shift: both restorers were trained on the offline photo crops and are evaluated here on "
              f"{colour.title}." if colour.name != TRAINED_ON else "")
print(shift_note or "The restorers are evaluated on held-out crops of two photos they were not trained on.")

# %% [markdown]
# ## 5. Direct, Algorithm 1 and Algorithm 2, and what Algorithm 2 keeps
#
# All three samplers start from the same $x_T$ (and, for snow, the same field $z$).

# %%
z_snow = D_snow.draw_z(x0, torch.Generator(device=x0.device).manual_seed(1))
x_T = {"snow": D_snow(x0, D_snow.T, z_snow), "decolor": D_grey(x0, D_grey.T)}
# compare_samplers (Lesson 04): Direct, and the trajectories of Algorithms 1 and 2, from the same x_T and z
runs = {"snow": compare_samplers(R_snow, x_T["snow"], z_snow),
        "decolor": compare_samplers(R_grey, x_T["decolor"], None)}

# %% [markdown]
# **Decolorization.** $D$ is linear, and $D(y, s - 1) - D(y, s) = \tfrac1T\,(y - \mathrm{gray}(y))$: the
# colour of $y$, one $T$-th of it. So an Algorithm 2 step is
#
# $$x_{s-1} = x_s + \tfrac1T\big(\hat x_0 - \mathrm{gray}(\hat x_0)\big),$$
#
# it adds one twentieth of the estimate's *colour* and nothing of its grey. The grey levels of the output
# are exactly those of the input, whatever the restorer predicts; the restorer only chooses colours.
# Direct and Algorithm 1 return the network's image, grey levels included.

# %%
grey_of = {name: (out if name == "Direct" else out.xt[-1]).mean(dim=1) for name, out in runs["decolor"].items()}
input_grey = x_T["decolor"].mean(dim=1)
for name, grey in grey_of.items():
    print(f"{name:12s} max |gray(output) - gray(input)| = {(grey - input_grey).abs().max():.2e}")
assert torch.allclose(grey_of["Algorithm 2"], input_grey, atol=1e-5)

# %% [markdown]
# **Snow.** Where nothing clips, $D(y, s) = y + 2(S_s + \mathrm{rot}_{180} S_s)$: the snow is simply
# added, whatever $y$ is. Then an Algorithm 2 step removes the difference between two snow layers,
# $x_{s-1} = x_s - 2\,\Delta_s$, with no trace of $\hat x_0$, and the whole run subtracts exactly the snow
# of step $T$, which it knows because it knows $z$. The restorer matters only where a pixel was
# **saturated** (clipped to white): there the image is lost and $\hat x_0$ fills it in. We measure the
# error of each sampler separately on pixels that the snow of $x_T$ saturated and on the rest:

# %%
u = (x0 + 1) / 2
S_T = D_snow.flakes(torch.full((len(x0),), D_snow.T, device=device), z_snow)
saturated = (u + S_T + S_T.flip(-1, -2) >= 1).expand_as(x0)  # clipped to white at t = T
print(f"saturated at t = T: {saturated.float().mean():.0%} of the pixel values")
for name, out in runs["snow"].items():
    final = out if name == "Direct" else out.xt[-1]
    err = (final - x0).abs()
    print(f"{name:12s} mean |x - x0| on saturated pixels {err[saturated].mean():.3f}, "
          f"elsewhere {err[~saturated].mean():.4f}")

# %% [markdown]
# With a trained restorer, Algorithm 2's error away from saturated pixels should be tiny (a small
# residue remains: a pixel can clip at an intermediate step of the run, or because $\hat x_0$ is bright,
# even if $x_T$ did not). Direct and Algorithm 1 redraw every pixel and make errors everywhere.
#
# The sliders show the runs step by step (computed above; the sliders only swap pictures):

# %%
snow_frames, snow_titles = sampler_frames(runs["snow"], "snow")
grey_frames, grey_titles = sampler_frames(runs["decolor"], "decolor")

# %% tags=["nbval-ignore-output"]
frame_slider(snow_frames, titles=snow_titles, description="step", nrow=2)

# %% tags=["nbval-ignore-output"]
frame_slider(grey_frames, titles=grey_titles, description="step", nrow=2)

# %% [markdown]
# The static version: the final results of every sampler on all eight held-out images.

# %%
for task, title in [("snow", "desnowification"), ("decolor", "colorization")]:
    r = runs[task]
    finals = [("clean x0", x0), ("degraded x_T", x_T[task]), ("Direct", r["Direct"]),
              ("Algorithm 1", r["Algorithm 1"].xt[-1]), ("Algorithm 2", r["Algorithm 2"].xt[-1])]
    display(labelled_rows(finals, [f"image {b}" for b in range(len(x0))], f"{title}: eight held-out images"))
    print(title + ": " + "; ".join(f"{name} RMSE {rmse(images, x0):.3f}" for name, images in finals[1:]))

# %% [markdown]
# What to look for (with the shipped models; the FAST-mode stand-ins have barely started). Snow:
# Algorithm 2 keeps the photo sharp wherever the snow was thin and fills the white streaks with a
# plausible guess; Direct is smoother everywhere. Algorithm 1 re-snows its own estimate at every step,
# so its result depends entirely on the last estimate. Colour: the outputs are *plausibly* coloured,
# not correctly: 1,950 crops of six photos teach a restorer few colours. What the held-out images show
# (offline a cat's fur and a coffee cup, from two photos it never saw; online CIFAR-10's animals and
# vehicles) is not in the training photos.
#
# ## 6. The evaluation protocol, with the paper's numbers where they exist
#
# Degraded / Direct / Algorithm 1 / Algorithm 2 on held-out images, with one snow field per image drawn
# from a seeded generator and shared by every column (Lesson 03's `evaluate_restoration`). The paper's
# snow and decolorization tables (its Table 4, CIFAR-10 and CelebA) could not be found
# ([paper notes, section (d)](paper_notes.md#d-the-papers-tables)), so there is no "paper" column: every cell of it would say
# "not reported". Their data also differ from ours (CIFAR-10 and CelebA, 700,000 steps, a 56.6M-parameter
# UNet, against 1.06M parameters, a few thousand steps and crops of six photos here). The number of images is
# sized by the device: every snowy image costs 401 network passes (Direct, then 200 steps of each sampler),
# so a CPU measures the first 100 held-out images, and a GPU the first 1,000 (CIFAR-10 has 10,000 test
# images, the paper uses all of them: raise `n_eval`) or all 844 photo crops. The shipped models' sidecars
# (printed when they loaded, section 4) hold the same protocol on all 844 held-out crops.
#
# **The Fréchet distance.** The paper's FIDs use an Inception network whose weights are downloaded at
# run time. With them (online, or a weights file named by `COLDLIB_INCEPTION_WEIGHTS`), the table gets an
# **FID** column; without them (offline, as in CI) it says why and leaves it out. The course's offline
# FD_MNIST-CNN measures digits, not photos, so it is not used here.

# %%
n_eval = 32 if FAST else min(len(held_out), 1000 if device.type == "cuda" else 100)
x_eval = held_out.float(slice(0, n_eval)).to(device)
results = {}
for task, R in {"snow": R_snow, "decolor": R_grey}.items():
    seeded = torch.Generator().manual_seed(0)
    try:  # with the Inception weights: an FID column, from the same images in the same pass
        results[task] = evaluate_restoration(R, x_eval, batch_size=64, generator=seeded, frechet="inception",
                                             progress=True)
        fid_note = "FID: Inception FID on the same images (torchmetrics / torch-fidelity InceptionV3)."
    except InceptionUnavailable as why:  # raised before any sampling, so nothing is computed twice
        results[task] = evaluate_restoration(R, x_eval, batch_size=64, generator=seeded, progress=True)
        fid_note = f"No FID column: {why}"
    assert set(results[task]) == {"Degraded", "Direct", "Algorithm 1", "Algorithm 2"}
print(f"measured on the first {n_eval:,} of {len(held_out):,} held-out images of {colour.title}")
shift = f" · trained on the photo crops, evaluated on {colour.title}: a domain shift" if shift_note else ""
for task, title in [("snow", "Desnowification"), ("decolor", "Colorization")]:
    display(Markdown(f"**{title}** (paper: not reported){shift}\n\n" + format_table(results[task])))
print(fid_note)
if shift_note:
    print(shift_note)

# %% [markdown]
# How to read it. The Degraded row is the baseline a restorer must beat. For decolorization it is
# already good on SSIM, which compares local brightness and contrast and barely sees colour; RMSE and
# PSNR see the colour. For snow, Algorithm 2's advantage comes from section 5: it is exact wherever the
# snow did not saturate. An honest caveat about the data: offline, 844 crops from two photos are
# correlated samples, so the third decimal of these numbers is not meaningful; on CIFAR-10 the images are
# independent, but the restorers never saw CIFAR-10 (section 4): the numbers measure a transfer from
# photos, and are not comparable with restorers trained on CIFAR-10.
#
# ## 7. Restoring images degraded elsewhere
#
# ### 7a. A photo turned grey by PIL
#
# PIL's `convert("L")` uses the ITU-R 601 luma, $0.299R + 0.587G + 0.114B$, not our RGB mean. So a PIL
# grey image is **not** on our forward path: its "grey" differs from $\mathrm{gray}(x_0)$ wherever the
# photo is not already grey. We expand it back to three channels and try two things: colour it with
# Algorithm 2 from $t = T$ (we know the photo is fully grey), and from the step `estimate_t` guesses.

# %%
def pil_grey(x: torch.Tensor) -> torch.Tensor:
    """Greyscale through PIL (ITU-R 601 luma), back to 3 equal channels in [-1, 1]."""
    out = []
    for img in x:
        rgb = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        luma = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 127.5 - 1
        out.append(torch.from_numpy(luma)[None].expand(3, -1, -1))
    return torch.stack(out).to(x.device)


x_pil = pil_grey(x0)
t_hat = R_grey.estimate_t(x_pil)
colourised = {"Alg. 2 from t_hat": R_grey.sample(x_pil, t=t_hat, method="improved"),
              "Alg. 2 from T": R_grey.sample(x_pil, method="improved"),
              "Direct at T": R_grey.sample(x_pil, method="direct")}
print(f"estimate_t on PIL greys: {t_hat.tolist()} (T = {D_grey.T})")
print(f"|PIL grey - our grey| averages {(x_pil - x_T['decolor']).abs().mean():.4f}")
print(f"RMSE to the colour originals: PIL grey {rmse(x_pil, x0):.3f}; " +
      "; ".join(f"{k} {rmse(v, x0):.3f}" for k, v in colourised.items()))
assert t_hat.shape == (len(x0),) and int(t_hat.min()) >= 1
# Algorithm 2 keeps the grey levels of its input, here PIL's: section 5's fact, on an image from elsewhere
assert torch.allclose(colourised["Alg. 2 from T"].mean(dim=1), x_pil.mean(dim=1), atol=1e-5)

# %%
labelled_rows([("colour x0", x0), ("PIL grey", x_pil), *colourised.items()], [f"image {b}" for b in range(len(x0))],
              "PIL greyscale images, coloured again")

# %% [markdown]
# Algorithm 2 keeps the grey levels of its input (section 5, and the `assert` above), so here it keeps
# **PIL's** luma, not our mean: a blue sky stays darker than our grey would make it. The restorer only
# adds colour on top.
#
# **Why `estimate_t` fails here.** It picks the $s$ for which $D(R(x, s), s)$ reproduces $x$ best. But a
# grey image is a fixed point of *every* step: $D(y, s) = y$ for any grey $y$. Whenever the restorer,
# told "step $s$", adds little colour, $D(R(x, s), s)$ is almost exactly $x$, so small steps fit as well
# as $T$ and the estimate is arbitrary. The step of a grey image is not identifiable from the image; it is
# knowledge about where the image came from (fully grey means $t = T$). Algorithm 2 from a too-small
# estimate adds only a few of the $T$ colour increments, hence the pale result. Compare Lesson 04,
# where blocks or blobs of a given size *do* identify the step.
#
# ### 7b. Snow we did not make
#
# A snowy image from elsewhere comes without its field $z$. Algorithm 2 needs $z$: it subtracts
# $D(\hat x_0, s, z)$, and with the wrong field it would subtract snow where there is none and keep the
# real snow. Direct needs no $z$: the restorer was never told where the snow is (only the sampler uses
# $z$), it finds the flakes itself. We make "foreign" snow with a heavier setting than the model was
# trained on (the authors' level 4, for CelebA, at its step 150) and compare Direct at two steps with
# Algorithm 2 given a field of its own.

# %%
D_foreign = Snow(200, threshold=(1.15, 0.55), motion_sigma=(0.05, 20.0))  # level 4: more and longer flakes
z_true = D_foreign.draw_z(x0, torch.Generator(device=x0.device).manual_seed(7))
x_foreign = D_foreign(x0, 150, z_true)
z_wrong = D_snow.draw_z(x0, torch.Generator(device=x0.device).manual_seed(8))
t_foreign = R_snow.estimate_t(x_foreign, z=z_wrong, candidates=list(range(10, D_snow.T + 1, 10)))
foreign_out = {"Direct at t_hat": R_snow.sample(x_foreign, t=t_foreign, method="direct", z=z_wrong),
               "Direct at t = 150": R_snow.sample(x_foreign, t=150, method="direct", z=z_wrong),
               "Alg. 2 from 150, own z": R_snow.sample(x_foreign, t=150, method="improved", z=z_wrong)}
print(f"estimated steps (our schedule, T = {D_snow.T}): {t_foreign.tolist()}")
print(f"RMSE: snowy {rmse(x_foreign, x0):.3f}; " + "; ".join(f"{k} {rmse(v, x0):.3f}" for k, v in foreign_out.items()))

# %%
labelled_rows([("clean x0", x0), ("foreign snow", x_foreign), *foreign_out.items()],
              [f"image {b}" for b in range(len(x0))], "snow of another setting and field, removed")

# %% [markdown]
# `estimate_t` re-snows each candidate's restoration with the field it is given; with a field that is not
# the image's, no step fits well, and the mildest one (the least wrong snow) tends to win: do not trust
# it here. Direct uses the step only as the network's input, and the network finds the flakes itself;
# its result depends on the step it is told (compare the two Direct rows). Algorithm 2 with a field of
# its own does improve on the snowy input, because its estimates $\hat x_0$ do, but it trails Direct at
# the same step: each update subtracts snow of the wrong field (where there is none) and never removes the
# real flakes, which only the estimates ignore. For real snowy photos Direct is the honest choice,
# unless the snow can be segmented and turned into a field.
#
# ## Exercises
#
# 1. **Grey by luma.** Write `LumaDecolorize`, a `Degradation` whose grey is the ITU-R 601 luma instead of the
#    RGB mean (`coldlib.degradations.Decolorize` is ten lines to start from), and check with
#    `check_degradation` that it passes. Which of the two facts of section 2 still holds?
# 2. **Snow is not cumulative.** Show numerically that $D(D(x, s), t) \ne D(x, s + t)$ for snow, and
#    that blur with one kernel for every step (`preset("blur", "mnist")`: $\sigma = 7$ at each step)
#    satisfies $D(D(x, s), t) = D(x, s + t)$ up to round-off. Does CIFAR-10's blur, whose $\sigma$ grows
#    with the step, satisfy it?
# 3. **How much does the field matter?** Run Algorithm 2 on the snowy $x_T$ of section 5 with the true
#    field, and with fields drawn from 5 other seeds. Plot RMSE against the seed. (Open.)
#
# Solutions to 1 and 2 follow; try first.

# %%
# Solution 1. Only the definition of "grey" changes.
from coldlib.degradations import Degradation, check_degradation  # noqa: E402


class LumaDecolorize(Degradation):
    """D(x, t) = (1 - t/T)·x + (t/T)·luma(x), luma = 0.299 R + 0.587 G + 0.114 B on every channel."""

    channels = 3

    def __init__(self, T: int) -> None:
        super().__init__(T)

    def degrade(self, x0, t, z):
        w = torch.tensor([0.299, 0.587, 0.114], device=x0.device, dtype=x0.dtype)[None, :, None, None]
        luma = (x0 * w).sum(dim=1, keepdim=True)
        frac = (t.to(x0.dtype) / self.T)[:, None, None, None]
        return x0 + frac * (luma - x0)


D_luma = LumaDecolorize(20)
report = check_degradation(D_luma, x0)
print("\n".join(str(r) for r in report))
assert all(r.passed for r in report)
luma = lambda x: (x * torch.tensor([0.299, 0.587, 0.114], device=x.device)[None, :, None, None]).sum(1)  # noqa: E731
print(f"luma kept: {torch.allclose(luma(D_luma(x0, 13)), luma(x0), atol=1e-5)}; "
      f"RGB mean kept: {torch.allclose(D_luma(x0, 13).mean(1), x0.mean(1), atol=1e-5)}")
assert torch.allclose(D_luma(x0, D_luma.T), x_pil, atol=2 / 255 + 1e-6)  # PIL's grey, up to its rounding

# %% [markdown]
# The *luma* is kept at every step (its weights sum to 1, so the luma of the grey image equals the luma
# of the image); the RGB mean is not. Edges are kept either way. And at $t = T$ this operator gives
# PIL's greyscale (up to PIL's rounding to 8 bits): a colorization model trained on it would restore
# PIL-grey photos *on* its forward path.

# %%
# Solution 2.
z_a = D_snow.draw_z(x0, torch.Generator(device=x0.device).manual_seed(2))
gaps = {"snow": (D_snow(D_snow(x0, 40, z_a), 60, z_a) - D_snow(x0, 100, z_a)).abs().max()}
for name in ["mnist", "cifar10"]:
    D_blur = preset("blur", name)
    gaps[f"blur ({name})"] = (D_blur(D_blur(x0, 5), 8) - D_blur(x0, 13)).abs().max()
print("max |D(D(x, s), t) - D(x, s + t)|: " + "; ".join(f"{k} {float(v):.1e}" for k, v in gaps.items()))
assert gaps["snow"] > 0.1 and gaps["blur (mnist)"] < 1e-4 and gaps["blur (cifar10)"] > 1e-3

# %% [markdown]
# Snowing a snowy image adds the flakes a second time (they were already in its input), so two snow
# passes are brighter than one longer one. Blur with the same kernel at every step composes: each step
# is one more convolution with that kernel. CIFAR-10's blur does not: its step $i$ uses
# $\sigma_i = 0.35 + i/100$, so $D(D(x, 5), 8)$ applies the kernels $k_0..k_4$ and then $k_0..k_7$ again,
# not $k_0..k_{12}$. "Cumulative" means $D(x, t)$ is built from $D(x, t - 1)$, not that any two
# degradations chain into a longer one.
#
# ## Check your understanding
#
# 1. Why must the sampler be given the snow field $z$, while the restorer is not?
#    <details><summary>Answer</summary>The restorer sees the snow in its input and learns to find it;
#    Algorithm 2 must *compute* $D(\hat x_0, s, z)$ and $D(\hat x_0, s - 1, z)$, the snow of two steps, and
#    only the same field makes their difference the snow that is in $x_s$.</details>
# 2. In Algorithm 2 for decolorization, what does the restorer decide, and what not?
#    <details><summary>Answer</summary>Only the colour, $\hat x_0 - \mathrm{gray}(\hat x_0)$, added one
#    $T$-th per step. The grey levels of the output are those of the input, exactly.</details>
# 3. Why is Algorithm 2 nearly exact for snow away from saturated pixels, even with an untrained restorer?
#    <details><summary>Answer</summary>Where nothing clips, $D(y, s) = y + 2(S_s + \mathrm{rot}_{180}S_s)$;
#    the update's $\hat x_0$ terms cancel and it removes the snow difference of each step, known from
#    $z$. Summed, it removes all of $x_T$'s snow.</details>
# 4. Why is SSIM a poor score for colorization?
#    <details><summary>Answer</summary>It compares local means, variances and correlations of each
#    channel; a grey image already has the right structure, and those statistics change little with
#    hue. RMSE and PSNR (and FID) see the colour.</details>
# 5. The paper reports snow and decolorization results on CIFAR-10 and CelebA. Why can this lesson not
#    compare with them?
#    <details><summary>Answer</summary>The tables could not be found (only their existence), and our training
#    data (crops of six photos, even when we evaluate on CIFAR-10), network size and training budget are far
#    smaller. The lesson says so instead of printing numbers that do not exist.</details>
#
# ## Summary
#
# - Snow adds flakes from a random field (not cumulative; $z$ held fixed); decolorization fades linearly
#   to the RGB-mean grey, keeping every edge and the grey levels.
# - The same loss, trainer and samplers work unchanged on colour images (CIFAR-10, or the photo crops
#   offline).
# - Algorithm 2 keeps the input's grey levels exactly in colorization and subtracts the known snow
#   exactly where it did not saturate: the restorer only fills what is truly lost.
# - The one evaluation protocol gives Degraded / Direct / Algorithm 1 / Algorithm 2 columns; Inception FID
#   joins them when its weights are available, and the missing paper tables are stated, not invented.
# - Images degraded elsewhere: a different grey (PIL's luma) is handled by Algorithm 2 keeping that luma;
#   snow without its field calls for Direct.
#
# ## References
#
# - A. Bansal et al. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392) (snowification and decolorization, Section 4).
#   Code: [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models)
#   (`snowification/` and `decolor-diffusion/`); its
#   [issue #20](https://github.com/arpitbansal297/Cold-Diffusion-Models/issues/20) asks for already-snowy images.
# - D. Hendrycks, T. Dietterich. *Benchmarking Neural Network Robustness to Common Corruptions and
#   Perturbations* (ImageNet-C, where the snow comes from). ICLR 2019, [arXiv:1903.12261](https://arxiv.org/abs/1903.12261).
# - ITU-R Recommendation BT.601 (the luma weights that PIL's `convert("L")` uses).
# - R. Zhang, P. Isola, A. A. Efros. *Colorful Image Colorization.* ECCV 2016,
#   [arXiv:1603.08511](https://arxiv.org/abs/1603.08511) (why colorization is a guess, and how to score it).
#
# Next: [06 · Generation from blur and symmetry breaking](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/06_generation_from_blur.ipynb).

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
# # 06 · Generation without noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/06_generation.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/06_generation.ipynb)
#
# A restorer inverts a degradation. If the degradation ends in a state that we can *sample* without
# knowing $x_0$, the same restorer becomes a generative model: draw $x_T$, run Algorithm 2 down to $x_0$,
# and a new image comes out. Gaussian noise is the famous case ("hot" diffusion): at $t = T$ nothing of the
# image is left but noise. The paper's Section 5 shows that **deterministic** degradations do it too:
# blur all the way to a flat colour, cover the image with a constant colour, or mix it into an image
# of another kind (animorphosis). This lesson generates digits all four ways with trained models, shows
# why Algorithm 1 fails here, why a perfectly flat start gives little diversity and how a pinch of noise
# fixes it, puts hot and cold side by side with the same network and budget, and asks a question the
# authors left open: how does the number of steps $T$ change the samples?
#
# **Learning objectives**
# - Explain why a degradation whose end state can be sampled gives a generator, and write the start
#   distribution for blur-to-the-mean: a Gaussian mixture over the images' mean colours.
# - Run Algorithm 1 and Algorithm 2 from the same starts, with and without symmetry-breaking noise, and
#   say why Algorithm 1 collapses and why perfect symmetry limits diversity.
# - Sample the hot (noise) degradation with the noise held fixed and re-estimated at every step (DDIM),
#   and compare hot and cold with a Fréchet distance, beside the paper's FIDs.
# - Generate by revealing an image from a constant colour, and by animorphosis (eights from zeros).
# - Measure how generation quality changes with $T$ at a fixed training budget.
#
# **Prerequisites:** [03 · Sampling: Algorithm 1 versus Algorithm 2](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/03_sampling_naive_vs_improved.ipynb)
# and [04 · Inpainting and super-resolution](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/04_inpainting_and_super_resolution.ipynb).
#
# **Estimated time:** 60–90 minutes of reading and exercises. With the shipped models the code runs in
# 15–25 minutes on a CPU (every generator takes $T = 100$ network passes per batch, and section 8 trains
# four small models) and in a few minutes on a GPU; in FAST mode (CI) in a few minutes.

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
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from coldlib.data import load_images
from coldlib.degradations import GaussianBlur, ImageMixing
from coldlib.experiments import preset
from coldlib.diffusion import SAMPLER_NAMES, ColdDiffusion
from coldlib.env import fast_mode, lesson_device, seed_everything
from coldlib.evaluation import mnist_fd
from coldlib.generation import channel_means, fit_channel_mean_prior, generate
from coldlib.plotting import labelled_rows, show_images
from coldlib.training import train_or_load
from coldlib.training import TrainConfig, Trainer
from coldlib.unet import UNet, unet_preset
from coldlib.widgets import frame_slider, t_slider

FAST = fast_mode()  # COLDLIB_FAST=1 (CI): few samples, tiny stand-ins if a shipped model is missing
generator = seed_everything(0)
device = lesson_device(FAST)  # in FAST mode on a CPU: one thread (faster on a busy, shared CI machine)
print(f"device {device} · FAST={FAST}")

mnist = load_images("mnist", split="train")  # the printed lines say which images: read them
held_out = load_images("mnist", split="test")
N_SAMPLES = 32 if FAST else 500  # samples per generator for the Fréchet distances
reference = held_out.float(slice(0, max(N_SAMPLES, 500))).to(device)  # real digits to compare with
x0 = held_out.float(slice(0, 8)).to(device)
fallback = dict(model="tiny", steps=40, batch_size=16, grad_accum=1) if FAST else \
    dict(model="small", steps=1500, batch_size=32, grad_accum=2)

# %% [markdown]
# ## 1. Blur all the way to the mean
#
# The generation setting of the paper blurs with circular padding and, at the last step, replaces the
# image by its per-channel mean: $D(x, T)$ is a flat image of one colour. Circular blur with a kernel that
# sums to 1 never changes the mean, so every step keeps it and the last step only removes what detail
# is left. For MNIST at 32 px we use $T = 100$ steps of the authors' `Exponential` routine
# ($\sigma_i = e^{0.01 i}$, $11 \times 11$ kernels; their CelebA setting is $T = 300$ with $27 \times 27$ at
# 128 px). Both facts, checked:

# %%
D_blur = preset("blur_generation", "mnist")
print(D_blur)
means = x0.mean(dim=(2, 3), keepdim=True)
for t in [1, 30, 70, D_blur.T - 1]:
    assert torch.allclose(D_blur(x0, t).mean(dim=(2, 3), keepdim=True), means, atol=1e-5)  # mean kept
assert torch.allclose(D_blur(x0, D_blur.T), means.expand_as(x0), atol=1e-6)  # x_T: one flat colour
print(f"the mean is kept at every step; x_T is flat. Detail left at t = {D_blur.T - 1}: "
      f"std {D_blur(x0, D_blur.T - 1).std(dim=(2, 3)).mean():.4f} (x0: {x0.std(dim=(2, 3)).mean():.3f})")

# %% tags=["nbval-ignore-output"]
t_slider(D_blur, x0[:4])

# %% [markdown]
# ## 2. Where to start: a mixture over mean colours
#
# To generate we need $x_T$ without an $x_0$: a flat image whose colour is typical of the data. The
# authors fit a Gaussian mixture to the per-channel means of the training images, with **one** component
# in their commands, and draw colours from it. MNIST has one channel, so the "colour" is one number, the
# mean brightness of a digit. With one component the maximum-likelihood fit is the sample mean and
# variance; `fit_channel_mean_prior` uses scikit-learn's `GaussianMixture`, so we check it against that:

# %%
train_means = channel_means(mnist.float())  # (8000, 1): where each training digit ends at t = T
prior = fit_channel_mean_prior(mnist.float(), n_components=1)
by_hand_mean, by_hand_var = train_means.mean(0), train_means.var(0, unbiased=False)
assert torch.allclose(prior.means[0], by_hand_mean, atol=1e-6)
assert torch.allclose(prior.covariances[0, 0, 0], by_hand_var[0], rtol=1e-3)  # sklearn adds 1e-6 for stability
print(f"mean brightness of a digit: {float(by_hand_mean):.3f} ± {float(by_hand_var.sqrt()):.3f} (in [-1, 1])")

colours = prior.sample_means(4000, torch.Generator().manual_seed(0))
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.hist(train_means[:, 0].numpy(), bins=60, density=True, alpha=0.6, label="training digits")
ax.hist(colours[:, 0].numpy(), bins=60, density=True, alpha=0.6, label="drawn from the prior")
ax.set_xlabel("mean brightness (x_T's one value)")
ax.legend()
plt.show()

# %% [markdown]
# A thin digit (a 1) has a darker mean than a fat one (an 8 or a 0), so the start already says a little
# about what will come out. But only a little: one number per image, which matters in section 4.
#
# ## 3. Load (or train) the blur-generation restorer
#
# The restorer is trained exactly as in Lesson 02, on `preset("blur_generation", "mnist")`. The course
# ships one (`mnist_blur_generation`); without it a stand-in is trained here.

# %%
loaded_blur = train_or_load("mnist_blur_generation", task="blur_generation", dataset="mnist", device=device,
                            **fallback)
R_blur = loaded_blur.diffusion()

# %% [markdown]
# ## 4. Algorithm 1 versus Algorithm 2, and the symmetry problem
#
# We draw one batch of colours and build two starts from it: **perfectly flat** images, and the same
# images plus i.i.d. noise of standard deviation 0.002 (the paper's "broken symmetry"; about a quarter of one
# 8-bit grey level; one level is 2/255 ≈ 0.008 in [-1, 1]). Both samplers run from both starts.

# %%
n_show = 8
start_colours = prior.sample_means(n_show, torch.Generator().manual_seed(1)).float()
start_colours = start_colours.sort(dim=0).values  # darkest to brightest, for the pictures
flat = start_colours[:, :, None, None].expand(n_show, 1, 32, 32).clone().to(device)
noisy = flat + 0.002 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(2)).to(device)
gen_runs = {}
for start_name, x_T in [("flat", flat), ("noise 0.002", noisy)]:
    for alg, method in [("Alg. 1", "naive"), ("Alg. 2", "improved")]:
        gen_runs[f"{alg}, {start_name}"] = R_blur.sample(x_T, method=method, return_trajectory=True)
print(f"start colours: {[round(float(c), 3) for c in start_colours[:, 0]]}")

# %%
labelled_rows([(name, run.xt[-1]) for name, run in gen_runs.items()], [f"start {i}" for i in range(n_show)],
              "blur generation: the same eight colours, two samplers, two starts")

# %% [markdown]
# The sliders walk through the four runs (computed above; sliding only swaps pictures):

# %% tags=["nbval-ignore-output"]
frame_slider({name: run.xt[:, :4] for name, run in gen_runs.items()},
             titles=[f"step {k}: s = {s}" for k, s in enumerate(gen_runs["Alg. 2, flat"].steps)],
             description="step", nrow=2)

# %% [markdown]
# **Why Algorithm 1 collapses.** From a flat $x_T$ the restorer can only predict a blurry average digit,
# and Algorithm 1 sets $x_{s-1} = D(\hat x_0, s - 1)$: at large $s$ that is a *re-blur* of the estimate,
# which wipes out whatever detail the estimate had, and the next estimate starts from almost the same
# flat image. The walk never commits to a digit until the last few steps, where the blur is weak, and
# then it is too late: the results are smooth blobs. Algorithm 2 instead keeps $x_s$ and adds the small
# difference $D(\hat x_0, s - 1) - D(\hat x_0, s)$, the detail that one step of blur removes, so the
# image sharpens a little at every step and the restorer's next estimate builds on it (Lesson 03).
#
# **Why perfect symmetry limits diversity.** A flat start carries one number. The restorer and the
# sampler are deterministic, so the output is a *function of that number*: two starts with nearly the
# same brightness give nearly the same digit, and the whole generator can produce at most a one-parameter
# family of images. The small noise adds $32 \times 32$ numbers of its own, and Algorithm 2 never removes
# it from $x_s$: the restorer sees it at every step and can break the tie differently for each start.
# We measure both effects on more samples: the spread of the samples (mean distance between pairs) and
# their Fréchet distance to real held-out digits, FD_MNIST-CNN (features of the course's small MNIST
# classifier; it is **not** the paper's Inception FID and its numbers are on another scale).

# %%
def blur_samples(method: str, noise_std: float, n: int) -> torch.Tensor:
    """n samples from flat starts drawn from the prior (plus noise), sampled in chunks of 100 by `generate`."""
    g = torch.Generator().manual_seed(10)  # the same colours (and noise) for every configuration
    return generate(R_blur, n, method=method, prior=prior, noise_std=noise_std, image_size=32, generator=g,
                    progress=True)


def spread(x: torch.Tensor) -> float:
    """Mean L2 distance between pairs of samples (0 if they are all the same image)."""
    flat_x = x.flatten(1)
    return float(torch.cdist(flat_x, flat_x).sum() / (len(x) * (len(x) - 1)))


generated = {}
for method in ["naive", "improved"]:
    for noise_std in [0.0, 0.002]:
        name = f"cold blur, {SAMPLER_NAMES[method]}, noise {noise_std:g}"  # e.g. "cold blur, Algorithm 2, noise 0"
        generated[name] = blur_samples(method, noise_std, N_SAMPLES)
real_floor = mnist_fd(reference, mnist.float(slice(0, len(reference))).to(device))
lines = ["| Generator | FD_MNIST-CNN ↓ | spread |", "|---|---|---|",
         f"| real training digits (the floor) | {real_floor:.2f} | {spread(mnist.float(slice(0, N_SAMPLES))):.2f} |"]
fd = {}
for name, x in generated.items():
    fd[name] = mnist_fd(reference, x)
    lines.append(f"| {name} | {fd[name]:.2f} | {spread(x):.2f} |")
display(Markdown("\n".join(lines)))
print(f"{N_SAMPLES} samples per generator against {len(reference)} held-out digits")

# %% [markdown]
# What to expect with the shipped model: Algorithm 1's FD is far larger than Algorithm 2's (blobs are not
# digits), and with Algorithm 2 the noisy start should spread the samples further than the flat one,
# because a flat start makes every sample a function of one brightness value. The first row shows the
# distance between two sets of *real* digits: no generator can be expected to beat it with this many
# samples. With the FAST-mode stand-ins (40 training steps) all numbers are poor and the comparison
# means little.
#
# ## 5. Hot versus cold with the same network and budget
#
# The hot baseline is the same recipe on `GaussianNoise`: $D(x, t, z) = \sqrt{\bar\alpha_t}\,x +
# \sqrt{1 - \bar\alpha_t}\,z$ with the cosine schedule, $z \sim \mathcal N(0, I)$, and a restorer that
# predicts $x_0$ (not the noise) with the L1 loss, as the authors do. The course's `mnist_noise` has the
# same UNet, the same $T = 100$ and the same number of training steps as `mnist_blur_generation`.
#
# Sampling can treat the noise two ways. **Fixed noise** keeps the $z$ it started from, as for every
# other random ingredient. **Re-estimated noise** solves for the $z$ that fits the current state and
# estimate, $\hat z = (x_s - \sqrt{\bar\alpha_s}\,\hat x_0)/\sqrt{1 - \bar\alpha_s}$, at every step; then
# $D(\hat x_0, s, \hat z) = x_s$ exactly and Algorithm 2's step becomes $x_{s-1} = D(\hat x_0, s-1, \hat z)$,
# which is deterministic DDIM. `sample(..., reestimate_z=True)` asks the degradation for that $\hat z$
# (`GaussianNoise.estimate_z`). One step by hand, checked against the library:

# %%
loaded_noise = train_or_load("mnist_noise", task="noise", dataset="mnist", device=device, **fallback)
R_noise = loaded_noise.diffusion()
D_noise = R_noise.degradation
ab = D_noise.alpha_bar.to(device)
z_start = torch.randn((n_show, 1, 32, 32), generator=torch.Generator().manual_seed(3)).to(device)
x_T = D_noise(torch.zeros_like(z_start), D_noise.T, z_start)  # = sqrt(1 - ab_T) z; ab_T is ~2e-7
print(f"alpha_bar_T = {float(ab[-1]):.1e}: x_T is noise and nothing else")

run_ddim = R_noise.sample(x_T, method="improved", reestimate_z=True, return_trajectory=True)
s = D_noise.T
x0_hat = R_noise.predict_x0(x_T, s)
z_hat = (x_T - ab[s].sqrt() * x0_hat) / (1 - ab[s]).sqrt()
by_hand = ab[s - 1].sqrt() * x0_hat + (1 - ab[s - 1]).sqrt() * z_hat  # one DDIM step (eta = 0)
assert torch.allclose(by_hand, run_ddim.xt[1], atol=1e-4)
print("one DDIM step by hand == coldlib's re-estimated-noise sampler")

hot_runs = {"hot, Alg. 1, fixed noise": R_noise.sample(x_T, method="naive", z=z_start, return_trajectory=True),
            "hot, Alg. 2, fixed noise": R_noise.sample(x_T, method="improved", z=z_start, return_trajectory=True),
            "hot, re-estimated noise (DDIM)": run_ddim}
labelled_rows([(name, run.xt[-1]) for name, run in hot_runs.items()], [f"noise {i}" for i in range(n_show)],
              "hot generation: the same eight noise images, three samplers")

# %% tags=["nbval-ignore-output"]
frame_slider({name: run.xt[:, :4] for name, run in hot_runs.items()},
             titles=[f"step {k}: s = {s}" for k, s in enumerate(run_ddim.steps)], description="step", nrow=2)

# %% [markdown]
# Now the table. Every generator gets the same number of samples and the same reference digits.

# %%
def hot_samples(method: str, reestimate: bool, n: int) -> torch.Tensor:
    """n samples from x_T = D(0, T, z) with z ~ N(0, I), the same z for every sampler (seeded)."""
    return generate(R_noise, n, method=method, reestimate_z=reestimate, image_size=32,
                    generator=torch.Generator().manual_seed(11), progress=True)


generated["hot, Algorithm 1, fixed noise"] = hot_samples("naive", False, N_SAMPLES)
generated["hot, Algorithm 2, fixed noise"] = hot_samples("improved", False, N_SAMPLES)
generated["hot, re-estimated noise (DDIM)"] = hot_samples("improved", True, N_SAMPLES)
for name in list(generated)[-3:]:
    fd[name] = mnist_fd(reference, generated[name])
rows = ["cold blur, Algorithm 2, noise 0.002", "cold blur, Algorithm 2, noise 0",
        "hot, Algorithm 1, fixed noise", "hot, Algorithm 2, fixed noise", "hot, re-estimated noise (DDIM)"]
display(Markdown("**Ours** (MNIST 32 px, FD_MNIST-CNN, lower is better)\n\n| Generator | FD_MNIST-CNN |\n|---|---|\n"
                 + "\n".join(f"| {r} | {fd[r]:.2f} |" for r in rows)))
print(f"lowest FD_MNIST-CNN here: {min(rows, key=fd.get)}; real digits against real digits: {real_floor:.2f}")
display(Markdown("**The paper** (Section 5; Inception FID at 128 px, 700,000 training steps; *not comparable* "
                 "with the table above)\n\n| Generator | CelebA | AFHQ |\n|---|---|---|\n"
                 "| cold: blur, GMM start, Algorithm 2 (presumably with broken symmetry; the paper does not say) | 49.45 | 54.68 |\n"
                 "| hot: noise, re-estimated noise (DDIM-like) | 23.11 | 20.59 |\n"
                 "| hot, fixed noise | not reported | not reported |\n"
                 "| cold, perfect symmetry | not reported | not reported |"))

# %% [markdown]
# How to compare. The paper's finding is that hot diffusion generates better (FID about 2× lower) than
# blur-based cold diffusion, and its claim for cold generation is that it *works*, not that it wins.
# Our table is a different experiment: MNIST at 32 px instead of faces at 128 px, a 1.06M-parameter UNet
# trained for a few thousand steps instead of a 56.6M one for 700,000, 500 samples instead of 6,400,
# and a distance on an MNIST classifier's features instead of Inception's. So compare *orderings*, not
# numbers: does hot with re-estimated noise beat cold blur here too, and how do the fixed-noise samplers
# fare? With fixed noise, Algorithm 1 re-noises each estimate with the *starting* noise,
# $x_{s-1} = \sqrt{\bar\alpha_{s-1}}\,\hat x_0 + \sqrt{1-\bar\alpha_{s-1}}\,z$, while Algorithm 2 keeps its own
# state and moves it by the difference of two such terms, so the starting noise stays in the state even
# where the estimates no longer agree with it; re-estimating makes state and estimate consistent at every
# step. With few samples (FAST mode) the differences can be within the noise of the Fréchet distance.
#
# ## 6. Inpainting-based generation: reveal a digit from a constant colour
#
# The authors' second deterministic generator grows Gaussian holes from the **outside in**: as $t$
# grows, the image is covered by a constant colour $c$ from its borders to its centre, until at $t = T$
# only the colour is left, $D(x, T) = c$. `InpaintGeneration` computes $D(x, t, c) = a_t \odot x +
# (1 - a_t)\,c$, with $a_t$ built from the same Gaussian holes as Lesson 04's inpainting, and $c$ drawn
# uniformly in $[-0.5, 0.5]$ per channel (the random ingredient). Sampling starts from a random colour
# and reveals a digit from the centre out:

# %%
D_reveal = preset("inpaint_generation", "mnist")
c = D_reveal.draw_z(x0, torch.Generator().manual_seed(4))
a_t = D_reveal.visible(32, 32, torch.device("cpu"), torch.float32)
t = 60
assert torch.allclose(D_reveal(x0, t, c), a_t[t].to(device) * x0 + (1 - a_t[t].to(device)) * c, atol=1e-6)
assert torch.allclose(D_reveal(x0, D_reveal.T, c), c.expand_as(x0), atol=1e-6)
print(f"{D_reveal}: by hand == coldlib at t = {t}; x_T is the colour alone")

# %% tags=["nbval-ignore-output"]
t_slider(D_reveal, x0[:4], z=c[:4])

# %%
loaded_reveal = train_or_load("mnist_inpaint_generation", task="inpaint_generation", dataset="mnist",
                              device=device, **fallback)
R_reveal = loaded_reveal.diffusion()
c_show = D_reveal.draw_z(flat, torch.Generator().manual_seed(5)).sort(dim=0).values
x_T_reveal = c_show.expand(n_show, 1, 32, 32).clone()
reveal_runs = {f"{alg}, colour start": R_reveal.sample(x_T_reveal, method=m, z=c_show, return_trajectory=True)
               for alg, m in [("Alg. 1", "naive"), ("Alg. 2", "improved")]}
reveal_runs["Alg. 2, colour + noise 0.002"] = R_reveal.sample(
    x_T_reveal + 0.002 * torch.randn(x_T_reveal.shape, generator=torch.Generator().manual_seed(6)).to(device),
    method="improved", z=c_show, return_trajectory=True)
labelled_rows([(name, run.xt[-1]) for name, run in reveal_runs.items()],
              [f"c = {float(v):.2f}" for v in c_show.flatten()], "inpainting-based generation from eight colours")

# %% tags=["nbval-ignore-output"]
frame_slider({name: run.xt[:, :4] for name, run in reveal_runs.items()},
             titles=[f"step {k}: s = {s}" for k, s in enumerate(reveal_runs["Alg. 2, colour start"].steps)],
             description="step", nrow=2)

# %%
def reveal_samples(noise_std: float, n: int) -> torch.Tensor:
    """n samples revealed from random colours c (the z, held fixed), plus noise_std of noise on the start."""
    return generate(R_reveal, n, noise_std=noise_std, image_size=32, generator=torch.Generator().manual_seed(12),
                    progress=True)


for noise_std in [0.0, 0.002]:
    name = f"cold reveal, Algorithm 2, noise {noise_std:g}"
    generated[name] = reveal_samples(noise_std, N_SAMPLES)
    fd[name] = mnist_fd(reference, generated[name])
    print(f"{name}: FD_MNIST-CNN {fd[name]:.2f}, spread {spread(generated[name]):.2f}")

# %% [markdown]
# The same two lessons as for blur: the colour start is one number on MNIST, so without noise the
# generator is a one-parameter family, and Algorithm 2 (which adds only the ring each step uncovers,
# Lesson 04) builds the digit from the centre out, where Algorithm 1 re-covers its own estimate at every
# step.
#
# ## 7. Animorphosis: eights from zeros
#
# The paper turns AFHQ animals into CelebA faces with $D(x, t, z) = \sqrt{\bar\alpha_t}\,x +
# \sqrt{1-\bar\alpha_t}\,z$: the noise of the hot model replaced by an image of another kind. Offline we
# use two MNIST classes: $x_0$ are **eights**, $z$ are **zeros**. The course's `mnist_mixing` was trained
# with `python -m coldlib.training --task mixing --dataset mnist --classes 8 --mix-with mnist --mix-classes 0`.
# To generate, start from held-out zeros: $x_T = \sqrt{1 - \bar\alpha_T}\,z$ (the $x_0$ term has weight
# $\sqrt{\bar\alpha_T} \approx 5\cdot10^{-4}$ and is unknown anyway). With a network, the same lines make
# cats into dogs: `load_images("cifar10", classes=[3])` are cats, `classes=[5]` dogs (and `--dataset cifar10
# --classes 5 --mix-with cifar10 --mix-classes 3` trains it), or two image folders with `folder:<path>`.

# %%
zeros_pool = load_images("mnist", split="train", classes=[0]).float()
held_out_zeros = load_images("mnist", split="test", classes=[0]).float().to(device)
held_out_eights = load_images("mnist", split="test", classes=[8]).float().to(device)
D_mix = ImageMixing(100, pool=zeros_pool)  # the pool only matters for a stand-in's training
loaded_mix = train_or_load("mnist_mixing", task="mixing", dataset="mnist", device=device, classes=[8],
                           degradation=D_mix, **fallback)
R_mix = loaded_mix.diffusion()
z_zeros = held_out_zeros[:n_show]
x_T_mix = R_mix.degradation(torch.zeros_like(z_zeros), R_mix.T, z_zeros)
mix_runs = {"Alg. 2, fixed z (the start zero)": R_mix.sample(x_T_mix, method="improved", z=z_zeros,
                                                             return_trajectory=True),
            "re-estimated z": R_mix.sample(x_T_mix, method="improved", reestimate_z=True, return_trajectory=True)}
labelled_rows([("start: a held-out zero", z_zeros), *((k, v.xt[-1]) for k, v in mix_runs.items())],
              [f"zero {i}" for i in range(n_show)], "animorphosis: eights generated from zeros")

# %% tags=["nbval-ignore-output"]
frame_slider({name: run.xt[:, :4] for name, run in mix_runs.items()},
             titles=[f"step {k}: s = {s}" for k, s in enumerate(mix_runs["re-estimated z"].steps)],
             description="step", nrow=2)

# %%
n_mix = min(N_SAMPLES, len(held_out_zeros))


def mix_samples(reestimate: bool) -> torch.Tensor:
    """n_mix eights from held-out zeros drawn at random from the pool (seeded: the same starts for both)."""
    return generate(R_mix, n_mix, pool=held_out_zeros, reestimate_z=reestimate,
                    generator=torch.Generator().manual_seed(15), progress=True)


eights_fixed, eights_est = mix_samples(reestimate=False), mix_samples(reestimate=True)
mix_table = ["| Images | FD_MNIST-CNN to held-out eights | to held-out zeros |", "|---|---|---|"]
for name, x in [("held-out zeros (where the starts come from)", held_out_zeros[:n_mix]),
                ("generated, fixed z", eights_fixed), ("generated, re-estimated z", eights_est),
                ("real training eights (the floor)", load_images("mnist", classes=[8]).float(slice(0, n_mix)))]:
    mix_table.append(f"| {name} | {mnist_fd(held_out_eights, x):.2f} | {mnist_fd(held_out_zeros, x):.2f} |")
display(Markdown("\n".join(mix_table)))
print(f"{n_mix} samples; {len(held_out_eights)} held-out eights and {len(held_out_zeros)} held-out zeros")

# %% [markdown]
# A good animorphosis model moves its samples from the zeros' side of the table to the eights' side. The
# trajectories show how: the zero fades while an eight grows out of it, often keeping its position and
# thickness, since the restorer sees the zero at every step. Whether a sample is "an eight that looks
# like its zero" or "any eight" depends on how much the network learned to use $z$: fixed $z$ keeps the
# start in the state until the end; re-estimating lets the state follow the network's own eight.
#
# ## 8. How does T matter? (the authors' open issue #18)
#
# The authors never measured the effect of $T$. Here is a small, controlled version: the same total blur
# ($\sum_i \sigma_i^2 = 240$ px², flat at the end, then the mean) split into $T \in \{10, 20, 50, 100\}$ equal
# steps, the same tiny UNet trained for the same number of steps on each, sampled with Algorithm 2 from the
# same noisy starts, scored with FD_MNIST-CNN (in FAST mode: 15 training steps, 32 samples; the numbers
# are then meaningless, only the code runs). Sampling cost grows linearly with $T$; does quality?

# %%
ablation_steps, ablation_batch = (15, 16) if FAST else (1000, 32)
ablation = {}
for T in [10, 20, 50, 100]:
    sigma = (240 / T) ** 0.5
    D_T = GaussianBlur.from_routine("constant", T, sigma, 2 * int(3 * sigma + 0.999) + 1, "circular", to_mean_at_T=True)
    torch.manual_seed(0)
    R_T = ColdDiffusion(UNet(unet_preset("tiny", 1)), D_T)
    Trainer(R_T, mnist.images, TrainConfig(steps=ablation_steps, batch_size=ablation_batch, grad_accum=1, lr=4e-4),
            device=device, data_note=mnist.source).train(progress=True)
    R_T.eval()
    begin = time.perf_counter()
    samples = generate(R_T, N_SAMPLES, prior=prior, noise_std=0.002, image_size=32,
                       generator=torch.Generator().manual_seed(13), progress=True)
    seconds = time.perf_counter() - begin
    ablation[T] = {"FD": mnist_fd(reference, samples), "seconds": seconds, "samples": samples[:n_show]}
    print(f"T = {T:3d}: sigma {sigma:.2f} px per step; FD_MNIST-CNN {ablation[T]['FD']:.2f}; "
          f"sampling {seconds:.1f} s for {N_SAMPLES} images")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
Ts = list(ablation)
axes[0].plot(Ts, [ablation[T]["FD"] for T in Ts], "o-")
axes[0].set(xscale="log", xlabel="T (steps)", ylabel="FD_MNIST-CNN ↓", title="quality")
axes[1].plot(Ts, [ablation[T]["seconds"] for T in Ts], "o-")
axes[1].set(xscale="log", yscale="log", xlabel="T (steps)", ylabel="seconds", title="sampling time")
plt.tight_layout()
plt.show()
labelled_rows([(f"T = {T}", ablation[T]["samples"]) for T in Ts], [f"sample {i}" for i in range(n_show)],
              f"the same starts, tiny UNet, {ablation_steps} training steps per T")

# %% [markdown]
# Read it with its limits in mind: one tiny network per $T$, a short training run, 500 samples (32 in
# FAST mode, where the numbers are noise). A larger $T$ makes each step a smaller change, which is what
# Algorithm 2's first-order argument (Lesson 03) needs, but it also spreads the same training budget over
# more distinct steps and costs proportionally more to sample. Exercise 3 asks you to repeat the
# experiment with more seeds before believing a trend.
#
# ## Exercises
#
# 1. **More components.** Fit the prior with 5 components (`fit_channel_mean_prior(..., n_components=5)`)
#    and generate with Algorithm 2 and noise 0.002. Does FD_MNIST-CNN change? Why might it matter more for
#    colour images than for MNIST?
# 2. **How much noise?** Repeat the blur generation of section 4 with noise 0.0005, 0.002, 0.01 and 0.05.
#    Plot FD_MNIST-CNN and spread against the noise level.
# 3. **Error bars for section 8.** Repeat the T ablation with three seeds per $T$ (initial weights and
#    starts) and report mean ± standard deviation. (Open; about 4× the time of section 8.)
# 4. **Re-estimated noise makes the two algorithms one.** Show that with `reestimate_z=True` Algorithm 1 and
#    Algorithm 2 take the same steps, on paper and numerically.
#
# Solutions to 1 and 4 follow.

# %%
# Solution 1.
prior5 = fit_channel_mean_prior(mnist.float(), n_components=5)
samples5 = generate(R_blur, N_SAMPLES, prior=prior5, noise_std=0.002, image_size=32,
                    generator=torch.Generator().manual_seed(14), progress=True)
print(f"weights of the 5 components: {[round(float(w), 3) for w in prior5.weights]}")
print(f"FD_MNIST-CNN: 1 component {fd['cold blur, Algorithm 2, noise 0.002']:.2f}, "
      f"5 components {mnist_fd(reference, samples5):.2f}")

# %% [markdown]
# The histogram of section 2 is not one clean bump (thin ones against fat zeros and eights), so five
# components follow it more closely and the starts are more typical of real digits; whether that shows
# in FD_MNIST-CNN depends on the model and on the number of samples (FD is noisy with few). For colour
# images it matters more: mean colours vary much more (sky, grass, skin), and one Gaussian puts mass on
# colours no image has, so the first estimate starts from an implausible image.
#
# **Solution 4.** With $\hat z$ solved from $x_s$ and $\hat x_0$, $D(\hat x_0, s, \hat z) = x_s$ exactly, so
# Algorithm 2's step $x_s - D(\hat x_0, s, \hat z) + D(\hat x_0, s - 1, \hat z)$ *is* Algorithm 1's step
# $D(\hat x_0, s - 1, \hat z)$. Numerically (up to round-off):

# %%
naive_est = R_noise.sample(x_T, method="naive", reestimate_z=True)
print(f"max |Alg. 1 - Alg. 2| with re-estimated noise: {(naive_est - run_ddim.xt[-1]).abs().max():.1e}")
assert torch.allclose(naive_est, run_ddim.xt[-1], atol=1e-3)

# %% [markdown]
# ## Check your understanding
#
# 1. What does a degradation need for its restorer to become a generator?
#    <details><summary>Answer</summary>An end state $D(x, T)$ that can be sampled without knowing $x$:
#    a flat colour (from a prior over mean colours), a constant colour, pure noise, or an image of
#    another dataset.</details>
# 2. Why does Algorithm 1 fail for blur generation while Algorithm 2 works?
#    <details><summary>Answer</summary>Algorithm 1 re-blurs every estimate to the next level, throwing
#    its detail away; from a flat start the estimates stay blurry averages until the blur is weak.
#    Algorithm 2 adds only the detail one step removes, so the state sharpens steadily and each estimate
#    builds on the previous ones.</details>
# 3. Why does a perfectly flat start limit diversity, and what does 0.002 noise change?
#    <details><summary>Answer</summary>The sampler is deterministic, so the output is a function of the
#    start; a flat MNIST start is one number, so samples form a one-parameter family. The noise adds a
#    high-dimensional random part that the restorer sees at every step (Algorithm 2 never removes it).</details>
# 4. What is the difference between fixed and re-estimated noise, and which is DDIM?
#    <details><summary>Answer</summary>Fixed keeps the starting $z$ in every $D(\hat x_0, s, z)$;
#    re-estimated solves $z$ from $x_s$ and $\hat x_0$ each step, making $D(\hat x_0, s, \hat z) = x_s$ so the
#    step is $D(\hat x_0, s - 1, \hat z)$: deterministic DDIM ($\eta = 0$) with an $x_0$-predicting network.</details>
# 5. Why can our FD_MNIST-CNN numbers not be put next to the paper's FIDs?
#    <details><summary>Answer</summary>Different feature network (an MNIST classifier vs Inception),
#    different data and resolution, different numbers of samples and training; only orderings within
#    one table are meaningful.</details>
#
# ## Summary
#
# - Any degradation whose end state can be sampled gives a generator: blur to a flat colour with a
#   Gaussian mixture over mean colours, reveal from a constant colour, mix from another image, or noise.
# - Algorithm 2 is what makes deterministic generation work; Algorithm 1 collapses to smooth blobs.
# - A perfectly symmetric start makes the generator a function of a few numbers; a little noise that
#   Algorithm 2 carries along restores diversity.
# - Hot diffusion with re-estimated noise is DDIM; `sample(..., reestimate_z=True)` is the same sampler
#   with one option, for any degradation that can solve for its $z$.
# - We measured hot vs cold, symmetry, samplers and $T$ with one Fréchet distance on one reference set,
#   and kept the paper's Inception FIDs in their own table.
#
# ## References
#
# - A. Bansal et al. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392) (Section 5, generation). Code:
#   [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models);
#   [issue #18](https://github.com/arpitbansal297/Cold-Diffusion-Models/issues/18) asks about $T$.
# - J. Song, C. Meng, S. Ermon. *Denoising Diffusion Implicit Models.* ICLR 2021,
#   [arXiv:2010.02502](https://arxiv.org/abs/2010.02502).
# - A. Nichol, P. Dhariwal. *Improved Denoising Diffusion Probabilistic Models* (the cosine schedule).
#   ICML 2021, [arXiv:2102.09672](https://arxiv.org/abs/2102.09672).
# - E. Hoogeboom, T. Salimans. *Blurring Diffusion Models.* ICLR 2023,
#   [arXiv:2209.05557](https://arxiv.org/abs/2209.05557) (blur plus noise, a principled hot–cold middle ground).
# - scikit-learn, [`GaussianMixture`](https://scikit-learn.org/stable/modules/generated/sklearn.mixture.GaussianMixture.html).
#
# Next: [07 · Your own degradation](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/07_your_own_degradation.ipynb).

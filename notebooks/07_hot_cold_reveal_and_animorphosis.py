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
# # 07 · Hot versus cold, revealing, animorphosis and the choice of T
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/07_hot_cold_reveal_and_animorphosis.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/07_hot_cold_reveal_and_animorphosis.ipynb)
#
# Lesson 06 turned a restorer into a generator by blurring all the way to a flat colour. This lesson puts
# that next to the famous case, **hot** diffusion with Gaussian noise, trained with the same network and
# budget and sampled three ways (noise held fixed with Algorithm 1 or Algorithm 2, and noise re-estimated at
# every step, which is DDIM). Then come the paper's two other deterministic generators: revealing a digit
# from a constant colour, and animorphosis (with a network, CIFAR-10 dogs grown out of cats, with a
# restorer trained in the lesson; offline, MNIST eights grown out of zeros). An optional last section asks
# a question the authors left open: how does the number of steps $T$ change the samples?
#
# **Recap of [lesson 06](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/06_generation_from_blur.ipynb).**
# A degradation whose end state $x_T$ can be sampled without an image gives a generator: draw $x_T$ and run
# a sampler down to $x_0$. For blur to the mean, $x_T$ is a flat colour drawn from a Gaussian mixture fitted
# to the training images' mean colours. Algorithm 1 collapses to blobs there, Algorithm 2 works, and noise of
# standard deviation 0.002 on the start ("broken symmetry") is needed for diverse samples. Samples are scored
# with FD_MNIST-CNN, a Fréchet distance on the features of a small MNIST classifier (not the paper's
# Inception FID), against held-out digits, beside the distance between two sets of real digits of the same
# size. This lesson re-creates everything it uses (the reference digits, the spread measure, the prior for
# blur); it reads nothing that lesson 06 computed or wrote.
#
# **Learning objectives**
# - Sample the hot (noise) degradation with the noise held fixed and re-estimated at every step (DDIM),
#   explain the ordering of the three samplers, and compare hot and cold with a Fréchet distance, beside
#   the paper's FIDs.
# - Generate by revealing an image from a constant colour, and by animorphosis (dogs from cats on CIFAR-10,
#   or eights from zeros offline).
# - (Optional section) Measure how generation quality changes with $T$ at a fixed training budget.
#
# **Prerequisites:** [06 · Generation from blur and symmetry breaking](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/06_generation_from_blur.ipynb)
# and [04 · Inpainting and super-resolution](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/04_inpainting_and_super_resolution.ipynb)
# (revealing uses its Gaussian holes).
#
# **Estimated time:** 30–45 minutes of reading and exercises.
#
# **Run time:** 2 min 37 s for the whole lesson in full mode on a 2-core CPU (Intel(R) Xeon(R) Processor), no GPU, measured by `make render` on 2026-12-08.

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

from coldlib.data import choose_cifar10, load_images
from coldlib.degradations import GaussianBlur, ImageMixing
from coldlib.diffusion import ColdDiffusion
from coldlib.env import fast_mode, lesson_device, seed_everything
from coldlib.evaluation import (FeatureStats, InceptionUnavailable, feature_extractor, mnist_fd, mnist_fd_interval,
                                verdicts)
from coldlib.experiments import preset
from coldlib.generation import animorphosis_pair, fit_channel_mean_prior, generate
from coldlib.plotting import degradation_grid, labelled_rows, sample_grids
from coldlib.training import TrainConfig, Trainer, train_or_load
from coldlib.unet import UNet, unet_preset
from coldlib.widgets import frame_slider, t_slider

FAST = fast_mode()  # COLDLIB_FAST=1 (CI): few samples, tiny stand-ins if a shipped model is missing
generator = seed_everything(0)
device = lesson_device(FAST)  # in FAST mode on a CPU: one thread (faster on a busy, shared CI machine)
print(f"device {device} · FAST={FAST}")

mnist = load_images("mnist", split="train")  # the printed lines say which images: read them
held_out = load_images("mnist", split="test")
# Samples per generator for the Fréchet distances. Each generator runs the UNet T = 100 times per batch of
# samples, so a CPU draws 64 (the size of the grids; this lesson's six generators then fit in its ten minutes)
# and a GPU 500. Fréchet distances from 64 samples are noisier and biased upward (the covariances are estimated from fewer points); the
# real-vs-real floor in the table of section 1, measured with the same number of samples, shows by how much.
N_SAMPLES = 32 if FAST else (500 if device.type == "cuda" else 64)
reference = held_out.float(slice(0, max(N_SAMPLES, 500))).to(device)  # the first 500 held-out digits
x0 = held_out.float(slice(0, 8)).to(device)
n_show = 8  # starts followed step by step in the pictures
fallback = dict(model="tiny", steps=40, batch_size=16, grad_accum=1) if FAST else \
    dict(model="small", steps=1500, batch_size=32, grad_accum=2)


def spread(x: torch.Tensor) -> float:
    """Mean L2 distance between pairs of samples (0 if they are all the same image), as in lesson 06."""
    flat_x = x.flatten(1)
    return float(torch.cdist(flat_x, flat_x).sum() / (len(x) * (len(x) - 1)))


generated, fd = {}, {}  # samples and FD_MNIST-CNN of every generator, by name

# %% [markdown]
# ## 1. Hot versus cold with the same network and budget
#
# The hot baseline is the same recipe on `GaussianNoise`: $D(x, t, z) = \sqrt{\bar\alpha_t}\,x +
# \sqrt{1 - \bar\alpha_t}\,z$ with the cosine schedule, $z \sim \mathcal N(0, I)$, and a restorer that
# predicts $x_0$ (not the noise) with the L1 loss, as the authors do. The course's `mnist_noise` has the
# same UNet, the same $T = 100$ and the same number of training steps as `mnist_blur_generation`, the
# blur generator of lesson 06.
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
# Now the table. Every generator gets the same number of samples and the same reference digits, and the
# first row is the distance between two sets of real digits of that size (the floor).

# %%
def hot_samples(method: str, reestimate: bool, n: int) -> torch.Tensor:
    """n samples from x_T = D(0, T, z) with z ~ N(0, I), the same z for every sampler (seeded)."""
    return generate(R_noise, n, method=method, reestimate_z=reestimate, image_size=32,
                    generator=torch.Generator().manual_seed(11), progress=True)


hot_rows = {"hot, Algorithm 1, fixed noise": ("naive", False),
            "hot, Algorithm 2, fixed noise": ("improved", False),
            "hot, re-estimated noise (DDIM)": ("improved", True)}
for name, (method, reestimate) in hot_rows.items():
    generated[name] = hot_samples(method, reestimate, N_SAMPLES)
    fd[name] = mnist_fd_interval(reference, generated[name])  # estimate = mnist_fd, with its 95 % spread
real_digits = mnist.float(slice(0, N_SAMPLES)).to(device)  # as many real digits as each generator has samples
real_floor = mnist_fd_interval(reference, real_digits)
display(Markdown("**Ours** (MNIST 32 px, FD_MNIST-CNN, lower is better; 95 % bootstrap spread)\n\n"
                 "| Generator | FD_MNIST-CNN ↓ | spread of the samples |\n|---|---|---|\n"
                 f"| real training digits (the floor) | {real_floor:.1f} | {spread(real_digits):.2f} |\n"
                 + "\n".join(f"| {r} | {fd[r]:.1f} | {spread(generated[r]):.2f} |" for r in hot_rows)))
print(f"{N_SAMPLES} samples per generator (and {N_SAMPLES} real training digits for the floor) "
      f"against {len(reference)} held-out digits")
print("the hot samplers in this run, from their intervals:")
print("\n".join(verdicts({r: {"FD_MNIST-CNN": fd[r]} for r in hot_rows}, rows=list(hot_rows),
                         metrics=("FD_MNIST-CNN",))))
display(Markdown("**The paper** (Section 5; Inception FID at 128 px, 700,000 training steps; *not comparable* "
                 "with the table above)\n\n| Generator | CelebA | AFHQ |\n|---|---|---|\n"
                 "| cold: blur, GMM start, Algorithm 2 (presumably with broken symmetry; the paper does not say) | 49.45 | 54.68 |\n"
                 "| hot: noise, re-estimated noise (DDIM-like) | 23.11 | 20.59 |\n"
                 "| hot, fixed noise | not reported | not reported |\n"
                 "| cold, perfect symmetry | not reported | not reported |"))

# %% [markdown]
# The first 64 samples of each hot sampler (all of them in FAST mode, which draws 32):

# %%
sample_grids({name: generated[name] for name in hot_rows})

# %% [markdown]
# **How to compare with the paper.** The paper's finding is that hot diffusion generates better (FID about
# 2× lower) than blur-based cold diffusion, and its claim for cold generation is that it *works*, not that
# it wins. Our table is a different experiment: MNIST at 32 px instead of faces at 128 px, a
# 1.06M-parameter UNet trained for a few thousand steps instead of a 56.6M one for 700,000, 64 samples on
# a CPU (500 on a GPU) instead of 6,400, and a distance on an MNIST classifier's features instead of
# Inception's. So compare *orderings*, not numbers, and only orderings whose intervals separate. Lesson 06
# scores cold blur in the same way, and the model card (`data/MODEL_CARD.md`) has every generator measured
# with more samples, with intervals. Section 2 adds a cold generator of this lesson to the comparison.
#
# **The three hot samplers.** The lines printed under the table above are *this* run's orderings, each
# read from the two intervals: with 64 samples (a CPU run) every distance is larger and noisier than with
# more, so two rows whose intervals overlap are called level, not ordered. Why can Algorithm 1, which
# collapses for blur (lesson 06), do well with noise?
#
# - **Algorithm 1, fixed noise**, sets $x_{s-1} = D(\hat x_0, s-1, z) = \sqrt{\bar\alpha_{s-1}}\,\hat x_0 +
#   \sqrt{1-\bar\alpha_{s-1}}\,z$: it re-noises each estimate with the start noise $z$. Every state it
#   hands the restorer is therefore an exact sample of $D(\hat x_0, s-1, z)$ with true $\mathcal N(0, I)$
#   noise of the right size, the kind of input the restorer was trained on (with $\hat x_0$ in place of a
#   real digit), and a wrong estimate is simply replaced by the next one. For blur, re-degrading destroyed
#   the estimate's detail; re-noising keeps the estimate whole and only adds noise the restorer has
#   learnt to remove.
# - **Algorithm 2, fixed noise**, moves its state by $D(\hat x_0, s-1, z) - D(\hat x_0, s, z)$. Call
#   $r_s = x_s - D(\hat x_0^{(s)}, s, z)$ the mismatch between the state and what the current estimate
#   says the state should be. One step gives $r_{s-1} = r_s + \sqrt{\bar\alpha_{s-1}}\,(\hat x_0^{(s)} -
#   \hat x_0^{(s-1)})$: every change of the estimate stays in the state, and the changes add up. The
#   restorer then sees states that are not "an image plus the right amount of noise", and the result
#   $x_0 = \hat x_0^{(1)} + r_1$ carries the accumulated residual (traces of earlier estimates). The
#   weight $\sqrt{\bar\alpha_{s-1}}$ is small while the noise dominates and close to 1 once it has faded,
#   so every change the estimate makes in the later steps stays in the state almost at full size, and
#   nothing removes it.
# - **Re-estimated noise (DDIM)** solves $\hat z$ from $x_s$ and $\hat x_0$ at every step, so
#   $D(\hat x_0, s, \hat z) = x_s$ and the mismatch is zero at every step: state and estimate are always
#   consistent. Unlike the fixed $z$, though, $\hat z$ is computed from the restorer's estimate, so the
#   estimate's errors move into it, and it is no longer exactly the Gaussian noise the network was
#   trained with.
#
# With few samples (FAST mode: 32) the differences can be within the noise of the Fréchet distance.
#
# ## 2. Inpainting-based generation: reveal a digit from a constant colour
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

# %% [markdown]
# The same states as a static grid, with the same colours $c$: the covered border grows inwards until only
# the colour is left at $t = T$.

# %%
degradation_grid(D_reveal, x0[:4], [0, 30, 50, 60, 70, 80, 90, 100], z=c[:4])

# %%
loaded_reveal = train_or_load("mnist_inpaint_generation", task="inpaint_generation", dataset="mnist",
                              device=device, **fallback)
R_reveal = loaded_reveal.diffusion()
c_show = D_reveal.draw_z(x0, torch.Generator().manual_seed(5)).sort(dim=0).values  # eight colours, sorted
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

# %% [markdown]
# One generator is scored, Algorithm 2 from random colours plus 0.002 of noise (the best of the three rows
# above in the model card), against the same held-out digits as the hot samplers; it is this lesson's cold
# entry in the hot-versus-cold comparison.

# %%
def reveal_samples(noise_std: float, n: int) -> torch.Tensor:
    """n samples revealed from random colours c (the z, held fixed), plus noise_std of noise on the start."""
    return generate(R_reveal, n, noise_std=noise_std, image_size=32, generator=torch.Generator().manual_seed(12),
                    progress=True)


name = "cold reveal, Algorithm 2, noise 0.002"
generated[name] = reveal_samples(0.002, N_SAMPLES)
fd[name] = mnist_fd_interval(reference, generated[name])
print(f"{name}: FD_MNIST-CNN {fd[name]:.1f}, spread {spread(generated[name]):.2f} ({N_SAMPLES} samples; "
      f"floor {real_floor:.1f})")
print("hot and cold in this run, from their intervals:")
print("\n".join(line for line in verdicts({r: {"FD_MNIST-CNN": v} for r, v in fd.items()}, rows=list(fd),
                                         metrics=("FD_MNIST-CNN",)) if name in line))
sample_grids({name: generated[name]})

# %% [markdown]
# The rows of eight show the same two effects as blur in lesson 06: the colour start is one number on
# MNIST, so without noise the generator is a one-parameter family, and Algorithm 2 (which adds only the
# ring each step uncovers, Lesson 04) builds the digit from the centre out, where Algorithm 1 re-covers its
# own estimate at every step. The model card measures Algorithm 1, Algorithm 2 from a flat colour and
# Algorithm 2 with noise 0.002 with more samples, beside cold blur and the hot samplers.
#
# ## 3. Animorphosis: dogs from cats (offline: eights from zeros)
#
# The paper turns AFHQ animals into CelebA faces with $D(x, t, z) = \sqrt{\bar\alpha_t}\,x +
# \sqrt{1-\bar\alpha_t}\,z$: the noise of the hot model replaced by an image of another kind. We use two
# classes of one dataset. `choose_cifar10(fallback="mnist")` picks CIFAR-10 when it is on disk or can be
# downloaded; then $x_0$ are **dogs** and $z$ are **cats** (3 channels, 32 px). Offline it falls back to
# MNIST: $x_0$ are **eights** and $z$ are **zeros**. `animorphosis_pair` loads the two classes from both
# splits (the training split: the images a restorer learns from; the held-out split: the starts of
# generation and the reference for the distances), and the next cell prints which pair this run uses and
# why. To generate, start from held-out sources (cats or zeros): $x_T = \sqrt{1 - \bar\alpha_T}\,z$ (the
# $x_0$ term has weight $\sqrt{\bar\alpha_T} \approx 5\cdot10^{-4}$ and is unknown anyway).
#
# Where the restorer comes from depends on the pair. For eights from zeros the course ships `mnist_mixing`,
# trained with `python -m coldlib.training --task mixing --dataset mnist --classes 8 --mix-with mnist --mix-classes 0`.
# For dogs from cats nothing is shipped, so the lesson trains one itself with the `Trainer`:
# `ImageMixing(100, pool=<the training cats>)` on the training dogs, with a UNet sized by the device (on a
# GPU the small one, 1.06M parameters, for 4,000 steps, a few minutes; on a CPU the tiny one, 0.16M
# parameters, for 400 steps, a few minutes too but with rough, blurry dogs; in FAST mode a 40-step
# stand-in whose samples mean nothing). The paper trains 700,000 steps; ours are a demonstration of the
# mechanism, not of its quality.

# %%
animals = choose_cifar10(fallback="mnist")  # CIFAR-10 if on disk or downloadable, else MNIST: it prints why
pair = animorphosis_pair(animals)  # dogs from cats, or eights from zeros: it prints which
source, target = pair.source_name, pair.target_name  # "cat" and "dog", or "zero" and "eight"
held_out_sources = pair.held_out_sources.float().to(device)  # the starts of generation
held_out_targets = pair.held_out_targets.float().to(device)  # the reference for the distances below
D_mix = ImageMixing(100, pool=pair.sources.float())  # z of training: sources of the training split
if animals.is_cifar10:  # nothing shipped for dogs from cats: train a restorer here, sized by the device
    if FAST:
        mix_recipe = dict(model="tiny", steps=40, batch_size=16)  # CI's stand-in size: only the code is tested
    elif device.type == "cuda":
        mix_recipe = dict(model="small", steps=4000, batch_size=64)
    else:
        mix_recipe = dict(model="tiny", steps=400, batch_size=32)
        print("On a CPU the lesson trains a tiny UNet for 400 steps: expect blurry, barely dog-like samples "
              "(on a GPU it trains the small UNet for 4,000 steps).")
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the lesson's random state is untouched
        torch.manual_seed(0)
        mix_net = UNet(unet_preset(mix_recipe["model"], pair.channels))
    mix_steps = mix_recipe["steps"]
    print(f"no shipped model for {pair.title}: training one here, UNet '{mix_recipe['model']}' "
          f"({mix_net.num_parameters():,} parameters), {mix_steps:,} steps of batch {mix_recipe['batch_size']} "
          f"on {device}")
    mix_trainer = Trainer(ColdDiffusion(mix_net, D_mix), pair.targets.images,
                          TrainConfig(steps=mix_steps, batch_size=mix_recipe["batch_size"], grad_accum=1, lr=4e-4,
                                      ema_start=mix_steps // 4, ema_every=1, ema_decay=0.995, flip=True),
                          device=device, data_note=f"{pair.targets.source}; mixed with: {pair.sources.source}")
    mix_trainer.train(progress=True)
    R_mix = ColdDiffusion(mix_trainer.ema, D_mix)  # the EMA weights, as a shipped checkpoint holds them
else:  # eights from zeros: the course's shipped model (a stand-in is trained only if it is missing)
    loaded_mix = train_or_load("mnist_mixing", task="mixing", dataset="mnist", device=device,
                               classes=[pair.target_class], degradation=D_mix, **fallback)
    R_mix = loaded_mix.diffusion()
z_starts = held_out_sources[:n_show]
x_T_mix = R_mix.degradation(torch.zeros_like(z_starts), R_mix.T, z_starts)
mix_runs = {f"Alg. 2, fixed z (the start {source})": R_mix.sample(x_T_mix, method="improved", z=z_starts,
                                                                  return_trajectory=True),
            "re-estimated z": R_mix.sample(x_T_mix, method="improved", reestimate_z=True, return_trajectory=True)}
labelled_rows([(f"start: a held-out {source}", z_starts), *((k, v.xt[-1]) for k, v in mix_runs.items())],
              [f"{source} {i}" for i in range(n_show)], f"animorphosis: {target}s generated from {source}s")

# %% tags=["nbval-ignore-output"]
frame_slider({name: run.xt[:, :4] for name, run in mix_runs.items()},
             titles=[f"step {k}: s = {s}" for k, s in enumerate(mix_runs["re-estimated z"].steps)],
             description="step", nrow=2)

# %% [markdown]
# Now the distances. Each generated set is compared with the held-out targets and with the held-out
# sources, beside the sources themselves and real training targets (the floor). On MNIST the distance is
# FD_MNIST-CNN, as in sections 1 and 2. It measures digits only, so on CIFAR-10 the table uses Inception
# FID instead, when its weights are available (online, or a weights file named by
# `COLDLIB_INCEPTION_WEIGHTS`); without them the lesson says why and shows no table. With 64 samples (a
# CPU run) and 2048 Inception features, FID is biased far upward: read the rows against the floor, never
# against the paper's numbers.

# %%
n_mix = min(N_SAMPLES, len(held_out_sources))


def mix_samples(reestimate: bool) -> torch.Tensor:
    """n_mix targets from held-out sources drawn at random from the pool (seeded: the same starts for both)."""
    return generate(R_mix, n_mix, pool=held_out_sources, reestimate_z=reestimate,
                    generator=torch.Generator().manual_seed(15), progress=True)


mixed_fixed, mixed_est = mix_samples(reestimate=False), mix_samples(reestimate=True)
mix_rows = {f"held-out {source}s (where the starts come from)": held_out_sources[:n_mix],
            "generated, fixed z": mixed_fixed, "generated, re-estimated z": mixed_est,
            f"real training {target}s (the floor)": pair.targets.float(slice(0, n_mix))}
mix_distances = None  # row -> (distance to held-out targets, distance to held-out sources)
if animals.is_cifar10:
    n_ref = min(len(held_out_targets), len(held_out_sources), max(n_mix, 500))
    try:  # Inception features, one pass per image set; raises before any work when the weights are missing
        extract = feature_extractor("inception", device=device)

        def inception_stats(x: torch.Tensor) -> FeatureStats:
            return FeatureStats.from_features(extract(x))

        references = (inception_stats(held_out_targets[:n_ref]), inception_stats(held_out_sources[:n_ref]))
        mix_distances = {row: tuple(ref.frechet_distance(inception_stats(x)) for ref in references)
                         for row, x in mix_rows.items()}
        mix_metric = "Inception FID"
        mix_note = (f"{n_mix} samples; the first {n_ref} held-out {target}s and {source}s (Inception FID, "
                    "torchmetrics / torch-fidelity InceptionV3; not comparable with FD_MNIST-CNN)")
    except InceptionUnavailable as why:
        mix_note = f"No Fréchet distance for {pair.title}: {why}"
else:
    mix_distances = {row: (mnist_fd(held_out_targets, x), mnist_fd(held_out_sources, x)) for row, x in mix_rows.items()}
    mix_metric = "FD_MNIST-CNN"
    mix_note = (f"{n_mix} samples; {len(held_out_targets)} held-out {target}s and {len(held_out_sources)} held-out "
                f"{source}s")
if mix_distances is not None:
    display(Markdown("\n".join([f"| Images | {mix_metric} to held-out {target}s | to held-out {source}s |",
                                "|---|---|---|"]
                               + [f"| {row} | {a:.2f} | {b:.2f} |" for row, (a, b) in mix_distances.items()])))
print(mix_note)
sample_grids({f"{pair.title}, fixed z": mixed_fixed, f"{pair.title}, re-estimated z": mixed_est})

# %% [markdown]
# A good animorphosis model moves its samples from the sources' side of the table (the zeros, or the cats)
# to the targets' side (the eights, or the dogs). The trajectories show how: the start fades while the
# target grows out of it, often keeping its position and its outline (a digit's thickness, an animal's
# pose and colours), since the restorer sees the start at every step. Whether a sample is "an eight that
# looks like its zero" or "any eight" depends on how much the network learned to use $z$: fixed $z$ keeps
# the start in the state until the end; re-estimating lets the state follow the network's own estimate.
# Dogs from cats is a much harder task than eights from zeros (colour photographs with varied
# backgrounds, and a network trained for minutes), so expect dog-like colours and shapes rather than
# recognisable dogs, and low quality on a CPU.
#
# ## 4. Optional: how does T matter? (the authors' open issue #18)
#
# The authors never measured the effect of $T$. Here is a small, controlled version: the same total blur
# ($\sum_i \sigma_i^2 = 240$ px², flat at the end, then the mean) split into $T \in \{10, 20, 50, 100\}$ equal
# steps, the same tiny UNet trained for the same number of steps on each, sampled with Algorithm 2 from the
# same noisy starts (lesson 06's blur generator: a flat colour from a one-component Gaussian mixture plus
# 0.002 of noise), scored with FD_MNIST-CNN. Sampling cost grows linearly with $T$; does quality?
#
# **This section is optional.** It trains four models, one per $T$, so on a CPU it takes far longer than
# the rest of the lesson. It runs by itself on a GPU (1,000 training steps per $T$) and in FAST mode (CI:
# 15 training steps and 32 samples, where the numbers are meaningless and only the code runs). On a CPU
# it is skipped: set `RUN_T_ABLATION = True` in the next cell to run it.

# %%
RUN_T_ABLATION = FAST or device.type == "cuda"  # on a CPU: set it to True to run this section (slow there)
ablation_steps, ablation_batch = (15, 16) if FAST else (1000, 32)
ablation = {}
if RUN_T_ABLATION:
    prior = fit_channel_mean_prior(mnist.float(), n_components=1)  # lesson 06's start: colours of flat images
    for T in [10, 20, 50, 100]:
        sigma = (240 / T) ** 0.5
        D_T = GaussianBlur.from_routine("constant", T, sigma, 2 * int(3 * sigma + 0.999) + 1, "circular",
                                        to_mean_at_T=True)
        torch.manual_seed(0)
        R_T = ColdDiffusion(UNet(unet_preset("tiny", 1)), D_T)
        Trainer(R_T, mnist.images, TrainConfig(steps=ablation_steps, batch_size=ablation_batch, grad_accum=1, lr=4e-4),
                device=device, data_note=mnist.source).train(progress=True)
        R_T.eval()
        begin = time.perf_counter()
        samples = generate(R_T, N_SAMPLES, prior=prior, noise_std=0.002, image_size=32,
                           generator=torch.Generator().manual_seed(13), progress=True)
        seconds = time.perf_counter() - begin
        ablation[T] = {"FD": mnist_fd(reference, samples), "seconds": seconds, "samples": samples[:64]}
        print(f"T = {T:3d}: sigma {sigma:.2f} px per step; FD_MNIST-CNN {ablation[T]['FD']:.2f}; "
              f"sampling {seconds:.1f} s for {N_SAMPLES} images")
else:
    print("Section 4 skipped (RUN_T_ABLATION = False): it trains four models, which on a CPU takes far longer "
          "than the rest of this lesson. To run it, set RUN_T_ABLATION = True at the top of this cell and run "
          "this cell and the next one again.")

# %%
if ablation:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    Ts = list(ablation)
    axes[0].plot(Ts, [ablation[T]["FD"] for T in Ts], "o-")
    axes[0].set(xscale="log", xlabel="T (steps)", ylabel="FD_MNIST-CNN ↓", title="quality")
    axes[1].plot(Ts, [ablation[T]["seconds"] for T in Ts], "o-")
    axes[1].set(xscale="log", yscale="log", xlabel="T (steps)", ylabel="seconds", title="sampling time")
    plt.tight_layout()
    plt.show()
    display(sample_grids({f"T = {T} ({ablation_steps} training steps)": ablation[T]["samples"] for T in Ts}))
else:
    print("nothing to plot: section 4 was skipped (see the cell above)")

# %% [markdown]
# Read it with its limits in mind: one tiny network per $T$, a short training run, and `N_SAMPLES`
# samples per $T$ (32 in FAST mode, where the numbers are noise). A larger $T$ makes each step a smaller
# change, which is what Algorithm 2's first-order argument (Lesson 03) needs, but it also spreads the same
# training budget over more distinct steps and costs proportionally more to sample. Exercise 1 asks you
# to repeat the experiment with more seeds before believing a trend.
#
# ## Exercises
#
# 1. **Error bars for section 4.** Repeat the T ablation with three seeds per $T$ (initial weights and
#    starts) and report mean ± standard deviation. (Open; three times the cost of section 4, which must
#    run: `RUN_T_ABLATION = True`.)
# 2. **Re-estimated noise makes the two algorithms one.** Show that with `reestimate_z=True` Algorithm 1 and
#    Algorithm 2 take the same steps, on paper and numerically.
#
# A solution to 2 follows.
#
# **Solution 2.** With $\hat z$ solved from $x_s$ and $\hat x_0$, $D(\hat x_0, s, \hat z) = x_s$ exactly, so
# Algorithm 2's step $x_s - D(\hat x_0, s, \hat z) + D(\hat x_0, s - 1, \hat z)$ *is* Algorithm 1's step
# $D(\hat x_0, s - 1, \hat z)$. Numerically (up to round-off):

# %%
naive_est = R_noise.sample(x_T, method="naive", reestimate_z=True)
print(f"max |Alg. 1 - Alg. 2| with re-estimated noise: {(naive_est - run_ddim.xt[-1]).abs().max():.1e}")
assert torch.allclose(naive_est, run_ddim.xt[-1], atol=1e-3)

# %% [markdown]
# ## Check your understanding
#
# 1. What is the difference between fixed and re-estimated noise, and which is DDIM?
#    <details><summary>Answer</summary>Fixed keeps the starting $z$ in every $D(\hat x_0, s, z)$;
#    re-estimated solves $z$ from $x_s$ and $\hat x_0$ each step, making $D(\hat x_0, s, \hat z) = x_s$ so the
#    step is $D(\hat x_0, s - 1, \hat z)$: deterministic DDIM ($\eta = 0$) with an $x_0$-predicting network.</details>
# 2. Why can our FD_MNIST-CNN numbers not be put next to the paper's FIDs?
#    <details><summary>Answer</summary>Different feature network (an MNIST classifier vs Inception),
#    different data and resolution, different numbers of samples and training; only orderings within
#    one table are meaningful.</details>
#
# ## Summary
#
# - Hot diffusion with re-estimated noise is DDIM; `sample(..., reestimate_z=True)` is the same sampler
#   with one option, for any degradation that can solve for its $z$.
# - With fixed noise, Algorithm 1 re-noises each estimate with the start noise, so the restorer always sees
#   the kind of input it was trained on; Algorithm 2 keeps the mismatch between its state and the changing
#   estimates, and it adds up. The lesson prints the ordering it measured; with few samples, close rows can
#   swap.
# - Revealing a digit from a constant colour and animorphosis are deterministic generators with the same
#   restorer-and-sampler recipe and a different start.
# - How $T$ changes quality at a fixed training budget is an open question of the paper; the optional
#   section 4 measures one small, controlled version.
# - We measured hot and cold with one Fréchet distance (FD_MNIST-CNN) on one reference set, animorphosis
#   with FD_MNIST-CNN on MNIST or Inception FID on CIFAR-10 (never both in one table), and kept the
#   paper's Inception FIDs in their own table.
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
#
# Next: [08 · Your own degradation](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/08_your_own_degradation.ipynb).

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
# # 06 · Generation from blur and symmetry breaking
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/06_generation_from_blur.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/06_generation_from_blur.ipynb)
#
# A restorer inverts a degradation. If the degradation ends in a state that we can *sample* without
# knowing $x_0$, the same restorer becomes a generative model: draw $x_T$, run Algorithm 2 down to $x_0$,
# and a new image comes out. Gaussian noise is the famous case ("hot" diffusion): at $t = T$ nothing of the
# image is left but noise. The paper's Section 5 shows that **deterministic** degradations do it too, and
# this lesson builds the first and main one: blur all the way to a flat colour. It fits the start
# distribution (a Gaussian mixture over the images' mean colours), generates digits with a trained model,
# shows why Algorithm 1 fails here, why a perfectly flat start gives little diversity, and how a pinch of
# noise fixes it. Lesson 07 continues with hot diffusion, revealing a digit from a colour, animorphosis
# and the number of steps $T$.
#
# **Learning objectives**
# - Explain why a degradation whose end state can be sampled gives a generator, and write the start
#   distribution for blur-to-the-mean: a Gaussian mixture over the images' mean colours.
# - Run Algorithm 1 and Algorithm 2 from the same starts, with and without symmetry-breaking noise, and
#   say why Algorithm 1 collapses and why perfect symmetry limits diversity.
# - Score generators with a Fréchet distance (FD_MNIST-CNN) and a spread, and read them against the
#   distance between two sets of real digits of the same size.
#
# **Prerequisites:** [02 · Training a restorer](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/02_training_a_restorer.ipynb)
# and [03 · Sampling: Algorithm 1 versus Algorithm 2](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/03_sampling_naive_vs_improved.ipynb).
#
# **Estimated time:** 30–45 minutes of reading and exercises.
#
# **Run time:** 2 min 52 s for the whole lesson in full mode on a 2-core CPU (Intel(R) Xeon(R) Processor), no GPU, measured by `make render` on 2026-12-07.

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
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from coldlib.data import load_images
from coldlib.diffusion import SAMPLER_NAMES
from coldlib.env import fast_mode, lesson_device, seed_everything
from coldlib.evaluation import mnist_fd, mnist_fd_interval, verdicts
from coldlib.experiments import preset
from coldlib.generation import channel_means, fit_channel_mean_prior, generate
from coldlib.plotting import degradation_grid, labelled_rows, sample_grids
from coldlib.training import train_or_load
from coldlib.widgets import frame_slider, t_slider

FAST = fast_mode()  # COLDLIB_FAST=1 (CI): few samples, tiny stand-ins if a shipped model is missing
generator = seed_everything(0)
device = lesson_device(FAST)  # in FAST mode on a CPU: one thread (faster on a busy, shared CI machine)
print(f"device {device} · FAST={FAST}")

mnist = load_images("mnist", split="train")  # the printed lines say which images: read them
held_out = load_images("mnist", split="test")
# Samples per generator for the Fréchet distances. Each generator runs the UNet T = 100 times per batch of
# samples, about a minute per 100 samples on a small CPU, so a CPU draws 100 and a GPU 500. Fréchet distances
# from 100 samples are noisier and biased upward (the covariances are estimated from fewer points); the
# real-vs-real floor in the table of section 4, measured with the same number of samples, shows by how much.
N_SAMPLES = 32 if FAST else (500 if device.type == "cuda" else 100)
reference = held_out.float(slice(0, max(N_SAMPLES, 500))).to(device)  # the first 500 held-out digits
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
# The same states as a static grid (the slider shows nothing without a live kernel). Blurs compound, each
# step adding its variance $\sigma_i^2$ to the total, so the strokes are gone within the first ten or twenty
# steps and the later ones only flatten a faint remnant; the last column is the flat mean colour.

# %%
degradation_grid(D_blur, x0[:4], [0, 1, 2, 5, 10, 20, 50, 100])

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
# then it is too late. With the shipped model, the rows above show the result: every start ends in nearly
# the same few strokes, whatever its colour and noise, and no digit. Algorithm 2 instead keeps $x_s$ and
# adds the small difference $D(\hat x_0, s - 1) - D(\hat x_0, s)$, the detail that one step of blur
# removes, so the image sharpens a little at every step and the restorer's next estimate builds on it
# (Lesson 03).
#
# **Why perfect symmetry limits diversity.** A flat start carries one number. The restorer and the
# sampler are deterministic, so the output is a *function of that number*: two starts with nearly the
# same brightness give nearly the same digit, and the whole generator can produce at most a one-parameter
# family of images. The small noise adds $32 \times 32$ numbers of its own, and Algorithm 2 never removes
# it from $x_s$: the restorer sees it at every step and can break the tie differently for each start.
# We measure both effects on more samples: the spread of the samples (mean distance between pairs) and
# their Fréchet distance to real held-out digits, FD_MNIST-CNN (features of the course's small MNIST
# classifier; it is **not** the paper's Inception FID and its numbers are on another scale). Three
# generators are scored: Algorithm 1 and Algorithm 2 from flat starts, and Algorithm 2 with broken
# symmetry (Algorithm 1 with noise looks like Algorithm 1 without it in the rows above).

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
for method, noise_std in [("naive", 0.0), ("improved", 0.0), ("improved", 0.002)]:
    name = f"cold blur, {SAMPLER_NAMES[method]}, noise {noise_std:g}"  # e.g. "cold blur, Algorithm 2, noise 0"
    generated[name] = blur_samples(method, noise_std, N_SAMPLES)
real_digits = mnist.float(slice(0, N_SAMPLES)).to(device)  # as many real digits as each generator has samples
FLOOR = "real training digits (the floor)"
fd = {FLOOR: mnist_fd_interval(reference, real_digits)}  # estimate = mnist_fd; [low, high] = its spread
lines = ["| Generator | FD_MNIST-CNN ↓ [95 % spread] | spread of the samples |", "|---|---|---|",
         f"| {FLOOR} | {fd[FLOOR]:.1f} | {spread(real_digits):.2f} |"]
for name, x in generated.items():
    fd[name] = mnist_fd_interval(reference, x)
    lines.append(f"| {name} | {fd[name]:.1f} | {spread(x):.2f} |")
display(Markdown("\n".join(lines)))
print(f"{N_SAMPLES} samples per generator (and {N_SAMPLES} real training digits for the floor) "
      f"against {len(reference)} held-out digits; intervals: 95 % bootstrap spread over the images")
print("\n".join(verdicts({k: {"FD_MNIST-CNN": v} for k, v in fd.items()}, rows=list(fd), metrics=("FD_MNIST-CNN",))))

# %% [markdown]
# The first 64 samples of each generator (all of them in FAST mode, which draws 32):

# %%
sample_grids(generated)  # coldlib.plotting: the first 64 of each, side by side

# %% [markdown]
# What to expect with the shipped model: Algorithm 1's FD far above Algorithm 2's (its samples are nearly
# one image, and not a digit: see its spread), and with Algorithm 2 the noisy start spreading the samples
# further and coming closer to real digits than the flat one, because a flat start makes every sample a
# function of one brightness value. The lines under the table say which of these orderings this run
# *shows*: "ahead" only where the two 95 % spreads do not overlap. The model card measures the same rows
# with more samples. The first row is the distance between two sets of *real* digits with as many images
# as each generator has samples: no generator can be expected to beat it. With fewer samples every
# Fréchet distance, the floor included, comes out larger (it is biased upward and noisier), so compare
# rows within one table and never with a table measured on another number of samples. Without the
# shipped model, FAST mode trains a stand-in for only 40 steps: then all numbers are poor and the
# comparison means little.
#
# ## Exercises
#
# 1. **More components.** Fit the prior with 5 components (`fit_channel_mean_prior(..., n_components=5)`)
#    and generate with Algorithm 2 and noise 0.002. Does FD_MNIST-CNN change? Why might it matter more for
#    colour images than for MNIST?
# 2. **How much noise?** Repeat the blur generation of section 4 with noise 0.0005, 0.002, 0.01 and 0.05.
#    Plot FD_MNIST-CNN and spread against the noise level.
#
# A solution to 1 follows.

# %%
# Solution 1.
prior5 = fit_channel_mean_prior(mnist.float(), n_components=5)
samples5 = generate(R_blur, N_SAMPLES, prior=prior5, noise_std=0.002, image_size=32,
                    generator=torch.Generator().manual_seed(14), progress=True)
print(f"weights of the 5 components: {[round(float(w), 3) for w in prior5.weights]}")
fd5 = mnist_fd_interval(reference, samples5)
print(f"FD_MNIST-CNN: 1 component {fd['cold blur, Algorithm 2, noise 0.002']:.1f}, 5 components {fd5:.1f} "
      f"({N_SAMPLES} samples each)")
print(verdicts({"1 component": {"FD_MNIST-CNN": fd["cold blur, Algorithm 2, noise 0.002"]},
                "5 components": {"FD_MNIST-CNN": fd5}}, rows=["1 component", "5 components"],
               metrics=("FD_MNIST-CNN",))[0])
sample_grids({"cold blur, Algorithm 2, noise 0.002": generated["cold blur, Algorithm 2, noise 0.002"],
              "the same, prior with 5 components": samples5})

# %% [markdown]
# The histogram of section 2 is not one clean bump (thin ones against fat zeros and eights), so five
# components follow it more closely and the starts are more typical of real digits; whether that shows
# in FD_MNIST-CNN depends on the model and on the number of samples (FD is noisy with few). For colour
# images it matters more: mean colours vary much more (sky, grass, skin), and one Gaussian puts mass on
# colours no image has, so the first estimate starts from an implausible image.
#
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
#
# ## Summary
#
# - Any degradation whose end state can be sampled gives a generator. Blur to the mean ends in a flat
#   colour, and the start is drawn from a Gaussian mixture fitted to the training images' mean colours.
# - Algorithm 2 is what makes deterministic generation work; Algorithm 1 re-blurs its estimates and
#   collapses (with the shipped model, to nearly the same image for every start).
# - A perfectly symmetric start makes the generator a function of a few numbers; a little noise that
#   Algorithm 2 carries along restores diversity.
# - A Fréchet distance from few samples is noisy and biased upward: compare generators within one table,
#   beside a real-vs-real floor measured with the same number of samples.
#
# ## References
#
# - A. Bansal et al. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392) (Section 5, generation). Code:
#   [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models).
# - E. Hoogeboom, T. Salimans. *Blurring Diffusion Models.* ICLR 2023,
#   [arXiv:2209.05557](https://arxiv.org/abs/2209.05557) (blur plus noise, a principled hot–cold middle ground).
# - M. Heusel et al. *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium*
#   (the Fréchet distance on network features, FID). NeurIPS 2017, [arXiv:1706.08500](https://arxiv.org/abs/1706.08500).
# - scikit-learn, [`GaussianMixture`](https://scikit-learn.org/stable/modules/generated/sklearn.mixture.GaussianMixture.html).
#
# Next: [07 · Hot versus cold, revealing, animorphosis and the choice of T](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/07_hot_cold_reveal_and_animorphosis.ipynb).

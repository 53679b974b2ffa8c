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
# # 01 · Degradations: blur, pixelation, masks, snow, decolorization, mixing and noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/01_degradations.ipynb)
# · [View on GitHub](https://github.com/coldlib-course/cold-diffusion-course/blob/main/notebooks/01_degradations.ipynb)
#
# Cold diffusion starts from a degradation $D(x_0, t)$: a family of image transforms, the identity at
# $t = 0$, that get more severe as $t$ grows to $T$. This lesson builds every degradation of the paper
# from scratch in a few lines. It checks each one against `coldlib.degradations`, then lets you explore
# it with a slider over $t$. Finally it shows why computing $D(x_0, t)$ in closed form, rather than
# step by step as the authors' code does, matters for training.
#
# **Learning objectives**
# - Write each degradation of the paper as code: Gaussian blur, pixelation, Gaussian-mask inpainting
#   (random and centred), snow, decolorization, image mixing (animorphosis) and Gaussian noise.
# - Tell the iterated definition (apply one step $t$ times) from the closed form (jump straight to $t$),
#   and check that they agree.
# - Explain the separable-matrix trick that makes blur cost the same at every $t$, and why a training
#   batch can then mix steps freely.
# - Use the random ingredient `z` (hole position, snow field, second image) correctly.
#
# **Prerequisites:** [00 · Setup and tour](https://colab.research.google.com/github/coldlib-course/cold-diffusion-course/blob/main/notebooks/00_setup_and_tour.ipynb);
# convolutions in PyTorch (`F.conv2d`, padding).
#
# **Estimated time:** 60–90 minutes of reading and exercises.
#
# **Run time:** 21 s for the whole lesson in full mode on a 2-core CPU (AMD EPYC), no GPU, measured by `make render` on 2026-11-29.

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
import torch.nn.functional as F

from coldlib.data import load_images
from coldlib.degradations import Degradation, GaussianMask, GaussianNoise, ImageMixing, Pixelate
from coldlib.experiments import list_presets, preset
from coldlib.env import fast_mode, pick_device, seed_everything
from coldlib.plotting import degradation_grid, plot_schedule, show_images, showcase
from coldlib.widgets import frame_slider, frames_over_t, t_slider

FAST = fast_mode()  # COLDLIB_FAST=1 (CI) only shrinks the timing experiment of section 9
generator = seed_everything(0)
device = pick_device()
print(f"device {device} (degradations of 32×32 images are cheap: this lesson runs on the CPU) · FAST={FAST}")

mnist = load_images("mnist", split="train")
photos = load_images("photos", split="train")
digits = mnist.float(slice(0, 4))  # (4, 1, 32, 32) in [-1, 1]
colour = photos.float(showcase(photos.float(), photos.labels, k=4))  # (4, 3, 32, 32), one crop per photo
show_images(torch.cat([digits.expand(-1, 3, -1, -1), colour]), nrow=8, title="the images of this lesson")

# %% [markdown]
# ## 1. One interface for every degradation
#
# Every degradation in `coldlib.degradations` is an object `D` with
#
# - `D.T`, the number of steps;
# - `D(x0, t, z=None)`, which degrades a batch `x0` of shape `(B, C, H, W)` with values in $[-1, 1]$.
#   `t` is an int, or a tensor with one step per image. `z` is the random ingredient, if there is one;
# - `D.draw_z(x0, generator)`, which draws that ingredient;
# - `D.schedule`, a dict of per-step parameters, each a tensor indexed by $t = 0 \dots T$.
#
# `preset(kind, dataset)` builds the paper's setting for a task and dataset.

# %%
for kind, dataset in list_presets():
    print(f"{kind + '/' + dataset:26s} {preset(kind, dataset)!r}")

# %% [markdown]
# ## 2. Gaussian blur
#
# One blur step convolves every channel with a normalised $k \times k$ Gaussian kernel of width
# $\sigma_i$. That kernel is the outer product $g_i g_i^\top$ of two 1-D Gaussians. The paper's
# degradation is **cumulative**: after $t$ steps,
#
# $$D(x, t) = k_{t-1} * \dots * k_1 * k_0 * x .$$
#
# Its MNIST setting uses $T = 20$ steps, all with $\sigma = 7$ and $k = 11$, and *circular* padding, so the
# image wraps around at the borders. Its CIFAR-10 setting uses $T = 50$ steps with $\sigma_i$ growing from
# 0.35 to 0.84, and *reflect* padding. Here is the iterated definition, written out in a few lines.

# %%
def gaussian_1d(kernel_size: int, sigma: float) -> torch.Tensor:
    j = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    g = torch.exp(-(j**2) / (2 * sigma**2))
    return g / g.sum()  # sums to 1: a blur never changes the overall brightness


def blur_step(x: torch.Tensor, sigma: float, kernel_size: int, padding: str) -> torch.Tensor:
    g = gaussian_1d(kernel_size, sigma).to(x.dtype)
    kernel = torch.outer(g, g).expand(x.shape[1], 1, kernel_size, kernel_size)  # one copy per channel
    p = kernel_size // 2
    return F.conv2d(F.pad(x, (p, p, p, p), mode=padding), kernel, groups=x.shape[1])  # depthwise


def blur_iterated(x: torch.Tensor, t: int, sigmas: list[float], kernel_size: int, padding: str) -> torch.Tensor:
    for i in range(t):  # t convolutions: the cost grows with t
        x = blur_step(x, sigmas[i], kernel_size, padding)
    return x


blur_mnist, blur_cifar = preset("blur", "mnist"), preset("blur", "cifar10")
for D, x in [(blur_mnist, digits), (blur_cifar, colour)]:
    for t in [0, 1, 5, D.T]:
        ours = blur_iterated(x, t, D.sigmas, D.kernel_size, D.padding)
        assert torch.allclose(ours, D(x, t), atol=1e-5), (D, t)
print("iterated blur == coldlib's closed form, for circular (MNIST) and reflect (CIFAR-10) padding")

# %% [markdown]
# `coldlib` gets the same images without looping over the steps; section 9 shows how. Move the slider:
# all 21 states were computed once, in one call, so the slider only swaps pictures.

# %% tags=["nbval-ignore-output"]
t_slider(blur_mnist, digits, value=1)  # start at t = 1: by t = T/2 = 10 the digits are a flat dark grey

# %% [markdown]
# Without a live kernel (on GitHub, for instance) the slider shows nothing, so here are the same states
# as a static grid. With $\sigma = 7$ and 11 taps, each step is close to an 11-pixel box filter, and after a
# few steps only the digit's average grey is left.

# %%
degradation_grid(blur_mnist, digits, [0, 1, 2, 3, 5, 10, 20])

# %%
degradation_grid(blur_cifar, colour, [0, 5, 10, 20, 30, 40, 50])

# %% [markdown]
# The CIFAR-10 blur is gentle on purpose: the paper uses it for *restoration* (deblurring), where the
# blurred image still contains most of the content. Its kernel width grows step by step:

# %%
plot_schedule(blur_cifar)

# %% [markdown]
# ## 3. Pixelation (super-resolution)
#
# Each step halves the resolution: average each $2 \times 2$ block, then blow the image back up with
# nearest-neighbour upsampling so the size stays $N \times N$. After $t$ steps every $2^t \times 2^t$ block
# holds its mean. The paper uses $T = 3$ for 32×32 images (blocks of 8) and $T = 4$ for 128×128 CelebA.
# Below, the iterated form and the one-line closed form.
#
# (The authors downsample with bicubic interpolation without antialiasing, which is only roughly a
# block average. `coldlib` uses the exact block average, their "area" variant, so the closed form is
# exact.)

# %%
def pixelate_iterated(x: torch.Tensor, t: int) -> torch.Tensor:
    n = x.shape[-1]
    for i in range(t):  # step i: down to n / 2^(i+1) pixels, then back up to n
        x = F.interpolate(F.avg_pool2d(x, 2 ** (i + 1)), size=n, mode="nearest")
    return x


def pixelate_closed(x: torch.Tensor, t: int) -> torch.Tensor:
    return F.interpolate(F.avg_pool2d(x, 2**t), scale_factor=2**t, mode="nearest")


pix = preset("pixelate", "cifar10")  # Pixelate(3); MNIST's preset is the same
for x in [digits, colour]:
    for t in range(pix.T + 1):
        assert torch.allclose(pixelate_iterated(x, t), pixelate_closed(x, t), atol=1e-6)
        assert torch.allclose(pixelate_closed(x, t), pix(x, t), atol=1e-6)
print("iterated pixelation == one average-pool by 2^t == coldlib")

# %% [markdown]
# `frame_slider` shows several stacks of frames side by side under one slider: here the digits and the
# photo crops, both with $T = 3$.

# %% tags=["nbval-ignore-output"]
frame_slider({"MNIST": frames_over_t(pix, digits), "photos": frames_over_t(pix, colour)})

# %%
degradation_grid(pix, torch.cat([digits.expand(-1, 3, -1, -1), colour]), range(pix.T + 1), scale=0.8)

# %% [markdown]
# ## 4. Gaussian-mask inpainting
#
# Inpainting hides part of the image behind a hole that grows with every step. Step $i$ multiplies the
# image by $M_i = 1 - G_i / \max G_i$, where $G_i$ is a 2-D Gaussian bump of width
# $\sigma_i = 0.1 \cdot (i + 11)$ pixels for MNIST and CIFAR-10. $M_i$ is 0 at the bump's centre and near 1
# far away. After $t$ steps the image has been multiplied by the **cumulative product**
# $A_t = \prod_{i < t} M_i$:
#
# $$D(x, t) = A_t \odot x .$$
#
# A mask value of 0 means pixel value 0, which is mid-grey on the $[-1, 1]$ scale, not black.
#
# **Centred holes** (the paper's CelebA setting) use masks of the image's size. **Random holes**
# (MNIST and CIFAR-10) use masks on a canvas twice as large, $2N \times 2N$, and give each image an
# $N \times N$ window at a random offset, so the hole can be anywhere, even partly outside. That offset
# is the degradation's random ingredient `z`. It is fixed along all $t$ for an image, so the same hole
# grows.

# %%
def fade_mask(n: int, sigma: float) -> torch.Tensor:
    """One step's n × n mask: 1 minus a Gaussian bump with peak 1."""
    j = torch.arange(n + 1, dtype=torch.float64) - (n + 1) // 2
    bump = torch.exp(-(j[:, None] ** 2 + j[None, :] ** 2) / (2 * sigma**2))
    return (1 - bump)[1:, 1:]  # the authors build an (n+1)² grid and drop its first row and column


def cumulative_masks(n: int, sigmas: list[float]) -> torch.Tensor:
    """A_t for t = 0..T, shape (T + 1, n, n): A_0 = 1, then running products of the step masks."""
    steps = torch.stack([fade_mask(n, s) for s in sigmas])
    return torch.cat([torch.ones(1, n, n, dtype=torch.float64), torch.cumprod(steps, dim=0)]).float()


# centred: masks of the image's own size
mask_centred = GaussianMask(50, kernel_std=0.1, initial_mask=11, random_position=False)
A = cumulative_masks(32, mask_centred.sigmas)
for t in [0, 1, 10, 50]:
    assert torch.allclose(A[t] * colour, mask_centred(colour, t), atol=1e-6)

# random: a 64 × 64 canvas and one 32 × 32 window per image, at the offsets z
mask_random = preset("inpaint", "mnist")
z = mask_random.draw_z(digits, generator)  # (B, 2): row and column offsets in 0..32
A2 = cumulative_masks(64, mask_random.sigmas)
for t in [0, 1, 10, 50]:
    windows = torch.stack([A2[t, r:r + 32, c:c + 32] for r, c in z.tolist()])[:, None]
    assert torch.allclose(windows * digits, mask_random(digits, t, z), atol=1e-6)
print(f"masks match coldlib; hole offsets z = {z.tolist()}")
print(f"at t = T, {(A[-1] < 0.5).float().mean():.0%} of a centred 32×32 image is more than half hidden")

# %% tags=["nbval-ignore-output"]
t_slider(mask_random, digits, z=z)

# %%
degradation_grid(mask_random, digits, [0, 5, 10, 20, 30, 40, 50], z=z, title=f"{mask_random!r}, z = {z.tolist()}")

# %%
degradation_grid(mask_centred, colour, [0, 5, 10, 20, 30, 40, 50])

# %% [markdown]
# ## 5. Snow
#
# The snow degradation comes from ImageNet-C, a benchmark of image corruptions. Unlike the others it is
# **not cumulative**: the image at step $t$ is computed directly from the clean image, the step and a
# random snow field `z`.
#
# 1. The field is Gaussian noise $\mathcal N(0.55, 0.3^2)$ at $1/2.5$ of the image size, upsampled
#    bicubically. It is drawn once per image.
# 2. At step $t$, the values of the field above a threshold $\tau_t$ become flakes.
# 3. The flakes are smeared by an 11-tap motion blur of width $\sigma_t$, horizontal or vertical (also
#    drawn once per image).
# 4. The flake layer $S_t$ and its 180° rotation are added to the image in $[0, 1]$ and clipped:
#    $D(x, t) = 2\,\mathrm{clip}(u + S_t + \mathrm{rot}_{180}(S_t), 0, 1) - 1$ with $u = (x + 1)/2$.
#
# $\tau_t$ falls linearly (from 1.15 to 0.70 for CIFAR-10), so there are more flakes, and $\sigma_t$ grows
# (from 0.05 to 16), so the streaks get longer. (ImageNet-C also brightens the image under the snow; the
# paper's runs switch that off with `--fix_brightness`, and so does `coldlib`.)

# %%
snow = preset("snow", "cifar10")
z_snow = snow.draw_z(colour, generator)  # SnowField(field (B, 1, H, W), vertical (B,))


def snow_closed(x: torch.Tensor, t: int, field: torch.Tensor, vertical: torch.Tensor, taps: int = 11) -> torch.Tensor:
    if t == 0:
        return x
    tau, sigma = float(snow.schedule["threshold"][t]), float(snow.schedule["motion_sigma"][t])
    flakes = torch.where(field >= tau, field, torch.zeros_like(field)).clamp(0, 1)
    j = torch.arange(taps, dtype=torch.float64) - taps // 2
    k = torch.exp(-(j**2) / (2 * sigma**2))
    k = (k / k.sum()).float()
    layers = []
    for b in range(len(x)):  # the blur direction differs per image
        kb = k.view(taps, 1) if vertical[b] else k.view(1, taps)
        pad = (kb.shape[0] // 2, kb.shape[1] // 2)
        layers.append(F.conv2d(flakes[b:b + 1], kb[None, None], padding=pad))
    s = torch.cat(layers)
    u = (x + 1) / 2
    return 2 * (u + s + s.flip(-1, -2)).clamp(0, 1) - 1


for t in [0, 1, 50, 120, 200]:
    assert torch.allclose(snow_closed(colour, t, *z_snow), snow(colour, t, z_snow), atol=1e-5), t
print(f"snow matches coldlib; directions: {['vertical' if v else 'horizontal' for v in z_snow.vertical]}")

# %% tags=["nbval-ignore-output"]
t_slider(snow, colour, z=z_snow)

# %%
degradation_grid(snow, colour, [0, 25, 50, 100, 150, 200], z=z_snow)

# %% [markdown]
# ## 6. Decolorization
#
# The authors fade the colours out with $t$ 1×1 convolutions. Each is a 3×3 matrix acting on the RGB
# values of every pixel, $W_i = e_i I + (1 - e_i)\,G$, where $G = \tfrac13 \mathbf 1 \mathbf 1^\top$
# replaces a colour by its grey level (the mean of R, G and B). $G$ is a projection ($G^2 = G$), so a
# product of such matrices is again of that form:
# $(aI + (1-a)G)(bI + (1-b)G) = abI + (1 - ab)G$. With their linear schedule,
# $\prod_{i<t} e_i = 1 - t/T$, which gives the closed form
#
# $$D(x, t) = (1 - t/T)\,x + (t/T)\,\mathrm{gray}(x).$$
#
# The per-step factors that make the product linear in $t$ are $e_i = (T - i - 1)/(T - i)$. Let's check.

# %%
decolor = preset("decolor", "cifar10")


def decolor_iterated(x: torch.Tensor, t: int) -> torch.Tensor:
    T, G = decolor.T, torch.full((3, 3), 1 / 3)
    for i in range(t):
        e = (T - i - 1) / (T - i)
        W = e * torch.eye(3) + (1 - e) * G
        x = F.conv2d(x, W[:, :, None, None])  # a 1×1 convolution mixes the channels of each pixel
    return x


T = decolor.T  # 20
gray = colour.mean(dim=1, keepdim=True)
for t in [0, 1, 7, T]:
    closed = (1 - t / T) * colour + (t / T) * gray
    assert torch.allclose(decolor_iterated(colour, t), closed, atol=1e-5)
    assert torch.allclose(closed, decolor(colour, t), atol=1e-6)
print("iterated 1×1 convolutions == closed form == coldlib")

# %% tags=["nbval-ignore-output"]
t_slider(decolor, colour)

# %%
degradation_grid(decolor, colour, [0, 4, 8, 12, 16, 20])

# %% [markdown]
# ## 7. Image mixing: animorphosis
#
# Mixing blends the image with a second image $z$ along the cosine schedule of improved DDPM
# (Nichol & Dhariwal): $\bar\alpha_t$ falls from 1 to 0, and
#
# $$D(x, t) = \sqrt{\bar\alpha_t}\,x + \sqrt{1 - \bar\alpha_t}\,z .$$
#
# In the paper $x$ is a CelebA face and $z$ a random AFHQ animal photo: at $t = T$ you see only the
# animal, and restoring it step by step turns the animal into a face ("animorphosis"). Offline we mix
# our training crops with crops of the two *held-out* photos, a cat and a cup of coffee. The schedule,
# derived inline:

# %%
held_out = load_images("photos", split="test")
others = held_out.float(showcase(held_out.float(), held_out.labels, k=16))  # the images to mix in

mixing = ImageMixing(200, pool=others)  # draw_z picks random images from the pool
z_mix = mixing.draw_z(colour, generator)

s, T = 0.008, mixing.T
f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * torch.pi / 2) ** 2
betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)  # the schedule's own clip: the last beta would be 1
alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, dim=0)])
assert torch.allclose(alpha_bar, mixing.schedule["alpha_bar"])

for t in [0, 50, 100, 200]:
    a = alpha_bar[t].float()
    assert torch.allclose(a.sqrt() * colour + (1 - a).sqrt() * z_mix, mixing(colour, t, z_mix), atol=1e-6)
print(f"mixing matches coldlib; alpha_bar at t = 0, 100, 200: {alpha_bar[[0, 100, 200]].tolist()}")

# %% tags=["nbval-ignore-output"]
t_slider(mixing, colour, z=z_mix)

# %%
degradation_grid(mixing, colour, [0, 50, 100, 150, 175, 190, 200], z=z_mix)

# %%
plot_schedule(mixing)

# %% [markdown]
# ## 8. Gaussian noise: the hot baseline
#
# Standard diffusion is the same formula with $z \sim \mathcal N(0, I)$ drawn fresh. The formula is
# identical to mixing; the difference is where $z$ comes from. With a fixed photo $z$ the degradation is
# deterministic ("cold"). With fresh noise it is the familiar "hot" process. Left out, `z` is drawn anew
# on every call, which is what training wants. Passing the same `z` makes the result repeatable, which is
# what a sampler wants.

# %%
noise = GaussianNoise(200)
assert not torch.equal(noise(colour, 100), noise(colour, 100))  # fresh noise on each call
z_noise = noise.draw_z(colour, generator)
assert torch.equal(noise(colour, 100, z_noise), noise(colour, 100, z_noise))  # fixed z: deterministic
a = noise.schedule["alpha_bar"][100].float()
assert torch.allclose(noise(colour, 100, z_noise), a.sqrt() * colour + (1 - a).sqrt() * z_noise, atol=1e-6)
print("noise: random without z, deterministic with a fixed z")

# %% tags=["nbval-ignore-output"]
t_slider(noise, colour, z=z_noise, value=50)  # start at t = 50: by t = T/2 the noise hides most of each photo

# %%
degradation_grid(noise, colour, [0, 25, 50, 100, 150, 200], z=z_noise)

# %% [markdown]
# ## 9. Why the closed form matters
#
# Training draws a random $t$ for **every image in the batch**. The authors' blur, mask, pixelation,
# snow and decolorization code applies the degradation step by step: it blurs the whole batch up to the
# largest $t$ in it, keeps every intermediate result, and then picks each image's level. A batch
# therefore costs $O(T)$ convolutions. Their improved sampler recomputes such sums at every step, which
# costs $O(T^2)$ for a whole sample.
#
# `coldlib` computes every degradation in **closed form**: one call, at a cost that does not depend on
# $t$, with a different $t$ for each image. First, a batch with mixed steps:

# %%
t_per_image = torch.tensor([0, 2, 5, 20])
together = blur_mnist(digits, t_per_image)  # one call, a different t for each image
one_by_one = torch.cat([blur_mnist(digits[i:i + 1], int(t)) for i, t in enumerate(t_per_image)])
assert torch.allclose(together, one_by_one, atol=1e-6)
show_images(together, nrow=4, title=f"one call, t = {t_per_image.tolist()}")

# %% [markdown]
# **The separable-matrix trick.** A 1-D blur of a length-$n$ signal, padding included, is linear. So it
# is an $n \times n$ matrix $K$, whose $j$-th column is the blur of the $j$-th unit vector. The 2-D kernel
# $g g^\top$ blurs the columns and then the rows of an image $X$: one step is $K X K^\top$. Composing $t$
# steps gives
#
# $$D(X, t) = A_t X A_t^\top, \qquad A_t = K_{t-1} \cdots K_1 K_0 ,$$
#
# so one $n \times n$ matrix per axis holds all $t$ steps, whatever the padding. We build the $T + 1$
# matrices $A_0, \dots, A_T$ once per image size. Then any $t$ costs two matrix products, and a batch
# picks one $A_{t_b}$ per image. Let's build $A_t$ for the CelebA blur setting: $T = 200$ steps,
# $\sigma_i = e^{0.01 i}$, 15 taps, reflect padding.

# %%
def axis_matrix(sigma: float, kernel_size: int, n: int, padding: str) -> torch.Tensor:
    """The n × n matrix K with K @ v = 1-D blur of v (padding included)."""
    p = kernel_size // 2
    impulses = torch.eye(n, dtype=torch.float64)[:, None, :]  # n signals: the unit vectors
    blurred = F.conv1d(F.pad(impulses, (p, p), mode=padding), gaussian_1d(kernel_size, sigma)[None, None])
    return blurred[:, 0, :].T  # column j = the blur of unit vector j


blur_celeba = preset("blur", "celeba")
n = colour.shape[-1]
A_t = [torch.eye(n, dtype=torch.float64)]
for sigma in blur_celeba.sigmas:
    A_t.append(axis_matrix(sigma, blur_celeba.kernel_size, n, blur_celeba.padding) @ A_t[-1])
A_t = torch.stack(A_t).float()  # (T + 1, n, n): built once

for t in [1, 50, 200]:
    assert torch.allclose(A_t[t] @ colour @ A_t[t].T, blur_celeba(colour, t), atol=1e-5)
t_batch = torch.tensor([3, 30, 100, 200])
mixed = A_t[t_batch][:, None] @ colour @ A_t[t_batch].transpose(-1, -2)[:, None]  # one A_t per image
assert torch.allclose(mixed, blur_celeba(colour, t_batch), atol=1e-5)
print(f"A_t X A_t^T == coldlib for single and mixed t; the matrices take {A_t.numel() * 4 / 1e6:.1f} MB")

# %% [markdown]
# Now the cost. We time the iterated blur (`blur_iterated` from section 2) against the closed form at
# several $t$, for a batch of photo crops. In fast mode (`COLDLIB_FAST=1`) the batch, the list of $t$
# values and the number of repeats are smaller. Timings on a shared machine are noisy; the shape of the
# curves is what matters.

# %%
batch = colour if FAST else colour.repeat(8, 1, 1, 1)  # 4 or 32 images
t_values = [1, 25, 100, 200] if FAST else [1, 10, 25, 50, 100, 150, 200]
repeats = 1 if FAST else 3


def timed(fn) -> tuple[float, torch.Tensor]:
    """The best of `repeats` wall-clock times of fn(), and its result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


D = preset("blur", "celeba")  # a fresh object, so its cache of matrices is still empty
start = time.perf_counter()
D(batch, 1)  # the first call builds and caches the matrices for this image size
print(f"one-off cost of building the {D.T + 1} composite matrices: {time.perf_counter() - start:.3f} s")
args = (D.sigmas, D.kernel_size, D.padding)
cost_iterated, cost_closed = [], []
for t in t_values:
    seconds_iterated, iterated = timed(lambda: blur_iterated(batch, t, *args))
    seconds_closed, closed = timed(lambda: D(batch, t))
    assert torch.allclose(iterated, closed, atol=1e-4)
    cost_iterated.append(seconds_iterated)
    cost_closed.append(seconds_closed)

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(t_values, [1e3 * c for c in cost_iterated], "o-", label="iterated: t convolutions")
ax.plot(t_values, [1e3 * c for c in cost_closed], "s-", label="closed form: A_t X A_tᵀ")
ax.set_xlabel("t")
ax.set_ylabel("milliseconds per batch")
ax.set_title(f"CelebA blur setting on {len(batch)} images of 32×32")
ax.legend()
ax.grid(alpha=0.3)
plt.show()
print(f"at t = {t_values[-1]}: iterated {1e3 * cost_iterated[-1]:.1f} ms, closed form {1e3 * cost_closed[-1]:.2f} ms")

# %% [markdown]
# The iterated cost grows linearly with $t$ while the closed form stays flat. Masks (cumulative
# products, precomputed once), pixelation (block averages), decolorization and mixing have closed forms
# too. Snow needs none: it was never cumulative, although the authors' code still loops over the steps.
#
# ## Exercises
#
# 1. **Your own degradation.** Write `FadeToBlack(T)`, a subclass of `coldlib.degradations.Degradation`
#    that fades linearly to black ($-1$): $D(x, t) = x + \tfrac tT(-1 - x)$. Set `self.schedule` and
#    implement `degrade(x0, t, z)`, where `t` holds one step per image. Check that $D(x, 0) = x$
#    *exactly* and that $D(x, T) = -1$, then look at it with `degradation_grid`. Why is the formula
#    written as $x + \tfrac tT(\dots)$ rather than $(1 - \tfrac tT)(x + 1) - 1$?
# 2. **Circular blur keeps the mean.** Show that circular blur preserves each channel's mean at every
#    $t$ (use `frames_over_t`), and measure how far reflect padding drifts. The paper's blur-based
#    generation relies on this: the fully blurred image is a flat image of the mean colour.
# 3. **When does pixelation need sizes divisible by $2^T$?** Try `Pixelate(3)` on 28×28 digits
#    (crop `digits[..., 2:30, 2:30]`). What is the largest $T$ for a side of 28? Of 32? Why does the
#    paper resize MNIST to 32×32?
# 4. **Which degradations are linear?** For a fixed `z`, test numerically whether
#    $D(a x + b y, t) = a D(x, t) + b D(y, t)$. Which are linear, which only affine, and which neither?
#    Lesson 00's analysis of Algorithm 2 assumed a linear $D$.
#
# Solutions follow; try first.

# %%
# Solution 1. Writing D as x + (t/T)·(target − x) makes t = 0 exactly x: the added term is exactly 0.
# (1 − t/T)·(x + 1) − 1 is equal on paper, but (x + 1) − 1 rounds in float32.
class FadeToBlack(Degradation):
    """Fade linearly to black (−1): D(x, t) = x + (t/T)·(−1 − x)."""

    def __init__(self, T: int) -> None:
        super().__init__(T)
        self.schedule = {"fade": torch.arange(T + 1, dtype=torch.float64) / T}

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, z: object) -> torch.Tensor:
        frac = self.schedule["fade"].to(x0)[t].view(-1, 1, 1, 1)  # one fraction per image
        return x0 + frac * (-1 - x0)


fade = FadeToBlack(10)
assert torch.equal(fade(colour, 0), colour)
assert torch.allclose(fade(colour, fade.T), torch.full_like(colour, -1.0))
x_rounding = colour[:1].clone().fill_(0.1)
print("(1 - 0)·(x + 1) - 1 == x for x = 0.1?", torch.equal((x_rounding + 1) - 1, x_rounding))
degradation_grid(fade, colour, range(0, 11, 2))

# %%
# Solution 2. Each step's kernel sums to 1 and circular padding wraps around, so nothing leaves the image.
frames = frames_over_t(blur_mnist, digits)  # (T + 1, B, 1, 32, 32), circular padding
means = frames.mean(dim=(-1, -2))
assert torch.allclose(means, means[:1].expand_as(means), atol=1e-5)
frames = frames_over_t(blur_cifar, colour)  # reflect padding
drift = (frames.mean(dim=(-1, -2)) - colour.mean(dim=(-1, -2))).abs().max()
print(f"circular: channel means constant to 1e-5; reflect: drift up to {drift:.4f}")

# %%
# Solution 3. Pixelate(T) averages blocks of 2^T pixels, so the side must be a multiple of 2^T.
# 28 = 4·7 allows T ≤ 2; 32 = 2^5 allows T ≤ 5. The paper resizes MNIST to 32 to get T = 3.
digits28 = digits[..., 2:30, 2:30]
try:
    Pixelate(3)(digits28, 1)
    raise AssertionError("expected a ValueError")
except ValueError as err:
    print("Pixelate(3) on 28×28:", err)


def max_T(side: int) -> int:
    return (side & -side).bit_length() - 1  # how many times 2 divides the side


assert (max_T(28), max_T(32)) == (2, 5)
assert Pixelate(max_T(28))(digits28, 2).shape == digits28.shape

# %%
# Solution 4. Blur, pixelation, masks and decolorization are linear maps of x. Mixing and noise are
# affine: the z term is added once, so a·D(x) + b·D(y) has (a + b) copies of it. Snow thresholds and
# clips, so it is neither.
# An affine map keeps combinations whose weights sum to 1 (a + b = 1), so we test both kinds.
x, y = colour[:2], colour[2:]


def gap(D: Degradation, a: float, b: float, t: int, z: object) -> float:
    return (D(a * x + b * y, t, z) - (a * D(x, t, z) + b * D(y, t, z))).abs().max().item()


candidates = {"blur": blur_cifar, "pixelate": pix, "mask": mask_centred, "decolor": decolor,
              "mixing": mixing, "noise": noise, "snow": snow}
kinds = {}
for name, D in candidates.items():
    z, t = D.draw_z(x, generator), D.T // 2
    any_weights, weights_sum_to_1 = gap(D, 0.7, -0.4, t, z), gap(D, 0.7, 0.3, t, z)
    kinds[name] = "linear" if any_weights < 1e-5 else "affine" if weights_sum_to_1 < 1e-5 else "neither"
    print(f"{name:9s} gap for a + b = 0.3: {any_weights:.1e}, for a + b = 1: {weights_sum_to_1:.1e}  ->  {kinds[name]}")
assert kinds == {"blur": "linear", "pixelate": "linear", "mask": "linear", "decolor": "linear",
                 "mixing": "affine", "noise": "affine", "snow": "neither"}

# %% [markdown]
# ## Check your understanding
#
# 1. What is the difference between the iterated and the closed form of a degradation, and why does
#    it matter for a training batch?
#    <details><summary>Answer</summary>The iterated form applies one step $t$ times, so its cost grows
#    with $t$, and a batch with mixed steps must run to the largest one. The closed form jumps to any
#    $t$ at constant cost, with one $t$ per image in a single call.</details>
# 2. Which degradations have a random ingredient `z`, and why must a sampler keep it fixed?
#    <details><summary>Answer</summary>Random masks (hole position), snow (field and direction), mixing
#    (the second image) and noise. Algorithm 2 compares $D(\hat x_0, t, z)$ with $D(\hat x_0, t-1, z)$. If
#    $z$ changed between the two, their difference would be dominated by the change of $z$, not by one
#    step of degradation.</details>
# 3. Why does a blur with reflect padding still collapse to one matrix per axis?
#    <details><summary>Answer</summary>Each step, padding included, is linear and acts on rows and columns
#    separately ($X \mapsto K X K^\top$). A composition of such maps is
#    $(K_2 K_1) X (K_2 K_1)^\top$, the same form again.</details>
# 4. What colour does a fully masked pixel have, and why?
#    <details><summary>Answer</summary>Mid-grey: the mask multiplies the pixel by 0, and 0 is the middle
#    of the $[-1, 1]$ range.</details>
# 5. Snow is "not cumulative". What does that mean here?
#    <details><summary>Answer</summary>$D(x, t)$ is computed directly from the clean image, $t$ and the
#    snow field. It is not $D(x, t-1)$ with one more step applied: the threshold and the streak length
#    simply depend on $t$.</details>
#
# ## Summary
#
# - Every degradation of the paper fits one interface, `D(x0, t, z=None)`, with $D(x_0, 0) = x_0$.
#   Random ingredients (hole, snow field, second image, noise) are drawn once as `z` and kept fixed.
# - Blur is a cumulative product of per-step convolutions. By separability it is
#   $A_t X A_t^\top$ with one matrix per axis, so any $t$ costs the same.
# - Pixelation is one average pool by $2^t$. Masks are cumulative products of Gaussian holes.
#   Decolorization is a linear fade to grey. Mixing and noise are $\sqrt{\bar\alpha_t}x + \sqrt{1-\bar\alpha_t}z$.
# - Closed forms let a training batch mix steps in a single call, where the iterated form costs
#   $O(T)$ per batch.
#
# ## References
#
# - A. Bansal et al. *Cold Diffusion: Inverting Arbitrary Image Transforms Without Noise.* NeurIPS 2023,
#   [arXiv:2208.09392](https://arxiv.org/abs/2208.09392). Code:
#   [github.com/arpitbansal297/Cold-Diffusion-Models](https://github.com/arpitbansal297/Cold-Diffusion-Models).
# - J. Ho, A. Jain, P. Abbeel. *Denoising Diffusion Probabilistic Models.* NeurIPS 2020,
#   [arXiv:2006.11239](https://arxiv.org/abs/2006.11239).
# - J. Song, C. Meng, S. Ermon. *Denoising Diffusion Implicit Models.* ICLR 2021,
#   [arXiv:2010.02502](https://arxiv.org/abs/2010.02502).
# - A. Nichol, P. Dhariwal. *Improved Denoising Diffusion Probabilistic Models* (the cosine schedule).
#   ICML 2021, [arXiv:2102.09672](https://arxiv.org/abs/2102.09672).
# - D. Hendrycks, T. Dietterich. *Benchmarking Neural Network Robustness to Common Corruptions and
#   Perturbations* (ImageNet-C, the snow corruption). ICLR 2019,
#   [arXiv:1903.12261](https://arxiv.org/abs/1903.12261).
#
# Next: Lesson 02 trains a network to undo these degradations.

"""Where generation starts: a prior over fully degraded images, and starting batches for each cold generator.

Blur that ends in the per-channel mean maps every image to a constant-colour image, so sampling must start
from a *distribution* of colours: the authors fit a Gaussian mixture to the channel means of the training
images (one component in their README) and start Algorithm 2 from constant images with those colours, plus
optional small i.i.d. noise that breaks the symmetry of a perfectly flat start. We fit the mixture with
scikit-learn's maintained ``GaussianMixture`` (the authors used pycave) and draw from it with a torch
generator, so a seeded run is reproducible on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .degradations import (Degradation, GaussianBlur, GaussianNoise, ImageMixing, InpaintGeneration,
                           check_images)

__all__ = ["ChannelMeanPrior", "fit_channel_mean_prior", "channel_means", "generation_start"]


def channel_means(images: torch.Tensor) -> torch.Tensor:
    """(N, C) per-channel spatial means of images in [-1, 1]: where blur-to-the-mean sends each image.
    """
    x = check_images(images, name="images")
    return x.double().mean(dim=(2, 3))


@dataclass
class ChannelMeanPrior:
    """A Gaussian mixture over per-channel means: ``weights`` (K,), ``means`` (K, C), ``covariances`` (K, C, C).
    """

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor

    @property
    def channels(self) -> int:
        return self.means.shape[1]

    def sample_means(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, C) colours: pick a component by weight, then draw from its Gaussian."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n (how many colours) must be a positive int; got {n!r}.")
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covariances)  # (K, C, C)
        eps = torch.randn(n, self.channels, 1, generator=generator, dtype=torch.float64)
        return self.means[component] + (chol[component] @ eps)[..., 0]

    def sample(self, n: int, image_size: int | tuple[int, int], *, noise_std: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, C, H, W) float32 starting images: constant colours from the prior, plus N(0, noise_std²) per pixel.

        ``noise_std`` = 0 is the paper's "perfect symmetry", 0.002 its "broken
        symmetry" (the authors add it once, to the start, and never subtract it).
        """
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            raise ValueError(f"image_size must be a positive int or (H, W); got {image_size!r}.")
        if not (isinstance(noise_std, (int, float)) and np.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be a finite number >= 0; got {noise_std!r}.")
        colours = self.sample_means(n, generator).float()
        x = colours[:, :, None, None].expand(n, self.channels, h, w).clone()
        if noise_std > 0:
            x += noise_std * torch.randn(x.shape, generator=generator)
        return x


def fit_channel_mean_prior(images: torch.Tensor, n_components: int = 1, seed: int = 0) -> ChannelMeanPrior:
    """Fit a full-covariance Gaussian mixture to the images' channel means (scikit-learn ``GaussianMixture``).

    ``images`` in [-1, 1], (N, C, H, W); the paper uses one component.
    """
    from sklearn.mixture import GaussianMixture  # imported here: only generation needs scikit-learn

    means = channel_means(images).numpy()
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= len(means):
        raise ValueError(f"n_components must be an int in 1..{len(means)} (the number of images); got "
                         f"{n_components!r}.")
    gmm = GaussianMixture(n_components=n_components, covariance_type="full", tol=1e-3, random_state=seed)
    gmm.fit(means)
    return ChannelMeanPrior(torch.from_numpy(gmm.weights_), torch.from_numpy(gmm.means_),
                            torch.from_numpy(gmm.covariances_))


def generation_start(D: Degradation, n: int, image_size: int, *, channels: int = 1,
                     prior: ChannelMeanPrior | None = None, noise_std: float = 0.0,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, Any]:
    """``(x_T, z)`` to generate ``n`` images with a generation degradation, on the CPU (move them yourself).

    Every shipped generator is sampled from these starts. Blur to the mean: flat images from ``prior`` (required). Noise: ``z ~ N(0, I)``,
    ``x_T = D(0, T, z)``. Reveal from a colour (:class:`InpaintGeneration`): ``z`` = random colours,
    ``x_T`` = the colour. Animorphosis (:class:`ImageMixing` with a ``pool``): ``z`` = images from the pool,
    ``x_T = D(0, T, z)`` (the unknown ``x0`` term has weight ``sqrt(ᾱ_T)``, tiny). ``noise_std`` adds the
    symmetry-breaking noise to ``x_T`` (not for noise, which has plenty).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (how many images) must be a positive int; got {n!r}.")
    if not (isinstance(noise_std, (int, float)) and np.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be a finite number >= 0; got {noise_std!r}.")
    shape = (n, channels, image_size, image_size)
    if isinstance(D, GaussianBlur) and D.to_mean_at_T:
        if prior is None:
            raise ValueError("blur-to-the-mean generation starts from flat colours: pass prior="
                             "fit_channel_mean_prior(training_images).")
        return prior.sample(n, image_size, noise_std=noise_std, generator=generator), None
    zeros = torch.zeros(shape)
    if isinstance(D, GaussianNoise):
        z = D.draw_z(zeros, generator)
    elif isinstance(D, InpaintGeneration):
        z = D.draw_z(zeros, generator)
    elif isinstance(D, ImageMixing):
        if D.pool is None:
            raise ValueError("animorphosis starts from images of the other dataset: build the degradation with "
                             "ImageMixing(T, pool=<their images>).")
        z = D.draw_z(zeros, generator)
    else:
        raise ValueError(f"{D!r} does not end in a state that can be sampled without x0; generation needs blur "
                         "to the mean, GaussianNoise, InpaintGeneration or ImageMixing with a pool.")
    x_T = D(zeros, D.T, z)
    if noise_std > 0:
        x_T = x_T + noise_std * torch.randn(shape, generator=generator)
    return x_T, z

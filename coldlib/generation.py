"""Generation: a prior over fully degraded images, the starting batch of each cold generator, and ``generate``.

Blur that ends in the per-channel mean maps every image to a constant-colour image, so sampling must start
from a *distribution* of colours: the authors fit a Gaussian mixture to the channel means of the training
images (one component in their README) and start Algorithm 2 from constant images with those colours, plus
optional small i.i.d. noise that breaks the symmetry of a perfectly flat start. We fit the mixture with
scikit-learn's maintained ``GaussianMixture`` (the authors used pycave) and draw from it with a torch
generator, so a seeded run is reproducible on any device. :func:`generate` is the whole pipeline: draw the
starts with :meth:`Degradation.generation_start`, then sample them in chunks on the restorer's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sklearn.mixture import GaussianMixture
from tqdm.auto import tqdm

from .data import CIFAR10_CLASSES, DataChoice, ImageSet
from .degradations import GaussianNoise, ImageMixing, check_images, map_z
from .degradations.base import add_start_noise, check_noise_std
from .diffusion import METHODS, ColdDiffusion, eval_mode, weights_of
from .env import progress_bars
from .validate import check_int, check_seed

__all__ = ["ChannelMeanPrior", "fit_channel_mean_prior", "channel_means", "generate", "AnimorphosisPair",
           "animorphosis_pair", "ANIMORPHOSIS_CLASSES"]


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
        check_int(n, "n", hint=" (how many colours)")
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
        check_noise_std(noise_std)
        colours = self.sample_means(n, generator).float()
        return add_start_noise(colours[:, :, None, None].expand(n, self.channels, h, w).clone(), noise_std, generator)


def fit_channel_mean_prior(images: torch.Tensor, n_components: int = 1, seed: int = 0) -> ChannelMeanPrior:
    """Fit a full-covariance Gaussian mixture to the images' channel means (scikit-learn ``GaussianMixture``).

    ``images`` in [-1, 1], (N, C, H, W); the paper uses one component.
    """
    means = channel_means(images).numpy()
    if isinstance(n_components, bool) or not isinstance(n_components, int) or not 1 <= n_components <= len(means):
        raise ValueError(f"n_components must be an int in 1..{len(means)} (the number of images); got "
                         f"{n_components!r}.")
    check_seed(seed, maximum=2**32 - 1)  # scikit-learn's random_state range
    gmm = GaussianMixture(n_components=n_components, covariance_type="full", tol=1e-3, random_state=seed)
    gmm.fit(means)
    return ChannelMeanPrior(torch.from_numpy(gmm.weights_), torch.from_numpy(gmm.means_),
                            torch.from_numpy(gmm.covariances_))


def _default_channels(diffusion: ColdDiffusion, prior: ChannelMeanPrior | None,
                      pool: torch.Tensor | None) -> int:
    config = getattr(diffusion.model, "config", None)  # a coldlib UNet records its channels
    for channels in (getattr(config, "channels", None), None if prior is None else prior.channels,
                     None if pool is None else pool.shape[1]):
        if channels is not None:
            return int(channels)
    raise ValueError("cannot tell how many channels to generate: the restorer has no config.channels and there is "
                     "no prior or pool to read them from; pass channels=.")


@torch.no_grad()
def generate(diffusion: ColdDiffusion, n: int, *, method: str = "improved", batch_size: int = 100,
             generator: torch.Generator | None = None, prior: ChannelMeanPrior | None = None,
             noise_std: float = 0.0, reestimate_z: bool = False, pool: torch.Tensor | None = None,
             image_size: int | None = None, channels: int | None = None, progress: bool = False) -> torch.Tensor:
    """``n`` images generated by ``diffusion``'s restorer and degradation, as a float tensor on the CPU.

    The starts ``(x_T, z)`` of all ``n`` images are drawn at once by ``D.generation_start`` (on the CPU,
    with the CPU ``generator``: seeded, the same images come out whatever ``batch_size`` and device), moved to
    the restorer's device and dtype, and sampled in chunks of ``batch_size`` with ``method`` ("naive" or
    "improved"; see :meth:`ColdDiffusion.sample`), each chunk with its slice of ``z`` held fixed unless
    ``reestimate_z``. The model runs in eval mode and gets its modes back afterwards; ``progress`` shows a
    tqdm bar over the chunks. There is no device argument: the sampler takes images on the restorer's
    device only, so move the model to choose one.

    ``prior`` and ``noise_std`` are ``D.generation_start``'s (``prior`` is required for blur to the mean).
    ``pool`` (animorphosis, :class:`ImageMixing`) gives the images the starts are drawn from, replacing the
    degradation's own pool (a loaded checkpoint has none). ``image_size`` (the side of the square images) is
    required unless the pool gives it: a restorer does not record the size it was trained at. ``channels``
    defaults to the restorer's ``model.config.channels`` (every coldlib UNet), else the prior's or the pool's.
    """
    if not isinstance(diffusion, ColdDiffusion):
        raise ValueError(f"diffusion must be a coldlib ColdDiffusion; got {type(diffusion).__name__}.")
    if method not in METHODS or method == "direct":
        raise ValueError(f"method must be 'naive' or 'improved' (generation runs a sampler from x_T); got {method!r}.")
    check_int(batch_size, "batch_size")
    D = diffusion.degradation
    if pool is not None:
        if not isinstance(D, ImageMixing) or isinstance(D, GaussianNoise):
            raise ValueError(f"pool= is for animorphosis (ImageMixing), where the starts are images of another kind; "
                             f"the degradation is {type(D).__name__}.")
        D = ImageMixing(D.T, pool=pool)
    pool = getattr(D, "pool", None)
    if image_size is None:
        if pool is None:
            raise ValueError("pass image_size= (the side of the square images to generate): a restorer does not "
                             "record the size it was trained at.")
        if pool.shape[-2] != pool.shape[-1]:
            raise ValueError(f"generation makes square images, but the pool's are {pool.shape[-2]}x{pool.shape[-1]}.")
        image_size = int(pool.shape[-1])
    if channels is None:
        channels = _default_channels(diffusion, prior, pool)
    if prior is not None and prior.channels != channels:
        raise ValueError(f"the prior is over {prior.channels}-channel colours but {channels} channels are generated.")
    x_T, z = D.generation_start(n, image_size, channels=channels, prior=prior, noise_std=noise_std,
                              generator=generator)
    weight = weights_of(diffusion)
    if weight is not None:
        x_T = x_T.to(device=weight.device, dtype=weight.dtype)
        z = map_z(z, lambda t: t.to(weight.device))
    samples = []
    with eval_mode(diffusion):
        for start in tqdm(range(0, n, batch_size), desc="generating", unit="batch", disable=not progress_bars(progress)):
            chunk = slice(start, start + batch_size)
            samples.append(diffusion.sample(x_T[chunk], method=method, z=map_z(z, lambda t: t[chunk]),
                                            reestimate_z=reestimate_z).cpu())
    return torch.cat(samples)


# ------------------------------------------------------------------------------------------- animorphosis

#: dataset → (source class z, target class x0): what animorphosis turns into what on each dataset it knows.
ANIMORPHOSIS_CLASSES: dict[str, tuple[str, str]] = {"cifar10": ("cat", "dog"), "mnist": ("zero", "eight")}
_MNIST_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True, repr=False)
class AnimorphosisPair:
    """The two image sets of animorphosis, ``D(x, t, z) = sqrt(ᾱ_t)·x + sqrt(1 - ᾱ_t)·z``: targets x0, sources z.

    ``dataset`` is the :func:`~coldlib.data.load_images` name ("cifar10" or "mnist"); ``source_name`` /
    ``target_name`` the classes in words, singular ("cat", "dog"; "zero", "eight") and ``source_class`` /
    ``target_class`` their labels. ``sources`` and ``targets`` come from the training split (the pool of z
    and the x0 a restorer trains on), ``held_out_sources`` and ``held_out_targets`` from the held-out split
    (the starts of generation, and the reference its samples are measured against). ``channels`` and
    ``image_size`` describe every image; ``description`` is the line :func:`animorphosis_pair` prints.
    """

    dataset: str
    source_name: str
    target_name: str
    source_class: int
    target_class: int
    channels: int
    image_size: int
    sources: ImageSet
    targets: ImageSet
    held_out_sources: ImageSet
    held_out_targets: ImageSet
    description: str

    @property
    def title(self) -> str:
        """E.g. "dogs from cats" or "eights from zeros"."""
        return f"{self.target_name}s from {self.source_name}s"

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {len(getattr(self, k)):,}" for k in
                           ("sources", "targets", "held_out_sources", "held_out_targets"))
        return (f"AnimorphosisPair({self.dataset}: {self.title}, {self.channels}x{self.image_size}x{self.image_size}; "
                f"{counts})")


def animorphosis_pair(choice: DataChoice) -> AnimorphosisPair:
    """The animorphosis pair for the dataset ``choice`` names (from :func:`coldlib.data.choose_cifar10`), printed.

    CIFAR-10: x0 are **dogs** (label 5) and z are **cats** (label 3), 3 channels, 32 px. MNIST (the
    ``fallback="mnist"`` of an offline or failed choice): x0 are **eights** and z **zeros**, 1 channel, 32
    px, the pair of the course's shipped ``mnist_mixing``; the description then says that it is the
    fallback and why (the choice's reason). Each class is loaded from the training split (``sources``,
    ``targets``) and the held-out split (``held_out_*``) with :meth:`DataChoice.load`. Any other dataset
    raises ``ValueError``.
    """
    if not isinstance(choice, DataChoice):
        raise ValueError(f"choice must be a coldlib.data.DataChoice (from choose_cifar10); got {type(choice).__name__}.")
    if choice.name not in ANIMORPHOSIS_CLASSES:
        raise ValueError(f"animorphosis pairs exist for {', '.join(ANIMORPHOSIS_CLASSES)}; the choice is "
                         f"{choice.name!r}: use choose_cifar10(fallback='mnist').")
    source_name, target_name = ANIMORPHOSIS_CLASSES[choice.name]
    names = CIFAR10_CLASSES if choice.is_cifar10 else _MNIST_DIGITS
    source_class, target_class = names.index(source_name), names.index(target_name)
    sets = {f"{prefix}{kind}": choice.load(split, classes=[label])
            for prefix, split in (("", "train"), ("held_out_", "test"))
            for kind, label in (("sources", source_class), ("targets", target_class))}
    _, channels, height, width = sets["targets"].images.shape
    what = f"{target_name}s (label {target_class}, the x0) grown from {source_name}s (label {source_class}, the z)"
    shape = f"{channels} channel{'s' if channels > 1 else ''}, {height} px"
    if choice.is_cifar10:
        description = f"Animorphosis on CIFAR-10: {what}; {shape}."
    else:
        description = (f"Animorphosis on {choice.title}, the fallback for CIFAR-10's dogs from cats: {what}; "
                       f"{shape}. Why: {choice.reason}")
    print(description, flush=True)
    return AnimorphosisPair(choice.name, source_name, target_name, source_class, target_class, int(channels),
                            int(height), description=description, **sets)

"""Image datasets for the course: torchvision downloads, a user's folder, and offline sources.

One entry point, :func:`load_images`, returns an :class:`ImageSet` (compact uint8 images plus a one-line
``source`` that says exactly what data it is); ``images.float()`` gives float batches in [-1, 1].
:func:`choose_cifar10` is the one place that decides whether a lesson gets CIFAR-10 (the paper's colour
dataset: a local copy, else a download) or an offline stand-in, and says why.
Where the data lives is decided by :func:`coldlib.env.data_dir`; downloads go through torchvision's own
code and are never attempted when ``COLDLIB_OFFLINE`` is set.
"""

from __future__ import annotations

import gzip
import warnings
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from .env import data_dir, offline
from .validate import check_int

KNOWN_NAMES = ("mnist", "fashion_mnist", "cifar10", "celeba", "photos", "folder:<path>")
DEFAULT_SIZE = {"mnist": 32, "fashion_mnist": 32, "cifar10": 32, "celeba": 64, "photos": 32}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Colour photographs bundled with scikit-image that load without a network (checked with skimage 0.26).
# Excluded: colorwheel (synthetic), logo (RGBA graphics), cat (the same picture as chelsea), grey-scale ones.
PHOTOS_TRAIN = ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "rocket", "stereo_motorcycle")
PHOTOS_TEST = ("chelsea", "coffee")
PHOTOS_MAX_SIZE = 300  # short side of the smallest photo (chelsea, 300x451)
OFFLINE_TRAIN = 8000  # test-only fallback (no training split): first 8,000 test images train, last 2,000 held out
_ANNOUNCED: set[str] = set()
# CIFAR-10's labels 0-9, as in the official batches.meta (so the cats are label 3, the dogs label 5).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FALLBACK_TITLES = {"photos": "the offline photo crops", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST",
                    "celeba": "CelebA"}


@dataclass(frozen=True)
class Origin:
    """Which images of which file set: the machine-readable twin of an :class:`ImageSet`'s ``source``.

    ``dataset`` names the files ("mnist", "fashion_mnist", "cifar10", "celeba", "photos", or "folder:<absolute
    path>"); ``split`` is the *official* split the images were read from ("train" or "test"; the offline MNIST
    protocol reads both of its parts from "test"); ``indices`` are the images' positions in that split, in
    order. Two sets can share an image only if dataset and split agree and their indices intersect, which is
    what :func:`check_held_out` tests before a model is evaluated.
    """

    dataset: str
    split: str
    indices: torch.Tensor

    def __post_init__(self) -> None:
        if self.indices.dtype != torch.int64 or self.indices.ndim != 1:
            raise ValueError(f"Origin.indices must be a 1-d int64 tensor; got {self.indices.dtype} {tuple(self.indices.shape)}.")

    def select(self, keep: torch.Tensor | slice) -> Origin:
        """The origin of ``images[keep]`` (a boolean mask, index tensor or slice)."""
        return Origin(self.dataset, self.split, self.indices[keep].clone())

    def ranges(self) -> list[list[int]]:
        """The indices as sorted half-open ranges ``[[start, stop], ...]`` (compact for contiguous splits)."""
        idx = torch.unique(self.indices).tolist()  # sorted
        out: list[list[int]] = []
        for i in idx:
            if out and out[-1][1] == i:
                out[-1][1] = i + 1
            else:
                out.append([i, i + 1])
        return out

    def to_dict(self) -> dict:
        """A JSON-ready record (checkpoint sidecars keep it as ``training_data``)."""
        return {"dataset": self.dataset, "split": self.split, "count": int(self.indices.numel()),
                "ranges": self.ranges()}

    @staticmethod
    def from_dict(record: dict) -> Origin:
        """The inverse of :meth:`to_dict`; a record that is not one raises ``ValueError`` saying what is wrong."""
        try:
            ranges = record["ranges"]
            parts = [torch.arange(int(a), int(b)) for a, b in ranges]
            origin = Origin(str(record["dataset"]), str(record["split"]),
                            torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a training-data record (want {{'dataset', 'split', 'count', 'ranges': "
                             f"[[start, stop], ...]}}): {str(record)[:200]} ({type(e).__name__}: {e})") from e
        if "count" in record and int(record["count"]) != origin.indices.numel():
            raise ValueError(f"training-data record says count {record['count']} but its ranges hold "
                             f"{origin.indices.numel()} images: the record is damaged; restore the sidecar.")
        return origin

    def overlap(self, other: Origin) -> int:
        """How many of ``other``'s images are also in this set (0 when dataset or split differ)."""
        if self.dataset != other.dataset or self.split != other.split:
            return 0
        return int(torch.isin(other.indices, self.indices).sum())

    def describe(self) -> str:
        r = self.ranges()
        where = (f"images {r[0][0]:,}–{r[0][1] - 1:,}" if len(r) == 1 else
                 f"{len(r):,} runs of indices between {r[0][0]:,} and {r[-1][1] - 1:,}" if r else "no images")
        return f"{self.dataset}, official {self.split} split, {self.indices.numel():,} images ({where})"


@dataclass(repr=False)
class ImageSet:
    """Images as a compact uint8 tensor (N, C, H, W), optional labels, and a one-line ``source`` announcement.

    ``origin`` (an :class:`Origin`, or None for images made in memory) records which file images these are,
    so that :func:`check_held_out` can prove a model never trained on them.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str
    origin: Origin | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"ImageSet.images must be uint8 (N, C, H, W); got {self.images.dtype} {tuple(self.images.shape)}.")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"ImageSet has {len(self.images)} images but {len(self.labels)} labels.")
        if self.origin is not None and len(self.origin.indices) != len(self.images):
            raise ValueError(f"ImageSet has {len(self.images)} images but its origin lists {len(self.origin.indices)}.")

    def __len__(self) -> int:
        return len(self.images)

    def float(self, idx: int | slice | torch.Tensor | None = None) -> torch.Tensor:
        """Return the images (or ``images[idx]``; an int index gives one (C, H, W) image) as float32 in [-1, 1].
        """
        x = self.images if idx is None else self.images[idx]
        return x.float() / 127.5 - 1.0

    def every(self, k: int) -> ImageSet:
        """Every ``k``-th image (0, k, 2k, ...): a fixed subset spread over the whole set, not just its start.

        MNIST's test split is ordered (its first half is known to be cleaner), so a subset taken from the
        start is biased; this one is not. ``source`` and ``origin`` say which images were kept.
        """
        check_int(k, "k")
        idx = torch.arange(0, len(self), k)
        return ImageSet(self.images[idx].clone(), None if self.labels is None else self.labels[idx].clone(),
                        self.source + f"; every {k}th image kept ({len(idx):,})",
                        None if self.origin is None else self.origin.select(idx))

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"ImageSet({n} images {c}x{h}x{w} uint8, labels={'yes' if self.labels is not None else 'no'}; {self.source})"


def _announce(source: str) -> None:
    if source not in _ANNOUNCED:
        _ANNOUNCED.add(source)
        print(source)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing of uint8 (N, C, H, W) images, in chunks to keep memory small."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = []
    for chunk in x.split(2048):
        y = F.interpolate(chunk.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))  # bilinear weights are >= 0: only float round-off
    return torch.cat(out)


def center_square(img: torch.Tensor) -> torch.Tensor:
    """The largest centred square of ``img`` (shape (..., H, W)): a view of side ``min(H, W)``, not a copy.

    When the sides differ by an odd number, the extra row or column is dropped at the bottom or right. Used
    for every dataset image read from a file and for an uploaded image (:mod:`coldlib.upload`), so both are
    cropped the same way before resizing.
    """
    h, w = img.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return img[..., top : top + s, left : left + s]


def _read_rgb(path: Path, size: int) -> torch.Tensor:
    """Read one image file as RGB uint8 (3, size, size): centre crop to a square, then resize."""
    try:
        with Image.open(path) as im:
            img = torchvision.transforms.functional.pil_to_tensor(im.convert("RGB"))
    except Exception as err:  # PIL raises many types for broken files
        raise RuntimeError(f"Could not read image {path}: {err}. Remove or fix the file.") from err
    return _resize(center_square(img)[None], (size, size))[0]


def _missing_help(what: str, looked_for: list[Path], reason: str) -> str:
    files = "\n  ".join(str(p) for p in looked_for)
    return (
        f"{what} is not available ({reason}). Looked for:\n  {files}\n"
        "To fix: run with a network (and COLDLIB_OFFLINE unset) so torchvision downloads it into "
        f"{data_dir()}, or set COLDLIB_DATA_DIR to a folder that already holds these files. "
        "For offline colour images use load_images('photos'); for your own images use 'folder:<path>'."
    )


def _torchvision(make, needed: list[Path], allow: bool, reason_no: str,
                 diagnose=None) -> tuple[object | None, str]:
    """Build a torchvision dataset from files on disk, else download it when allowed; return (dataset or None, why not).

    Files that are all present but rejected raise ``RuntimeError`` with what to do; ``diagnose`` (if given)
    is called first, to raise a sharper error that names the bad file.
    """
    if all(p.exists() for p in needed):
        try:
            return make(False), ""
        except Exception as err:  # md5 check (RuntimeError), or a reader's assertion/shape/type error on a bad file
            if diagnose is not None:
                diagnose()
            folder = needed[0].parent
            raise RuntimeError(f"the files in {folder} are all present but torchvision rejects them ("
                               f"{str(err).split('.')[0]}): at least one is corrupted, truncated or another "
                               f"version. Delete {folder} and let torchvision download it again (with a network, "
                               "COLDLIB_OFFLINE unset), or copy intact official files there.") from err
    if not allow:
        return None, reason_no
    try:
        return make(True), ""
    except Exception as err:  # no network, read-only folder, Google Drive quota, gdown missing, ...
        return None, f"download failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}"


def _mnist_like(name: str, split: str, size: int, limit: int | None, allow: bool, reason_no: str) -> ImageSet:
    cls_name, title = {"mnist": ("MNIST", "MNIST"), "fashion_mnist": ("FashionMNIST", "Fashion-MNIST")}[name]
    cls = getattr(torchvision.datasets, cls_name)  # looked up at call time (tests replace it)
    root, raw = data_dir(), data_dir() / cls_name / "raw"
    needed = [raw / Path(f).stem for f, _ in cls.resources]
    if not all(p.is_file() for p in needed) and all(p.with_suffix(".gz").is_file() or p.is_file() for p in needed):
        # the official files, still compressed (as torchvision downloads them): read them without a network
        prefix = "train" if split == "train" else "t10k"
        images = _read_idx(raw / f"{prefix}-images-idx3-ubyte", "image")[:, None]
        labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte", "label")
        _check_pair(images, labels, raw, split)
        source = (f"{title} ({raw}, official .gz files): official {'training' if split == 'train' else 'test'} split, "
                  f"{len(images):,} images")
        return _finish(images, labels, source, size, limit, _whole(name, split, len(images)))
    prefix = "train" if split == "train" else "t10k"

    def diagnose() -> None:  # which of this split's two files torchvision choked on
        _read_idx(raw / f"{prefix}-images-idx3-ubyte", "image")
        _read_idx(raw / f"{prefix}-labels-idx1-ubyte", "label")

    ds, reason = _torchvision(lambda dl: cls(str(root), train=split == "train", download=dl), needed, allow, reason_no,
                              diagnose)
    if ds is not None:
        images, labels = ds.data[:, None], ds.targets
        _check_pair(images, labels, raw, split)
        source = f"{title} (torchvision, {raw}): official {'training' if split == 'train' else 'test'} split, {len(images):,} images"
        return _finish(images, labels, source, size, limit, _whole(name, split, len(images)))
    test_files = [raw / "t10k-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte"]
    if not all(p.is_file() or p.with_suffix(".gz").is_file() for p in test_files):
        raise FileNotFoundError(_missing_help(title, needed, reason))
    images, labels = _read_idx(test_files[0], "image")[:, None], _read_idx(test_files[1], "label")
    _check_pair(images, labels, raw, "test")
    if len(images) != 10000 or len(labels) != 10000:
        raise RuntimeError(f"{raw} holds {len(images)} test images / {len(labels)} labels, expected 10,000 each; re-download it.")
    sel = slice(0, OFFLINE_TRAIN) if split == "train" else slice(OFFLINE_TRAIN, None)
    source = (
        f"{title} TEST-ONLY FALLBACK (not the paper's protocol): the official training split is missing, so images "
        f"0–{OFFLINE_TRAIN - 1} of the official 10,000-image test split are used for training and images "
        f"{OFFLINE_TRAIN}–9999 are held out ({reason}). This is the '{split}' part, {len(images[sel]):,} images"
    )
    return _finish(images[sel], labels[sel], source, size, limit, _whole(name, "test", 10000).select(sel))


def _idx_fix(folder: Path) -> str:
    return (f"Delete {folder} and let torchvision download it again (with a network, COLDLIB_OFFLINE unset), or copy "
            "the official files there unchanged.")


def _read_idx(path: Path, kind: str) -> torch.Tensor:
    """Read an idx file with torchvision's readers; a lone ``.gz`` is decompressed to a temporary file (never the
    data dir).

    A file that is not what its name says (damaged, truncated, not gzip, an images file where the labels
    belong) raises ``ValueError`` naming it, instead of torchvision's bare assertion or shape error.
    """
    reader = torchvision.datasets.mnist.read_image_file if kind == "image" else torchvision.datasets.mnist.read_label_file
    source = path if path.is_file() else path.with_suffix(".gz")
    want = "images (an N×28×28 array)" if kind == "image" else "labels (a list of N digits)"
    data = None
    if source != path:
        try:
            data = gzip.decompress(source.read_bytes())
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
            raise ValueError(f"{source} is not a valid gzip file ({type(e).__name__}: {e}): it is damaged, truncated "
                             f"or not the official download. {_idx_fix(source.parent)}") from e
    try:
        if data is None:
            return reader(str(path))
        with tempfile.TemporaryDirectory() as tmp:  # torchvision's readers take a path
            target = Path(tmp) / path.name
            target.write_bytes(data)
            return reader(str(target))
    except (AssertionError, TypeError, ValueError, KeyError, RuntimeError, IndexError) as e:  # its header checks
        raise ValueError(f"{source} is not an MNIST idx file of {want} ({type(e).__name__}: {e or 'bad header'}): "
                         "it is damaged or truncated, or another file under this name (an images file and a labels "
                         f"file swapped?). {_idx_fix(source.parent)}") from e


def _check_pair(images: torch.Tensor, labels: torch.Tensor, folder: Path, split: str) -> None:
    """Images and labels of one split must agree in number (a swapped or truncated file breaks it)."""
    if len(images) != len(labels):
        raise ValueError(f"{folder} holds {len(images):,} images but {len(labels):,} labels for the {split} split: "
                         f"one of its files is truncated or belongs to the other split (train vs t10k swapped?). "
                         f"{_idx_fix(folder)}")


def _cifar10_files(root: Path) -> list[Path]:
    """The files torchvision's CIFAR10 reads (and md5-checks) under ``root``: five training batches, the test batch, the meta."""
    cls = torchvision.datasets.CIFAR10  # looked up at call time (tests replace its md5 tables)
    return [root / cls.base_folder / f for f in [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]]


def _cifar10(split: str, size: int, limit: int | None, allow: bool, reason_no: str) -> ImageSet:
    cls, root = torchvision.datasets.CIFAR10, data_dir()
    needed = _cifar10_files(root)
    ds, reason = _torchvision(lambda dl: cls(str(root), train=split == "train", download=dl), needed, allow, reason_no)
    if ds is None:
        raise FileNotFoundError(_missing_help("CIFAR-10", needed, reason))
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    source = f"CIFAR-10 (torchvision, {root / cls.base_folder}): official {split} split, {len(images):,} images"
    return _finish(images, torch.tensor(ds.targets), source, size, limit, _whole("cifar10", split, len(images)))


def _celeba(split: str, size: int, limit: int | None, allow: bool, reason_no: str) -> ImageSet:
    cls, root = torchvision.datasets.CelebA, data_dir()
    folder = root / cls.base_folder / "img_align_celeba"
    needed = [folder] + [root / cls.base_folder / f for _, _, f in cls.file_list if not f.endswith(".zip")]
    ds, reason = _torchvision(lambda dl: cls(str(root), split=split, download=dl), needed, allow, reason_no)
    if ds is None:
        raise FileNotFoundError(
            _missing_help("CelebA", needed, reason) + " Note: torchvision fetches CelebA from Google Drive, which needs "
            "`pip install gdown` and often fails on download quotas; download the files by hand into "
            f"{root / cls.base_folder} or use 'folder:<path>'."
        )
    source = f"CelebA (torchvision, {folder}): official {split} split of {len(ds.filename):,} images, centre-cropped square, resized to {size}x{size}"
    names, source = _take(list(ds.filename), limit, source)
    origin = _whole("celeba", split, len(ds.filename)).select(slice(0, len(names)))
    return ImageSet(torch.stack([_read_rgb(folder / f, size) for f in names]), None, source, origin)


def _folder(spec: str, split: str, size: int, limit: int | None) -> ImageSet:
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"'folder:{spec}': {folder} is not an existing folder. Give the path of a folder of images.")
    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise FileNotFoundError(f"No {'/'.join(IMAGE_EXTENSIONS)} files found under {folder} (searched recursively).")
    n_train = len(files) - len(files) // 10  # the test part is the last 10 %, rounded down
    chosen = files[:n_train] if split == "train" else files[n_train:]
    first = 0 if split == "train" else n_train
    if not chosen:
        raise RuntimeError(f"{folder} has {len(files)} images, so its 10 % test split is empty; add more images.")
    source = (f"Image folder {folder}: {len(files)} files sorted by path, first {n_train} = train, last {len(files) - n_train} = test "
              f"(90/10); this is '{split}' ({len(chosen)} images), centre-cropped square and resized to {size}x{size}")
    chosen, source = _take(chosen, limit, source)
    # Both parts index the one sorted file list, so train and test of a folder are provably disjoint.
    origin = Origin(f"folder:{folder.resolve()}", "files", torch.arange(first, first + len(chosen)))
    images = torch.stack([_read_rgb(p, size) for p in chosen])
    grey = int(((images[:, 0] == images[:, 1]) & (images[:, 1] == images[:, 2])).flatten(1).all(dim=1).sum())
    if grey:  # every file is read as RGB: a grey one becomes three equal channels, which must not go unsaid
        which = "all its images are" if grey == len(images) else f"{grey:,} of its {len(images):,} images are"
        source += (f"; {which} grey, loaded as three equal channels (R = G = B); for a one-channel restorer use "
                   "images[:, :1]")
    return ImageSet(images, None, source, origin)


def _photo(name: str) -> torch.Tensor:
    import skimage.data  # a second or so to import, and only the offline photos need it

    img = getattr(skimage.data, name)()
    img = img[0] if isinstance(img, tuple) else img  # stereo_motorcycle returns (left, right, disparity)
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def _photos(split: str, size: int, limit: int | None) -> ImageSet:
    if size > PHOTOS_MAX_SIZE:
        raise ValueError(f"image_size={size} is larger than the smallest photo's short side; 'photos' needs image_size <= {PHOTOS_MAX_SIZE}.")
    names = PHOTOS_TRAIN if split == "train" else PHOTOS_TEST
    all_names = PHOTOS_TRAIN + PHOTOS_TEST
    crops, labels, dropped = [], [], 0
    stride = max(1, size // 2)
    for name in names:
        img = _photo(name)
        h, w = img.shape[-2:]
        for short in sorted({min(f * size, min(h, w)) for f in (4, 8)}):  # two scales, never upsampled
            x = _resize(img[None], (round(h * short / min(h, w)), round(w * short / min(h, w))))[0]
            for top in range(0, x.shape[1] - size + 1, stride):
                for left in range(0, x.shape[2] - size + 1, stride):
                    crop = x[:, top : top + size, left : left + size]
                    if crop.float().std() < 2.0:  # featureless (e.g. the black border of 'retina')
                        dropped += 1
                        continue
                    crops.append(crop)
                    labels.append(all_names.index(name))
    order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(0))  # fixed mix of photos and scales
    images, labels_t = torch.stack(crops)[order], torch.tensor(labels)[order]
    source = (
        f"Offline colour photos (scikit-image samples), split by photo: train = {', '.join(PHOTOS_TRAIN)}; "
        f"held-out test = {', '.join(PHOTOS_TEST)}. This is '{split}': {len(images):,} crops of {size}x{size} "
        f"(grid, stride {stride}, photos rescaled to short side 4x and 8x the crop size; {dropped} featureless crops dropped)"
    )
    # The two parts come from different photos; each part's crops are indexed within its own photo set.
    return _finish(images, labels_t, source, size, limit, _whole("photos", split, len(images)))


def _whole(dataset: str, split: str, n: int) -> Origin:
    return Origin(dataset, split, torch.arange(n))


class TooFewImages(ValueError):
    """``limit`` asks for more images than there are; ``available`` says how many there are, for callers that
    name their own argument (``--eval-images``) in the message."""

    def __init__(self, message: str, available: int) -> None:
        super().__init__(message)
        self.available = available


def _take(items, limit: int | None, source: str):
    """Keep the first ``limit`` items (a fixed order); more than available is an error, not a silent cap."""
    if limit is None:
        return items, source
    if limit > len(items):
        raise TooFewImages(f"limit={limit} but only {len(items)} images are available for this split; use limit <= "
                           f"{len(items)}.", len(items))
    return items[:limit], source + f"; first {limit} taken (fixed order)"


def _finish(images: torch.Tensor, labels: torch.Tensor | None, source: str, size: int, limit: int | None,
            origin: Origin) -> ImageSet:
    images, source = _take(images, limit, source)
    origin = origin.select(slice(0, len(images)))
    labels = labels[: len(images)] if labels is not None else None
    if tuple(images.shape[-2:]) != (size, size):
        source += f"; resized {images.shape[-2]}x{images.shape[-1]} -> {size}x{size} (bilinear, antialias)"
        images = _resize(images, (size, size))
    if images.untyped_storage().nbytes() != images.nbytes:  # a slice of a bigger tensor: keep only what is used
        images = images.clone()
    return ImageSet(images.contiguous(), labels.to(torch.int64, copy=True) if labels is not None else None, source,
                    origin)


def _keep_classes(result: ImageSet, classes: list[int], limit: int | None) -> ImageSet:
    if result.labels is None:
        raise ValueError("classes= needs a labelled dataset (MNIST, Fashion-MNIST, CIFAR-10, photos); this one has "
                         "no labels.")
    keep = torch.isin(result.labels, torch.tensor(classes))
    if not bool(keep.any()):
        raise ValueError(f"no image has a label in {classes}; labels present: {sorted(set(result.labels.tolist()))}.")
    images, labels = result.images[keep], result.labels[keep]
    source = result.source + f"; only classes {classes} ({int(keep.sum()):,} images)"
    (images, labels), source = _take_pair(images, labels, limit, source)
    origin = None if result.origin is None else result.origin.select(keep).select(slice(0, len(images)))
    return ImageSet(images.contiguous(), labels, source, origin)


def _take_pair(images: torch.Tensor, labels: torch.Tensor, limit: int | None, source: str):
    images, source = _take(images, limit, source)
    return (images, labels[: len(images)]), source


def load_images(
    name: str,
    split: str = "train",
    image_size: int | None = None,
    limit: int | None = None,
    download: bool | None = None,
    classes: Sequence[int] | None = None,
) -> ImageSet:
    """Load a dataset as an :class:`ImageSet` and print its ``source`` once per process.

    ``name``: "mnist", "fashion_mnist", "cifar10", "celeba", "photos" (offline colour crops) or "folder:<path>".
    ``split``: "train" or "test" (held out). ``image_size``: side length (defaults: MNIST/Fashion-MNIST 32,
    as in the paper (28 -> 32), CIFAR-10 32, CelebA 64, photos 32; required for folders). ``limit``: keep the
    first N images of a fixed order. ``download``: None = download when allowed, False = never,
    True = required (conflicts with COLDLIB_OFFLINE=1). With MNIST's official training split on disk (or
    downloadable), "train" is its 60,000 images and "test" the 10,000 test images: the paper's protocol. Only
    when the training split is missing and cannot be downloaded does MNIST fall back, loudly labelled, to the
    test-only fallback: the official test split's first 8,000 images train, the last 2,000 are held out.
    The result's ``origin`` records which images these are (see :func:`check_held_out`). For "photos", ``labels`` index ``PHOTOS_TRAIN + PHOTOS_TEST`` (which
    photo a crop comes from); folders and CelebA have no labels. ``classes``: keep only images with these
    labels (e.g. ``classes=[8]``: MNIST eights), before ``limit``.
    """
    if not isinstance(name, str) or not (name in DEFAULT_SIZE or (name.startswith("folder:") and len(name) > 7)):
        raise ValueError(f"Unknown dataset name {name!r}; known names: {', '.join(KNOWN_NAMES)}.")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test' (held out), got {split!r}.")
    if image_size is None:
        if name.startswith("folder:"):
            raise ValueError("image_size is required for 'folder:<path>' (e.g. image_size=64).")
        image_size = DEFAULT_SIZE[name]
    size = check_int(image_size, "image_size")
    if limit is not None:
        check_int(limit, "limit")
    if classes is not None:
        if isinstance(classes, (str, int)) or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes) \
                or len(classes) == 0:
            raise ValueError(f"classes must be a non-empty list of int labels, e.g. [8]; got {classes!r}.")
        limit_after, limit = limit, None
    if download not in (None, True, False):
        raise ValueError(f"download must be None, True or False, got {download!r}.")
    is_offline = offline()
    if download is True and is_offline:
        raise ValueError("download=True conflicts with COLDLIB_OFFLINE=1; unset COLDLIB_OFFLINE or pass download=None/False.")
    allow = download is not False and not is_offline
    reason_no = "COLDLIB_OFFLINE=1 forbids downloads" if is_offline else "download=False"

    if name in ("mnist", "fashion_mnist"):
        result = _mnist_like(name, split, size, limit, allow, reason_no)
    elif name == "cifar10":
        result = _cifar10(split, size, limit, allow, reason_no)
    elif name == "celeba":
        result = _celeba(split, size, limit, allow, reason_no)
    elif name == "photos":
        result = _photos(split, size, limit)
    else:
        result = _folder(name[len("folder:"):], split, size, limit)
    if classes is not None:
        result = _keep_classes(result, list(classes), limit_after)
    _announce(result.source)
    return result


@dataclass(frozen=True)
class DataChoice:
    """The dataset a lesson uses (``name``, a :func:`load_images` name) and ``reason``, one line saying why.

    ``str(choice)`` is the line :func:`choose_cifar10` prints; :meth:`load` loads a split of the chosen dataset.
    """

    name: str
    reason: str

    @property
    def is_cifar10(self) -> bool:
        return self.name == "cifar10"

    @property
    def title(self) -> str:
        """A name for people: "CIFAR-10", "the offline photo crops", "MNIST", ..."""
        return "CIFAR-10" if self.is_cifar10 else _FALLBACK_TITLES.get(self.name, self.name)

    def load(self, split: str = "train", image_size: int | None = None, limit: int | None = None,
             classes: Sequence[int] | None = None) -> ImageSet:
        """``load_images(self.name, split, image_size, limit, classes=classes)``.

        CIFAR-10 was found or downloaded when it was chosen, so it is read with ``download=False`` (never a
        second download); a fallback keeps :func:`load_images`' default (download when allowed).
        """
        return load_images(self.name, split, image_size=image_size, limit=limit,
                           download=False if self.is_cifar10 else None, classes=classes)

    def __str__(self) -> str:
        return f"Dataset: {self.title} ({self.name!r}). Why: {self.reason}"


def choose_cifar10(fallback: str = "photos", download: bool | None = None) -> DataChoice:
    """Decide whether a lesson uses CIFAR-10 or ``fallback``, print that choice with its reason, and return it.

    Order: a complete local copy (torchvision's ``cifar-10-batches-py/`` in :func:`coldlib.env.data_dir`,
    passing torchvision's md5 check) is used as is; else, when downloads are allowed (``COLDLIB_OFFLINE``
    unset and ``download`` not False), torchvision downloads it (about 170 MB); else ``fallback`` is chosen.
    A failed download or a local copy that fails the md5 check also falls back; the reason says what happened
    and how to get CIFAR-10. ``download``: None = download when allowed, False = never, True = CIFAR-10 is
    required (no fallback: a failure raises RuntimeError; conflicts with COLDLIB_OFFLINE=1).
    ``fallback``: any :func:`load_images` name but "cifar10", e.g. "photos" (colour lessons) or "mnist".
    Use the result's :meth:`DataChoice.load`, e.g. CIFAR-10's cats with ``classes=[CIFAR10_CLASSES.index("cat")]``.
    """
    if not isinstance(fallback, str) or fallback == "cifar10" or not (
            fallback in DEFAULT_SIZE or (fallback.startswith("folder:") and len(fallback) > 7)):
        raise ValueError(f"fallback must be a load_images name other than 'cifar10' ({', '.join(KNOWN_NAMES)}), "
                         f"got {fallback!r}.")
    if download not in (None, True, False):
        raise ValueError(f"download must be None, True or False, got {download!r}.")
    is_offline = offline()
    if download is True and is_offline:
        raise ValueError("download=True conflicts with COLDLIB_OFFLINE=1; unset COLDLIB_OFFLINE or pass download=None/False.")
    cls, root = torchvision.datasets.CIFAR10, data_dir()
    folder = root / cls.base_folder
    instead = f"using {_FALLBACK_TITLES.get(fallback, fallback)} instead"
    missing = [p.name for p in _cifar10_files(root) if not p.exists()]

    def fall_back(why: str) -> DataChoice:
        if download is True:
            raise RuntimeError(f"CIFAR-10 is required (download=True) but {why}.")
        return _chosen(DataChoice(fallback, f"{why}; {instead}."))

    if not missing:
        try:  # torchvision md5-checks every batch and the meta even without a download; no network involved
            cls(str(root), train=False, download=False)
        except RuntimeError as err:
            return fall_back(f"the CIFAR-10 files in {folder} fail torchvision's check ({str(err).split('.')[0]}): "
                             f"damaged, truncated or another version; delete {folder} to have it downloaded again")
        return _chosen(DataChoice("cifar10", f"CIFAR-10 found in {folder} (torchvision's md5 check passed)"))
    have = (f"no CIFAR-10 in {folder}" if len(missing) == len(_cifar10_files(root))
            else f"CIFAR-10 in {folder} is incomplete (missing {', '.join(missing)})")
    if is_offline:
        return fall_back(f"offline (COLDLIB_OFFLINE=1 forbids downloads) and {have}")
    if download is False:
        return fall_back(f"download=False and {have}")
    try:
        cls(str(root), train=False, download=True)  # torchvision's own download, md5 check and extraction
    except Exception as err:  # no network, a proxy, a full or read-only disk, a corrupted transfer, ...
        return fall_back(f"{have} and the download failed ({type(err).__name__}: {' '.join(str(err).split())[:300]})")
    return _chosen(DataChoice("cifar10", f"CIFAR-10 downloaded by torchvision into {folder}"))


def _chosen(choice: DataChoice) -> DataChoice:
    print(choice, flush=True)  # every call announces its choice (not once per process): a fallback is never silent
    return choice


def check_held_out(trained_on: object, images: ImageSet, *, name: str = "the model", verbose: bool = True) -> str:
    """Refuse to evaluate a model on images it was trained on; return (and print) one line that says so.

    ``trained_on`` says what the model saw: a checkpoint (a :class:`coldlib.checkpoints.LoadedModel`, or its
    ``config`` dict, whose ``training_data`` record :func:`coldlib.training.train` writes), an :class:`Origin`,
    or the training :class:`ImageSet` itself. ``images`` are the images about to be scored. If any of them is
    among the training images, ``ValueError`` says how many and what to use instead. If either side does not
    record where its images come from (an older checkpoint, images built in memory), nothing can be proven:
    the line returned starts with ``WARNING`` and a :class:`UserWarning` is raised too, so it cannot be missed.
    """
    if not isinstance(images, ImageSet):
        raise ValueError(f"images must be the ImageSet returned by load_images (it records which images they are); "
                         f"got {type(images).__name__}.")
    config = getattr(trained_on, "config", trained_on)  # a LoadedModel carries its sidecar as .config
    if isinstance(trained_on, ImageSet):
        seen = trained_on.origin
    elif isinstance(trained_on, Origin):
        seen = trained_on
    elif isinstance(config, dict):
        record = config.get("training_data")
        seen = None if record is None else Origin.from_dict(record)
    else:
        raise ValueError(f"trained_on must be a LoadedModel, a checkpoint config dict, an Origin or an ImageSet; "
                         f"got {type(trained_on).__name__}.")
    if seen is None or images.origin is None:
        missing = (f"{name} does not record which images it was trained on" if seen is None
                   else "these images do not record which files they come from")
        line = (f"WARNING: cannot prove that {name} never saw these {len(images):,} images: {missing}. Numbers "
                "measured on them may be inflated by memorisation; retrain it with coldlib.training.train "
                "or python -m coldlib.training (their checkpoints record their training images), or score images "
                "loaded with load_images, which record theirs.")
        warnings.warn(line, UserWarning, stacklevel=2)
    else:
        shared = seen.overlap(images.origin)
        if shared:
            raise ValueError(
                f"{shared:,} of these {len(images):,} images were used to train {name} ({seen.describe()}); "
                "scores on them measure memory, not restoration. Evaluate on images it never saw: with MNIST's "
                "official training split in the data folder, models train on it and load_images(..., 'test') "
                "gives the 10,000 test images; a model trained under the test-only fallback (test images "
                f"0–{OFFLINE_TRAIN - 1}) must be evaluated under that fallback too (its held-out part, test "
                f"images {OFFLINE_TRAIN}–9999), or retrained on the training split.")
        line = (f"held out: none of these {len(images):,} images ({images.origin.describe()}) is among the "
                f"{seen.indices.numel():,} that {name} was trained on ({seen.dataset}, official {seen.split} split)")
    if verbose:
        print(line, flush=True)
    return line

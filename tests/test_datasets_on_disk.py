"""load_images for CIFAR-10, Fashion-MNIST and CelebA, read from small stand-in files in torchvision's on-disk layout.

Each test writes a handful of images in the exact format torchvision reads (CIFAR-10's pickled python batches,
Fashion-MNIST's idx files, CelebA's aligned JPEGs and its five annotation text files) into a temporary data folder
(COLDLIB_DATA_DIR, with COLDLIB_OFFLINE=1) and loads them through coldlib.data.load_images. torchvision checks the
md5 of CIFAR-10's batches and of CelebA's text files even with download=False, so the tests put the md5 of the
stand-in files into torchvision's tables (monkeypatched); Fashion-MNIST's raw files are not hashed. Any download
attempt or network connection fails the test. Fast: a few dozen tiny images.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from coldlib.data import load_images

CIFAR_TRAIN_PER_BATCH = 3  # 5 batches -> 15 training images
CIFAR_TEST = 4
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_TRAIN, FASHION_TEST = 12, 6
# CelebA: (file, partition) in list_eval_partition.txt order; 0 = train, 1 = valid, 2 = test.
CELEBA_PARTITION = [("000001.jpg", 0), ("000002.jpg", 0), ("000003.jpg", 1), ("000004.jpg", 0),
                    ("000005.jpg", 2), ("000006.jpg", 1), ("000007.jpg", 2)]
CELEBA_W, CELEBA_H = 178, 218  # the aligned-and-cropped CelebA images are 178 wide, 218 tall


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """An empty data folder as COLDLIB_DATA_DIR, offline, with every download and network connection refused."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(root))
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("a download or network connection was attempted")

    for cls in (torchvision.datasets.CIFAR10, torchvision.datasets.FashionMNIST, torchvision.datasets.CelebA):
        monkeypatch.setattr(cls, "download", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return root


# --- CIFAR-10 ----------------------------------------------------------------------------------------------------

def _write_cifar(root: Path, monkeypatch, labels_cycle: list[int] | None = None
                 ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Write cifar-10-batches-py/ as torchvision reads it; return {split: (uint8 (N, 3, 32, 32), int64 labels)}.

    Labels are random (batch 1: two cats and a dog) unless ``labels_cycle`` is given: then every batch, the
    test batch included, labels its images with that list, repeated.
    """
    folder = root / torchvision.datasets.CIFAR10.base_folder
    folder.mkdir()
    rng = _rng(10)
    expected: dict[str, list] = {"train": [[], []], "test": [[], []]}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = CIFAR_TEST if name == "test_batch" else CIFAR_TRAIN_PER_BATCH
        chw = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)] if k else [3, 5, 3]  # batch 1: two cats, a dog
        if labels_cycle is not None:
            labels = [labels_cycle[i % len(labels_cycle)] for i in range(n)]
        # A row of 'data' is 3072 bytes: the 1024 red values (row-major), then green, then blue.
        batch = {"batch_label": f"stand-in {name}", "labels": labels, "data": chw.reshape(n, 3072),
                 "filenames": [f"img_{k}_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        split = "test" if name == "test_batch" else "train"
        expected[split][0].append(torch.from_numpy(chw))
        expected[split][1].extend(labels)
    meta = {"label_names": CIFAR_NAMES, "num_cases_per_batch": CIFAR_TRAIN_PER_BATCH, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f, _md5(folder / f)] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, _md5(folder / f)] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")})
    return {split: (torch.cat(imgs), torch.tensor(labels)) for split, (imgs, labels) in expected.items()}


@pytest.fixture
def cifar(data_root, monkeypatch):
    return _write_cifar(data_root, monkeypatch)


def test_cifar10_train_split_exact_images_and_labels(cifar, data_root):
    result = load_images("cifar10")
    images, labels = cifar["train"]
    assert result.images.dtype == torch.uint8 and result.images.shape == (15, 3, 32, 32)  # default size 32
    assert torch.equal(result.images, images)  # channel order (RGB planes) and batch order 1..5 kept
    assert result.labels.dtype == torch.int64 and torch.equal(result.labels, labels)
    assert "CIFAR-10" in result.source and "official train split, 15 images" in result.source
    assert str(data_root / "cifar-10-batches-py") in result.source
    x = result.float()
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x, images.float() / 127.5 - 1)


def test_cifar10_test_split_is_the_test_batch(cifar):
    result = load_images("cifar10", split="test")
    assert torch.equal(result.images, cifar["test"][0]) and torch.equal(result.labels, cifar["test"][1])
    assert "official test split, 4 images" in result.source


def test_cifar10_limit_keeps_the_first_images(cifar):
    result = load_images("cifar10", limit=5)
    assert torch.equal(result.images, cifar["train"][0][:5]) and torch.equal(result.labels, cifar["train"][1][:5])
    assert "first 5 taken" in result.source
    assert result.images.untyped_storage().nbytes() == result.images.nbytes  # not a view of all 15
    with pytest.raises(ValueError, match="limit=16 but only 15 images"):
        load_images("cifar10", limit=16)


@pytest.mark.parametrize("size", [16, 8, 64])
def test_cifar10_image_size_resizes_bilinear_antialiased(cifar, size):
    result = load_images("cifar10", split="test", image_size=size)
    assert result.images.shape == (CIFAR_TEST, 3, size, size) and result.images.dtype == torch.uint8
    reference = F.interpolate(cifar["test"][0].float(), size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(result.images, reference)
    assert torch.equal(result.labels, cifar["test"][1])
    assert f"resized 32x32 -> {size}x{size}" in result.source


def test_cifar10_classes_filter(cifar):
    images, labels = cifar["train"]
    keep = (labels == 3) | (labels == 5)
    result = load_images("cifar10", classes=[3, 5])
    assert torch.equal(result.images, images[keep]) and torch.equal(result.labels, labels[keep])
    assert set(result.labels.tolist()) <= {3, 5} and len(result) == int(keep.sum()) >= 3
    first_two = load_images("cifar10", classes=[3, 5], limit=2)  # limit counts images of those classes
    assert torch.equal(first_two.labels, labels[keep][:2]) and torch.equal(first_two.images, images[keep][:2])
    absent = sorted(set(range(10)) - set(labels.tolist()))
    assert absent  # 15 stand-in images leave some class out
    with pytest.raises(ValueError, match="no image has a label in"):
        load_images("cifar10", classes=[absent[0]])


def test_cifar10_missing_files_say_what_to_do(data_root):
    with pytest.raises(FileNotFoundError) as info:
        load_images("cifar10")
    message = str(info.value)
    for phrase in ("CIFAR-10 is not available", "COLDLIB_OFFLINE=1 forbids downloads", "COLDLIB_DATA_DIR",
                   str(data_root / "cifar-10-batches-py" / "data_batch_1"), "test_batch", "batches.meta",
                   "load_images('photos')"):
        assert phrase in message, phrase
    assert list(data_root.iterdir()) == []  # nothing written


def test_cifar10_one_missing_batch_is_reported_not_guessed(cifar, data_root, monkeypatch):
    (data_root / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        load_images("cifar10", split="test")  # even the test split needs the full set (torchvision's check)
    monkeypatch.delenv("COLDLIB_OFFLINE")
    with pytest.raises(FileNotFoundError, match=r"not available \(download=False\)"):
        load_images("cifar10", download=False)



@pytest.mark.parametrize("name", ["cifar10", "celeba"])
def test_files_failing_the_md5_check_get_a_clear_error(data_root, monkeypatch, name):
    folder = data_root / ("cifar-10-batches-py" if name == "cifar10" else "celeba")
    with monkeypatch.context() as undo:  # write the files with matching md5 tables, then restore the official md5s
        (_write_cifar if name == "cifar10" else _write_celeba)(data_root, undo)
    with pytest.raises(Exception) as info:
        load_images(name)
    message = str(info.value)
    assert str(folder) in message and "download=True" not in message, message

# --- Fashion-MNIST -----------------------------------------------------------------------------------------------

def _idx(array: np.ndarray) -> bytes:
    """The idx ('SN3 Pascal Vincent') format of MNIST-like files: magic 0x08 (ubyte) + ndim, big-endian sizes."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_fashion(root: Path, n_train: int | None = FASHION_TRAIN, n_test: int = FASHION_TEST):
    """Write FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (train files only when n_train)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = _rng(28)
    expected = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        if n is None:
            continue
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels))
        expected[split] = (torch.from_numpy(images)[:, None], torch.from_numpy(labels).long())
    return expected


@pytest.fixture
def fashion(data_root):
    return _write_fashion(data_root)


def test_fashion_mnist_train_split_exact_at_28px(fashion, data_root):
    result = load_images("fashion_mnist", image_size=28)
    images, labels = fashion["train"]
    assert result.images.dtype == torch.uint8 and result.images.shape == (FASHION_TRAIN, 1, 28, 28)
    assert torch.equal(result.images, images)
    assert result.labels.dtype == torch.int64 and torch.equal(result.labels, labels)
    assert "Fashion-MNIST" in result.source and "official training split" in result.source
    assert str(data_root / "FashionMNIST" / "raw") in result.source and "resized" not in result.source
    x = result.float()
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9 and x.max() > 0.9


def test_fashion_mnist_default_size_is_32_resized(fashion):
    result = load_images("fashion_mnist", split="test")
    assert result.images.shape == (FASHION_TEST, 1, 32, 32) and result.images.dtype == torch.uint8
    reference = F.interpolate(fashion["test"][0].float(), size=(32, 32), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(result.images, reference)
    assert torch.equal(result.labels, fashion["test"][1])
    assert "official test split" in result.source and "resized 28x28 -> 32x32" in result.source


def test_fashion_mnist_limit_and_classes(fashion):
    images, labels = fashion["train"]
    limited = load_images("fashion_mnist", image_size=28, limit=4)
    assert torch.equal(limited.images, images[:4]) and torch.equal(limited.labels, labels[:4])
    keep = (labels == 1) | (labels == 4)
    assert 0 < int(keep.sum()) < FASHION_TRAIN
    only = load_images("fashion_mnist", image_size=28, classes=[4, 1])
    assert torch.equal(only.images, images[keep]) and torch.equal(only.labels, labels[keep])
    assert "only classes [4, 1]" in only.source
    with pytest.raises(ValueError, match="limit=13 but only 12"):
        load_images("fashion_mnist", limit=13)


def test_fashion_mnist_missing_files_say_what_to_do(data_root):
    with pytest.raises(FileNotFoundError) as info:
        load_images("fashion_mnist")
    message = str(info.value)
    raw = data_root / "FashionMNIST" / "raw"
    for phrase in ("Fashion-MNIST is not available", "COLDLIB_OFFLINE=1 forbids downloads",
                   str(raw / "train-images-idx3-ubyte"), str(raw / "t10k-labels-idx1-ubyte"), "COLDLIB_DATA_DIR"):
        assert phrase in message, phrase
    assert list(data_root.iterdir()) == []


def test_fashion_mnist_offline_protocol_from_the_test_files(data_root):
    expected = _write_fashion(data_root, n_train=None, n_test=10_000)["test"]
    train = load_images("fashion_mnist", image_size=28)
    test = load_images("fashion_mnist", split="test", image_size=28, limit=50)
    assert torch.equal(train.images, expected[0][:8000]) and torch.equal(train.labels, expected[1][:8000])
    assert torch.equal(test.images, expected[0][8000:8050]) and torch.equal(test.labels, expected[1][8000:8050])
    assert "Fashion-MNIST TEST-ONLY FALLBACK" in train.source and "COLDLIB_OFFLINE=1" in train.source


def test_fashion_mnist_test_files_of_the_wrong_size_are_refused(data_root):
    _write_fashion(data_root, n_train=None, n_test=FASHION_TEST)
    with pytest.raises(RuntimeError, match="expected 10,000"):
        load_images("fashion_mnist")



def test_fashion_mnist_reads_the_gz_training_files(data_root):
    expected = _write_fashion(data_root)
    for path in (data_root / "FashionMNIST" / "raw").iterdir():
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    result = load_images("fashion_mnist", image_size=28)
    assert torch.equal(result.images, expected["train"][0]) and torch.equal(result.labels, expected["train"][1])

# --- CelebA ------------------------------------------------------------------------------------------------------

def _celeba_colours(i: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The two colours (left half, right half) of the central square of stand-in image i."""
    return (30 * i, 200 - 20 * i, 90), (220 - 25 * i, 40, 25 * i)


def _write_celeba(root: Path, monkeypatch) -> None:
    """Write celeba/ as torchvision.datasets.CelebA reads it: img_align_celeba/*.jpg and the five text files.

    Each 178x218 image has a red band above and below its central 178x178 square (the part a centre crop drops)
    and two flat colours, left and right, inside the square.
    """
    cls = torchvision.datasets.CelebA
    base = root / cls.base_folder
    images = base / "img_align_celeba"
    images.mkdir(parents=True)
    band = (CELEBA_H - CELEBA_W) // 2
    for i, (name, _) in enumerate(CELEBA_PARTITION):
        left, right = _celeba_colours(i)
        pixels = np.zeros((CELEBA_H, CELEBA_W, 3), dtype=np.uint8)
        pixels[:, :] = (255, 0, 0)
        pixels[band : band + CELEBA_W, : CELEBA_W // 2] = left
        pixels[band : band + CELEBA_W, CELEBA_W // 2 :] = right
        Image.fromarray(pixels).save(images / name, quality=95, subsampling=0)
    n = len(CELEBA_PARTITION)
    rows = lambda values: "".join(f"{name} {values(i)}\n" for i, (name, _) in enumerate(CELEBA_PARTITION))  # noqa: E731
    files = {
        "list_eval_partition.txt": "".join(f"{name} {part}\n" for name, part in CELEBA_PARTITION),
        "identity_CelebA.txt": rows(lambda i: 100 + i),
        "list_bbox_celeba.txt": f"{n}\nimage_id x_1 y_1 width height\n" + rows(lambda i: f"95 71 226 {300 + i}"),
        "list_landmarks_align_celeba.txt": (f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                                            "leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
                                            + rows(lambda i: "69 109 106 113 77 142 73 152 108 154")),
        "list_attr_celeba.txt": f"{n}\nSmiling Young \n" + rows(lambda i: f"{1 if i % 2 else -1}  1"),
    }
    for name, text in files.items():
        (base / name).write_text(text)
    monkeypatch.setattr(cls, "file_list", [(fid, md5 if f.endswith(".zip") else _md5(base / f), f)
                                           for fid, md5, f in cls.file_list])


@pytest.fixture
def celeba(data_root, monkeypatch):
    _write_celeba(data_root, monkeypatch)
    return data_root / "celeba" / "img_align_celeba"


def _indices(part: int) -> list[int]:
    return [i for i, (_, p) in enumerate(CELEBA_PARTITION) if p == part]


def _region_means(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean colour (N, 3) of the left and right halves, one eighth of the side away from the edges and centre."""
    s = images.shape[-1]
    m = max(1, s // 8)
    x = images.float()
    return x[..., m : s - m, m : s // 2 - m].mean((-2, -1)), x[..., m : s - m, s // 2 + m : s - m].mean((-2, -1))


def _expected_means(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    colours = [_celeba_colours(i) for i in indices]
    return torch.tensor([c[0] for c in colours]).float(), torch.tensor([c[1] for c in colours]).float()


def test_celeba_train_split_default_size(celeba):
    result = load_images("celeba")
    train = _indices(0)
    assert result.images.dtype == torch.uint8 and result.images.shape == (len(train), 3, 64, 64)  # default 64
    assert result.labels is None  # CelebA has no labels in coldlib
    left, right = _region_means(result.images)
    want_left, want_right = _expected_means(train)  # the right files, in list_eval_partition.txt order
    assert (left - want_left).abs().max() < 6 and (right - want_right).abs().max() < 6
    assert f"CelebA (torchvision, {celeba})" in result.source and f"official train split of {len(train)} images" in result.source
    x = result.float()
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1


def test_celeba_test_split_skips_valid(celeba):
    result = load_images("celeba", split="test", image_size=32)
    test = _indices(2)
    assert result.images.shape == (len(test), 3, 32, 32)
    left, right = _region_means(result.images)
    want_left, want_right = _expected_means(test)
    assert (left - want_left).abs().max() < 6 and (right - want_right).abs().max() < 6


def test_celeba_centre_square_at_full_size_drops_the_bands(celeba):
    result = load_images("celeba", image_size=CELEBA_W, limit=1)
    img = result.images[0].float()  # (3, 178, 178): the central square, unresized
    assert img.shape == (3, CELEBA_W, CELEBA_W)
    left, right = _celeba_colours(0)
    # Rows at the very top and bottom belong to the square, not to the red bands above and below it.
    for row in (img[:, :2, 4 : CELEBA_W // 2 - 4], img[:, -2:, 4 : CELEBA_W // 2 - 4]):
        assert (row.mean((-2, -1)) - torch.tensor(left).float()).abs().max() < 8
    for row in (img[:, :2, CELEBA_W // 2 + 4 : -4], img[:, -2:, CELEBA_W // 2 + 4 : -4]):
        assert (row.mean((-2, -1)) - torch.tensor(right).float()).abs().max() < 8


def test_celeba_limit_and_no_classes(celeba):
    result = load_images("celeba", image_size=16, limit=2)
    assert result.images.shape == (2, 3, 16, 16)
    left, _ = _region_means(result.images)
    assert (left - _expected_means(_indices(0)[:2])[0]).abs().max() < 8
    assert "first 2 taken" in result.source
    with pytest.raises(ValueError, match=f"limit=4 but only {len(_indices(0))} images"):
        load_images("celeba", limit=4)
    with pytest.raises(ValueError, match="classes= needs a labelled dataset"):
        load_images("celeba", image_size=16, classes=[1])


def test_celeba_missing_files_say_what_to_do(data_root):
    with pytest.raises(FileNotFoundError) as info:
        load_images("celeba")
    message = str(info.value)
    base = data_root / "celeba"
    for phrase in ("CelebA is not available", "COLDLIB_OFFLINE=1 forbids downloads", str(base / "img_align_celeba"),
                   str(base / "list_eval_partition.txt"), str(base / "list_attr_celeba.txt"), "gdown",
                   "folder:<path>", "COLDLIB_DATA_DIR"):
        assert phrase in message, phrase
    assert str(base / "img_align_celeba.zip") not in message  # the archive is not needed once extracted
    assert list(data_root.iterdir()) == []


def test_celeba_without_the_annotation_files_is_reported(celeba):
    (celeba.parent / "identity_CelebA.txt").unlink()
    with pytest.raises(FileNotFoundError, match="identity_CelebA.txt"):
        load_images("celeba")

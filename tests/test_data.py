"""Tests for coldlib.data: offline MNIST protocol, photos, folders, loaders (Lesson: 00_setup_and_tour).

MNIST tests need the official MNIST test files in ``$COLDLIB_DATA_DIR/MNIST/raw`` (CI points the variable
at the shared offline data folder); without them they are skipped.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from coldlib import data
from coldlib.data import ImageSet, load_images

_SHARED = os.environ.get("COLDLIB_DATA_DIR", "")
_RAW = Path(_SHARED) / "MNIST" / "raw" if _SHARED else None
_HAVE_MNIST = _RAW is not None and all(
    (_RAW / f).is_file() or (_RAW / (f + ".gz")).is_file() for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
)
needs_mnist = pytest.mark.skipif(
    not _HAVE_MNIST, reason="set COLDLIB_DATA_DIR to a folder with MNIST/raw/t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte"
)


@pytest.fixture
def no_network(monkeypatch):
    """Any network access or torchvision download attempt fails the test; returns the recorded MNIST calls."""
    calls = []
    real = torchvision.datasets.MNIST

    def guarded(*args, **kwargs):
        calls.append(kwargs)
        if kwargs.get("download"):
            raise AssertionError("torchvision.datasets.MNIST(download=True) called in offline mode")
        return real(*args, **kwargs)

    guarded.resources = real.resources
    monkeypatch.setattr(torchvision.datasets, "MNIST", guarded)

    def no_urlopen(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_urlopen)
    return calls


_HAVE_TRAIN = _RAW is not None and all((_RAW / f).is_file() for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"))
needs_train_split = pytest.mark.skipif(not (_HAVE_MNIST and _HAVE_TRAIN),
                                       reason="needs both official MNIST splits in $COLDLIB_DATA_DIR/MNIST/raw")


@pytest.fixture
def offline_mnist(monkeypatch, no_network, tmp_path):
    """A data folder that holds MNIST's official *test* split only (a user's partial copy): the fallback layout.

    Its files are links to the shared ones, so nothing is copied and the shared folder is never written.
    """
    raw = tmp_path / "test_only" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in _RAW.iterdir():
        if f.name.startswith("t10k-"):
            (raw / f.name).symlink_to(f)
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path / "test_only"))
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    return no_network


@pytest.fixture
def full_mnist(monkeypatch, no_network):
    """The shared folder with both official splits: torchvision's path, the paper's protocol."""
    monkeypatch.setenv("COLDLIB_DATA_DIR", _SHARED)
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    return no_network


def _official_test_images() -> torch.Tensor:
    return torchvision.datasets.mnist.read_image_file(str(_RAW / "t10k-images-idx3-ubyte"))


@needs_mnist
def test_mnist_offline_shapes_and_range(offline_mnist):
    train, test = load_images("mnist"), load_images("mnist", split="test")
    assert train.images.shape == (8000, 1, 32, 32) and test.images.shape == (2000, 1, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.shape == (8000,) and len(train) == 8000
    x = train.float()
    assert x.dtype == torch.float32 and x.min() == -1.0 and x.max() == 1.0
    assert train.float(slice(0, 5)).shape == (5, 1, 32, 32)
    assert offline_mnist == []  # the files were read directly: torchvision.datasets.MNIST was never called


@needs_mnist
@pytest.mark.skipif(not _HAVE_MNIST or not (_RAW / "t10k-images-idx3-ubyte").is_file(), reason="needs the unpacked idx file")
def test_mnist_offline_split_is_fixed_and_disjoint(offline_mnist):
    official = _official_test_images()
    labels = torchvision.datasets.mnist.read_label_file(str(_RAW / "t10k-labels-idx1-ubyte"))
    train = load_images("mnist", image_size=28)
    test = load_images("mnist", split="test", image_size=28)
    assert torch.equal(train.images[:, 0], official[:8000]) and torch.equal(test.images[:, 0], official[8000:])
    assert torch.equal(train.labels, labels[:8000].long()) and torch.equal(test.labels, labels[8000:].long())
    again = load_images("mnist", image_size=28)
    assert torch.equal(again.images, train.images)


@needs_mnist
def test_mnist_resize_is_antialiased_bilinear(offline_mnist):
    small, big = load_images("mnist", image_size=28, limit=16), load_images("mnist", limit=16)
    expected = F.interpolate(small.images.float(), size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(big.images, expected.round().clamp(0, 255).to(torch.uint8))
    assert "28x28 -> 32x32" in big.source


@needs_mnist
def test_mnist_source_announces_protocol(offline_mnist):
    source = load_images("mnist", split="test", limit=10).source
    for phrase in ("TEST-ONLY FALLBACK", "not the paper's protocol", "0–7999", "8000–9999", "held out",
                   "COLDLIB_OFFLINE", "first 10"):
        assert phrase in source, phrase


@needs_mnist
def test_mnist_limit(offline_mnist):
    full = load_images("mnist", split="test")
    part = load_images("mnist", split="test", limit=50)
    assert torch.equal(part.images, full.images[:50])
    with pytest.raises(ValueError, match="2000"):
        load_images("mnist", split="test", limit=2001)


@needs_mnist
def test_mnist_falls_back_when_download_fails(monkeypatch, tmp_path):
    """With downloads allowed, a failing download is reported in `source` and the protocol is used."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        src = _RAW / f
        shutil.copy(src if src.is_file() else src.with_suffix(".gz"), raw)
    calls = []

    def failing(*args, **kwargs):
        calls.append(kwargs)
        raise RuntimeError("simulated: no network")

    failing.resources = torchvision.datasets.MNIST.resources
    monkeypatch.setattr(torchvision.datasets, "MNIST", failing)
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COLDLIB_OFFLINE", raising=False)
    result = load_images("mnist", limit=8)
    assert [c.get("download") for c in calls] == [True]
    assert "TEST-ONLY FALLBACK" in result.source and "simulated: no network" in result.source
    with pytest.raises(ValueError, match="COLDLIB_OFFLINE"):
        monkeypatch.setenv("COLDLIB_OFFLINE", "1")
        load_images("mnist", download=True)


@needs_mnist
def test_mnist_reads_gz_only(monkeypatch, tmp_path, no_network):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if not (_RAW / f).is_file():
            pytest.skip(f"{_RAW / f} not present")
        shutil.copy(_RAW / f, raw)
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    result = load_images("mnist", split="test", image_size=28)
    assert result.images.shape == (2000, 1, 28, 28)
    if (_RAW / "t10k-images-idx3-ubyte").is_file():
        assert torch.equal(result.images[:, 0], _official_test_images()[8000:])
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@needs_mnist
def test_mnist_uses_torchvision_when_all_files_exist(monkeypatch, tmp_path, no_network):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    if not (_RAW / "t10k-images-idx3-ubyte").is_file():
        pytest.skip("needs the unpacked idx files")
    for kind in ("images-idx3", "labels-idx1"):  # stand-in training files (copies of the test files)
        shutil.copy(_RAW / f"t10k-{kind}-ubyte", raw / f"t10k-{kind}-ubyte")
        shutil.copy(_RAW / f"t10k-{kind}-ubyte", raw / f"train-{kind}-ubyte")
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    result = load_images("mnist", image_size=28)
    assert len(result) == 10000 and "official training split" in result.source
    assert [c.get("download") for c in no_network] == [False]


def test_offline_empty_data_dir_says_what_to_do(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    for name, expected in (("mnist", "t10k-images-idx3-ubyte"), ("fashion_mnist", "FashionMNIST"),
                           ("cifar10", "cifar-10-batches-py"), ("celeba", "gdown")):
        with pytest.raises(FileNotFoundError) as info:
            load_images(name)
        message = str(info.value)
        for phrase in (expected, str(tmp_path), "COLDLIB_DATA_DIR", "network", "photos", "COLDLIB_OFFLINE=1"):
            assert phrase in message, (name, phrase)
    assert list(tmp_path.iterdir()) == []  # nothing was written into the data folder
    assert no_network == []


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(name="imagenet"), "folder:<path>"),
        (dict(name="mnist", split="val"), "split"),
        (dict(name="photos", image_size=0), "image_size"),
        (dict(name="photos", image_size=-4), "image_size"),
        (dict(name="photos", image_size=32.0), "image_size"),
        (dict(name="photos", image_size=True), "image_size"),
        (dict(name="photos", limit=0), "limit"),
        (dict(name="photos", download="yes"), "download"),
        (dict(name="photos", image_size=400), "image_size"),
        (dict(name="folder:/tmp"), "image_size is required"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_images(**kwargs)


def test_photos_split_by_photo():
    train, test = load_images("photos"), load_images("photos", split="test")
    for part in (train, test):
        assert len(part) > 0 and part.images.shape[1:] == (3, 32, 32) and part.images.dtype == torch.uint8
        assert -1.0 <= part.float().min() and part.float().max() <= 1.0
    n_train = len(data.PHOTOS_TRAIN)
    assert set(train.labels.tolist()) == set(range(n_train))
    assert set(test.labels.tolist()) == set(range(n_train, n_train + len(data.PHOTOS_TEST)))
    assert not set(data.PHOTOS_TRAIN) & set(data.PHOTOS_TEST)
    train_crops = {bytes(c.numpy()) for c in train.images}
    assert not any(bytes(c.numpy()) in train_crops for c in test.images)
    for name in data.PHOTOS_TRAIN + data.PHOTOS_TEST:
        assert name in train.source
    assert f"{len(train):,} crops" in train.source
    assert train.images.float().flatten(1).std(dim=1).min() >= 2.0  # featureless crops (retina's black border) dropped
    assert torch.equal(load_images("photos", limit=100).images, train.images[:100])  # fixed order


def test_photos_mix_photos_early_and_resize():
    first = load_images("photos", image_size=16, limit=200)
    assert first.images.shape == (200, 3, 16, 16)
    assert len(set(first.labels.tolist())) == len(data.PHOTOS_TRAIN)  # a limited set still covers every photo


def _write_png(path: Path, size: tuple[int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    img = torch.zeros(h, w, 3, dtype=torch.uint8)
    img[..., 1] = 200  # green everywhere ...
    side = (w - h) // 2
    if side > 0:
        img[:, :side, 0] = 255  # ... except red bands that the centre crop must remove
        img[:, w - side :, 0] = 255
    Image.fromarray(img.numpy()).convert(mode).save(path)


def test_folder_source(tmp_path, capsys):
    for i in range(20):
        _write_png(tmp_path / f"sub{i % 3}" / f"img{i:02d}.png", (30 + i, 20), mode="RGBA" if i % 2 else "RGB")
    (tmp_path / "notes.txt").write_text("not an image")
    train = load_images(f"folder:{tmp_path}", image_size=16)
    test = load_images(f"folder:{tmp_path}", split="test", image_size=16)
    assert train.images.shape == (18, 3, 16, 16) and test.images.shape == (2, 3, 16, 16)
    assert int(train.images[:, 0].max()) == 0 and int(train.images[:, 1].min()) == 200  # centre-cropped, no red
    assert "90/10" in train.source and str(tmp_path) in train.source
    load_images(f"folder:{tmp_path}", image_size=16)
    assert capsys.readouterr().out.count(train.source) == 1  # announced once per process
    with pytest.raises(ValueError, match="limit"):
        load_images(f"folder:{tmp_path}", split="test", image_size=16, limit=3)


def test_folder_downscale_is_antialiased(tmp_path):
    checker = ((torch.arange(48)[:, None] + torch.arange(48)[None, :]) % 2 * 255).to(torch.uint8)
    Image.fromarray(checker.numpy()).save(tmp_path / "checker.png")  # grey-scale file, loaded as RGB
    (img,) = load_images(f"folder:{tmp_path}", image_size=16).images
    assert img.shape == (3, 16, 16) and 120 <= int(img.min()) and int(img.max()) <= 135  # averaged, not aliased


@pytest.mark.parametrize("h, w, rows, cols", [(3, 4, (0, 3), (0, 3)), (5, 2, (1, 3), (0, 2)), (4, 4, (0, 4), (0, 4))])
def test_center_square_is_the_central_square_view(h, w, rows, cols):
    img = torch.arange(2 * h * w).view(2, h, w)
    square = data.center_square(img)
    assert torch.equal(square, img[:, rows[0] : rows[1], cols[0] : cols[1]])
    assert square.data_ptr() == img[:, rows[0] :, cols[0] :].data_ptr()  # a view, not a copy


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        load_images(f"folder:{tmp_path / 'missing'}", image_size=8)
    with pytest.raises(FileNotFoundError, match="No .png"):
        load_images(f"folder:{tmp_path}", image_size=8)
    _write_png(tmp_path / "only.png", (8, 8))
    with pytest.raises(RuntimeError, match="test split is empty"):
        load_images(f"folder:{tmp_path}", split="test", image_size=8)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(RuntimeError, match="broken.jpg"):
        load_images(f"folder:{tmp_path}", image_size=8)


def _asymmetric_set(n: int = 10) -> ImageSet:
    images = torch.arange(n * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, 3, 4, 4)
    return ImageSet(images, torch.arange(n), "test images")


def test_imageset_errors_and_repr():
    imgs = _asymmetric_set(3)
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(3, 1, 4, 4), None, "floats are not allowed")
    with pytest.raises(ValueError, match="labels"):
        ImageSet(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.arange(2), "label count mismatch")
    assert "3 images 3x4x4" in repr(imgs) and "tensor(" not in repr(imgs)


@needs_mnist
def test_mnist_classes_filter(offline_mnist):
    eights = load_images("mnist", classes=[8])
    everything = load_images("mnist")
    assert (eights.labels == 8).all() and len(eights) == int((everything.labels == 8).sum())
    assert torch.equal(eights.images, everything.images[everything.labels == 8])
    assert "only classes [8]" in eights.source
    few = load_images("mnist", split="test", classes=[0, 1], limit=5)
    assert len(few) == 5 and set(few.labels.tolist()) <= {0, 1}


@needs_mnist
@pytest.mark.parametrize("classes, match", [(8, "list of int labels"), ([], "list of int labels"),
                                            (["8"], "list of int labels"), ([42], "no image has a label")])
def test_mnist_bad_classes(offline_mnist, classes, match):
    with pytest.raises(ValueError, match=match):
        load_images("mnist", classes=classes)


@needs_train_split
def test_both_splits_give_the_papers_protocol(full_mnist):
    """With the training split present: 60,000 training images, all 10,000 test images held out, disjoint."""
    train, test = load_images("mnist", limit=3000), load_images("mnist", split="test")
    assert len(test) == 10000 and "official training split" in train.source and "official test split" in test.source
    assert "FALLBACK" not in train.source + test.source
    assert train.origin.split == "train" and test.origin.split == "test"
    assert torch.equal(test.origin.indices, torch.arange(10000))
    assert train.origin.overlap(test.origin) == 0
    line = data.check_held_out(train, test, name="a model", verbose=False)
    assert line.startswith("held out: none of these 10,000 images")
    official = torchvision.datasets.mnist.read_image_file(str(_RAW / "train-images-idx3-ubyte"))
    assert torch.equal(load_images("mnist", image_size=28, limit=100).images[:, 0], official[:100])


@needs_mnist
def test_fallback_origin_and_overlap_refused(offline_mnist):
    """Under the test-only fallback the two parts are disjoint parts of the one test split, and a model trained
    there is refused on a full test split (its first 8,000 images overlap)."""
    train, test = load_images("mnist"), load_images("mnist", split="test")
    assert train.origin.split == test.origin.split == "test"
    assert train.origin.ranges() == [[0, 8000]] and test.origin.ranges() == [[8000, 10000]]
    assert data.check_held_out({"training_data": train.origin.to_dict()}, test,
                               verbose=False).startswith("held out")
    full_test = ImageSet(torch.zeros(10000, 1, 2, 2, dtype=torch.uint8), None, "all test images",
                         data.Origin("mnist", "test", torch.arange(10000)))
    with pytest.raises(ValueError, match=r"8,000 of these 10,000 images were used to train m"):
        data.check_held_out({"training_data": train.origin.to_dict()}, full_test, name="m")


@needs_mnist
def test_origin_follows_classes_and_limit(offline_mnist):
    everything = load_images("mnist", split="test")
    eights = load_images("mnist", split="test", classes=[8], limit=7)
    expected = everything.origin.indices[everything.labels == 8][:7]
    assert torch.equal(eights.origin.indices, expected)
    record = eights.origin.to_dict()
    assert record["count"] == 7 and data.Origin.from_dict(record).overlap(eights.origin) == 7


def test_check_held_out_warns_without_records():
    images = ImageSet(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), None, "made in memory")
    with pytest.warns(UserWarning, match="cannot prove"):
        line = data.check_held_out({"data": "an old checkpoint"}, images, verbose=False)
    assert line.startswith("WARNING")
    with pytest.raises(ValueError, match="ImageSet returned by load_images"):
        data.check_held_out({}, torch.zeros(4, 1, 2, 2))
    with pytest.raises(ValueError, match="not a training-data record"):
        data.Origin.from_dict({"dataset": "mnist", "split": "test", "ranges": [[0]]})
    with pytest.raises(ValueError, match="count 5 but its ranges hold 3"):
        data.Origin.from_dict({"dataset": "mnist", "split": "test", "count": 5, "ranges": [[0, 3]]})


def test_folder_parts_are_disjoint(tmp_path):
    for i in range(10):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / f"{i}.png")
    train = load_images(f"folder:{tmp_path}", image_size=8)
    test = load_images(f"folder:{tmp_path}", split="test", image_size=8)
    assert train.origin.overlap(test.origin) == 0 and train.origin.overlap(train.origin) == 9


def test_every_keeps_a_spread_subset_with_its_origin():
    imgs = ImageSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10), "ten",
                    data.Origin("mnist", "test", torch.arange(100, 110)))
    sub = imgs.every(4)
    assert sub.images.flatten().tolist() == [0, 4, 8] and sub.labels.tolist() == [0, 4, 8]
    assert sub.origin.indices.tolist() == [100, 104, 108] and "every 4th image kept (3)" in sub.source
    with pytest.raises(ValueError):
        imgs.every(0)

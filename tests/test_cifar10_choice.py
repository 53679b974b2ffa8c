"""coldlib.data.choose_cifar10: CIFAR-10 when it is on disk or downloadable, else an announced fallback.

Each test writes a few random images in torchvision's real CIFAR-10 layout (the pickled batches under
``cifar-10-batches-py/``, helper shared with test_datasets_on_disk.py) into a temporary COLDLIB_DATA_DIR.
torchvision md5-checks those files even without a download, so, as there, the tests put the stand-ins' md5 into
torchvision's tables (monkeypatched); coldlib's own logic is not patched. No test touches the network:
``urllib.request.urlopen`` (what torchvision downloads with) is replaced by a recorder that either fails as an
unreachable host does or serves a stand-in archive, and sockets refuse to connect.
"""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision

from coldlib.data import CIFAR10_CLASSES, DataChoice, choose_cifar10
from tests.test_datasets_on_disk import CIFAR_NAMES, CIFAR_TEST, _write_cifar

CIFAR = torchvision.datasets.CIFAR10


class _Response(io.BytesIO):
    """What urllib.request.urlopen returns, as far as torchvision's download reads it."""

    def __init__(self, payload: bytes, url: str) -> None:
        super().__init__(payload)
        self.url, self.length = url, len(payload)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty COLDLIB_DATA_DIR, online (COLDLIB_OFFLINE unset); returns the root and the recorded URL requests.

    ``serve`` (set by a test) is the archive urlopen returns; without it every request fails like a host
    that cannot be resolved.
    """
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("COLDLIB_DATA_DIR", str(root))
    monkeypatch.delenv("COLDLIB_OFFLINE", raising=False)
    requests: list[str] = []
    served: dict[str, bytes] = {}

    def fake_urlopen(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else str(request)
        requests.append(url)
        if url in served:
            return _Response(served[url], url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    def no_socket(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    return root, requests, served


def test_class_names_are_cifar10s_official_order():
    assert CIFAR10_CLASSES == tuple(CIFAR_NAMES)
    assert (CIFAR10_CLASSES.index("cat"), CIFAR10_CLASSES.index("dog")) == (3, 5)


@pytest.mark.parametrize("offline", ["1", ""])
def test_local_copy_is_chosen_and_loaded_without_a_download(env, monkeypatch, capsys, offline):
    root, requests, _ = env
    monkeypatch.setenv("COLDLIB_OFFLINE", offline)
    expected = _write_cifar(root, monkeypatch)
    choice = choose_cifar10()
    assert choice.is_cifar10 and choice.name == "cifar10" and choice.title == "CIFAR-10"
    assert choice.reason.startswith(f"CIFAR-10 found in {root / 'cifar-10-batches-py'}")
    assert str(choice) in capsys.readouterr().out  # announced
    test = choice.load("test")
    assert test.images.shape == (CIFAR_TEST, 3, 32, 32) and test.images.dtype == torch.uint8
    assert torch.equal(test.images, expected["test"][0]) and torch.equal(test.labels, expected["test"][1])
    train = choice.load("train", image_size=16, limit=5)
    assert train.images.shape == (5, 3, 16, 16) and torch.equal(train.labels, expected["train"][1][:5])
    assert requests == []  # the local copy is enough, online or not


def test_cats_to_dogs_by_class(env, monkeypatch):
    root, requests, _ = env
    expected = _write_cifar(root, monkeypatch)
    choice = choose_cifar10(fallback="mnist")
    images, labels = expected["train"]
    for name in ("cat", "dog"):
        label = CIFAR10_CLASSES.index(name)
        chosen = choice.load("train", classes=[label])
        assert torch.equal(chosen.images, images[labels == label]) and set(chosen.labels.tolist()) == {label}
        assert len(chosen) >= 1  # batch 1 of the stand-in holds two cats and a dog
    assert requests == []


def test_offline_without_cifar10_falls_back_to_photos_and_says_why(env, monkeypatch, capsys):
    root, requests, _ = env
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    monkeypatch.setattr(CIFAR, "download", lambda self: pytest.fail("torchvision download called offline"))
    choice = choose_cifar10()
    assert choice == DataChoice("photos", f"offline (COLDLIB_OFFLINE=1 forbids downloads) and no CIFAR-10 in "
                                          f"{root / 'cifar-10-batches-py'}; using the offline photo crops instead.")
    assert not choice.is_cifar10 and choice.title == "the offline photo crops"
    printed = capsys.readouterr().out
    assert "Dataset: the offline photo crops ('photos'). Why: offline (COLDLIB_OFFLINE=1" in printed
    assert requests == [] and list(root.iterdir()) == []  # no network, nothing written
    assert choose_cifar10(fallback="mnist").name == "mnist"


def test_offline_with_an_incomplete_copy_names_the_missing_files(env, monkeypatch):
    root, requests, _ = env
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    _write_cifar(root, monkeypatch)
    (root / "cifar-10-batches-py" / "data_batch_4").unlink()
    choice = choose_cifar10()
    assert choice.name == "photos" and "incomplete (missing data_batch_4)" in choice.reason
    assert requests == []


def test_failed_download_falls_back_with_the_error(env, capsys):
    root, requests, _ = env
    choice = choose_cifar10()
    assert choice.name == "photos"
    assert choice.reason.startswith(f"no CIFAR-10 in {root / 'cifar-10-batches-py'} and the download failed (URLError:")
    assert "Temporary failure in name resolution" in choice.reason
    assert choice.reason.endswith("; using the offline photo crops instead.")
    assert "download failed" in capsys.readouterr().out
    assert requests and all(url == CIFAR.url or url == CIFAR.url.replace("https:", "http:") for url in requests)
    with pytest.raises(RuntimeError, match="CIFAR-10 is required"):  # download=True: no fallback
        choose_cifar10(download=True)


def test_download_false_never_downloads(env):
    root, requests, _ = env
    choice = choose_cifar10(download=False)
    assert choice.name == "photos" and choice.reason.startswith("download=False and no CIFAR-10")
    assert requests == []


def test_successful_download_goes_through_torchvision(env, tmp_path, monkeypatch, capsys):
    """torchvision's real download(): fetch the archive (served locally), check its md5, extract it."""
    root, requests, served = env
    staging = tmp_path / "staging"
    staging.mkdir()
    expected = _write_cifar(staging, monkeypatch)  # also puts the stand-ins' md5 into torchvision's tables
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    served[CIFAR.url] = archive.getvalue()
    monkeypatch.setattr(CIFAR, "tgz_md5", hashlib.md5(archive.getvalue()).hexdigest())
    choice = choose_cifar10()
    assert choice == DataChoice("cifar10", f"CIFAR-10 downloaded by torchvision into {root / 'cifar-10-batches-py'}")
    assert CIFAR.url in requests and (root / CIFAR.filename).is_file()
    assert "Why: CIFAR-10 downloaded" in capsys.readouterr().out
    assert torch.equal(choice.load("test").images, expected["test"][0])


def test_a_copy_failing_the_md5_check_falls_back_and_is_not_overwritten(env, monkeypatch):
    root, requests, _ = env
    with monkeypatch.context() as undo:  # stand-in files, then torchvision's official md5 tables again
        _write_cifar(root, undo)
    choice = choose_cifar10()
    folder = root / "cifar-10-batches-py"
    assert choice.name == "photos" and f"the CIFAR-10 files in {folder} fail torchvision's check" in choice.reason
    assert f"delete {folder}" in choice.reason
    assert requests == []  # a damaged copy is reported, not silently replaced by a download


@pytest.mark.parametrize("bad", [dict(fallback="cifar10"), dict(fallback="imagenet"), dict(download="yes")])
def test_bad_arguments_are_refused(env, bad):
    with pytest.raises(ValueError):
        choose_cifar10(**bad)


def test_download_true_conflicts_with_offline(env, monkeypatch):
    monkeypatch.setenv("COLDLIB_OFFLINE", "1")
    with pytest.raises(ValueError, match="conflicts with COLDLIB_OFFLINE=1"):
        choose_cifar10(download=True)

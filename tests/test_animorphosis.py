"""Animorphosis data: coldlib.generation.animorphosis_pair, and lesson 07's CIFAR-10 path, without a network.

With CIFAR-10 (here: a few random images written in torchvision's real on-disk layout by the helper of
test_datasets_on_disk.py, whose md5s are put into torchvision's tables) the pair is dogs (x0) grown from cats
(z); without it, offline or after a failed download, it is MNIST's eights from zeros (stand-in idx files), and
the pair's description says that it is the fallback and why. The last test runs the library calls of the
lesson's CIFAR-10 path (the pair, a few Trainer steps of the tiny 3-channel UNet, sampling with fixed and
re-estimated z) on the stand-in CIFAR-10, so that path is tested without a second notebook run. Every
download and network connection fails the test (the fixtures of the two helper modules).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coldlib.data import CIFAR10_CLASSES, DataChoice, choose_cifar10
from coldlib.degradations import ImageMixing
from coldlib.diffusion import ColdDiffusion
from coldlib.generation import AnimorphosisPair, animorphosis_pair, generate
from coldlib.training import TrainConfig, Trainer
from coldlib.unet import UNet, unet_preset
from tests.test_cifar10_choice import env  # noqa: F401  (fixture: online, every download fails)
from tests.test_datasets_on_disk import _idx, _write_cifar, data_root  # noqa: F401  (fixture: offline)

CAT, DOG = CIFAR10_CLASSES.index("cat"), CIFAR10_CLASSES.index("dog")
CYCLE = [CAT, DOG, 7]  # every batch: a cat, a dog, a horse, ... (the horses must be left out)
MNIST_LABELS = [0, 8, 3]


def _write_mnist(root: Path, n_train: int = 12, n_test: int = 6) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Write MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (28 px, labels 0, 8, 3, ... repeated)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(8)
    expected = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.array([MNIST_LABELS[i % len(MNIST_LABELS)] for i in range(n)], dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels))
        expected[split] = (torch.from_numpy(images)[:, None], torch.from_numpy(labels).long())
    return expected


def _check_sets(pair: AnimorphosisPair, counts: dict[str, int]) -> None:
    """Each set holds only its class, as many images as ``counts`` says, all (channels, size, size)."""
    for field, label in (("sources", pair.source_class), ("targets", pair.target_class),
                         ("held_out_sources", pair.source_class), ("held_out_targets", pair.target_class)):
        images = getattr(pair, field)
        assert set(images.labels.tolist()) == {label}, field
        assert len(images) == counts[field], field
        assert images.images.shape[1:] == (pair.channels, pair.image_size, pair.image_size), field


def test_cifar10_gives_dogs_from_cats(data_root, monkeypatch, capsys):  # noqa: F811
    expected = _write_cifar(data_root, monkeypatch, labels_cycle=CYCLE)
    pair = animorphosis_pair(choose_cifar10(fallback="mnist"))
    assert (pair.dataset, pair.source_name, pair.target_name) == ("cifar10", "cat", "dog")
    assert (pair.source_class, pair.target_class, pair.channels, pair.image_size) == (CAT, DOG, 3, 32)
    assert pair.title == "dogs from cats"
    _check_sets(pair, {"sources": 5, "targets": 5, "held_out_sources": 2, "held_out_targets": 1})
    images, labels = expected["train"]
    assert torch.equal(pair.targets.images, images[labels == DOG])  # the training dogs, in order, unresized
    assert torch.equal(pair.sources.images, images[labels == CAT])
    test_images, test_labels = expected["test"]
    assert torch.equal(pair.held_out_sources.images, test_images[test_labels == CAT])
    assert pair.description == ("Animorphosis on CIFAR-10: dogs (label 5, the x0) grown from cats (label 3, the z); "
                                "3 channels, 32 px.")
    printed = capsys.readouterr().out
    assert "Dataset: CIFAR-10 ('cifar10')" in printed and pair.description in printed
    assert "fallback" not in printed
    assert "dogs from cats" in repr(pair) and "held_out_targets 1" in repr(pair)


def test_offline_without_cifar10_falls_back_to_eights_from_zeros_and_says_so(data_root, capsys):  # noqa: F811
    expected = _write_mnist(data_root)
    pair = animorphosis_pair(choose_cifar10(fallback="mnist"))
    assert (pair.dataset, pair.source_name, pair.target_name) == ("mnist", "zero", "eight")
    assert (pair.source_class, pair.target_class, pair.channels, pair.image_size) == (0, 8, 1, 32)
    assert pair.title == "eights from zeros"
    _check_sets(pair, {"sources": 4, "targets": 4, "held_out_sources": 2, "held_out_targets": 2})
    assert len(pair.targets) == int((expected["train"][1] == 8).sum())
    folder = data_root / "cifar-10-batches-py"
    assert pair.description == (
        "Animorphosis on MNIST, the fallback for CIFAR-10's dogs from cats: eights (label 8, the x0) grown from "
        "zeros (label 0, the z); 1 channel, 32 px. Why: offline (COLDLIB_OFFLINE=1 forbids downloads) and no "
        f"CIFAR-10 in {folder}; using MNIST instead.")
    assert pair.description in capsys.readouterr().out  # the fallback is never silent
    assert not folder.exists()


def test_a_failed_download_falls_back_with_its_error(env):  # noqa: F811
    root, requests, _ = env  # online, but every request fails like an unreachable host
    _write_mnist(root)  # all four MNIST files: read from disk, no download
    pair = animorphosis_pair(choose_cifar10(fallback="mnist"))
    assert pair.dataset == "mnist" and pair.title == "eights from zeros"
    assert "the fallback for CIFAR-10's dogs from cats" in pair.description
    assert "the download failed (URLError:" in pair.description
    assert requests  # CIFAR-10's download was tried (and failed), nothing else got through


@pytest.mark.parametrize("choice", [DataChoice("photos", "offline"), DataChoice("fashion_mnist", "offline"), "mnist"])
def test_other_choices_are_refused(choice):
    with pytest.raises(ValueError, match="animorphosis pairs exist for cifar10, mnist|DataChoice"):
        animorphosis_pair(choice)


def test_the_lessons_cifar10_path_trains_and_samples(data_root, monkeypatch):  # noqa: F811
    """Lesson 07's dogs-from-cats calls, at toy size: the pair, the tiny UNet trained a few steps, both samplers."""
    _write_cifar(data_root, monkeypatch, labels_cycle=CYCLE)
    pair = animorphosis_pair(choose_cifar10(fallback="mnist"))
    D_mix = ImageMixing(100, pool=pair.sources.float())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UNet(unet_preset("tiny", pair.channels))
    steps = 4
    trainer = Trainer(ColdDiffusion(net, D_mix), pair.targets.images,
                      TrainConfig(steps=steps, batch_size=4, grad_accum=1, lr=4e-4, ema_start=steps // 4,
                                  ema_every=1, ema_decay=0.995, flip=True), device="cpu",
                      data_note=f"{pair.targets.source}; mixed with: {pair.sources.source}")
    losses = trainer.train(progress=False)
    assert len(losses) == steps and all(np.isfinite(losses))
    R_mix = ColdDiffusion(trainer.ema, D_mix)
    held_out_sources = pair.held_out_sources.float()
    x_T = R_mix.degradation(torch.zeros_like(held_out_sources), R_mix.T, held_out_sources)
    assert torch.allclose(x_T, (1 - D_mix.alpha_bar[-1]).sqrt().float() * held_out_sources)
    fixed = R_mix.sample(x_T, method="improved", z=held_out_sources)
    estimated = generate(R_mix, 3, pool=held_out_sources, reestimate_z=True,
                         generator=torch.Generator().manual_seed(15))
    for x in (fixed, estimated):
        assert x.shape[1:] == (3, 32, 32) and torch.isfinite(x).all()
    assert fixed.shape[0] == 2 and estimated.shape[0] == 3

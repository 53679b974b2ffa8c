"""coldlib.experiments: one record per task and dataset; every shipped checkpoint's command matches its record."""

from __future__ import annotations

import json
import shlex

import pytest

from coldlib.degradations import Degradation
from coldlib.experiments import (
    DATASET_ALIASES,
    EXPERIMENTS,
    command,
    experiment,
    list_presets,
    paper_command,
    paper_table,
    preset,
    shipped_command,
    shipped_experiment,
)
from coldlib.shipped import checkpoint_dir, read_registry
from coldlib.training.cli import build_parser
from coldlib.unet import unet_preset_name


def _parse(line: str):
    words = shlex.split(line)
    start = words.index("coldlib.training") + 1
    return build_parser().parse_args(words[start:])


@pytest.mark.parametrize("name", sorted(read_registry()))
def test_every_shipped_checkpoint_has_its_recipe(name):
    entry = read_registry()[name]  # (the registry lists restorers; the classifier has its own file and CLI)
    args = _parse(shipped_command(name))  # fails with "no recipe" until its Experiment lists it in `shipped`
    sidecar = json.loads((checkpoint_dir() / entry["file"]).with_suffix(".json").read_text())
    train = sidecar["train"]
    assert (args.task, args.dataset) == (entry["task"], entry["dataset"])
    assert shipped_experiment(name).key == (args.task, DATASET_ALIASES.get(args.dataset, args.dataset))
    assert sidecar["degradation"] == preset(args.task, args.dataset).config() or args.task == "mixing"
    assert args.model == unet_preset_name(sidecar["model"])
    for field in ["steps", "batch_size", "grad_accum", "lr", "ema_start", "ema_every", "ema_decay", "flip"]:
        assert getattr(args, field) == train[field], f"{name}: --{field} differs from the checkpoint's record"
    assert sidecar["steps"] == args.steps


@pytest.mark.parametrize("key", sorted(k for k, e in EXPERIMENTS.items() if e.paper_recipe))
def test_paper_recipes_parse_and_name_their_own_preset(key):
    args = _parse(paper_command(*key))
    assert args.task == key[0] and args.model == "paper" and args.out == f"runs/paper_{key[0]}_{key[1]}"
    assert experiment(args.task, args.preset_dataset or args.dataset) is EXPERIMENTS[key]


@pytest.mark.parametrize("key", list_presets())
def test_every_experiment_builds_its_degradation(key):
    e = EXPERIMENTS[key]
    D = preset(*key)
    assert isinstance(D, Degradation) and D is not preset(*key)  # a fresh instance each time
    assert D.config() == e.degradation().config()
    assert e.image_size in (32, 64, 128)


def test_views_and_aliases():
    assert paper_table("blur", "mnist")["Direct"] == {"FID": 5.10, "SSIM": 0.757, "RMSE": 0.142}
    assert paper_table("snow", "cifar10") is None  # Table 4's numbers were not found
    assert experiment("snow", "photos") is EXPERIMENTS["snow", "cifar10"]
    assert preset("blur", "fashion_mnist").config() == preset("blur", "mnist").config()
    with pytest.raises(ValueError, match="no preset for task='blur', dataset='svhn'.*blur/mnist"):
        preset("blur", "svhn")
    with pytest.raises(ValueError, match="trains no model"):
        paper_command("noise", "mnist")  # our MNIST generators have no paper recipe


def test_commands():
    assert paper_command("blur", "mnist").startswith("python -m coldlib.training --task blur --dataset mnist")
    two = paper_command("blur", "celeba", gpus=2)
    assert two.startswith("torchrun --nproc_per_node=2 -m coldlib.training") and _parse(two).batch_size == 16
    with pytest.raises(ValueError, match="does not split evenly"):
        paper_command("blur", "celeba", gpus=3)
    with pytest.raises(ValueError, match="no paper recipe"):
        paper_command("blur", "svhn")
    with pytest.raises(ValueError, match="no recipe"):
        shipped_command("nope")
    with pytest.raises(ValueError, match="gpus"):
        command(["--task", "blur"], "runs/x", gpus=0)
    assert "--export 'runs/a b/export/a b'" in command(["--task", "blur"], "runs/a b")

"""The training recipes: every shipped checkpoint's command matches what the checkpoint records."""

from __future__ import annotations

import json
import shlex

import pytest

from coldlib.shipped import checkpoint_dir, read_registry
from coldlib.degradations import preset
from coldlib.training import PRESET_DATASET, unet_preset_name
from coldlib.recipes import PAPER_RECIPES, SHIPPED_RECIPES, command, paper_command, shipped_command
from coldlib.training.cli import build_parser


def _parse(line: str):
    words = shlex.split(line)
    start = words.index("coldlib.training") + 1
    return build_parser().parse_args(words[start:])


@pytest.mark.parametrize("name", sorted(read_registry()))
def test_every_shipped_checkpoint_has_its_recipe(name):
    entry = read_registry()[name]  # (the registry lists restorers; the classifier has its own file and CLI)
    assert name in SHIPPED_RECIPES, f"add the command that trained {name} to coldlib.recipes.SHIPPED_RECIPES"
    args = _parse(shipped_command(name))
    sidecar = json.loads((checkpoint_dir() / entry["file"]).with_suffix(".json").read_text())
    train = sidecar["train"]
    assert (args.task, args.dataset) == (entry["task"], entry["dataset"])
    assert args.model == unet_preset_name(sidecar["model"])
    for field in ["steps", "batch_size", "grad_accum", "lr", "ema_start", "ema_every", "ema_decay", "flip"]:
        assert getattr(args, field) == train[field], f"{name}: --{field} differs from the checkpoint's record"
    assert sidecar["steps"] == args.steps


@pytest.mark.parametrize("key", sorted(PAPER_RECIPES))
def test_paper_recipes_parse_and_name_a_preset(key):
    args = _parse(paper_command(*key))
    assert args.task == key[0] and args.model == "paper" and args.out == f"runs/paper_{key[0]}_{key[1]}"
    preset(args.task, args.preset_dataset or PRESET_DATASET.get(args.dataset, args.dataset))


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

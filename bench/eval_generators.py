"""Fréchet distances (FD_MNIST-CNN) of every shipped MNIST generator, one row per sampler and start.

    python bench/eval_generators.py --samples 500 [--names mnist_blur_generation mnist_noise]

The same measurements as lessons 06, 07 and 09 at full size, without the pictures: samples are drawn with
``coldlib.generation.generate`` (seeded starts from ``generation_start``, sampled in chunks of 100 with the
named sampler), and compared with the first
500 held-out digits (held-out eights for animorphosis, which starts from held-out zeros). Every distance
carries its 95 % bootstrap spread over the images (:func:`coldlib.evaluation.mnist_fd_interval`), and the
first row is the floor: as many real *training* digits as each row has samples, against the same reference.
Prints a Markdown table, and with ``--json`` writes it. FD_MNIST-CNN is not Inception FID.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from coldlib.shipped import load_shipped, read_registry
from coldlib.data import load_images
from coldlib.diffusion import SAMPLER_NAMES
from coldlib.env import pick_device
from coldlib.evaluation import compare, mnist_fd_interval
from coldlib.generation import fit_channel_mean_prior, generate

# (sampler, start noise, re-estimate z) per generator task
VARIANTS = {
    "blur_generation": [("naive", 0.0, False), ("naive", 0.002, False), ("improved", 0.0, False),
                        ("improved", 0.002, False)],
    "noise": [("naive", 0.0, False), ("improved", 0.0, False), ("improved", 0.0, True)],
    "inpaint_generation": [("naive", 0.0, False), ("improved", 0.0, False), ("improved", 0.002, False)],
    "mixing": [("improved", 0.0, False), ("improved", 0.0, True)],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--names", nargs="+", help="generators to measure (default: every registered one)")
    p.add_argument("--json", help="also write the rows (with intervals) to this file")
    args = p.parse_args()
    device = pick_device()
    registry = read_registry()
    names = args.names or [n for n, e in registry.items() if e["task"] in VARIANTS]
    train = load_images("mnist", split="train")
    reference = load_images("mnist", split="test", limit=500).float().to(device)
    prior = fit_channel_mean_prior(train.float())
    floor = mnist_fd_interval(reference, train.float(slice(0, args.samples)).to(device))
    rows = [f"| real training digits (the floor) | – | – | {floor:.1f} | – |"]
    records = [{"generator": "real training digits (the floor)", "fd": floor.to_dict()}]
    for name in names:
        task = registry[name]["task"]
        R = load_shipped(name, device=device).diffusion()
        real, pool = reference, None
        if task == "mixing":  # eights from held-out zeros
            pool = load_images("mnist", split="test", classes=[0]).float()
            real = load_images("mnist", split="test", classes=[8]).float().to(device)
        for method, noise, reestimate in VARIANTS[task]:
            start = time.perf_counter()
            samples = generate(R, args.samples, method=method, batch_size=100, prior=prior, noise_std=noise,
                               reestimate_z=reestimate, pool=pool, image_size=32,
                               generator=torch.Generator().manual_seed(0))
            fd = mnist_fd_interval(real, samples)
            sampler = ("re-estimated z (DDIM for noise)" if reestimate else
                       SAMPLER_NAMES[method] + (", fixed z" if R.degradation.has_z else ""))
            verdict = compare(fd, floor, names=("row", "floor"), higher_is_better=False)
            against = ("–" if task == "mixing"  # eights vs eights: the all-digit floor does not apply
                       else "level" if verdict.leader is None else "behind" if verdict.leader == "floor" else "ahead")
            rows.append(f"| `{name}` | {sampler} | {noise:g} | {fd:.1f} | {against} |")
            records.append({"generator": name, "sampler": sampler, "start_noise": noise, "fd": fd.to_dict(),
                            "samples": args.samples, "reference": len(real)})
            print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    n_eights = len(load_images("mnist", split="test", classes=[8]))
    print(f"\n{args.samples} samples per row on {device}; reference: 500 held-out digits ({n_eights:,} held-out "
          "eights for mnist_mixing); FD_MNIST-CNN with its 95 % bootstrap spread; last column: the row against "
          "the floor's interval ('level' = indistinguishable from real digits at this n)\n")
    print("| Generator | Sampler | start noise | FD_MNIST-CNN ↓ | vs floor |\n|---|---|---|---|---|\n" + "\n".join(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=2)


if __name__ == "__main__":
    main()

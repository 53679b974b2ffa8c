"""Fréchet distances (FD_MNIST-CNN) of every shipped MNIST generator, one row per sampler and start.

    python bench/eval_generators.py --samples 500 [--names mnist_blur_generation mnist_noise]

The same measurements as lessons 06 and 08 at full size, without the pictures: samples are drawn with
``coldlib.generation.generation_start`` (seeded), sampled with the named sampler, and compared with the first
500 held-out digits (held-out eights for animorphosis, which starts from held-out zeros). Prints a Markdown
table, and the distance between two sets of real digits as a floor. FD_MNIST-CNN is not Inception FID.
"""

from __future__ import annotations

import argparse
import time

import torch

from coldlib.shipped import load_shipped, read_registry
from coldlib.data import load_images
from coldlib.degradations import ImageMixing
from coldlib.env import pick_device
from coldlib.evaluation import mnist_fd
from coldlib.generation import fit_channel_mean_prior, generation_start

# (sampler, start noise, re-estimate z) per generator task
VARIANTS = {
    "blur_generation": [("naive", 0.0, False), ("naive", 0.002, False), ("improved", 0.0, False),
                        ("improved", 0.002, False)],
    "noise": [("naive", 0.0, False), ("improved", 0.0, False), ("improved", 0.0, True)],
    "inpaint_generation": [("naive", 0.0, False), ("improved", 0.0, False), ("improved", 0.002, False)],
    "mixing": [("improved", 0.0, False), ("improved", 0.0, True)],
}
NAMES = {"naive": "Algorithm 1", "improved": "Algorithm 2"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--names", nargs="+", help="generators to measure (default: every registered one)")
    args = p.parse_args()
    device = pick_device()
    registry = read_registry()
    names = args.names or [n for n, e in registry.items() if e["task"] in VARIANTS]
    train = load_images("mnist", split="train")
    reference = load_images("mnist", split="test", limit=500).float().to(device)
    prior = fit_channel_mean_prior(train.float())
    floor = mnist_fd(reference, train.float(slice(0, args.samples)).to(device))
    rows = [f"| real training digits (the floor) | – | – | {floor:.2f} |"]
    for name in names:
        task = registry[name]["task"]
        R = load_shipped(name, device=device).diffusion()
        D, real = R.degradation, reference
        if task == "mixing":
            D = ImageMixing(D.T, pool=load_images("mnist", split="test", classes=[0]).float())
            real = load_images("mnist", split="test", classes=[8]).float().to(device)
        for method, noise, reestimate in VARIANTS[task]:
            start = time.perf_counter()
            x_T, z = generation_start(D, args.samples, 32, prior=prior, noise_std=noise,
                                      generator=torch.Generator().manual_seed(0))
            x_T = x_T.to(device)
            z = z.to(device) if isinstance(z, torch.Tensor) else z
            out = []
            for i in range(0, args.samples, 100):
                zi = None if (reestimate or z is None) else z[i : i + 100]
                out.append(R.sample(x_T[i : i + 100], method=method, z=zi, reestimate_z=reestimate))
            fd = mnist_fd(real, torch.cat(out))
            sampler = ("re-estimated z (DDIM for noise)" if reestimate else
                       NAMES[method] + (", fixed z" if z is not None else ""))
            rows.append(f"| `{name}` | {sampler} | {noise:g} | {fd:.2f} |")
            print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\n{args.samples} samples per row on {device}; reference: 500 held-out digits (187 held-out eights "
          "for mnist_mixing)\n")
    print("| Generator | Sampler | start noise | FD_MNIST-CNN ↓ |\n|---|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    main()

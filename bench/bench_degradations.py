"""Benchmark: coldlib's closed-form degradations against the authors' iterated form, at t = 1, T/2, T.

Run: ``python bench/bench_degradations.py [--device cpu|cuda] [--reps 5]``. Every ratio printed is measured
in this one run on this machine. The headline is blur at the CelebA-generation setting (T = 300, 27×27
kernel, 128×128, batch 8), where the authors' ``q_sample`` runs t depthwise convolutions on the batch.

Baselines ("iterated") are batched the authors' way: the whole batch goes through t per-step operators.
Snow is not cumulative, but the authors' ``q_sample`` still loops over the t steps, recomputing a layer per
step; the baseline does the same. Mixing and noise were closed forms in their code too (no baseline).

A row that is slower than the iterated form at some t is flagged MISSES, with the speed-up of the bare operator
(``D.degrade``: no input checks, z drawn beforehand) at those t. At t = 1 the iterated form is itself a single
operation, so what separates the two there is a fixed cost per call of ``D(x0, t)``: the range check (one
``aminmax`` pass over the batch), the step and z checks and drawing z. That cost is what keeps unconverted or
non-finite images from being degraded silently, and it is well under a millisecond.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coldlib.degradations import (  # noqa: E402
    Decolorize,
    Degradation,
    GaussianBlur,
    GaussianMask,
    GaussianNoise,
    Pixelate,
    Snow,
)
from coldlib.degradations.separable import gaussian_kernel1d  # noqa: E402
from coldlib.experiments import preset  # noqa: E402


def timed(fns: dict[int, Callable[[], torch.Tensor]], reps: int, device: torch.device) -> dict[int, float]:
    """Best wall time of each function over ``reps`` rounds, after one warm-up.

    The functions are interleaved round by round, and the minimum is kept (as ``timeit`` does), so that
    a burst of load from another process on a shared machine does not land on one ``t`` only.
    """
    best = {}
    for key, fn in fns.items():
        fn()
        best[key] = float("inf")
    for _ in range(reps):
        for key, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


def iterated_blur(D: GaussianBlur, x: torch.Tensor, t: int) -> torch.Tensor:
    c, k, p = x.shape[1], D.kernel_size, D.kernel_size // 2
    for i in range(t):
        g = gaussian_kernel1d(k, D.sigmas[i]).to(x)
        x = F.conv2d(F.pad(x, (p, p, p, p), mode=D.padding), (g[:, None] * g).expand(c, 1, k, k), groups=c)
    return x


def iterated_mask(D: GaussianMask, x: torch.Tensor, t: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    z = D.draw_z(x)
    masks = D.cumulative_masks(h, w, x.device, x.dtype)
    for i in range(t):  # the authors multiply one per-step mask at a time
        step = masks[i + 1] / masks[i].clamp_min(1e-12)
        if z is None:
            x = step * x
        else:
            x = torch.stack([step[oy : oy + h, ox : ox + w] for oy, ox in z.tolist()])[:, None] * x
    return x


def iterated_pixelate(D: Pixelate, x: torch.Tensor, t: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    for i in range(t):
        x = F.interpolate(F.interpolate(x, size=(h >> (i + 1), w >> (i + 1)), mode="area"), size=(h, w))
    return x


def iterated_decolor(D: Decolorize, x: torch.Tensor, t: int) -> torch.Tensor:
    for i in range(t):
        e = (D.T - i - 1) / (D.T - i)
        w = e * torch.eye(3) + (1 - e) / 3
        x = F.conv2d(x, w[:, :, None, None].to(x))
    return x


def iterated_snow(D: Snow, x: torch.Tensor, t: int) -> torch.Tensor:
    z = D.draw_z(x)
    y = x
    for i in range(1, t + 1):  # a layer per step, each from x0, as the authors' loop does
        y = D.degrade(x, torch.full((x.shape[0],), i, device=x.device), z)
    return y


def row(name: str, D: Degradation, x: torch.Tensor, iterated, reps: int, device: torch.device) -> None:
    columns = [1, max(1, D.T // 2), D.T]  # the table's t = 1, T/2, T
    ts = sorted(set(columns))  # each timed once (for T = 3, T/2 is t = 1)
    closed = timed({t: (lambda t=t: D(x, t)) for t in ts}, reps, device)
    flat = max(closed.values()) / min(closed.values())
    cells = [f"{closed[t] * 1e3:8.2f}" for t in columns]
    line = f"{name:<34} {' '.join(cells)}   flat {flat:4.2f}x"
    if iterated is not None:
        slow = timed({t: (lambda t=t: iterated(D, x, t)) for t in ts}, max(1, reps // 2), device)
        line += "   speed-up " + " ".join(f"{slow[t] / closed[t]:8.1f}x" for t in columns)
        slower = [t for t in ts if slow[t] < closed[t]]
        # A training batch: a random step per image. The authors degrade the whole batch up to max(t).
        steps = torch.randint(1, D.T + 1, (x.shape[0],), generator=torch.Generator().manual_seed(0))
        mixed = timed({0: lambda: D(x, steps.to(x.device)), 1: lambda: iterated(D, x, int(steps.max()))},
                      max(1, reps // 2), device)
        line += f"   mixed-t batch {mixed[1] / mixed[0]:8.1f}x"
        if slower:
            # Why: time the operator alone (D.degrade, no input checks, z drawn beforehand) at those steps.
            z = D.draw_z(x)
            bare = timed({t: (lambda t=t: D.degrade(x, torch.full((x.shape[0],), t, device=x.device), z))
                          for t in slower}, reps, device)
            line += (f"   MISSES 1x at t = {', '.join(map(str, slower))}: the operator alone is "
                     + ", ".join(f"{slow[t] / bare[t]:.2f}x" for t in slower)
                     + "; the rest is the call's fixed cost (input checks, drawing z)")
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", help="run only the rows whose name contains this text (e.g. pixelate)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, reps {args.reps}")
    print(f"{'degradation (batch, size)':<34} {'ms t=1':>8} {'t=T/2':>8} {'t=T':>8}   flatness   "
          "closed-form speed-up over the iterated form at t = 1, T/2, T, and on a random-t batch")

    def batch(b: int, c: int, n: int) -> torch.Tensor:
        return torch.rand(b, c, n, n, device=device) * 2 - 1

    cases = [
        ("blur celeba-gen T=300 k27 (8,128²)", preset("blur_generation", "celeba"), batch(8, 3, 128), iterated_blur),
        ("blur celeba T=200 k15 refl (8,128²)", preset("blur", "celeba"), batch(8, 3, 128), iterated_blur),
        ("blur cifar10 T=50 refl (32,32²)", preset("blur", "cifar10"), batch(32, 3, 32), iterated_blur),
        ("blur mnist T=20 (32,32²)", preset("blur", "mnist"), batch(32, 1, 32), iterated_blur),
        ("inpaint random T=50 (32,32²)", preset("inpaint", "cifar10"), batch(32, 3, 32), iterated_mask),
        ("inpaint centred T=100 (8,128²)", preset("inpaint", "celeba"), batch(8, 3, 128), iterated_mask),
        ("pixelate T=4 (8,128²)", preset("pixelate", "celeba"), batch(8, 3, 128), iterated_pixelate),
        ("pixelate mnist T=3 (32,32²)", preset("pixelate", "mnist"), batch(32, 1, 32), iterated_pixelate),
        ("snow T=200 (8,128²)", preset("snow", "celeba"), batch(8, 3, 128), iterated_snow),
        ("decolor T=20 (32,64²)", preset("decolor", "celeba"), batch(32, 3, 64), iterated_decolor),
        ("noise T=200 (8,128²)", GaussianNoise(200), batch(8, 3, 128), None),
    ]
    for name, D, x, iterated in cases:
        if args.only and args.only not in name:
            continue
        row(name, D, x, iterated, args.reps, device)


if __name__ == "__main__":
    main()

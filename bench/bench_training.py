"""Benchmark: a training step and an Algorithm 2 run, coldlib's closed-form blur against the authors' iterated one.

Run: ``python bench/bench_training.py [--device cpu|cuda] [--reps N] [--quick] [--threads N] [--compile]
[--alg2-steps N] [--sections 1 2 3]``. Every ratio printed is measured in this one run on this machine. ``--quick`` takes about
1-3 minutes on a CPU; the default up to about 10.

1. Training throughput (images/s of one optimisation step: forward + backward + Adam, batch 32) with the same
   UNet ("small"), batch and t draws, on MNIST blur (T=20, 1×32²) and CIFAR-10 blur (T=50, 3×32²):
   (a) coldlib: ``ColdDiffusion.loss`` with the closed-form degradation;
   (b) authors-style: the whole batch is blurred with max(t) sequential depthwise ``conv2d`` steps (per-step
   Gaussian kernels, the preset's padding), every intermediate is stacked and each sample's level is picked in
   a Python loop over the batch (``paper.md`` (e)1), then the same L1 loss on the same UNet.
2. Algorithm 2 at T = 300 (``preset("blur_generation", "celeba")``; CPU: 64×64, batch 4, UNet "tiny"; CUDA:
   128×128, batch 8, UNet "small"): the share of sampling time spent outside the network, for coldlib's
   ``sample(method="improved")`` and for the authors' O(T²) form, which recomputes D(x̂0, s) and D(x̂0, s−1)
   from scratch by iterated convolutions at every step (``paper.md`` (c)). On a CPU the authors' form is run
   for the first ``--alg2-steps`` steps only (from s = T, the most expensive ones) and compared per step with
   coldlib's run over the same steps; its full-T cost is then extrapolated from the convolution count.
3. ``Trainer.train_step`` throughput by precision. CUDA: fp32 eager against bf16 autocast + channels_last (and
   + ``torch.compile`` with ``--compile``). CPU (MNIST setting): fp32 against bf16 autocast, and which of the two
   ``mixed_precision="auto"`` picks on this CPU (bf16 only where the CPU has native bf16 instructions, e.g.
   AVX512-BF16 or AMX; emulated bf16 was measured 13× slower than fp32 on an AVX2-only CPU).

Fairness notes. Both sides use float32 and the same kernels. The authors' kernels are trimmed of entries below
1e-20, exactly as coldlib's composite matrices are: the Gaussian tails of the narrow kernels (σ ≈ 0.35 to 1) are
float32 subnormals, which make CPU convolutions up to ~15× slower (GPUs do not care). Without the trim the
authors' CPU numbers would be much worse. On a CPU the default is one thread: on a shared, busy machine two
OpenMP threads were measured 25× slower than one (oversubscription), which swamps every ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from coldlib.degradations import GaussianBlur  # noqa: E402
from coldlib.experiments import preset  # noqa: E402
from coldlib.degradations.separable import gaussian_kernel1d  # noqa: E402
from coldlib.diffusion import ColdDiffusion  # noqa: E402
from coldlib.env import cpu_has_native_bf16  # noqa: E402
from coldlib.training import TrainConfig, Trainer  # noqa: E402
from coldlib.training.trainer import autocast_dtype_for  # noqa: E402
from coldlib.unet import UNet, unet_preset  # noqa: E402

TRAIN_SETTINGS = [("MNIST blur", "mnist", 1), ("CIFAR-10 blur", "cifar10", 3)]


# --------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], reps: int, device: torch.device) -> float:
    """Median wall time of ``fn`` over ``reps`` runs after one warm-up (synchronised on CUDA)."""
    fn()
    times = []
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_interleaved(fns: dict[str, Callable[[torch.Tensor], object]], args: Sequence[torch.Tensor],
                      device: torch.device) -> dict[str, float]:
    """Median wall time of each ``fn(args[i])`` for i ≥ 1, after a warm-up on ``args[0]``.

    The functions alternate within each repetition (and the order flips every repetition), so a change in
    the machine's background load hits them alike; each sees the same arguments in the same order.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for name, fn in fns.items():
        fn(args[0])
    for i, arg in enumerate(args[1:]):
        names = list(fns) if i % 2 == 0 else list(reversed(list(fns)))
        for name in names:
            sync(device)
            start = time.perf_counter()
            fns[name](arg)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


class Clock:
    """Time marks: ``perf_counter`` on a CPU; CUDA events on a GPU (no sync inside the sampling loop)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self, a, b) -> float:
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b) / 1e3
        return b - a


class NetTimer(nn.Module):
    """Wraps the restorer and marks the start and end of each forward, to split a run into network and rest.

    It also keeps (references to) the inputs of the first ``keep`` calls, i.e. the states x_T, x_{T-1}, ...,
    so a truncated authors-style run can be checked against coldlib's trajectory at no cost.
    """

    def __init__(self, model: nn.Module, clock: Clock, keep: int = 0) -> None:
        super().__init__()
        self.model, self.clock, self.keep = model, clock, keep
        self.reset()

    def reset(self) -> None:
        self.marks: list[tuple[object, object]] = []
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if len(self.inputs) < self.keep:
            self.inputs.append(x)
        start = self.clock.mark()
        y = self.model(x, t)
        self.marks.append((start, self.clock.mark()))
        return y

    def split(self, start, end) -> tuple[float, list[float], list[float]]:
        """Total seconds from ``start`` to ``end``; per step (one network call each): step and network seconds.

        A step runs from the start of its network call to the start of the next one (the last to ``end``), so
        the steps add up to the total minus the (tiny) time before the first call.
        """
        total = self.clock.seconds(start, end)
        starts = [a for a, _ in self.marks] + [end]
        step = [self.clock.seconds(starts[k], starts[k + 1]) for k in range(len(self.marks))]
        net = [self.clock.seconds(a, b) for a, b in self.marks]
        return total, step, net


# --------------------------------------------------------------------------------------------- the authors' way
def blur_kernels(D: GaussianBlur, channels: int, device: torch.device) -> list[torch.Tensor]:
    """The per-step depthwise kernels (C, 1, k, k), built once (the authors keep them as conv modules)."""
    out = []
    for sigma in D.sigmas:
        g = gaussian_kernel1d(D.kernel_size, sigma)
        k2 = g[:, None] * g
        k2 = torch.where(k2 < 1e-20, torch.zeros_like(k2), k2)  # coldlib's tail trim (see the docstring)
        out.append(k2.float().expand(channels, 1, -1, -1).contiguous().to(device))
    return out


def blur_step(D: GaussianBlur, kernels: list[torch.Tensor], x: torch.Tensor, i: int) -> torch.Tensor:
    """Step i (0-based) of the authors' blur: one depthwise conv, padded as the preset; the mean at i = T-1."""
    p = D.kernel_size // 2
    x = F.conv2d(F.pad(x, (p, p, p, p), mode=D.padding), kernels[i], groups=x.shape[1])
    if D.to_mean_at_T and i == D.T - 1:  # their --discrete: the last state is the per-channel mean
        x = x.mean((2, 3), keepdim=True).expand_as(x)
    return x


def iterated_blur(D: GaussianBlur, kernels: list[torch.Tensor], x: torch.Tensor, n: int) -> torch.Tensor:
    for i in range(n):
        x = blur_step(D, kernels, x, i)
    return x


def authors_q_sample(D: GaussianBlur, kernels: list[torch.Tensor], x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``q_sample`` as in ``deblurring…py:927-960``: blur the whole batch max(t) times, stack every
    intermediate, then pick each sample's level in a Python loop over the batch."""
    x, stack = x0, []
    for i in range(int(t.max())):
        x = blur_step(D, kernels, x, i)
        stack.append(x)
    all_blurs = torch.stack(stack)
    return torch.stack([all_blurs[t[b] - 1, b] for b in range(x0.shape[0])])


@torch.no_grad()
def authors_alg2(net: nn.Module, D: GaussianBlur, kernels: list[torch.Tensor], x: torch.Tensor,
                 steps: int) -> torch.Tensor:
    """Algorithm 2 as in ``deblurring…py:436-451``, for the first ``steps`` steps from s = T: at every step
    D(x̂0, s) and D(x̂0, s−1) are recomputed from x̂0 by s and s−1 convolutions (T² in a full run)."""
    b = x.shape[0]
    for s in range(D.T, D.T - steps, -1):
        x0_hat = net(x, torch.full((b,), s, device=x.device, dtype=torch.long))
        x_s = iterated_blur(D, kernels, x0_hat, s)
        x_s_minus_1 = iterated_blur(D, kernels, x0_hat, s - 1)
        x = x - x_s + x_s_minus_1
    return x


# --------------------------------------------------------------------------------------------- 1. training
def training_section(args, device: torch.device) -> None:
    B = args.batch
    print(f"\n1. Training throughput: one optimisation step (forward + backward + Adam), UNet 'small', batch {B}, "
          "fp32 eager.")
    print(f"   Median wall time over {args.reps} steps after 1 warm-up, both methods interleaved step by step on the "
          "same model, batch and t draws (t ~ U{1..T}); images/s = batch / median step time.")
    print("   'D ms' = the degradation alone (median, same t draws). 'max|Δxt|' = largest difference between the "
          "two x_t on one batch. Authors' kernels: float32, entries < 1e-20 zeroed as coldlib's matrices are.")
    header = (f"   {'setting':<34} {'coldlib img/s':>13} {'authors img/s':>13} {'speed-up':>8}   "
              f"{'coldlib D ms':>12} {'authors D ms':>12} {'max|Δxt|':>9}")
    print(header)
    for name, dataset, channels in TRAIN_SETTINGS:
        D = preset("blur", dataset)
        torch.manual_seed(0)
        model = UNet(unet_preset("small", channels)).to(device)
        diffusion = ColdDiffusion(model, D)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
        x0 = torch.rand(B, channels, 32, 32, device=device) * 2 - 1
        gen = torch.Generator().manual_seed(1)
        ts = [torch.randint(1, D.T + 1, (B,), generator=gen).to(device) for _ in range(args.reps + 1)]
        kernels = blur_kernels(D, channels, device)
        with torch.no_grad():
            err = float((authors_q_sample(D, kernels, x0, ts[0]) - D(x0, ts[0])).abs().max())

        def coldlib_step(t: torch.Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            diffusion.loss(x0, t).backward()
            optimizer.step()

        def authors_step(t: torch.Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                xt = authors_q_sample(D, kernels, x0, t)
            F.l1_loss(model(xt, t), x0).backward()
            optimizer.step()

        step = timed_interleaved({"coldlib": coldlib_step, "authors": authors_step}, ts, device)
        with torch.no_grad():
            deg = timed_interleaved({"coldlib": lambda t: D(x0, t),
                                     "authors": lambda t: authors_q_sample(D, kernels, x0, t)}, ts, device)
        label = f"{name} T={D.T} {channels}×32² k{D.kernel_size} {D.padding[:4]}"
        print(f"   {label:<34} {B / step['coldlib']:13.1f} {B / step['authors']:13.1f} "
              f"{step['authors'] / step['coldlib']:7.2f}x   {deg['coldlib'] * 1e3:12.2f} {deg['authors'] * 1e3:12.2f} "
              f"{err:9.1e}", flush=True)


# --------------------------------------------------------------------------------------------- 2. Algorithm 2
def alg2_section(args, device: torch.device) -> None:
    D = preset("blur_generation", "celeba")
    T = D.T
    size, b, unet = (128, 8, "small") if device.type == "cuda" else (64, 4, "tiny")
    size = args.alg2_size or size
    n = min(args.alg2_steps, T)
    runs = 1 if args.quick else (3 if device.type == "cuda" else 2)
    clock = Clock(device)
    torch.manual_seed(0)
    model = UNet(unet_preset(unet, 3)).to(device).eval()
    net = NetTimer(model, clock, keep=n + 1)
    diffusion = ColdDiffusion(net, D)
    kernels = blur_kernels(D, 3, device)
    x0 = torch.rand(b, 3, size, size, device=device) * 2 - 1
    xT = D(x0, T) + 0.002 * torch.randn_like(x0)  # a constant-colour image + "broken symmetry" noise
    how = "CUDA events, no sync inside the loop" if device.type == "cuda" else "time.perf_counter"
    print(f"\n2. Algorithm 2, preset('blur_generation', 'celeba'): T={T}, k{D.kernel_size} {D.padding}, {size}×{size}, "
          f"batch {b}, UNet '{unet}' (random init, eval, no_grad).")
    print(f"   Timed with {how}: the restorer is wrapped in a module that marks the start and end of each forward; "
          "'network' = sum of those intervals, 'outside' = total − network (the degradations, the update, Python).")
    with torch.no_grad():  # warm-up: network kernels, coldlib's composite matrices for this size
        for _ in range(2):
            model(xT, torch.full((b,), T, device=device, dtype=torch.long))
            D.degrade(xT, torch.full((b,), T, device=device, dtype=torch.long), None)
    sync(device)

    best = None
    for _ in range(runs):
        net.reset()
        start = clock.mark()
        out = diffusion.sample(xT, method="improved")
        end = clock.mark()
        total, step, net_s = net.split(start, end)
        if best is None or total < best[0]:
            best = (total, step, net_s, list(net.inputs), out)
    total, step, net_s, states, out = best
    states.append(out)  # states[k] = x_{T-k}
    net.keep = 0

    # authors-style, the first n steps from s = T (all of them when n = T)
    net.reset()
    start = clock.mark()
    x_auth = authors_alg2(net, D, kernels, xT, n)
    end = clock.mark()
    a_total, a_step, a_net = net.split(start, end)
    diff = float((x_auth - states[n]).abs().max())

    def row(label: str, steps: int, tot: float, nt: float) -> None:
        out_s = tot - nt
        print(f"   {label:<46} {steps:5d} {tot:9.2f} {nt:9.2f} {out_s:9.2f} {100 * out_s / tot:8.1f} % "
              f"{1e3 * tot / steps:10.1f}", flush=True)

    print(f"   {'run':<46} {'steps':>5} {'total s':>9} {'network s':>9} {'outside s':>9} {'outside':>10} "
          f"{'ms/step':>10}")
    row(f"coldlib sample(method='improved'), best of {runs}", T, total, sum(net_s))
    row(f"coldlib, same run, steps s={T}..{T - n + 1}", n, sum(step[:n]), sum(net_s[:n]))
    row(f"authors-style O(T²), steps s={T}..{T - n + 1}", n, a_total, sum(a_net))
    if n < T:
        convs_done = sum(2 * s - 1 for s in range(T, T - n, -1))
        per_conv = (a_total - sum(a_net)) / convs_done
        ext_out = per_conv * T * T
        ext_net = sum(a_net) / n * T
        row(f"authors-style, EXTRAPOLATED to all {T} steps", T, ext_out + ext_net, ext_net)
        print(f"   (truncated: the authors' form ran only the first {n} of {T} steps, the most expensive ones: "
              f"2s−1 convolutions at step s. The last row scales their outside-network time per convolution "
              f"({per_conv * 1e3:.2f} ms) to the T² = {T * T} convolutions of a full run and their network time "
              f"per step to T steps. Pass --alg2-steps {T} to run it all.)")
    print(f"   Per step over the same steps s={T}..{T - n + 1}: authors-style / coldlib = "
          f"{a_total / sum(step[:n]):.1f}x; outside the network only: "
          f"{(a_total - sum(a_net)) / max(sum(step[:n]) - sum(net_s[:n]), 1e-12):.0f}x. "
          f"Goal for coldlib's full run: outside share ≤ 10 % → "
          f"{'met' if (total - sum(net_s)) / total <= 0.10 else 'NOT met'}.")
    print(f"   Check: max|x_{{T-{n}}} authors − x_{{T-{n}}} coldlib| = {diff:.1e} (same model and x_T).")


# --------------------------------------------------------------------------------------------- 3. precision (CUDA)
def precision_section(args, device: torch.device) -> None:
    cuda = device.type == "cuda"
    auto = autocast_dtype_for(TrainConfig(), device)
    native = "" if cuda else f"; native bf16 on this CPU: {'yes' if cpu_has_native_bf16() else 'no'}"
    print(f"\n3. Trainer.train_step throughput by precision. mixed_precision='auto' picks "
          f"{'bf16 autocast' if auto is torch.bfloat16 else 'fp32'} on this {device.type}{native}.")
    B = args.batch
    if cuda:
        variants = [("fp32 eager", "no", False, False), ("bf16 autocast + channels_last", "bf16", True, False)]
        if args.compile:
            variants.append(("bf16 + channels_last + torch.compile", "bf16", True, True))
        settings = TRAIN_SETTINGS
    else:
        variants = [("fp32", "no", False, False), ("bf16 autocast", "bf16", False, False)]
        settings = TRAIN_SETTINGS[:1]
    print(f"   Trainer.train_step with batch {B}, grad_accum 1, EMA every 10 steps (ema_start 0): includes the batch "
          "gather from uint8 host images, the host→device copy and the loss .item(). A fresh model per variant; "
          f"median over {args.reps} steps after warm-up (3 warm-up steps with torch.compile, else 1).")
    print(f"   {'setting':<28} {'variant':<38} {'img/s':>9} {'vs fp32':>8}  {'last loss':>10}")
    for name, dataset, channels in settings:
        images = torch.randint(0, 256, (1024, channels, 32, 32), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(2))
        base = None
        for label, mp, cl, comp in variants:
            torch.manual_seed(0)
            diffusion = ColdDiffusion(UNet(unet_preset("small", channels)), preset("blur", dataset))
            config = TrainConfig(batch_size=B, grad_accum=1, mixed_precision=mp, channels_last=cl, compile=comp,
                                 ema_start=0, seed=0)
            try:
                trainer = Trainer(diffusion, images, config, device=device)
                losses: list[float] = []
                for _ in range(2 if comp else 0):
                    trainer.train_step()
                seconds = timed(lambda: losses.append(trainer.train_step()), args.reps, device)
            except Exception as exc:  # e.g. torch.compile without a working toolchain
                print(f"   {name:<28} {label:<38} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
                continue
            base = base or seconds
            # the same seed, data and steps: the losses should agree roughly (bf16 is a check, not a race)
            print(f"   {name:<28} {label:<38} {B / seconds:9.1f} {base / seconds:7.2f}x  {losses[-1]:10.4f}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=None,
                        help="timed training steps per method (default: CPU 5, quick 3; CUDA 20, quick 5)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and authors-style Alg-2 steps")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 on a CPU device, see the docstring; else torch's)")
    parser.add_argument("--batch", type=int, default=32, help="training batch (default 32, as the paper)")
    parser.add_argument("--alg2-steps", type=int, default=None,
                        help="authors-style Alg-2 steps from s=T (default: CPU 30, quick 8; CUDA 300, quick 30)")
    parser.add_argument("--alg2-size", type=int, default=None, help="Alg-2 image side (default: CPU 64, CUDA 128)")
    parser.add_argument("--compile", action="store_true", help="CUDA: also time Trainer with torch.compile")
    parser.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3],
                        help="which sections to run (default: all)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda given but CUDA is not available.")
    cuda = device.type == "cuda"
    if args.reps is None:
        args.reps = (5 if args.quick else 20) if cuda else (3 if args.quick else 5)
    if args.alg2_steps is None:
        args.alg2_steps = (30 if args.quick else 300) if cuda else (8 if args.quick else 30)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif not cuda:
        torch.set_num_threads(1)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"torch {torch.__version__}, device {device} ({name}), threads {torch.get_num_threads()}, reps {args.reps}, "
          f"training batch {args.batch}, quick {args.quick}")
    if cuda:
        print(f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, matmul precision "
              f"{torch.get_float32_matmul_precision()}")
    begin = time.perf_counter()
    for number, section in [(1, training_section), (2, alg2_section), (3, precision_section)]:
        if number in args.sections:
            section(args, device)
    print(f"\nwall time {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()

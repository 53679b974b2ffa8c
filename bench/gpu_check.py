"""The GPU path in one command: the CUDA tests, a training-throughput table, and a timed MNIST deblurring run.

Made for a CUDA machine that is lent for a few minutes; the whole check takes about 8 minutes of wall time
(``--total-seconds``, default 480). From the repository root:

    # On the development machine, once: the offline MNIST files (the official test split; the two .gz files
    # are enough) into a git-ignored folder of the repository, so that they travel with the working tree.
    mkdir -p data/mnist_offline/MNIST/raw && cp "$COLDLIB_DATA_DIR"/MNIST/raw/*.gz data/mnist_offline/MNIST/raw/

    # On the GPU machine (carry data/mnist_offline; its python3 holds PyTorch, coldlib needs no install):
    COLDLIB_DATA_DIR=$PWD/data/mnist_offline COLDLIB_OFFLINE=1 PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT

``make gpu-check GPU_CHECK_ARGS="--out DIR"`` runs the same. Without COLDLIB_DATA_DIR the script uses
``data/mnist_offline`` when it holds MNIST (and then sets COLDLIB_OFFLINE=1 as well).

Parts, each in its own process with its own time box, so a failure or a hang in one is recorded and the
others still run:

1. tests: ``pytest tests/test_cuda.py -m cuda`` (degradations and samplers CUDA = CPU, bf16/channels_last/compile
   training steps, a torchrun run over NCCL, an NCCL all-reduce); each test's outcome goes into the report.
2. throughput: images/s of ``Trainer.train_step`` (forward, backward, Adam and EMA, as in training) for fp32
   eager, bf16 autocast + channels_last, and the same + ``torch.compile``, on MNIST-size (1×32×32, ``small``
   UNet, batch 64) and CIFAR-size (3×32×32, ``small`` and ``base`` UNet, batch 128) blur; warm-up steps excluded
   (they include the compilation), ``torch.cuda.synchronize()`` around each timed block of steps, the median of
   three blocks; ratios against fp32 eager of the same run. fp32 eager uses PyTorch's default math flags
   (recorded in the report).
3. training: the MNIST deblurring restorer (``preset("blur", "mnist")``, the ``small`` UNet, the shipped
   checkpoint's recipe: lr, EMA) for a wall budget (``--train-seconds``, default 240; shrunk, if the earlier
   parts ran long, to keep the total near ``--total-seconds``) with the fastest MNIST setting of part 2, then
   evaluated on the 2,000 held-out offline MNIST digits with every sampler (``evaluate_restoration``) and
   exported. Batch: 64 images per optimizer step in one micro-batch, where the shipped recipe takes 32 × 2
   accumulation steps: the same images per step and the same mean gradient (up to float rounding), half the
   kernel launches of a launch-bound small UNet, and the very shape part 2 timed (and compiled: torch.compile's
   on-disk cache then serves it). ``--train-batch 32 --train-accum 2`` gives the shipped split exactly.

Written to ``--out`` (default ``$OUT``, else ``runs/gpu_check``): ``gpu_check.json`` (every figure: device,
versions, test outcomes, the throughput table, training steps, wall time, images seen, metrics), after each
part; ``gpu_check.log`` (everything printed); ``mnist_blur_gpu.safetensors`` + ``.json`` (the EMA weights,
loadable with ``coldlib.checkpoints.load_model``).

``--dry-run`` runs the same code on the CPU in well under a minute: the CUDA tests are collected and skipped,
the table uses the ``tiny`` UNet, batch 4 and a few steps, with fp32 eager and bf16 (torch.compile only with
``--compile-on-cpu``), and training runs about 10 s on 256 images, evaluated on 16 held-out digits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

# (mixed_precision, channels_last, compile) of each TrainConfig variant, in table order.
VARIANTS: dict[str, tuple[str, bool, bool]] = {
    "fp32 eager": ("no", False, False),
    "bf16 + channels_last": ("bf16", True, False),
    "bf16 + channels_last + compile": ("bf16", True, True),
}
# (label, preset dataset, channels, UNet preset, batch): the GPU settings, and the dry run's stand-ins.
GPU_SETTINGS = [("MNIST-size 1x32x32", "mnist", 1, "small", 64), ("CIFAR-size 3x32x32", "cifar10", 3, "small", 128),
                ("CIFAR-size 3x32x32", "cifar10", 3, "base", 128)]
DRY_SETTINGS = [("MNIST-size 1x32x32", "mnist", 1, "tiny", 4), ("CIFAR-size 3x32x32", "cifar10", 3, "tiny", 4)]
CHECKPOINT_STEM = "mnist_blur_gpu"
T0 = float(os.environ.get("GPU_CHECK_T0", time.time()))  # the parent's start, shared with its child processes


# ------------------------------------------------------------------------------------------ small helpers
def log(message: str) -> None:
    """A progress line with the wall-clock time and the seconds since the check started."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.time() - T0:6.1f}s] {message}", flush=True)


def write_json(path: Path, data: dict) -> None:
    """Atomic write (a reader never sees half a file; a kill mid-write leaves the previous one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def settings(dry: bool) -> list[tuple[str, str, int, str, int]]:
    return DRY_SETTINGS if dry else GPU_SETTINGS


def format_table(rows: list[dict]) -> str:
    """The throughput table, one line per (setting, variant), with the ratio to fp32 eager of the same setting."""
    lines = [f"{'setting':<20} {'UNet':<6} {'batch':>5}  {'variant':<31} {'img/s':>10} {'ms/step':>8} {'vs fp32':>8}"]
    for r in rows:
        head = f"{r['setting']:<20} {r['model']:<6} {r['batch']:>5}  {r['variant']:<31}"
        if r.get("images_per_s"):
            ratio = f"{r['vs_fp32_eager']:.2f}x" if r.get("vs_fp32_eager") else "-"
            lines.append(f"{head} {r['images_per_s']:>10.1f} {r['ms_per_step']:>8.2f} {ratio:>8}")
        else:
            lines.append(f"{head} {r.get('status', '?')}")
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, Any]:
    from coldlib.env import data_dir

    info: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "cuda_available": torch.cuda.is_available(),
        "COLDLIB_OFFLINE": os.environ.get("COLDLIB_OFFLINE"), "COLDLIB_DATA_DIR": os.environ.get("COLDLIB_DATA_DIR"),
    }
    try:
        info["data_dir"] = str(data_dir())
    except Exception as exc:  # a bad COLDLIB_DATA_DIR: recorded, and the parts that need data say so too
        info["data_dir"] = error_text(exc)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device_name=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}",
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported(),
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32, cudnn_benchmark=torch.backends.cudnn.benchmark)
        try:
            version = torch.cuda.nccl.version()  # a tuple in recent PyTorch, an int in older ones
            info["nccl"] = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
        except Exception as exc:
            info["nccl"] = error_text(exc)
    else:
        info.update(device_name=f"{platform.processor() or platform.machine()} CPU ({torch.get_num_threads()} threads)",
                    gpus=0)
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                            timeout=10).stdout.strip() or None
    except Exception:
        info["git_commit"] = None
    return info


# ------------------------------------------------------------------------------------------ running the parts
class Runner:
    """Runs a part in a child process with a time box, echoing its output to the console and the log file."""

    def __init__(self, logfile: Path) -> None:
        self.logfile = logfile.open("a", buffering=1)

    def echo(self, line: str) -> None:
        sys.stdout.write(line)
        sys.stdout.flush()
        self.logfile.write(line)

    def log(self, message: str) -> None:
        self.echo(f"[{time.strftime('%H:%M:%S')} +{time.time() - T0:6.1f}s] {message}\n")

    def run(self, cmd: list[str], timeout: float, env: dict[str, str]) -> tuple[int | None, float]:
        """(exit code, or None if killed at the time box; seconds). The child and its own children are killed."""
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1, start_new_session=True)
        pump = threading.Thread(target=lambda: [self.echo(line) for line in proc.stdout], daemon=True)
        pump.start()
        try:
            code: int | None = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this call started (torchrun's workers too)
            proc.wait()
            code = None
        pump.join(timeout=10)
        return code, time.perf_counter() - start


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1",
            "GPU_CHECK_T0": str(T0), **(extra or {})}


# A pytest plugin (written to a scratch folder, loaded with -p): one JSON line per test as soon as it is decided,
# so the outcomes of the tests that ran are kept even if the part is killed at its time box.
RESULTS_PLUGIN = """
import json, os

def _write(record):
    with open(os.environ["GPU_CHECK_TEST_RESULTS"], "a") as f:
        f.write(json.dumps(record) + "\\n")

def pytest_runtest_logstart(nodeid, location):
    _write({"test": nodeid.split("::", 1)[-1], "event": "start"})

def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        if report.skipped and isinstance(report.longrepr, tuple):
            message = report.longrepr[2].removeprefix("Skipped: ")
        else:
            message = report.longreprtext[-3000:] if report.failed else ""
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        _write({"test": report.nodeid.split("::", 1)[-1], "event": "result", "outcome": outcome,
                "seconds": round(report.duration, 2), "message": message})
"""


def part_tests(args: argparse.Namespace, runner: Runner, scratch: Path) -> dict[str, Any]:
    """Part 1: ``pytest tests/test_cuda.py -m cuda`` in a subprocess; each test's outcome as it is decided."""
    results, notes = scratch / "cuda_tests.jsonl", scratch / "cuda_notes.jsonl"
    (scratch / "gpu_check_results_plugin.py").write_text(RESULTS_PLUGIN)
    # addopts cleared: the project's adds nbval options, and nbval need not be installed on a GPU machine.
    cmd = [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-m", "cuda", "-o", "addopts=", "-p",
           "no:cacheprovider", "-p", "gpu_check_results_plugin", "-q", "-rfEs", "--durations=5"]
    runner.log(f"part 1, tests: {' '.join(cmd[2:])} (time box {args.tests_timeout:.0f} s)")
    # No plugin autoloading: these tests need none, and the project's (nbval, Jupyter) take seconds to import.
    env = child_env({"COLDLIB_CUDA_NOTES": str(notes), "GPU_CHECK_TEST_RESULTS": str(results),
                     "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    env["PYTHONPATH"] += os.pathsep + str(scratch)
    code, seconds = runner.run(cmd, args.tests_timeout, env)
    result: dict[str, Any] = {"command": " ".join(["python", *cmd[1:]]), "exit_code": code,
                              "seconds": round(seconds, 1)}
    records = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    cases: dict[str, dict] = {}
    for record in records:
        case = cases.setdefault(record["test"], {"test": record["test"]})
        if record["event"] == "start":
            continue
        if "outcome" in case:  # a teardown that failed after the test's own result: an error
            case.update(outcome="error", message=(case.get("message", "") + "\nteardown: " + record["message"]).strip())
            continue
        case.update(outcome=record["outcome"], seconds=record["seconds"],
                    **({"message": record["message"]} if record["message"] else {}))
    unfinished = [name for name, case in cases.items() if "outcome" not in case]
    cases_list = [case for case in cases.values() if "outcome" in case]
    counts = {k: sum(c["outcome"] == k for c in cases_list) for k in ("passed", "failed", "error", "skipped")}
    result.update(counts=counts, cases=cases_list)
    if notes.is_file():
        result["notes"] = [json.loads(line) for line in notes.read_text().splitlines() if line.strip()]
    if code is None:
        result["status"] = (f"timed out after {args.tests_timeout:.0f} s (tests decided before that are listed)"
                            + (f"; killed while running {unfinished[0]}" if unfinished else ""))
    elif not cases_list:
        result["status"] = f"failed: pytest exited with {code} and reported no test"
    elif counts["failed"] or counts["error"]:
        result["status"] = "failed"
    elif code != 0:
        result["status"] = f"failed: pytest exited with {code}"
    elif counts["skipped"] == len(cases_list):
        result["status"] = "skipped"
        result["skipped_reason"] = cases_list[0].get("message", "") + (" (dry run on the CPU)" if args.dry_run else "")
    else:
        result["status"] = "passed" if not counts["skipped"] else "passed (some skipped)"
    for item in result.get("notes", []):
        runner.log(f"note from {item['test']}: {item['note']}")
    for case in cases_list:
        if case["outcome"] in ("failed", "error"):
            runner.log(f"{case['outcome'].upper()} {case['test']}: {case.get('message', '')[-300:]}")
    runner.log(f"part 1 done in {seconds:.0f} s: {result['status']}; {counts}")
    return result


def part_in_child(name: str, args: argparse.Namespace, runner: Runner, scratch: Path, timeout: float,
                  extra: list[str] | None = None) -> dict[str, Any]:
    """Run ``--part name`` of this script in a child process; its results file is read even if it was killed."""
    part_file = scratch / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--part-file", str(part_file),
           *args.forwarded, *(extra or [])]
    code, seconds = runner.run(cmd, timeout, child_env())
    result = json.loads(part_file.read_text()) if part_file.is_file() else {}
    result["process_seconds"] = round(seconds, 1)
    if code is None:
        result["status"] = f"timed out: killed at its {timeout:.0f} s time box (results so far are kept)"
    elif code != 0 and not str(result.get("status", "")).startswith("failed"):
        result["status"] = f"failed: the process exited with {code}"
    result.setdefault("status", "failed: no result")
    return result


# ------------------------------------------------------------------------------------------ part 2 (child process)
class Sink(dict):
    """A part's results, saved to its file at every :meth:`save` (the parent reads it even after a kill)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def save(self) -> None:
        write_json(self.path, self)


def measure(setting: tuple[str, str, int, str, int], variant: str, device: torch.device, *, warmup: int,
            blocks: int, steps: int) -> dict[str, Any]:
    """Images/s of ``Trainer.train_step`` for one setting and variant (a fresh, seeded model)."""
    from coldlib.diffusion import ColdDiffusion
    from coldlib.experiments import preset
    from coldlib.training import TrainConfig, Trainer
    from coldlib.unet import UNet, unet_preset

    label, dataset, channels, model, batch = setting
    mixed_precision, channels_last, compile_ = VARIANTS[variant]
    if compile_:
        torch._dynamo.reset()  # a fresh compile per setting, static shapes (see part_throughput)
    torch.manual_seed(0)
    diffusion = ColdDiffusion(UNet(unet_preset(model, channels)), preset("blur", dataset))
    images = torch.randint(0, 256, (max(1024, 4 * batch), channels, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    # The training run's EMA settings in steady state (a lerp every step), so the table times what part 3 runs.
    config = TrainConfig(batch_size=batch, grad_accum=1, mixed_precision=mixed_precision, channels_last=channels_last,
                         compile=compile_, lr=4e-4, ema_start=0, ema_every=1, ema_decay=0.999, seed=0)
    trainer = Trainer(diffusion, images, config, device=device)
    sync(device)
    start = time.perf_counter()
    for _ in range(warmup):  # the first step compiles (torch.compile) and autotunes; excluded from the timing
        trainer.train_step()
    sync(device)
    warmup_s = time.perf_counter() - start
    times = []
    for _ in range(blocks):
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            loss = trainer.train_step()
        sync(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times) / steps
    del trainer, diffusion
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"setting": label, "dataset": dataset, "channels": channels, "model": model, "batch": batch,
            "variant": variant, "images_per_s": round(batch / seconds, 1), "ms_per_step": round(seconds * 1e3, 3),
            "warmup_steps": warmup, "warmup_seconds": round(warmup_s, 2), "timed_steps": f"{blocks} x {steps}",
            "last_loss": round(float(loss), 5), "status": "ok"}


def part_throughput(args: argparse.Namespace, sink: Sink) -> None:
    """Part 2: the throughput table; the eager variants of every setting first, then the compiled ones.

    The soft time box (``--bench-seconds``) skips what would not fit: a compiled variant needs
    ``--compile-reserve`` seconds left (its first step compiles), an eager one 5 s.
    """
    device = torch.device("cpu" if args.dry_run else "cuda")
    # torch.compile: every setting is compiled afresh with static shapes. Left on, "automatic dynamic shapes"
    # would recompile the second setting's new shapes as dynamic ones (slower kernels, slower compile).
    torch._dynamo.config.automatic_dynamic_shapes = False
    warmup, blocks, steps = (1, 2, 1) if args.dry_run else (5, 3, 20)
    variants = list(VARIANTS)
    notes = []
    if args.dry_run and not args.compile_on_cpu:
        variants.remove("bf16 + channels_last + compile")
        notes.append("dry run: torch.compile skipped (pass --compile-on-cpu to include it; it needs a C++ compiler)")
    if args.dry_run:
        notes.append("dry run on the CPU (one torch thread): tiny UNet, batch 4, few steps; bf16 is emulated on CPUs without native "
                     "bf16 (slow), and channels_last applies to the inputs only (the Trainer converts the weights on "
                     "CUDA only). These numbers say nothing about a GPU.")
    rows = [{"setting": s[0], "dataset": s[1], "channels": s[2], "model": s[3], "batch": s[4], "variant": v,
             "status": "not run"} for s in settings(args.dry_run) for v in variants]
    timed = f"median of {blocks} blocks of {steps} steps" + (
        ", torch.cuda.synchronize() before and after each block" if device.type == "cuda" else "")
    sink.update(status="running", device=str(device), warmup_steps=warmup, timed=timed, rows=rows, notes=notes)
    sink.save()
    deadline = time.time() + args.bench_seconds
    order = sorted(range(len(rows)), key=lambda i: VARIANTS[rows[i]["variant"]][2])  # eager first, then compiled
    for i in order:
        row = rows[i]
        need = args.compile_reserve if VARIANTS[row["variant"]][2] else 5
        if time.time() + need > deadline:
            row["status"] = f"skipped: under {need:.0f} s left in the {args.bench_seconds:.0f} s time box"
            log(f"throughput: {row['setting']} {row['model']} {row['variant']}: {row['status']}")
            continue
        setting = (row["setting"], row["dataset"], row["channels"], row["model"], row["batch"])
        log(f"throughput: {row['setting']}, UNet {row['model']}, batch {row['batch']}, {row['variant']} ...")
        try:
            row.update(measure(setting, row["variant"], device, warmup=warmup, blocks=blocks, steps=steps))
            log(f"throughput:   {row['images_per_s']:.1f} img/s ({row['ms_per_step']:.2f} ms/step; warm-up "
                f"{row['warmup_seconds']:.1f} s)")
        except Exception as exc:  # e.g. torch.compile without a working toolchain: recorded, the table goes on
            row["status"] = f"failed: {error_text(exc)}"
            log(f"throughput:   {row['status'][:300]}")
        _ratios(rows)
        sink.save()
    sink["status"] = "ok" if all(r["status"] == "ok" for r in rows) else (
        "partial" if any(r["status"] == "ok" for r in rows) else "failed")
    sink.save()


def _ratios(rows: list[dict]) -> None:
    for row in rows:
        base = next((r for r in rows if r["variant"] == "fp32 eager" and r["status"] == "ok"
                     and (r["setting"], r["model"], r["batch"]) == (row["setting"], row["model"], row["batch"])), None)
        if row["status"] == "ok" and base:
            row["vs_fp32_eager"] = round(row["images_per_s"] / base["images_per_s"], 3)


def fastest_variant(throughput: dict, dry_run: bool) -> tuple[str, str]:
    """The variant with the most images/s in the MNIST-size row of part 2, and why it was chosen."""
    rows = [r for r in throughput.get("rows", []) if r.get("dataset") == "mnist" and r.get("status") == "ok"]
    if rows:
        best = max(rows, key=lambda r: r["images_per_s"])
        return best["variant"], f"fastest MNIST-size variant of part 2 ({best['images_per_s']:.1f} img/s)"
    fallback = "fp32 eager" if dry_run else "bf16 + channels_last"
    return fallback, "part 2 measured no MNIST-size variant: a safe default"


# ------------------------------------------------------------------------------------------ part 3 (child process)
def shipped_recipe_args():
    """The shipped ``mnist_blur`` checkpoint's training arguments, parsed by the training CLI's own parser."""
    from coldlib.experiments import shipped_recipe
    from coldlib.training.cli import build_parser

    return build_parser().parse_args([*shipped_recipe("mnist_blur"), "--out", "unused"])


def part_train(args: argparse.Namespace, sink: Sink) -> None:
    """Part 3: train the MNIST deblurring restorer for a wall budget, evaluate it with every sampler, export it."""
    from coldlib.checkpoints import load_model
    from coldlib.data import load_images
    from coldlib.diffusion import ColdDiffusion
    from coldlib.evaluation import EVAL_Z_SEED, evaluate_restoration
    from coldlib.experiments import paper_table, preset
    from coldlib.training import TrainConfig, Trainer
    from coldlib.unet import UNet, unet_preset

    device = torch.device("cpu" if args.dry_run else "cuda")
    torch._dynamo.config.automatic_dynamic_shapes = False
    recipe = shipped_recipe_args()
    mixed_precision, channels_last, compile_ = VARIANTS[args.train_variant]
    batch = args.train_batch or recipe.batch_size * recipe.grad_accum
    sink.update(status="running", device=str(device), variant=args.train_variant, variant_reason=args.variant_reason,
                task="blur", dataset="mnist", model=args.model, batch_size=batch, grad_accum=args.train_accum,
                images_per_step=batch * args.train_accum, lr=recipe.lr, ema_start=recipe.ema_start,
                ema_every=recipe.ema_every, ema_decay=recipe.ema_decay, seed=0,
                recipe="the shipped mnist_blur recipe (coldlib.experiments.shipped_recipe('mnist_blur')): lr and EMA; "
                       f"its batch {recipe.batch_size} x {recipe.grad_accum} taken as {batch} x {args.train_accum}",
                budget_seconds=args.train_seconds)
    if args.budget_note:
        sink["budget_note"] = args.budget_note
    sink.save()
    D = preset("blur", "mnist")
    train_set = load_images("mnist", "train", limit=args.train_limit)
    held_out = load_images("mnist", "test", limit=args.eval_images)
    sink.update(data=train_set.source, train_images=len(train_set), held_out=f"{len(held_out)} images: "
                f"{held_out.source}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UNet(unet_preset(args.model, 1))
    config = TrainConfig(steps=1, batch_size=batch, grad_accum=args.train_accum, lr=recipe.lr,
                         ema_start=recipe.ema_start, ema_every=recipe.ema_every, ema_decay=recipe.ema_decay, seed=0,
                         mixed_precision=mixed_precision, channels_last=channels_last, compile=compile_)
    trainer = Trainer(ColdDiffusion(net.to(device), D), train_set.images, config, device=device,
                      data_note=train_set.source)
    log(f"training: UNet {args.model} ({net.num_parameters():,} parameters), batch {batch} x {args.train_accum}, "
        f"{args.train_variant}, {args.train_seconds:.0f} s budget on {device}")
    start = time.perf_counter()
    deadline, next_report = start + args.train_seconds, start + 15
    first_step = None
    while True:
        loss = trainer.train_step()
        trainer.losses.append(loss)
        now = time.perf_counter()
        if first_step is None:
            first_step = now - start  # includes torch.compile's compilation (or its cache load)
        if now >= deadline:
            break
        if now >= next_report:
            next_report = now + 15
            log(f"training: step {trainer.step:,}, loss {loss:.4f}, {trainer.step / (now - start):.1f} steps/s")
            sink.update(steps=trainer.step, train_seconds=round(now - start, 1))
            sink.save()
    seconds = time.perf_counter() - start
    trainer.train_seconds = seconds
    trainer.config.steps = trainer.step  # the export records the steps taken, not the open-ended target
    last = trainer.losses[-20:]
    sink.update(steps=trainer.step, train_seconds=round(seconds, 1), first_step_seconds=round(first_step, 2),
                images_seen=trainer.step * batch * args.train_accum,
                images_per_s=round(trainer.step * batch * args.train_accum / seconds, 1),
                images_per_s_after_first_step=round((trainer.step - 1) * batch * args.train_accum
                                                    / max(1e-9, seconds - first_step), 1),
                epochs=round(trainer.step * batch * args.train_accum / len(train_set), 2),
                final_loss_mean_last_20=round(sum(last) / len(last), 5), first_loss=round(trainer.losses[0], 5))
    sink.save()
    log(f"training: {trainer.step:,} steps in {seconds:.1f} s ({sink['images_seen']:,} images); mean L1 of the last "
        f"{len(last)} steps {sink['final_loss_mean_last_20']:.4f}; evaluating on {len(held_out)} held-out digits ...")
    start = time.perf_counter()
    metrics = evaluate_restoration(ColdDiffusion(trainer.ema.eval(), D), held_out.float().to(device),
                                   generator=torch.Generator().manual_seed(EVAL_Z_SEED))
    sink.update(metrics=metrics, eval_seconds=round(time.perf_counter() - start, 1), paper=paper_table("blur", "mnist"))
    for row, values in metrics.items():
        log(f"metrics: {row:<12} " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    path = trainer.export(Path(args.out) / CHECKPOINT_STEM, metrics=metrics, hardware=hardware)
    loaded = load_model(path)  # the export must load back (and verify its SHA-256)
    sink.update(checkpoint=str(path), checkpoint_json=str(path.with_suffix(".json")),
                checkpoint_loads=loaded.config["steps"] == trainer.step, status="ok")
    sink.save()
    log(f"training: exported {path} (loads back with coldlib.checkpoints.load_model)")


# ------------------------------------------------------------------------------------------ the whole check
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1])
    p.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "runs" / "gpu_check"),
                   help="output folder (default: $OUT, else runs/gpu_check)")
    p.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU, in well under a minute")
    p.add_argument("--compile-on-cpu", action="store_true", help="dry run: time torch.compile too")
    p.add_argument("--skip", nargs="+", default=[], choices=["tests", "throughput", "train"], help="parts to leave out")
    p.add_argument("--total-seconds", type=float, default=None,
                   help="the wall time to stay near; the training budget shrinks to fit (default: 480; dry run 60)")
    p.add_argument("--tests-timeout", type=float, default=None, help="part 1 time box (default: 210 s; dry run 120)")
    p.add_argument("--bench-seconds", type=float, default=None,
                   help="part 2 soft time box (default: 150 s; dry run 60); killed 120 s after it")
    p.add_argument("--compile-reserve", type=float, default=50.0,
                   help="part 2: seconds a compiled variant needs left in its box to be started (default 50)")
    p.add_argument("--train-seconds", type=float, default=None, help="part 3 training budget (default: 240 s; dry 10)")
    p.add_argument("--model", default=None, help="part 3 UNet preset (default: small; dry run tiny)")
    p.add_argument("--train-batch", type=int, default=None,
                   help="part 3 micro-batch (default: the shipped recipe's images per step, 32 x 2 = 64; dry run 8)")
    p.add_argument("--train-accum", type=int, default=1, help="part 3 gradient accumulation (default 1)")
    p.add_argument("--train-limit", type=int, default=None, help="part 3: first N training images (dry run 256)")
    p.add_argument("--eval-images", type=int, default=None, help="held-out digits to score (default 2000; dry 16)")
    # Internal: how the parent starts a part in a child process.
    p.add_argument("--part", choices=["throughput", "train"], help=argparse.SUPPRESS)
    p.add_argument("--part-file", help=argparse.SUPPRESS)
    p.add_argument("--train-variant", default="fp32 eager", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--variant-reason", default="", help=argparse.SUPPRESS)
    p.add_argument("--budget-note", default="", help=argparse.SUPPRESS)
    return p


def resolve_defaults(args: argparse.Namespace) -> None:
    dry = args.dry_run
    pick = lambda value, gpu, cpu: value if value is not None else (cpu if dry else gpu)  # noqa: E731
    args.total_seconds = pick(args.total_seconds, 480.0, 60.0)
    args.tests_timeout = pick(args.tests_timeout, 210.0, 120.0)
    args.bench_seconds = pick(args.bench_seconds, 150.0, 60.0)
    args.train_seconds = pick(args.train_seconds, 240.0, 10.0)
    args.model = pick(args.model, "small", "tiny")
    args.train_batch = pick(args.train_batch, None, 8)
    args.train_limit = pick(args.train_limit, None, 256)
    args.eval_images = pick(args.eval_images, 2000, 16)
    args.out = str(Path(args.out).expanduser().resolve())
    # What a child needs to see the same settings (the parent's resolved values).
    args.forwarded = ["--out", args.out, "--bench-seconds", str(args.bench_seconds), "--compile-reserve",
                      str(args.compile_reserve), "--model", args.model, "--train-accum", str(args.train_accum),
                      "--eval-images", str(args.eval_images)]
    args.forwarded += ["--dry-run"] * dry + ["--compile-on-cpu"] * args.compile_on_cpu
    args.forwarded += ["--train-batch", str(args.train_batch)] if args.train_batch else []
    args.forwarded += ["--train-limit", str(args.train_limit)] if args.train_limit else []


def use_offline_mnist_folder() -> None:
    """Point coldlib at data/mnist_offline when nothing else was chosen and it holds MNIST (the GPU machine's copy)."""
    folder = REPO / "data" / "mnist_offline"
    if not os.environ.get("COLDLIB_DATA_DIR") and (folder / "MNIST" / "raw").is_dir():
        os.environ["COLDLIB_DATA_DIR"] = str(folder)
        os.environ.setdefault("COLDLIB_OFFLINE", "1")


def run_child_part(args: argparse.Namespace) -> int:
    sink = Sink(Path(args.part_file))
    if args.dry_run:  # as tests/conftest.py: one thread avoids OpenMP spin-waits on a busy 2-core machine
        torch.set_num_threads(1)
    try:
        (part_throughput if args.part == "throughput" else part_train)(args, sink)
        return 0
    except Exception as exc:
        sink["status"] = f"failed: {error_text(exc)}"
        sink["traceback"] = traceback.format_exc()[-4000:]
        sink.save()
        log(f"{args.part}: {sink['status'][:500]}")
        traceback.print_exc()
        return 1


def main() -> int:
    args = build_parser().parse_args()
    resolve_defaults(args)
    use_offline_mnist_folder()
    if args.part:
        code = run_child_part(args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the results are saved: skip the interpreter's slow teardown of torch
    if not args.dry_run and not torch.cuda.is_available():
        print("bench/gpu_check.py: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, "
              "or pass --dry-run to try the same code paths on the CPU.", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(out / "gpu_check.log")
    device = torch.device("cpu" if args.dry_run else "cuda")
    report: dict[str, Any] = {
        "script": "bench/gpu_check.py", "argv": sys.argv[1:], "dry_run": args.dry_run,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(T0)), "environment": environment(device),
        "tests": {"status": "not run"}, "throughput": {"status": "not run"}, "training": {"status": "not run"},
    }
    env = report["environment"]
    runner.log(f"gpu_check{' (dry run on the CPU)' if args.dry_run else ''}: {env['device_name']}, "
               f"{env['gpus']} GPU(s), torch {env['torch']}, data {env.get('data_dir')}; output {out}")
    json_path = out / "gpu_check.json"

    def save() -> None:
        report["wall_seconds"] = round(time.time() - T0, 1)
        write_json(json_path, report)

    save()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        scratch = Path(tmp)
        if "tests" in args.skip:
            report["tests"] = {"status": "skipped (--skip tests)"}
        else:
            try:
                report["tests"] = part_tests(args, runner, scratch)
            except Exception as exc:
                report["tests"] = {"status": f"failed: {error_text(exc)}"}
        save()

        if "throughput" in args.skip:
            report["throughput"] = {"status": "skipped (--skip throughput)"}
        else:
            runner.log(f"part 2, throughput (soft time box {args.bench_seconds:.0f} s)")
            report["throughput"] = part_in_child("throughput", args, runner, scratch, args.bench_seconds + 120)
            if report["throughput"].get("rows"):
                _ratios(report["throughput"]["rows"])
                table = format_table(report["throughput"]["rows"])
                report["throughput"]["table"] = table.splitlines()
                runner.log("throughput table (Trainer.train_step, images/s; ratios against fp32 eager, same run):\n"
                           + table)
            runner.log(f"part 2 done: {report['throughput']['status']}")
        save()

        if "train" in args.skip:
            report["training"] = {"status": "skipped (--skip train)"}
        else:
            variant, why = fastest_variant(report["throughput"], args.dry_run)
            budget, note = args.train_seconds, ""
            reserve = 15.0 if args.dry_run else 45.0  # start-up, data, evaluation, export (compiling is in the budget)
            left = args.total_seconds - (time.time() - T0) - reserve
            if max(min(budget, 30.0), left) < budget:
                budget = max(min(budget, 30.0), left)
                note = (f"shrunk from {args.train_seconds:.0f} s to {budget:.0f} s to stay near --total-seconds "
                        f"{args.total_seconds:.0f}")
            runner.log(f"part 3, training: {variant} ({why}); budget {budget:.0f} s{'; ' + note if note else ''}")
            report["training"] = part_in_child(
                "train", args, runner, scratch, budget + (120 if args.dry_run else 300),
                ["--train-variant", variant, "--variant-reason", why, "--train-seconds", str(budget),
                 "--budget-note", note])
            runner.log(f"part 3 done: {report['training']['status']}")
        save()

    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["summary"] = {part: report[part]["status"] for part in ("tests", "throughput", "training")}
    save()
    runner.log(f"gpu_check finished in {report['wall_seconds']:.0f} s: {report['summary']}; wrote {json_path}")
    ok = all(str(s).startswith(("ok", "passed", "skipped")) for s in report["summary"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

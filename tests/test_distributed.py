"""Data-parallel training: `torchrun --nproc_per_node=2 -m coldlib.training` on two CPU processes (gloo).

Two processes with batch B take the same steps as one process with batch 2B (same images, flips, steps t and
hole positions z; up to the order of float sums), only rank 0 prints and writes files, the EMA (and the
weights) are bit-identical on both ranks, and a run killed with SIGKILL resumes under torchrun to exactly the
weights of an uninterrupted one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from coldlib.checkpoints import load_model
from coldlib.degradations import map_z

from coldlib.training.state import load_training_state

REPO = Path(__file__).resolve().parents[1]
STEPS = 10

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this PyTorch build has no torch.distributed gloo backend")

# Launched by torchrun (or python, for the one-process runs) in place of `-m coldlib.training`: records every file
# each rank writes, the micro-batches (x, t, z) each rank trains on, the gradients of the first step and, when
# training is done, each rank's weights and EMA, then runs the CLI unchanged. With COLDLIB_SPY_HALF=1 every
# micro-batch is cut to its first half: the data of a wrong split, where every rank trains on rank 0's slice.
SPY = '''
import os, pathlib, runpy, sys
import torch
import coldlib.checkpoints as checkpoints
import coldlib.training as training
from coldlib.degradations import map_z

spy, rank = pathlib.Path(os.environ["COLDLIB_SPY"]), os.environ.get("RANK", "0")
seen = {"batches": [], "grads": None}

def note(path):
    with open(spy / f"writes.{rank}", "a") as f:
        f.write(f"{pathlib.Path(path).name}\\n")

atomic_write, write_text = checkpoints._atomic_write, pathlib.Path.write_text
Trainer = training.Trainer
train, train_step, next_micro_batch = Trainer.train, Trainer.train_step, Trainer.next_micro_batch

def spy_atomic_write(path, payload):
    note(path)
    return atomic_write(path, payload)

def spy_write_text(self, *args, **kwargs):
    note(self)
    return write_text(self, *args, **kwargs)

def spy_next_micro_batch(self):
    x, t, z = next_micro_batch(self)
    if os.environ.get("COLDLIB_SPY_HALF"):
        half = slice(0, x.shape[0] // 2)
        x, t, z = x[half], t[half], map_z(z, lambda f: f[half])
    seen["batches"].append((x.clone(), t.clone(), map_z(z, lambda f: f.clone())))
    return x, t, z

def spy_train_step(self):
    loss = train_step(self)
    if self.step == 1:  # the gradient of the first step (all-reduced under DDP), taken at the same initial weights
        seen["grads"] = {k: p.grad.clone() for k, p in self.model.named_parameters() if p.grad is not None}
    return loss

def spy_train(self, *args, **kwargs):
    losses = train(self, *args, **kwargs)
    weights = {"model": {k: v.clone() for k, v in self.model.state_dict().items()},
               "ema": {k: v.clone() for k, v in self.ema.state_dict().items()}}
    torch.save(weights, spy / f"weights.{rank}.pt")
    torch.save(seen, spy / f"seen.{rank}.pt")
    return losses

checkpoints._atomic_write, pathlib.Path.write_text = spy_atomic_write, spy_write_text
Trainer.train, Trainer.train_step, Trainer.next_micro_batch = spy_train, spy_train_step, spy_next_micro_batch
sys.argv = ["coldlib.training", *sys.argv[1:]]
runpy.run_module("coldlib.training", run_name="__main__", alter_sys=True)
'''


def _args(folder: Path, out: str, batch_size: int, export: str | None = None, steps: int = STEPS) -> list[str]:
    # Random holes (a z per image to split between ranks) and random flips: every kind of draw is sliced.
    # float32 throughout (--mixed-precision no): "auto" means bf16 autocast on CPUs with AVX512-BF16 or AMX, whose
    # 8-bit mantissas turn the order of float sums into a relative gap of 8e-3 between the two runs' gradients.
    args = ["--task", "inpaint", "--flip", "--dataset", f"folder:{folder / 'imgs'}", "--image-size", "16", "--model", "tiny",
            "--steps", str(steps), "--batch-size", str(batch_size), "--grad-accum", "2", "--checkpoint-every", "2",
            "--ema-start", "2", "--ema-every", "1", "--ema-decay", "0.9", "--eval-images", "0", "--no-progress",
            "--preset-dataset", "mnist", "--device", "cpu", "--mixed-precision", "no", "--out", str(folder / out)]
    return args + (["--export", str(folder / export)] if export else [])


def _torchrun(*extra: str) -> list[str]:
    # --standalone: a rendezvous on localhost at a free port, so parallel test runs do not collide.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *extra]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLDLIB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, cwd=cwd, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def _flat(state: dict) -> torch.Tensor:
    return torch.cat([v.detach().flatten().double() for v in state.values()])


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """A 2-process torchrun (batch 2 per rank), watched by the spy: the reference for both tests."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("ddp")
    (folder / "imgs").mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(20):
        arr = (torch.rand(16, 16, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / "imgs" / f"{i:02d}.png")
    (folder / "spy.py").write_text(SPY)
    (folder / "spy").mkdir()
    start = time.perf_counter()
    _run(_torchrun("--log-dir", str(folder / "logs"), "--redirects", "3", str(folder / "spy.py"),
                   *_args(folder, "ddp", 2, "ddp_model")), folder, COLDLIB_SPY=str(folder / "spy"))
    print(f"2-process torchrun: {time.perf_counter() - start:.1f} s")
    return folder


def _rank_log(folder: Path, rank: int, stream: str) -> str:
    logs = list((folder / "logs").glob(f"**/attempt_0/{rank}/{stream}.log"))
    assert len(logs) == 1, logs
    return logs[0].read_text()


def _rel_gap(a: dict, b: dict) -> float:
    """||a - b|| / ||b|| over all the gradients of a model (parameters named alike)."""
    assert a.keys() == b.keys()
    return float((_flat(a) - _flat(b)).norm() / _flat(b).norm())


def _same_z(a: object, b: object) -> bool:
    """Whether two z's (None, a tensor or a NamedTuple of tensors) are bit for bit the same."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return type(a) is type(b) and all(torch.equal(f, g) for f, g in zip(a, b))


# The bound on the relative L2 gap between the first step's gradients of 2 processes and of 1 (see the test).
GRAD_BOUND = 1e-4


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_global_batch(two_process_run):
    folder = two_process_run
    # The one-process runs use the caller's thread count (each rank runs one thread), so `OMP_NUM_THREADS=2 pytest`
    # also compares float sums split over different thread counts.
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    for run in ("single", "half"):
        (folder / f"spy_{run}").mkdir(exist_ok=True)
    start = time.perf_counter()
    _run([sys.executable, str(folder / "spy.py"), *_args(folder, "single", 4, "single_model")], folder,
         COLDLIB_SPY=str(folder / "spy_single"), OMP_NUM_THREADS=threads)
    print(f"1-process run: {time.perf_counter() - start:.1f} s")
    # The negative control: one step of a wrong split, where both ranks would train on rank 0's half of the global
    # batch (the all-reduced gradient is then the half's own).
    _run([sys.executable, str(folder / "spy.py"), *_args(folder, "half", 4, steps=1)], folder,
         COLDLIB_SPY=str(folder / "spy_half"), COLDLIB_SPY_HALF="1", OMP_NUM_THREADS=threads)

    one, two = load_model(folder / "single_model"), load_model(folder / "ddp_model")
    assert one.config["steps"] == two.config["steps"] == STEPS
    assert two.config["train"]["world_size"] == 2 and two.config["train"]["batch_size"] == 2
    assert one.config["train"]["mixed_precision"] == two.config["train"]["mixed_precision"] == "no"

    # 1. The split itself, exactly: at every step, each micro-batch (images, flips, steps t, holes z) of rank 0
    # followed by rank 1's is bit for bit the one-process micro-batch (integer draws from the same generator).
    single, half = (torch.load(folder / f"spy_{run}" / "seen.0.pt", weights_only=False) for run in ("single", "half"))
    seen0, seen1 = (torch.load(folder / "spy" / f"seen.{r}.pt", weights_only=False) for r in (0, 1))
    assert len(single["batches"]) == len(seen0["batches"]) == len(seen1["batches"]) == 2 * STEPS  # grad-accum 2
    for (x, t, z), (x0, t0, z0), (x1, t1, z1) in zip(single["batches"], seen0["batches"], seen1["batches"]):
        assert x0.shape[0] == x1.shape[0] == 2
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([t0, t1]), t)
        assert _same_z(z0, map_z(z, lambda f: f[:2])) and _same_z(z1, map_z(z, lambda f: f[2:]))
    assert len(half["batches"]) == 2
    for (xh, th, zh), (x, t, z) in zip(half["batches"], single["batches"]):  # the control is rank 0's half
        assert torch.equal(xh, x[:2]) and torch.equal(th, t[:2]) and _same_z(zh, map_z(z, lambda f: f[:2]))

    # 2. The first step's gradient (two micro-batches: DDP's no_sync accumulation, then its all-reduced mean),
    # from the same initial weights and the same data, so it differs from one process's only by the order of float
    # sums (vector width, thread count, batch shape). It is compared before Adam, which would turn that rounding
    # noise into lr-sized steps wherever a gradient is near 0, and in float32 (the bf16 autocast that "auto" picks
    # on CPUs with AVX512-BF16 or AMX keeps 8 bits of mantissa: 8e-3 measured), so the gap is a few float32 ulps
    # (eps 1.2e-7) on any CPU. A wrong split changes which images the gradient averages over: a gap of order 1.
    # Measured on an AVX-512 (AMX) Xeon, the reference on 1 and on 2 threads: correct split 8e-7; bound 1e-4, over
    # 100x above it (~800 ulps); wrong split 0.49, over 1000x above the bound (asserted: at least 100x).
    correct, wrong = _rel_gap(seen0["grads"], single["grads"]), _rel_gap(half["grads"], single["grads"])
    print(f"first step, relative gradient gap: {correct:.3g} (2 processes), {wrong:.3g} (wrong split)")
    assert torch.equal(_flat(seen0["grads"]), _flat(seen1["grads"]))  # all-reduced: the same on both ranks
    assert correct < GRAD_BOUND, f"the first step's gradients differ by {correct:.3g} (relative L2)"
    assert wrong > 100 * GRAD_BOUND, f"the wrong split is only {wrong:.3g} away: the test could not tell it apart"

    # 3. Coarse guards on what follows the gradients (Adam, the EMA, the losses of all 10 steps), after Adam has
    # amplified the rounding noise. The EMA weights: measured 2.1e-9 on average (fp32, 1 or 2 threads; it was 2e-5
    # in bf16), a wrong split 2.5e-4 (about lr = 2e-4): the bound lr/20 leaves over 1000x for the noise to grow on
    # another CPU and still sees a wrong split, a wrong lr or a missed EMA update. No bound on the largest gap: a
    # few weights with a gradient near 0 may legitimately move by a few lr.
    gap = (_flat(one.model.state_dict()) - _flat(two.model.state_dict())).abs()
    print(f"EMA weights gap: {gap.mean():.3g} mean, {gap.max():.3g} at most")
    assert float(gap.mean()) < 1e-5, f"EMA weights differ: {gap.mean():.3g} mean, {gap.max():.3g} at most"
    (_, meta1), (_, meta2) = (load_training_state(folder / run / "state.safetensors") for run in ("single", "ddp"))
    assert meta2["step"] == STEPS and meta2["world_size"] == 2 and "world_size" not in meta1
    # All-reduced means of the global batch: losses are means over 3,072 values in float32, measured 1.1e-7 apart
    # at most; the wrong split's first loss is 4.6e-3 away.
    assert meta2["losses"] == pytest.approx(meta1["losses"], rel=1e-5)

    # The EMA and the weights are bit-identical on both ranks.
    rank0, rank1 = (torch.load(folder / "spy" / f"weights.{r}.pt") for r in (0, 1))
    for part in ("model", "ema"):
        assert torch.equal(_flat(rank0[part]), _flat(rank1[part])), part
    assert not torch.equal(_flat(rank0["model"]), _flat(rank0["ema"]))  # the EMA really averaged

    # Only rank 0 wrote files (5 checkpoints, the report, the exported weights and sidecar) and printed.
    writes = (folder / "spy" / "writes.0").read_text().split()
    assert writes.count("state.safetensors") == STEPS // 2, writes
    assert {"report.json", "ddp_model.safetensors", "ddp_model.json"} <= set(writes), writes
    assert not (folder / "spy" / "writes.1").exists()
    out0, out1 = _rank_log(folder, 0, "stdout"), _rank_log(folder, 1, "stdout")
    assert "new run" in out0 and "2 processes (gloo, global batch 4)" in out0 and f'"steps": {STEPS}' in out0, out0
    assert out1 == "", out1
    assert sorted(p.name for p in (folder / "ddp").iterdir()) == ["report.json", "state.safetensors"]


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (torchrun starts its workers in sessions of their own, so killpg misses them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finding torchrun's workers needs Linux /proc")
@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_weights(two_process_run):
    folder = two_process_run
    cmd = _torchrun("-m", "coldlib.training", *_args(folder, "killed", 2))
    start = time.perf_counter()
    # Kill torchrun and both workers with SIGKILL once the first checkpoint exists (a lost machine).
    proc = subprocess.Popen(cmd, env=_env(), cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = folder / "killed" / "state.safetensors"
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    for pid in [*_descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    assert state.exists(), "the run should have written a checkpoint before being killed"

    rerun = _run(cmd + ["--export", str(folder / "killed_model")], folder)
    print(f"killed + resumed 2-process runs: {time.perf_counter() - start:.1f} s")
    resumed = re.search(r"resuming \S+ at step (\d+)", rerun.stdout)
    assert resumed and 0 < int(resumed[1]) < STEPS, rerun.stdout  # killed mid-way, not after the end
    assert len(re.findall(r"resuming \S+ at step", rerun.stdout)) == 1  # printed by rank 0 only

    straight, killed = load_model(folder / "ddp_model"), load_model(folder / "killed_model")
    assert straight.config["steps"] == killed.config["steps"] == STEPS
    assert torch.equal(_flat(straight.model.state_dict()), _flat(killed.model.state_dict()))
    (a, meta_a), (b, meta_b) = (load_training_state(folder / run / "state.safetensors") for run in ("ddp", "killed"))
    assert meta_a["losses"] == meta_b["losses"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # generator, Adam, EMA, ...


def test_z_is_split_between_ranks_row_by_row():
    from coldlib.degradations import GaussianMask, map_z
    from coldlib.experiments import preset

    def _slice_z(z, lo, hi):  # how Trainer.next_micro_batch keeps its rows of the global batch's z
        return map_z(z, lambda f: f[lo:hi])

    x = torch.zeros(6, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    snow = preset("snow", "cifar10").draw_z(x, g)  # a NamedTuple (field, vertical)
    part = _slice_z(snow, 2, 4)
    assert type(part) is type(snow) and torch.equal(part.field, snow.field[2:4])
    assert torch.equal(part.vertical, snow.vertical[2:4])
    holes = GaussianMask(10, kernel_std=0.1).draw_z(x, g)
    assert torch.equal(_slice_z(holes, 2, 4), holes[2:4]) and _slice_z(None, 2, 4) is None
    with pytest.raises(TypeError, match="NamedTuple"):
        _slice_z({"field": holes}, 2, 4)


def test_a_state_from_another_process_count_resumes_with_a_warning(tmp_path):
    from coldlib.training.state import save_training_state
    from tests.test_training import make_trainer

    first = make_trainer(tmp_path, steps=3)
    first.train(progress=False)
    tensors, meta = load_training_state(first.state_path)
    save_training_state(first.state_path, tensors, {**meta, "world_size": 2})  # as a 2-process run writes it
    second = make_trainer(tmp_path, steps=3)
    with pytest.warns(UserWarning, match="2 process.*global batch changes from 8 to 4"):
        assert second.resume() and second.step == 3

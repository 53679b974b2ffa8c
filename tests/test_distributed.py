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

from coldlib.training.state import load_training_state

REPO = Path(__file__).resolve().parents[1]
STEPS = 10

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this PyTorch build has no torch.distributed gloo backend")

# Launched by torchrun in place of `-m coldlib.training`: records every file each rank writes and, when training
# is done, each rank's weights and EMA, then runs the CLI unchanged.
SPY = '''
import os, pathlib, runpy, sys
import torch
import coldlib.checkpoints as checkpoints
import coldlib.training as training

spy, rank = pathlib.Path(os.environ["COLDLIB_SPY"]), os.environ["RANK"]

def note(path):
    with open(spy / f"writes.{rank}", "a") as f:
        f.write(f"{pathlib.Path(path).name}\\n")

atomic_write, write_text, train = checkpoints._atomic_write, pathlib.Path.write_text, training.Trainer.train

def spy_atomic_write(path, payload):
    note(path)
    return atomic_write(path, payload)

def spy_write_text(self, *args, **kwargs):
    note(self)
    return write_text(self, *args, **kwargs)

def spy_train(self, *args, **kwargs):
    losses = train(self, *args, **kwargs)
    weights = {"model": {k: v.clone() for k, v in self.model.state_dict().items()},
               "ema": {k: v.clone() for k, v in self.ema.state_dict().items()}}
    torch.save(weights, spy / f"weights.{rank}.pt")
    return losses

checkpoints._atomic_write, pathlib.Path.write_text, training.Trainer.train = spy_atomic_write, spy_write_text, spy_train
sys.argv = ["coldlib.training", *sys.argv[1:]]
runpy.run_module("coldlib.training", run_name="__main__", alter_sys=True)
'''


def _args(folder: Path, out: str, batch_size: int, export: str | None = None) -> list[str]:
    # Random holes (a z per image to split between ranks) and random flips: every kind of draw is sliced.
    args = ["--task", "inpaint", "--flip", "--dataset", f"folder:{folder / 'imgs'}", "--image-size", "16", "--model", "tiny",
            "--steps", str(STEPS), "--batch-size", str(batch_size), "--grad-accum", "2", "--checkpoint-every", "2",
            "--ema-start", "2", "--ema-every", "1", "--ema-decay", "0.9", "--eval-images", "0", "--no-progress",
            "--preset-dataset", "mnist", "--device", "cpu", "--out", str(folder / out)]
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


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_global_batch(two_process_run):
    folder = two_process_run
    start = time.perf_counter()
    _run([sys.executable, "-m", "coldlib.training", *_args(folder, "single", 4, "single_model")], folder)
    print(f"1-process run: {time.perf_counter() - start:.1f} s")

    one, two = load_model(folder / "single_model"), load_model(folder / "ddp_model")
    assert one.config["steps"] == two.config["steps"] == STEPS
    assert two.config["train"]["world_size"] == 2 and two.config["train"]["batch_size"] == 2
    # Float sums differ in order, and Adam turns the rounding noise of the few weights whose gradient is nearly 0
    # into visible steps: measured 2e-9 on average, 1e-5 at most. A wrong split of the global batch moves most
    # weights by about the learning rate instead (measured: 2e-4 on average).
    gap = (_flat(one.model.state_dict()) - _flat(two.model.state_dict())).abs()
    assert float(gap.mean()) < 1e-7 and float(gap.max()) < 1e-4, f"EMA weights differ: {gap.mean():.3g} mean, " \
        f"{gap.max():.3g} at most"
    (_, meta1), (_, meta2) = (load_training_state(folder / run / "state.safetensors") for run in ("single", "ddp"))
    assert meta2["step"] == STEPS and meta2["world_size"] == 2 and "world_size" not in meta1
    assert meta2["losses"] == pytest.approx(meta1["losses"], rel=1e-5)  # all-reduced means of the global batch

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

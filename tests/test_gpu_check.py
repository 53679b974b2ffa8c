"""bench/gpu_check.py --dry-run: the GPU check's code paths on the CPU, end to end, in a subprocess.

The dry run collects the CUDA tests (all skipped without a GPU), times fp32 and bf16 training steps of a tiny UNet,
trains the MNIST deblurring restorer for about 10 s, scores it on 16 held-out digits and exports it. Needs the
offline MNIST files (``$COLDLIB_DATA_DIR/MNIST/raw``, as CI provides).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coldlib.checkpoints import load_model

REPO = Path(__file__).resolve().parents[1]
_DATA = os.environ.get("COLDLIB_DATA_DIR", "")
_HAVE_MNIST = bool(_DATA) and any((Path(_DATA) / "MNIST" / "raw" / f"t10k-images-idx3-ubyte{ext}").is_file()
                                  for ext in ("", ".gz"))


@pytest.mark.slow
@pytest.mark.skipif(not _HAVE_MNIST, reason="set COLDLIB_DATA_DIR to a folder with MNIST/raw/t10k-* (the offline "
                                            "MNIST files) for the dry run's training part")
def test_dry_run_writes_every_section_and_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "gpu_check"
    env = {**os.environ, "COLDLIB_OFFLINE": "1", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OUT", None)
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-6000:]}\nstderr:\n{done.stderr[-4000:]}"
    report = json.loads((out / "gpu_check.json").read_text())
    for section in ("environment", "tests", "throughput", "training", "summary", "wall_seconds"):
        assert section in report, f"gpu_check.json lacks {section!r}: {sorted(report)}"
    assert report["dry_run"] is True and report["environment"]["device"] == "cpu"

    # 1. The CUDA tests were collected and every one skipped, with the reason.
    tests = report["tests"]
    assert tests["status"] == "skipped" and "CUDA" in tests["skipped_reason"], tests
    assert tests["counts"]["skipped"] == len(tests["cases"]) > 10 and tests["counts"]["passed"] == 0
    names = " ".join(case["test"] for case in tests["cases"])
    for name in ("test_preset_degradation_matches_cpu", "test_samplers_match_cpu",
                 "test_trainer_step_bf16_channels_last", "test_torchrun_training_cli", "test_nccl_all_reduce"):
        assert name in names, f"{name} was not collected: {names}"

    # 2. The table: fp32 eager and bf16 for each setting, compile skipped (and said so), ratios to fp32.
    throughput = report["throughput"]
    assert throughput["status"] == "ok", throughput
    rows = throughput["rows"]
    assert {r["variant"] for r in rows} == {"fp32 eager", "bf16 + channels_last"}
    assert any("torch.compile skipped" in n for n in throughput["notes"])
    for row in rows:
        assert row["status"] == "ok" and row["images_per_s"] > 0, row
        assert row["vs_fp32_eager"] > 0
        if row["variant"] == "fp32 eager":
            assert row["vs_fp32_eager"] == pytest.approx(1.0)
    assert len(throughput["table"]) == len(rows) + 1 and "img/s" in throughput["table"][0]
    assert "throughput table" in done.stdout

    # 3. Training: steps, wall time, images seen, metrics of every sampler, and the exported checkpoint.
    training = report["training"]
    assert training["status"] == "ok", training
    assert training["steps"] > 0 and training["images_seen"] == training["steps"] * training["images_per_step"]
    assert 5 <= training["train_seconds"] <= 60
    assert set(training["metrics"]) == {"Degraded", "Direct", "Algorithm 1", "Algorithm 2"}
    assert all(set(row) >= {"SSIM", "RMSE", "PSNR"} for row in training["metrics"].values())
    assert training["held_out"].startswith("16 images")
    loaded = load_model(out / "mnist_blur_gpu")
    assert loaded.config["steps"] == training["steps"] and loaded.config["metrics"] == training["metrics"]
    assert loaded.degradation.config()["type"] == "GaussianBlur"
    assert (out / "gpu_check.log").is_file()
    assert report["summary"] == {"tests": "skipped", "throughput": "ok", "training": "ok"}

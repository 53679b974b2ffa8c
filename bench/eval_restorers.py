"""The model card's restoration tables: every shipped restorer on all of its held-out images.

    python bench/eval_restorers.py [--names mnist_blur mnist_pixelate] [--limit N | --every K] [--json FILE] [--update-sidecars]

Each restorer is scored by :func:`coldlib.evaluation.evaluate_restoration`, the one evaluation loop the
lessons and the trainer use: the columns Degraded, Direct, Algorithm 1 and Algorithm 2 on the same images
with the same random ``z`` (one generator seeded with ``coldlib.evaluation.EVAL_Z_SEED`` = 1234, as the
trainer's final evaluation), SSIM in the authors' convention (``pytorch_msssim``), RMSE over all pixels in
[0, 1], PSNR, and for the MNIST models FD_MNIST-CNN (not Inception FID), each with a 95 % bootstrap interval
over the images (:mod:`coldlib.evaluation.intervals`; paired resamples for the Fréchet column), and the
real-vs-real Fréchet floor at the same number of images. The paper's numbers are printed beside ours where the
paper has them, with verdicts from :func:`coldlib.evaluation.verdicts`. Before scoring, every model is checked
with :func:`coldlib.data.check_held_out`: an image it was trained on is refused.

The held-out images are the whole test split by default; ``--every K`` keeps every K-th one (a fixed subset
spread over the split: MNIST's test split is ordered, its start cleaner than its end), for the slow models.

``--update-sidecars`` writes the result into each checkpoint's ``.json`` (``metrics`` and
``metrics_protocol``), which is what ``load_shipped`` prints in the lessons. The weights, and so their
SHA-256, are untouched.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from typing import Any

import torch

from coldlib.data import check_held_out, load_images
from coldlib.checkpoints import sidecar_json
from coldlib.env import data_dir
from coldlib.render import machine_description
from coldlib.evaluation import (EVAL_Z_SEED, SSIM_CONVENTION, evaluate_restoration, format_frechet_table,
                                format_table, frechet_floor, intervals_to_dict, mnist_cnn_features, verdicts)
from coldlib.evaluation.intervals import Interval
from coldlib.diffusion import METHODS
from coldlib.experiments import shipped_experiment
from coldlib.shipped import checkpoint_dir, load_shipped, read_registry

RESTORERS = ("mnist_blur", "mnist_pixelate", "mnist_inpaint", "photos_snow", "photos_decolor")


def evaluate(name: str, entry: dict[str, Any], limit: int | None, device: torch.device,
             every: int | None = None, methods: tuple[str, ...] = METHODS) -> tuple[dict, dict]:
    """(metrics, protocol) of the shipped restorer ``name`` on its dataset's held-out split.

    ``entry`` is ``name``'s row of the checkpoint registry (:func:`coldlib.shipped.read_registry`), read once by
    the caller; its ``"dataset"`` picks the held-out images and whether FD_MNIST-CNN is measured.
    """
    loaded = load_shipped(name, device=device)
    held_out = load_images(entry["dataset"], "test", image_size=shipped_experiment(name).image_size,
                           limit=limit)
    if every is not None:
        held_out = held_out.every(every)
    held_out_line = check_held_out(loaded, held_out, name=name)  # refuses an image the model was trained on
    frechet = "mnist-cnn" if entry["dataset"] == "mnist" else None  # FD_MNIST-CNN measures digits only
    start = time.perf_counter()
    metrics = evaluate_restoration(loaded.diffusion(), held_out.float().to(device), frechet=frechet,
                                   generator=torch.Generator().manual_seed(EVAL_Z_SEED), progress=True,
                                   intervals=True, methods=methods)
    seconds = time.perf_counter() - start
    floor = None
    if frechet:  # what two disjoint sets of real digits of this size are apart: the best reachable value
        real = load_images("mnist", "train")  # 60,000 real digits: two disjoint sets even at n = 10,000
        floor = frechet_floor(mnist_cnn_features(real.float(), device=device), len(held_out))
    protocol = {
        "images": len(held_out), "held_out": held_out.source, "held_out_check": held_out_line,
        "z_seed": EVAL_Z_SEED, "ssim": SSIM_CONVENTION,
        "rmse": "all pixels in [0, 1]; outputs clamped to [0, 1] before every metric",
        "frechet": "FD_MNIST-CNN (not Inception FID) against the same held-out images" if frechet else None,
        "intervals": "95% percentile bootstrap over the held-out images (coldlib.evaluation.intervals); "
                     "paired resamples for the Fréchet column",
        **({"frechet_floor": floor.to_dict()} if floor is not None else {}),
        "command": f"python bench/eval_restorers.py --names {name} --update-sidecars"
                   + (f" --every {every}" if every else "") + (f" --limit {limit}" if limit else "")
                   + (f" --methods {' '.join(methods)}" if methods != METHODS else ""),
        "seconds": round(seconds, 1),
        "hardware": f"{machine_description()}, {torch.get_num_threads()} torch thread(s)",
        "date": datetime.now(timezone.utc).date().isoformat(),
    }
    return metrics, protocol


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--names", nargs="+", default=list(RESTORERS), choices=RESTORERS)
    p.add_argument("--limit", type=int, help="only the first N held-out images (default: all)")
    p.add_argument("--every", type=int, help="only every K-th held-out image (a fixed subset over the whole split)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                   help="samplers to score (default: all; Algorithm 1 costs T network passes per image)")
    p.add_argument("--json", help="also write every result to this file")
    p.add_argument("--update-sidecars", action="store_true",
                   help="write the metrics into data/checkpoints/<name>.json (needs all held-out images)")
    args = p.parse_args()
    if args.update_sidecars and args.limit is not None:
        p.error("--update-sidecars records the card's numbers, which use the whole split or a fixed subset spread "
                "over it (--every K): drop --limit.")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    registry = read_registry()
    results = {}
    for name in args.names:
        entry, exp = registry[name], shipped_experiment(name)
        metrics, protocol = evaluate(name, entry, args.limit, device, args.every, tuple(args.methods))
        results[name] = {"metrics": metrics, "intervals": intervals_to_dict(metrics.intervals), "protocol": protocol}
        # the paper's rows only where we evaluate on the paper's dataset (not, e.g., photo crops for CIFAR-10)
        paper = exp.paper if exp.dataset == entry["dataset"] else None
        print(f"\n## {name}: {protocol['images']} held-out images, {protocol['seconds']:.0f} s on "
              f"{protocol['hardware']}\n")
        floor = Interval.from_dict(protocol["frechet_floor"]) if "frechet_floor" in protocol else None
        print(format_frechet_table(metrics, paper, floor=floor) if entry["dataset"] == "mnist"
              else format_table(metrics, paper))
        print("\n".join(f"- {line}" for line in verdicts(metrics.intervals, paper=paper)), flush=True)
        if args.update_sidecars:
            sidecar = checkpoint_dir() / f"{name}.json"
            config = json.loads(sidecar.read_text())
            config["metrics"], config["metrics_protocol"] = dict(metrics), protocol
            config["metrics_intervals"] = intervals_to_dict(metrics.intervals)
            # the data folder of this machine is no one else's: shipped files name it by its variable
            text = sidecar_json(config).replace(str(data_dir()), "$COLDLIB_DATA_DIR")
            sidecar.write_text(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

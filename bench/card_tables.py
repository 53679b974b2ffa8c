"""Print the model card's restorer tables from the shipped sidecars, so the card copies no number by hand.

    python bench/card_tables.py [--names mnist_blur mnist_pixelate mnist_inpaint]

For each restorer: every column's SSIM, RMSE, PSNR and FD_MNIST-CNN with its 95 % interval, as recorded in the
sidecar by ``bench/eval_restorers.py --update-sidecars``, the paper's numbers where it has them, and the
verdicts (:func:`coldlib.evaluation.verdicts`) between samplers and against the paper.
"""

from __future__ import annotations

import argparse

from coldlib.evaluation import intervals_from_dict, verdicts
from coldlib.experiments import shipped_experiment
from coldlib.shipped import load_shipped

METRICS = ("SSIM", "RMSE", "PSNR", "FD_MNIST-CNN")


def table(name: str) -> str:
    config = load_shipped(name).config
    record = intervals_from_dict(config["metrics_intervals"])
    protocol = config["metrics_protocol"]
    exp = shipped_experiment(name)
    paper = exp.paper if exp.dataset == config.get("training_data", {}).get("dataset") else None
    metrics = [m for m in METRICS if m in next(iter(record.values()))]
    head = "| Column | " + " | ".join(f"{m}{' ↓' if m in ('RMSE', 'FD_MNIST-CNN') else ''}" for m in metrics)
    head += " | SSIM (paper) | RMSE (paper) |" if paper else " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row, ivs in record.items():
        digits = {"PSNR": 2, "FD_MNIST-CNN": 1}
        cells = [ivs[m].format(digits.get(m, 3)) for m in metrics]
        if paper:
            cells += [str(paper.get(row, {}).get(k, "–")) for k in ("SSIM", "RMSE")]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    floor = protocol.get("frechet_floor")
    notes = [f"{protocol['images']:,} test images: {protocol['held_out']}",
             f"measured by `{protocol['command']}` in {protocol['seconds']:.0f} s on {protocol['hardware']}, "
             f"{protocol['date']}"]
    if floor:
        notes.append(f"real-vs-real FD_MNIST-CNN floor at this n: {floor['estimate']:.1f} "
                     f"[{floor['low']:.1f}, {floor['high']:.1f}]")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]
                     + [f"- {v}" for v in verdicts(record, metrics=("SSIM", "RMSE", "FD_MNIST-CNN"), paper=paper)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--names", nargs="+", default=["mnist_blur", "mnist_pixelate", "mnist_inpaint"])
    for name in p.parse_args().names:
        print(f"\n### {name}\n\n{table(name)}")


if __name__ == "__main__":
    main()

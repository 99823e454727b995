"""Print the docs/experiments.md table from the rows that tools/run_experiment.sh wrote.

    .venv/bin/python tools/experiments_table.py results/experiments/crop ...   (default: every results/experiments/*/row.json)

tools/run_experiment.sh keeps each run's row.json, config.json and metrics.csv in results/experiments/NAME.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def pretrain_seconds(run: Path) -> tuple[float, int]:
    """Training time from metrics.csv: steps / mean images-per-second of the train rows, and steps."""
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r["split"] == "train"]
    cfg = json.loads((run / "config.json").read_text())
    steps = int(float(rows[-1]["step"]))
    ips = [float(r["images_per_s"]) for r in rows if r["images_per_s"]]
    return steps * cfg["train"]["batch_size"] / (sum(ips) / len(ips)), steps


def row(run: Path) -> str:
    r = json.loads((run / "row.json").read_text())
    probe, ground, proto, mism = r["probe"]["results"], r["grounding"], r["prototypes"], r["cta_mismatch"]
    fmt = lambda enc: " / ".join(f"{probe[enc][k]['mean']:.3f}" for k in ("1", "10", "100"))  # noqa: E731
    seconds, steps = pretrain_seconds(run)
    pg, cnr = ground["pointing_game"], ground["cnr"]
    pur, nmi = proto["purity"], proto["nmi"]
    peaks = ground.get("peaks")  # rows measured before peak_cells existed lack it
    ring = f"{peaks['on_border']:.2f} ({peaks['on_border_if_on_mask']:.2f})" if peaks else "-"
    prior = ground.get("prior")  # the location prior: a map that ignores the film (absent in older rows)
    pg_prior, cnr_prior = (f"; prior {prior['pointing_game']['value']:.2f}", f"; prior {prior['cnr']['value']:.2f}") if prior else ("", "")
    return (f"| {r['name']} | `{r['overrides'] or '-'}` | {steps} | {seconds / 60:.1f} | {fmt('mgca')} | {fmt('random')} | "
            f"{fmt('pixels')} ({r['probe'].get('pixels_pool', '?')}) | {pg['value']:.2f} ({pg['chance']:.2f}{pg_prior}) | "
            f"{cnr['value']:.2f} ({cnr['chance']:.2f}{cnr_prior}) | {ring} | {pur['value']:.2f} ({pur['shuffled']:.2f}) | "
            f"{nmi['value']:.3f} ({nmi['shuffled']:.3f}) | {proto['usage']['used']} | "
            f"{mism['matched']:.3f} / {mism['mismatched']:.3f} |")


HEADER = ("| run | overrides | steps | pretrain min | MGCA 1 / 10 / 100 % | random init | raw pixels | "
          "pointing game (chance; location prior) | CNR (chance; location prior) | peaks on the grid's border (if on the mask) | purity (shuffled) | NMI (shuffled) | prototypes used | "
          "CTA matched / mismatched |\n|" + "---|" * 14)

if __name__ == "__main__":
    runs = [Path(p) for p in sys.argv[1:]] or sorted(p.parent for p in Path("results/experiments").glob("*/row.json"))
    print(HEADER)
    for run in runs:
        print(row(run))

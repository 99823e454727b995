"""`make demo` / `python -m mgca_lite demo`: the course's main job, end to end on the CPU.

1. a SynthCXR sample sheet (what the data looks like);
2. MGCA pretraining of the `synth_tiny` config (resumes, or skips when already finished);
3. linear probes on frozen features of the CheXpert-like task at 1 / 10 / 100 % labels for the
   MGCA encoder, the same architecture at random init (BatchNorm recalibrated), and raw pixels,
   averaged over seeds; a table, figures and `probe.json` (the `probe --json` shape, plus the
   config name and every probe row).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from mgca_lite.evaluation.compare import CompareConfig, compare_encoders
from mgca_lite.evaluation.probe import format_table
from mgca_lite.figures.curves import plot_probe_summary, plot_training_curves
from mgca_lite.figures.synth_sheet import save_sample_sheet
from mgca_lite.training.config import load_config
from mgca_lite.training.metrics import read_metrics
from mgca_lite.training.load_or_train import pretrain_or_resume

UNSEEN_SEED = 1234  # the probe's films come from another SynthCXR "hospital" than pretraining's (seed 0)


def demo_main(args) -> int:
    start = time.perf_counter()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    overrides = list(args.overrides or []) + ([f"train.max_steps={args.max_steps}"] if args.max_steps else [])
    cfg = load_config(args.config, overrides)

    save_sample_sheet(out / "synth_samples.png", n=8, image_size=128)
    print(f"[1/3] SynthCXR sample sheet -> {out / 'synth_samples.png'}")

    print(f"[2/3] MGCA pretraining ({cfg.name}) -> {out / 'pretrain'}")
    t = time.perf_counter()
    summary = pretrain_or_resume(cfg, out / "pretrain")  # a finished run is only read back
    train_s = time.perf_counter() - t
    metrics = read_metrics(out / "pretrain")
    plot_training_curves(metrics).savefig(out / "training_curves.png", dpi=120)
    last_val = [r for r in metrics if r["split"] == "val"][-1]
    print(f"      step {summary['step']}, {train_s:.0f} s; validation: loss {last_val['loss']:.3f} "
          f"(ITA {last_val['ita']:.3f}, CTA {last_val['cta']:.3f}, CPA {last_val['cpa']:.3f}), "
          f"retrieval top-1 {last_val['top1']:.2f} / top-5 {last_val['top5']:.2f} in batches of {cfg.train.batch_size}")

    print(f"[3/3] linear probes, CheXpert-like 5 findings rendered from the unseen SynthCXR seed "
          f"{UNSEEN_SEED}, {args.seeds} label subsets")
    t = time.perf_counter()
    result = compare_encoders(out / "pretrain" / "best.pt", CompareConfig(seeds=args.seeds, synth_seed=UNSEEN_SEED))
    probe_s = time.perf_counter() - t
    table = result.summary
    print(format_table(table, result.metric))
    plot_probe_summary(table, result.metric).savefig(out / "probe.png", dpi=120)
    report = {**result.to_json(), "config": cfg.name, "rows": result.rows}
    (out / "probe.json").write_text(json.dumps(report, indent=2))

    results = report["results"]
    for key in results["mgca"]:
        mgca, rand, pix = (results[enc][key]["mean"] for enc in ("mgca", "random", "pixels"))
        ahead = "ahead of both" if mgca > max(rand, pix) else ("behind raw pixels" if mgca > rand else "behind random init")
        print(f"{key:>4} % labels: MGCA {mgca:.3f} vs random init {rand:.3f}, raw pixels {pix:.3f} -> {ahead}")
    print(f"figures: {out / 'training_curves.png'}, {out / 'probe.png'}; "
          f"wall time {time.perf_counter() - start:.0f} s (pretrain {train_s:.0f} s, probes {probe_s:.0f} s)")
    return 0

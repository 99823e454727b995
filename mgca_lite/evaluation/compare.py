"""MGCA vs the same architecture at random init vs raw pixels, probed on one SynthCXR task.

Also `python -m mgca_lite probe CHECKPOINT`: the comparison for any checkpoint written by pretrain.
"""
from __future__ import annotations

from pathlib import Path

import torch

from mgca_lite.evaluation.features import raw_pixels, recalibrate_batchnorm
from mgca_lite.evaluation.probe import ProbeSuite, ProbeSuiteConfig, format_table, summarize
from mgca_lite.models.mgca import build_model
from mgca_lite.training.checkpoint import load_pretrained

MGCA, RANDOM, PIXELS = "MGCA", "random init (BN recal.)", "raw pixels 16x16"


def compare_encoders(checkpoint: str | Path, task: str = "chexpert5", fractions=(0.01, 0.1, 1.0),
                     seeds: int = 3, progress: bool = True) -> tuple[list[dict], dict]:
    """Probe rows and their summary (see `evaluation.probe`) for the three encoders."""
    model, tokenizer, cfg = load_pretrained(checkpoint)
    size = cfg.data.crop_size or cfg.data.image_size
    suite = ProbeSuite(ProbeSuiteConfig(task=task, fractions=tuple(fractions), image_size=size, seeds=seeds,
                                        synth_seed=cfg.data.seed, progress=progress))
    torch.manual_seed(cfg.train.seed + 1)  # a different draw from the pretrained model's init
    random_model, _ = build_model(cfg.model, tokenizer)
    random_encoder = recalibrate_batchnorm(random_model.image_encoder, suite.datasets["train"])
    encoders = {
        MGCA: lambda x: model.image_encoder(x).global_feat,
        RANDOM: lambda x: random_encoder(x).global_feat,
        PIXELS: raw_pixels,
    }
    rows = suite.run(encoders)
    return rows, summarize(rows)


def probe_main(args) -> int:
    fractions = [float(f) for f in args.fractions.split(",")]
    _, summary = compare_encoders(args.checkpoint, args.task, fractions, args.seeds)
    metric = "accuracy" if args.task == "covidx" else "macro AUROC"
    print(format_table(summary, metric))
    return 0

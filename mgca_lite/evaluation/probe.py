"""Linear-probe comparison on a SynthCXR task: several frozen encoders x label fractions x seeds.

    suite = ProbeSuite(ProbeSuiteConfig(task="chexpert5", image_size=64))
    rows = suite.run({"MGCA": mgca_encode, "random init": random_encode, "raw pixels": raw_pixels})
    print(format_table(summarize(rows)))

Each split is rendered (or, from a manifest, read) once and shared by all encoders; each encoder's
features are extracted once and every (fraction, seed) probe indexes into them. Seed s selects the
s-th fixed label subset (`downstream.label_subset`) and the probe's initialisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from mgca_lite.data.manifest import Manifest
from mgca_lite.data.tasks import get_task
from mgca_lite.evaluation.downstream import (UNSEEN_SEED, calibrate_if_random, eval_image_encoder, fraction_key,
                                             fraction_results, label_subset, render_task_splits)
from mgca_lite.evaluation.features import extract_features
from mgca_lite.evaluation.linear_probe import ProbeConfig, score, train_linear_probe


@dataclass
class ProbeSuiteConfig:
    task: str = "chexpert5"                    # a SynthCXR downstream task (tasks.TASKS)
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)  # training label fractions
    seeds: int = 3                             # label subsets / probe inits per fraction
    image_size: int = 64                       # render size; match the pretraining resolution
    synth_seed: int | None = 0                 # SynthCXR seed (unused when the suite reads a manifest)
    train_size: int | None = None              # None = the task's default split sizes
    val_size: int | None = None
    test_size: int | None = None
    progress: bool = True
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # optimiser/early stopping of each probe


class ProbeSuite:
    """Renders the task's train/val/test splits once; `run` probes any number of encoders.

    manifest: read the splits from this manifest (`downstream.open_task_manifest`) instead of
    rendering SynthCXR; the split sizes then cap each split at its first rows.
    """

    def __init__(self, cfg: ProbeSuiteConfig = ProbeSuiteConfig(), manifest: Manifest | None = None):
        self.cfg, self.spec = cfg, get_task(cfg.task)
        sizes = {k: v for k, v in (("train", cfg.train_size), ("val", cfg.val_size), ("test", cfg.test_size)) if v}
        self.datasets = render_task_splits(cfg.task, cfg.image_size, cfg.synth_seed, sizes or None, cfg.progress,
                                           manifest)

    def features(self, encode: Callable[[torch.Tensor], torch.Tensor]) -> dict:
        """{split: (features (N, C), targets)} for one encoder."""
        return {split: extract_features(encode, ds) for split, ds in self.datasets.items()}

    def run(self, encoders: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> list[dict]:
        """Rows {encoder, fraction, seed, n_train, score, val_score} for every encoder x fraction x seed.

        `score` is on the test split; `val_score` (the kept epoch's score on the validation split) is
        what any choice between encoders or settings must use, so that the test split stays unseen.
        """
        kind = "multiclass" if self.spec.kind == "multiclass" else "multilabel"
        outputs = len(self.spec.classes)
        rows = []
        for name, encode in encoders.items():
            feats = self.features(encode)
            (tx, ty), (vx, vy), (sx, sy) = feats["train"], feats["val"], feats["test"]
            for fraction in self.cfg.fractions:
                for seed in range(self.cfg.seeds if fraction < 1.0 else 1):  # 100 % has one subset
                    pos = label_subset(self.cfg.task, self.datasets["train"], fraction, seed)
                    layer = train_linear_probe(tx[pos], ty[pos], vx, vy, kind, outputs, replace(self.cfg.probe, seed=seed))
                    with torch.no_grad():
                        test, val = (score(kind, y.numpy(), layer(x).numpy()) for x, y in ((sx, sy), (vx, vy)))
                    rows.append({"encoder": name, "fraction": fraction, "seed": seed,
                                 "n_train": len(pos), "score": test, "val_score": val})
        return rows


def summarize(rows: list[dict]) -> dict:
    """{encoder: {fraction: (mean, std, n_seeds)}} over seeds."""
    out: dict = {}
    for row in rows:
        out.setdefault(row["encoder"], {}).setdefault(row["fraction"], []).append(row["score"])
    return {enc: {f: (float(np.mean(v)), float(np.std(v)), len(v)) for f, v in by_f.items()}
            for enc, by_f in out.items()}


def results_json(rows: list[dict], keys: dict[str, str]) -> dict:
    """{key: {"1"|"10"|"100": {"mean", "std", "seeds": [test score per seed, in seed order]}}}.

    keys maps an encoder's row name (e.g. "raw pixels 8x8") to its JSON key (e.g. "pixels"); std is
    the population std over seeds, as in `summarize`.
    """
    scores: dict = {}
    for row in sorted(rows, key=lambda r: r["seed"]):  # stable: encoders and fractions keep their order
        by_f = scores.setdefault(keys[row["encoder"]], {})
        by_f.setdefault(fraction_key(row["fraction"]), []).append(float(row["score"]))
    return {key: {f: {"mean": float(np.mean(v)), "std": float(np.std(v)), "seeds": v} for f, v in by_f.items()}
            for key, by_f in scores.items()}


def format_table(summary: dict, metric: str = "macro AUROC") -> str:
    """A plain-text table: rows = encoders, columns = label fractions, cells = mean ± std."""
    fractions = sorted({f for by_f in summary.values() for f in by_f})
    header = f"{'encoder':<28}" + "".join(f"{f'{f:.0%} labels':>18}" for f in fractions)
    lines = [f"linear probe, {metric} (mean ± std over seeds)", header, "-" * len(header)]
    for enc, by_f in summary.items():
        cells = "".join(f"{by_f[f][0]:>11.3f} ± {by_f[f][1]:.3f}" if f in by_f else f"{'':>18}" for f in fractions)
        lines.append(f"{enc:<28}{cells}")
    return "\n".join(lines)


def probe_checkpoint(checkpoint, config: str = "synth_tiny", task: str = "chexpert5",
                     fractions: tuple[float, ...] = (0.01, 0.1, 1.0), seeds: int = 3,
                     synth_seed: int | None = None, sizes: dict[str, int] | None = None,
                     progress: bool = True) -> dict:
    """The linear probe of one encoder (a checkpoint, or "random" = `config` at random init with
    BatchNorm recalibrated) in the shape every eval task writes: {"task": "probe", "dataset",
    "metric", "checkpoint", "synth_seed", "image_size", "n_train", "results": {"1"|"10"|"100":
    {"mean", "std", "seeds"}}}. `compare_encoders` is the three-way table; this is one row of it."""
    synth_seed = UNSEEN_SEED if synth_seed is None else synth_seed
    encoder, _, size = eval_image_encoder(checkpoint, config)  # the input size decides the render size
    suite = ProbeSuite(ProbeSuiteConfig(task=task, fractions=tuple(fractions), seeds=seeds, image_size=size,
                                        synth_seed=synth_seed, progress=progress,
                                        **{f"{k}_size": v for k, v in (sizes or {}).items()}))
    calibrate_if_random(encoder, checkpoint, suite.datasets["train"])
    rows = suite.run({"encoder": lambda x: encoder(x).global_feat})
    return {"task": "probe", "dataset": task, "metric": "accuracy" if suite.spec.kind == "multiclass" else "macro AUROC",
            "checkpoint": str(checkpoint), "synth_seed": synth_seed, "image_size": size,
            "n_train": {fraction_key(r["fraction"]): r["n_train"] for r in rows}, "results": fraction_results(rows)}

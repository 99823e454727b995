"""MGCA vs the same architecture at random init vs raw pixels, probed on one SynthCXR task (or on a
manifest directory's splits of that task).

Also `python -m mgca_lite probe CHECKPOINT`: the comparison for any checkpoint written by pretrain,
or for `random` (with `--config`): the random-init encoder and raw pixels only.

Everything is probed at the encoder's input resolution (the checkpoint's crop size, else its image
size): the task is rendered at that size, and the pixel baseline pools those same images.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from mgca_lite.configtools import from_dict
from mgca_lite.data.tasks import get_task
from mgca_lite.evaluation.features import raw_pixels, recalibrate_batchnorm
from mgca_lite.evaluation.linear_probe import ProbeConfig
from mgca_lite.evaluation.downstream import fraction_key, open_task_manifest
from mgca_lite.evaluation.probe import ProbeSuite, ProbeSuiteConfig, format_table, results_json, summarize
from mgca_lite.models.image_encoder import build_image_encoder
from mgca_lite.evaluation.loading import load_model
from mgca_lite.training.config import PretrainConfig, apply_overrides, load_config

MGCA, RANDOM = "MGCA", "random init (BN recal.)"
RANDOM_CHECKPOINT = "random"  # the `probe` argument that means "no checkpoint: random init only"


def pixels_name(side: int) -> str:
    """Table row name of the pixel baseline pooled to side x side, e.g. "raw pixels 8x8"."""
    return f"raw pixels {side}x{side}"


@dataclass
class CompareConfig:
    """What `compare_encoders` probes and how; `probe` key=value overrides edit it (`probe.min_steps=0`)."""

    task: str = "chexpert5"
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    seeds: int = 3
    synth_seed: int | None = None     # SynthCXR seed of the probe task; None = the checkpoint's data.seed.
                                      # Another seed renders studies from an unseen "hospital"
    manifest: str | None = None       # a manifest directory whose train/val/test splits replace SynthCXR's
    train_size: int | None = None     # probe task split sizes; None = the task's defaults (a manifest: all rows)
    val_size: int | None = None
    test_size: int | None = None
    pixel_pools: tuple[int, ...] = (8, 16)  # pixel baseline candidates; the best on validation is reported
    probe: ProbeConfig = field(default_factory=ProbeConfig)


@dataclass
class Comparison:
    """What `compare_encoders` measured; `to_json()` is the `probe --json` / demo `probe.json` shape."""

    checkpoint: str
    cfg: CompareConfig
    synth_seed: int | None           # None when the task came from cfg.manifest
    image_size: int
    pixels_side: int                 # the pixel row pools to pixels_side x pixels_side
    pool_val: dict[str, float]       # {"8x8": validation score, ...} of each candidate: the choice's evidence
    rows: list[dict]                 # ProbeSuite rows of the reported encoders only

    @property
    def pixels_pool(self) -> str:
        return f"{self.pixels_side}x{self.pixels_side}"

    @property
    def summary(self) -> dict:
        """`summarize(rows)`: {row name: {fraction: (mean, std, n_seeds)}}, for tables and figures."""
        return summarize(self.rows)

    @property
    def metric(self) -> str:
        return "accuracy" if get_task(self.cfg.task).kind == "multiclass" else "macro AUROC"

    def to_json(self) -> dict:
        keys = {MGCA: "mgca", RANDOM: "random", pixels_name(self.pixels_side): "pixels"}
        n_train = {fraction_key(r["fraction"]): r["n_train"] for r in self.rows}
        return {"task": self.cfg.task, "results": results_json(self.rows, keys),
                "metric": self.metric, "checkpoint": self.checkpoint, "manifest": self.cfg.manifest,
                "synth_seed": self.synth_seed,
                "image_size": self.image_size, "n_train": n_train, "pixels_pool": self.pixels_pool,
                "pixels_pool_val": self.pool_val, "probe_config": dataclasses.asdict(self.cfg.probe)}


def choose_by_validation(rows: list[dict], names: list[str]) -> tuple[str, dict[str, float]]:
    """The candidate whose probes score best on the validation split -> (name, {name: value}).

    value = mean over label fractions of the mean over seeds of `val_score`, so each fraction counts
    once whatever its number of seeds, and one choice holds for the whole table row. Test scores
    (`score`) are never read: choosing on them would leak the test split into the baseline.
    """
    values = {}
    for name in names:
        by_fraction: dict[float, list[float]] = {}
        for row in rows:
            if row["encoder"] == name:
                by_fraction.setdefault(row["fraction"], []).append(row["val_score"])
        values[name] = float(np.mean([np.mean(v) for v in by_fraction.values()]))
    return max(names, key=lambda n: values[n]), values


def compare_encoders(checkpoint: str | Path, cfg: CompareConfig = CompareConfig(),
                     pretrain_cfg: PretrainConfig | None = None, progress: bool = True) -> Comparison:
    """Probe MGCA (unless checkpoint == "random"), random init and raw pixels on `cfg.task`
    (SynthCXR, or the splits of `cfg.manifest`, checked before any model loads).

    `pretrain_cfg` is the architecture to build for "random"; a real checkpoint carries its own.
    Every encoder's features are (B, 1, H, W) images -> (B, C); see `ProbeSuite.run` for the rows.
    """
    if cfg.manifest and cfg.synth_seed is not None:
        raise ValueError(f"--manifest {cfg.manifest} and --synth-seed {cfg.synth_seed}: a manifest's images "
                         "are not rendered, so give one or the other")
    manifest = open_task_manifest(cfg.manifest, cfg.task)
    model = None
    if str(checkpoint) == RANDOM_CHECKPOINT:
        if pretrain_cfg is None:
            raise ValueError("checkpoint 'random' needs a pretraining config (probe random --config NAME)")
    else:
        model, _, pretrain_cfg = load_model(checkpoint)  # bad input: one line naming the file
    size = pretrain_cfg.data.crop_size or pretrain_cfg.data.image_size
    synth_seed = pretrain_cfg.data.seed if cfg.synth_seed is None else cfg.synth_seed
    if manifest is not None:
        synth_seed = None  # nothing is rendered
    suite = ProbeSuite(ProbeSuiteConfig(task=cfg.task, fractions=tuple(cfg.fractions), seeds=cfg.seeds,
                                        image_size=size, synth_seed=synth_seed, train_size=cfg.train_size,
                                        val_size=cfg.val_size, test_size=cfg.test_size, progress=progress,
                                        probe=cfg.probe), manifest)
    # A different draw from the pretrained model's init; the image encoder is the first thing
    # build_model creates, so this equals the image encoder of a random-init MGCAModel.
    torch.manual_seed(pretrain_cfg.train.seed + 1)
    random_encoder = recalibrate_batchnorm(build_image_encoder(pretrain_cfg.model.image), suite.datasets["train"])
    encoders = {} if model is None else {MGCA: lambda x: model.image_encoder(x).global_feat}
    encoders[RANDOM] = lambda x: random_encoder(x).global_feat
    pools = {pixels_name(side): side for side in cfg.pixel_pools}
    encoders.update({name: partial(raw_pixels, side=side) for name, side in pools.items()})
    rows = suite.run(encoders)
    best, values = choose_by_validation(rows, list(pools))
    return Comparison(checkpoint=str(checkpoint), cfg=cfg, synth_seed=synth_seed, image_size=size,
                      pixels_side=pools[best], pool_val={f"{pools[n]}x{pools[n]}": v for n, v in values.items()},
                      rows=[r for r in rows if r["encoder"] not in pools or r["encoder"] == best])


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """key=value words -> (CompareConfig overrides, pretraining-config overrides), by the key's first
    part: `probe.min_steps=0`, `train_size=500` are ours; `model.image.width=8` builds `random`."""
    ours = {f.name for f in dataclasses.fields(CompareConfig)}
    mine = [o for o in overrides if o.split("=", 1)[0].strip().split(".")[0] in ours]
    return mine, [o for o in overrides if o not in mine]


def probe_main(args) -> int:
    """`python -m mgca_lite probe CHECKPOINT|random [--synth-seed S | --manifest DIR] [--json OUT] [key=value ...]`."""
    mine, model_overrides = split_overrides(list(args.overrides or []))
    cfg = CompareConfig(task=args.task, fractions=tuple(float(f) for f in args.fractions.split(",")),
                        seeds=args.seeds, synth_seed=args.synth_seed, manifest=args.manifest)
    cfg = from_dict(CompareConfig, apply_overrides(dataclasses.asdict(cfg), mine), where="CompareConfig")
    pretrain_cfg = None
    if args.checkpoint == RANDOM_CHECKPOINT:
        if not args.config:
            raise ValueError("probe random: name the architecture with --config (e.g. --config synth_tiny)")
        pretrain_cfg = load_config(args.config, model_overrides)
    elif args.config or model_overrides:
        unknown = f"unknown probe setting(s) {model_overrides}: " if model_overrides else ""
        raise ValueError(f"{unknown}{args.checkpoint} carries its own config; --config and pretraining-config "
                         f"overrides only apply to checkpoint 'random'")
    result = compare_encoders(args.checkpoint, cfg, pretrain_cfg, progress=not args.no_progress)
    print(format_table(result.summary, result.metric))
    print(f"pixel pool {result.pixels_pool}, chosen on validation: "
          + ", ".join(f"{k} {v:.3f}" for k, v in result.pool_val.items()))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2))
        print(f"wrote {out}")
    return 0

"""Pretraining configuration: dataclasses, named YAML files in `configs/`, and `key=value` overrides.

A config is a tree of dataclasses (`PretrainConfig`); a YAML file in `configs/` lists only the
fields that differ from the defaults. Overrides on the command line use dotted paths, e.g.
`train.batch_size=32 loss.use_cta=false model.image.arch=vit_tiny`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mgca_lite.configtools import from_dict
from mgca_lite.losses.mgca_loss import MGCALossConfig
from mgca_lite.models.config import MGCAModelConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def _check_positive(cfg, *names: str, optional: bool = False) -> None:
    """Raise ValueError naming the first field of `cfg` that is not a positive number (None passes
    when optional), so a bad value fails when the config loads, before any data is rendered."""
    for name in names:
        value = getattr(cfg, name)
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass
class DataConfig:
    source: str = "synth"            # "synth": SynthCXR generated in memory; "manifest": a data_prep output dir
    manifest_dir: str | None = None  # manifest directory (source == "manifest")
    image_size: int = 128            # rendered (synth) or cached (manifest) image side, pixels
    crop_size: int | None = None     # random crop at train / centre crop at val; None = use the whole image
    train_size: int | None = None    # synth: number of training pairs (None = the task's default split)
    val_size: int | None = None      # synth: number of validation pairs
    seed: int = 0                    # SynthCXR seed (which synthetic "hospital")
    num_workers: int = 0             # DataLoader workers; 0 keeps CPU runs single-process and exact

    def __post_init__(self):
        _check_positive(self, "image_size")
        _check_positive(self, "crop_size", "train_size", "val_size", optional=True)
        if self.crop_size is not None and self.crop_size > self.image_size:
            raise ValueError(f"crop_size {self.crop_size} is larger than image_size {self.image_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass
class OptimConfig:
    lr: float = 2e-5                     # peak learning rate (ref 2e-5 at batch 2x72)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05           # not applied to norms and biases
    warmup_fraction: float = 0.4         # ref: linear warm-up over 40 % of all steps
    min_lr: float = 1e-8                 # warm-up starts here and cosine returns here
    grad_clip: float | None = 1.0        # max global grad norm; None = no clipping (ref: none)

    def __post_init__(self):
        _check_positive(self, "lr")
        _check_positive(self, "grad_clip", optional=True)
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must lie in [0, 1), got {self.warmup_fraction}")
        if self.weight_decay < 0 or self.min_lr < 0:
            raise ValueError("weight_decay and min_lr must be >= 0")


@dataclass
class TrainConfig:
    batch_size: int = 72                 # per process
    max_epochs: int = 50
    max_steps: int | None = None         # optimizer steps; overrides the epoch budget when set
    grad_accum: int = 1                  # micro-batches per optimizer step
    precision: str = "auto"              # "auto" (bf16 on CUDA, fp32 on CPU) | "bf16" | "fp32"
    compile: bool = False                # torch.compile the model (GPU runs)
    channels_last: bool = True           # NHWC images on CUDA (ignored on CPU)
    early_stop_patience: int | None = 5  # epochs without val improvement; None = never stop early
    log_every: int = 10                  # optimizer steps between metric rows
    save_every: int = 200                # optimizer steps between last.pt saves (plus every epoch end)
    seed: int = 0                        # model init, dropout and data order
    device: str = "auto"                 # "auto" | "cpu" | "cuda"
    tensorboard: bool = True             # also write TensorBoard events under DIR/tb
    detect_anomaly: bool = False         # the reference turns this on globally; only for benchmarks

    def __post_init__(self):
        _check_positive(self, "batch_size", "max_epochs", "grad_accum", "log_every", "save_every")
        _check_positive(self, "max_steps", "early_stop_patience", optional=True)
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")


@dataclass
class PretrainConfig:
    name: str = "custom"
    model: MGCAModelConfig = field(default_factory=MGCAModelConfig)
    loss: MGCALossConfig = field(default_factory=MGCALossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _parse_value(text: str) -> Any:
    """YAML semantics for command-line values: 32 -> int, 1e-4 -> float, false -> bool, null -> None."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)  # yaml 1.1 reads "1e-4" as a string
        except ValueError:
            return value
    return value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` strings to a nested dict (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. train.batch_size=32)")
        key, text = item.split("=", 1)
        node = data
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = _parse_value(text)
    return data


def resolve_config_path(name_or_path: str) -> Path:
    """`synth_tiny` -> configs/synth_tiny.yaml; an existing path is used as is."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"config {name_or_path!r} not found (no such file, and not one of {known})")


def load_config(name_or_path: str, overrides: list[str] | None = None) -> PretrainConfig:
    """Read a YAML config (by name or path), apply overrides, return a `PretrainConfig`."""
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config sections, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    apply_overrides(data, overrides or [])
    # Errors then read like a dotted key: "config synth_tiny.train: unknown field(s) ['bach']".
    return from_dict(PretrainConfig, data, where=f"config {path.stem}")


def config_from_json(text: str) -> PretrainConfig:
    """Inverse of `PretrainConfig.to_json` (used when loading checkpoints)."""
    return from_dict(PretrainConfig, json.loads(text))


# Fields that change how a run is logged or saved, or where it runs, never what it learns: a run
# may be resumed or read back under other values of these.
BOOKKEEPING_FIELDS = frozenset({"name", "train.log_every", "train.save_every", "train.tensorboard", "train.device"})
# The budget: `pretrain --resume --max-steps N` may extend (or shorten) a run it continues.
BUDGET_FIELDS = frozenset({"train.max_steps", "train.max_epochs", "train.early_stop_patience"})


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def require_same_config(stored: PretrainConfig, cfg: PretrainConfig, where: str | Path,
                        allowed: frozenset = frozenset()) -> None:
    """Raise ValueError naming `where` and every field, bookkeeping and `allowed` ones aside (e.g.
    BUDGET_FIELDS), in which the config a run was trained with (`stored`) differs from `cfg`."""
    ignored = BOOKKEEPING_FIELDS | allowed
    old, new = _flatten(stored.to_dict()), _flatten(cfg.to_dict())
    diffs = [f"{k}: the run has {old.get(k)!r}, asked for {new.get(k)!r}"
             for k in sorted(old.keys() | new.keys()) if k not in ignored and old.get(k) != new.get(k)]
    if diffs:
        raise ValueError(f"{where}: this run was trained with another config ({'; '.join(diffs)}). "
                         "Delete the folder to train this config, or choose another output directory.")


def require_same_run_config(run_dir: str | Path, cfg: PretrainConfig) -> None:
    """`require_same_config` against `run_dir/config.json` (written when that run started); nothing to
    compare without it. Fields a run's config lacks (it predates them) count at their defaults."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    try:
        stored = config_from_json(path.read_text())
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: not a config this version can read ({err})") from err
    require_same_config(stored, cfg, path)

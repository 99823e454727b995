"""What every downstream task (probe, finetune, segment, detect, zeroshot, ...) shares.

- `render_task_splits`: a SynthCXR task's train / val / test splits, rendered once into memory;
- `label_subset`: the positions of a fixed 1 / 10 / 100 % label subset inside the training split;
- `eval_image_encoder`: a checkpoint's image encoder, or the same architecture at random init, and
  `calibrate_if_random`, which recalibrates the latter's BatchNorm statistics (the fair baseline);
- `KeepBest`: early stopping on a validation score, keeping the best state (finetune, segment, detect);
- `fraction_results` / `format_fraction_table`: one result shape and one table for every task,
  `{"1"|"10"|"100": {"mean", "std", "seeds": [...]}}`, as `probe --json` writes per encoder.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from mgca_lite.data.datasets import SynthSource, TaskDataset
from mgca_lite.data.memory import MemorySource
from mgca_lite.data.tasks import task_split
from mgca_lite.data.transforms import ImageTransform, TransformConfig

UNSEEN_SEED = 1234  # evaluation studies come from another SynthCXR "hospital" than pretraining's (0)
SMOKE_SIZES = {"train": 64, "val": 32, "test": 32}  # --smoke: every code path, in seconds


def render_task_splits(task: str, image_size: int, synth_seed: int = UNSEEN_SEED,
                       sizes: dict[str, int] | None = None, progress: bool = True) -> dict[str, TaskDataset]:
    """{split: TaskDataset} of a SynthCXR task, each split rendered once (MemorySource).

    Every split gets the same deterministic view (letterbox to image_size, no random crop), so
    features, masks and boxes line up with what the encoder saw in pretraining.
    sizes: {split: n} overrides of the task's default split sizes (e.g. SMOKE_SIZES).
    """
    out = {}
    for split in ("train", "val", "test"):
        source = MemorySource(SynthSource(task_split(task, split, sizes=sizes), synth_seed, image_size),
                              desc=f"{task} {split}", progress=progress)
        out[split] = TaskDataset(source, task, ImageTransform(TransformConfig(resize=image_size)))
    return out


def label_subset(task: str, train: TaskDataset, fraction: float, seed: int) -> torch.Tensor:
    """Positions (n,) int64 in the rendered training split of the `seed`-th fixed label subset of
    `fraction` (nested: 1 % within 10 % within 100 %; see tasks.task_split)."""
    indices = train.source.indices
    subset = task_split(task, "train", fraction, subset_seed=seed, sizes={"train": len(indices)})
    return torch.from_numpy(np.searchsorted(indices, subset))


def eval_image_encoder(checkpoint: str | Path, config: str = "synth_tiny"):
    """(image encoder in eval mode, PretrainConfig, input size) for evaluation.

    checkpoint: a pretrain checkpoint, or "random": `config`'s architecture at random init (the
    draw `loading.load_model` makes; recalibrate it with `calibrate_if_random` once the task's
    training split is rendered at the input size). input size: the size the encoder was trained
    at (crop size, else image size).
    """
    from mgca_lite.evaluation.loading import load_model

    model, _, cfg = load_model(checkpoint, config)
    return model.image_encoder.eval(), cfg, cfg.data.crop_size or cfg.data.image_size


def calibrate_if_random(encoder: torch.nn.Module, checkpoint: str | Path, dataset) -> torch.nn.Module:
    """For checkpoint "random", re-estimate the encoder's BatchNorm running statistics on `dataset`
    (a TaskDataset; no weight changes), so the untrained baseline is fair; a trained encoder is
    returned untouched. Returns the encoder in eval mode."""
    from mgca_lite.evaluation.features import recalibrate_batchnorm
    from mgca_lite.evaluation.loading import RANDOM

    if str(checkpoint) == RANDOM:
        recalibrate_batchnorm(encoder, dataset)
    return encoder.eval()


class KeepBest:
    """Early stopping on a validation score (higher is better) that keeps a copy of the best state.

    The first check always counts, so a NaN score (e.g. one class only in the validation split,
    which never compares as better) still leaves a state to restore.
    """

    def __init__(self, patience: int):
        self.patience, self.best, self.state, self.bad = patience, -math.inf, None, 0

    @property
    def stop(self) -> bool:
        """True once `patience` checks in a row brought no improvement."""
        return self.bad >= self.patience

    def check(self, score: float, module: torch.nn.Module) -> bool:
        """Record one validation score of `module` (copying its state when it is the best so far);
        returns `stop`."""
        if self.state is None or score > self.best:
            self.best, self.bad, self.state = score, 0, copy.deepcopy(module.state_dict())
        else:
            self.bad += 1
        return self.stop

    def restore(self, module: torch.nn.Module) -> torch.nn.Module:
        """Load the best state into `module`; returns it in eval mode."""
        module.load_state_dict(self.state)
        return module.eval()


def fraction_key(fraction: float) -> str:
    """A label fraction as the percent string of JSON results: 0.01 -> "1", 0.1 -> "10", 1.0 -> "100"."""
    return f"{fraction * 100:g}"


def fraction_results(rows: list[dict]) -> dict:
    """Rows {fraction, seed, score} -> {"1"|"10"|"100": {"mean", "std", "seeds": [score per seed, in
    seed order]}}; std is the population std over seeds (0 for one seed)."""
    by_f: dict[str, list[float]] = {}
    for row in sorted(rows, key=lambda r: (r["fraction"], r["seed"])):
        by_f.setdefault(fraction_key(row["fraction"]), []).append(float(row["score"]))
    return {f: {"mean": float(np.mean(v)), "std": float(np.std(v)), "seeds": v} for f, v in by_f.items()}


def format_fraction_table(result: dict) -> str:
    """One line per label fraction of a task result (`fraction_results` under "results"), with its
    task, dataset, metric and checkpoint in the header."""
    lines = [f"{result['task']} on {result['dataset']} ({result['metric']}, mean ± std over seeds) "
             f"of {result['checkpoint']}, synth seed {result['synth_seed']}",
             f"{'labels':>8}{'n_train':>9}{'score':>18}"]
    for key, block in result["results"].items():
        n = result.get("n_train", {}).get(key, "")
        lines.append(f"{key + ' %':>8}{n:>9}{block['mean']:>11.3f} ± {block['std']:.3f}")
    return "\n".join(lines)

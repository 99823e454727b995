"""What every downstream task (probe, finetune, segment, detect, zeroshot, ...) shares.

- `render_task_splits`: a task's train / val / test splits held in memory once, rendered from
  SynthCXR or read from a manifest directory (`open_task_manifest` checks one first);
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

from mgca_lite.data.datasets import ManifestSource, SynthSource, TaskDataset
from mgca_lite.data.manifest import Manifest, read_manifest
from mgca_lite.data.memory import MemorySource
from mgca_lite.data.synth_case import CHEXPERT5
from mgca_lite.data.tasks import OTHER_PATTERN, SPLITS, get_task, study_subset, task_split, task_target
from mgca_lite.data.transforms import ImageTransform, TransformConfig

UNSEEN_SEED = 1234  # evaluation studies come from another SynthCXR "hospital" than pretraining's (0)
SMOKE_SIZES = {"train": 64, "val": 32, "test": 32}  # --smoke: every code path, in seconds
MANIFEST_TASKS = ("probe", "finetune", "segment", "detect")  # the evaluations that read --manifest


def open_task_manifest(path: str | Path | None, task: str, needs: str = "target") -> Manifest | None:
    """The manifest directory `path` read and checked for `task`; None -> None (SynthCXR).

    Meant to run before any encoder work; every failure is a ValueError / FileNotFoundError naming
    the directory (or file and line) and what is missing:
    - `path` is a manifest directory (`read_manifest` checks its format and files);
    - train, val and test all have rows;
    - every image can get a `task` target: from a `target_<task>` column (each value is checked),
      else from what `tasks.task_target` derives it: chexpert5's five label columns; for the
      image-based tasks, masks or boxes of the findings they read, present in some row;
    - needs="masks" / "boxes" (segmentation / detection): some training row has a mask / box of
      the task's finding.
    """
    if path is None:
        return None
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no manifest directory here (one with meta.json and manifest.csv)")
    manifest = read_manifest(root)
    spec = get_task(task)
    if spec.kind == "paired":
        raise ValueError(f"{root}: {task} is the pretraining task, not a downstream one")
    counts = {split: len(manifest.split(split)) for split in SPLITS}
    empty = [split for split, n in counts.items() if n == 0]
    if empty:
        raise ValueError(f"{root}: no {' / '.join(empty)} rows ({counts}); {task} needs train, val and test")
    column = f"target_{task}"
    if column in manifest.rows[0]:
        _check_target_column(manifest, task, column)
    elif task == "chexpert5":
        missing = [f for f in CHEXPERT5 if f not in manifest.label_columns]
        if missing:
            raise ValueError(f"{root}: chexpert5 needs label columns {list(CHEXPERT5)} (or a {column} "
                             f"column); missing {missing}")
    else:
        findings = ("pneumonia", *OTHER_PATTERN) if task == "covidx" else (spec.finding,)
        if not any(_annotated(row, f) for row in manifest.rows for f in findings):
            raise ValueError(f"{root}: no {column} column and no mask or box of {' / '.join(findings)} in "
                             f"any row, so every {task} target would be negative")
    if needs in ("masks", "boxes"):
        key = "mask_paths" if needs == "masks" else "boxes"
        if not any(_annotated(row, spec.finding, key) for row in manifest.split("train")):
            raise ValueError(f"{root}: no training row has a {spec.finding} {needs[:-1]} ({key} column), "
                             f"which {task} {'segmentation' if needs == 'masks' else 'detection'} trains on")
    elif needs != "target":
        raise ValueError(f"needs must be 'target', 'masks' or 'boxes', not {needs!r}")
    return manifest


def _annotated(row: dict, finding: str, key: str | None = None) -> bool:
    """Whether a manifest row has a mask (key "mask_paths"), a box ("boxes") or either (None) of `finding`."""
    has_mask = finding in row["mask_paths"]
    has_box = any(box[0] == finding for box in row["boxes"])
    if key == "mask_paths":
        return has_mask
    return has_box if key == "boxes" else has_mask or has_box


def _check_target_column(manifest: Manifest, task: str, column: str) -> None:
    """Every non-empty `column` value must be a `task` target: 0 / 1 for a binary task, a class id
    for covidx; raises ValueError naming the line. (Empty values fall back to the derived target.)"""
    spec = get_task(task)
    expected = {"binary": "0 or 1", "multiclass": f"a class id 0..{len(spec.classes) - 1} {spec.classes}"}
    for line, row in enumerate(manifest.rows, start=2):  # line numbers as an editor shows them
        value = row[column]
        if value in ("", None):
            continue
        try:
            target = task_target(task, {}, set(), value)
        except (TypeError, ValueError):
            target = None
        if target is None:
            ok = False
        elif spec.kind == "binary":
            ok = target.tolist() in ([0.0], [1.0])
        elif spec.kind == "multiclass":
            ok = 0 <= int(target) < len(spec.classes)
        else:
            ok = target.shape == (len(spec.classes),)
        if not ok:
            raise ValueError(f"{manifest.root / 'manifest.csv'}, line {line}: {column} {value!r} is not a {task} "
                             f"target ({expected.get(spec.kind, f'{len(spec.classes)} values')})")


def render_task_splits(task: str, image_size: int, synth_seed: int | None = UNSEEN_SEED,
                       sizes: dict[str, int] | None = None, progress: bool = True,
                       manifest: Manifest | None = None) -> dict[str, TaskDataset]:
    """{split: TaskDataset} of a task, each split held in memory once (MemorySource): SynthCXR
    rendered from `synth_seed`, or, given `manifest` (see `open_task_manifest`), its splits read
    from disk (synth_seed unused).

    Every split gets the same deterministic view (letterbox to image_size, no random crop), so
    features, masks and boxes line up with what the encoder saw in pretraining. A manifest's images
    come from its image cache at image_size when `build_image_cache` wrote one, else from its files;
    its `target_<task>` values replace the derived targets (tasks.task_target).
    sizes: {split: n} overrides of the task's default split sizes (e.g. SMOKE_SIZES); with a
    manifest, at most the first n rows of each split.
    """
    spec = get_task(task)
    transform = ImageTransform(TransformConfig(resize=image_size))
    out = {}
    for split in SPLITS:
        if manifest is None:
            source = SynthSource(task_split(task, split, sizes=sizes), synth_seed, image_size)
        else:
            source = ManifestSource(manifest, split, cache_size=image_size)
            if sizes and split in sizes:
                source.head(sizes[split])
        memory = MemorySource(source, desc=f"{task} {split}", progress=progress,
                              mask_findings=(spec.finding,) if spec.finding else ())
        out[split] = TaskDataset(memory, task, transform)
    return out


def label_subset(task: str, train: TaskDataset, fraction: float, seed: int) -> torch.Tensor:
    """Positions (n,) int64 in the training split (`render_task_splits`) of the `seed`-th fixed
    label subset of `fraction`, nested: 1 % within 10 % within 100 %. SynthCXR: tasks.task_split's
    subset of the rendered indices; a manifest: tasks.study_subset, keyed on study_id."""
    study_ids = getattr(train.source, "study_ids", None)
    if study_ids is not None:
        return torch.from_numpy(study_subset(study_ids, task, fraction, subset_seed=seed))
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
    task, dataset, metric, checkpoint and data source (manifest, else synth seed) in the header."""
    source = f"manifest {result['manifest']}" if result.get("manifest") else f"synth seed {result['synth_seed']}"
    lines = [f"{result['task']} on {result['dataset']} ({result['metric']}, mean ± std over seeds) "
             f"of {result['checkpoint']}, {source}",
             f"{'labels':>8}{'n_train':>9}{'score':>18}"]
    for key, block in result["results"].items():
        n = result.get("n_train", {}).get(key, "")
        lines.append(f"{key + ' %':>8}{n:>9}{block['mean']:>11.3f} ± {block['std']:.3f}")
    return "\n".join(lines)

"""Derived SynthCXR tasks with fixed splits and fixed, nested 1 / 10 / 100 % training subsets.

Each task mirrors one dataset of the MGCA paper and owns a disjoint block of the synthetic index
space (sample = make_sample(index, seed)):

| task         | mirrors       | target                                                   | index block |
|--------------|---------------|----------------------------------------------------------|-------------|
| `pretrain`   | MIMIC-CXR     | image + report (labels for monitoring only)              | 0 ..        |
| `chexpert5`  | CheXpert      | 5 labels, uncertain mapped per class (U-ones / U-zeros)  | 1,000,000 ..|
| `rsna`       | RSNA Pneumonia| binary pneumonia + its boxes                             | 2,000,000 ..|
| `covidx`     | COVIDx        | 3 classes: 0 normal, 1 pneumonia, 2 other pattern        | 3,000,000 ..|
| `siim`       | SIIM-ACR      | pneumothorax mask (binary + segmentation)                | 4,000,000 ..|
| `object_cxr` | Object-CXR    | support-device boxes (binary + detection)                | 5,000,000 ..|

Within a block, a split starts at a fixed offset (train +0, val +600,000, test +800,000), so the
indices of a split are `block + offset + arange(n)`: changing a split's size never moves another
split, and downstream tasks never reuse a pretraining image.

Label subsets: every training index gets a fixed pseudo-random key from a hash of
(task, index, subset_seed); the `fraction` subset is the ceil(fraction * n) indices with the
smallest keys. So 1 % ⊂ 10 % ⊂ 100 %, and a subset never depends on run order or worker count.
A manifest's training split is subset the same way by `study_subset`, keyed on its study_id.

Targets of image-based tasks (rsna, siim, object_cxr, covidx) come from what is *drawn* (a finding
counts when it has a mask or a box), as radiologists' annotations do; chexpert5 comes from the
report-style labels, as CheXpert's labeller does. A manifest may instead carry a `target_<task>`
column (data_prep writes one for real datasets), which then wins.
"""

from __future__ import annotations

import math
import zlib  # crc32: a stable string hash (Python's hash() is salted per process)
from dataclasses import dataclass

import numpy as np

from .synth_case import CHEXPERT5, FINDINGS

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_OFFSET = {"train": 0, "val": 600_000, "test": 800_000}
_CAPACITY = {"train": 600_000, "val": 200_000, "test": 200_000}
# CheXpert uncertainty policy used by the MGCA paper's evaluation (from CheXpert's best policies).
U_ONES: tuple[str, ...] = ("atelectasis", "edema", "pleural_effusion")
U_ZEROS: tuple[str, ...] = ("cardiomegaly", "consolidation")
COVIDX_CLASSES: tuple[str, ...] = ("normal", "pneumonia", "other_pattern")
OTHER_PATTERN: tuple[str, ...] = ("edema", "atelectasis", "consolidation")  # without pneumonia


@dataclass(frozen=True)
class TaskSpec:
    """One derived task: where its samples live and what its target is."""

    name: str
    block: int                  # first synthetic index of the task
    sizes: tuple[int, int, int]  # default (train, val, test) sizes
    kind: str                   # "paired" | "multilabel" | "binary" | "multiclass"
    classes: tuple[str, ...]    # output names: one per logit
    finding: str | None = None  # the finding whose masks / boxes are the dense target


TASKS: dict[str, TaskSpec] = {
    "pretrain": TaskSpec("pretrain", 0, (10_000, 1_000, 1_000), "paired", FINDINGS),
    "chexpert5": TaskSpec("chexpert5", 1_000_000, (5_000, 500, 1_000), "multilabel", CHEXPERT5),
    "rsna": TaskSpec("rsna", 2_000_000, (4_000, 500, 1_000), "binary", ("pneumonia",),
                     finding="pneumonia"),
    "covidx": TaskSpec("covidx", 3_000_000, (4_000, 500, 1_000), "multiclass", COVIDX_CLASSES),
    "siim": TaskSpec("siim", 4_000_000, (4_000, 500, 1_000), "binary", ("pneumothorax",),
                     finding="pneumothorax"),
    "object_cxr": TaskSpec("object_cxr", 5_000_000, (4_000, 500, 1_000), "binary",
                           ("support_devices",), finding="support_devices"),
}


def get_task(task: str) -> TaskSpec:
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    return TASKS[task]


def split_size(task: str, split: str, sizes: dict[str, int] | None = None) -> int:
    """Number of samples in a split: `sizes[split]` if given, else the task default."""
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; expected one of {SPLITS}")
    if sizes and split in sizes:
        n = int(sizes[split])
        if not 0 <= n <= _CAPACITY[split]:
            raise ValueError(f"{split} size must be in [0, {_CAPACITY[split]}], got {n}")
        return n
    return get_task(task).sizes[SPLITS.index(split)]


def _hash_uniform(values: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniforms in [0, 1) from integers (splitmix64), shape like `values`."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around on purpose
        x = values.astype(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def task_split(task: str, split: str, fraction: float = 1.0, sizes: dict[str, int] | None = None,
               subset_seed: int = 0) -> np.ndarray:
    """Synthetic indices of a task split, int64 (n,), sorted ascending.

    fraction < 1 (training label subsets, e.g. 0.01 / 0.1) keeps the ceil(fraction * n) indices
    with the smallest hash keys: nested across fractions and identical on every run.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = split_size(task, split, sizes)
    idx = get_task(task).block + _SPLIT_OFFSET[split] + np.arange(n, dtype=np.int64)
    if fraction < 1.0:
        k = max(1, math.ceil(fraction * n - 1e-9))
        key = _hash_uniform(idx, salt=zlib.crc32(task.encode()) + 7919 * subset_seed)
        idx = np.sort(idx[np.argsort(key, kind="stable")[:k]])
    return idx


def study_subset(study_ids: list[str], task: str, fraction: float = 1.0, subset_seed: int = 0) -> np.ndarray:
    """Positions int64 (n,), sorted ascending, of a manifest split's rows in its fixed `fraction`
    label subset (the manifest counterpart of `task_split`'s subsets).

    study_ids: the split's rows' study_id, in row order. Every distinct study gets a hash key of
    (task, study_id, subset_seed), with task_split's salt; the subset is the ceil(fraction * n)
    studies (n = distinct studies) with the smallest keys, with all their rows. So 1 % ⊂ 10 % ⊂
    100 %, and membership depends on the study ids only, not on row order or run.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction >= 1.0:
        return np.arange(len(study_ids), dtype=np.int64)
    studies = sorted(set(study_ids))
    key = _hash_uniform(np.array([zlib.crc32(s.encode()) for s in studies], np.int64),
                        salt=zlib.crc32(task.encode()) + 7919 * subset_seed)
    k = max(1, math.ceil(fraction * len(studies) - 1e-9))
    kept = {studies[i] for i in np.argsort(key, kind="stable")[:k]}
    return np.array([i for i, s in enumerate(study_ids) if s in kept], np.int64)


def task_target(task: str, labels: dict[str, int | None], drawn: set[str],
                override=None) -> np.ndarray:
    """The training target of one sample for `task`.

    labels: finding -> 1 / 0 / -1 / None (unknown = negative); drawn: findings that have a mask
    or box in the image; override: a value from a `target_<task>` manifest column, or None.
    Returns float32 (5,) for chexpert5, float32 (1,) for binary tasks, int64 () for covidx,
    float32 (F,) (the raw labels) for pretrain.
    """
    spec = get_task(task)
    if override is not None and override != "":
        if spec.kind == "multiclass":
            return np.asarray(int(override), np.int64)
        return np.asarray([float(override)], np.float32) if spec.kind == "binary" else \
            np.asarray(override, np.float32)
    if spec.kind == "paired":
        return np.asarray([labels.get(f) or 0 for f in FINDINGS], np.float32)
    if task == "chexpert5":
        out = []
        for f in CHEXPERT5:
            v = labels.get(f) or 0
            out.append(float(v == 1 or (v == -1 and f in U_ONES)))
        return np.asarray(out, np.float32)
    if task == "covidx":
        if "pneumonia" in drawn:
            return np.asarray(1, np.int64)
        return np.asarray(2 if drawn & set(OTHER_PATTERN) else 0, np.int64)
    return np.asarray([float(spec.finding in drawn)], np.float32)

"""Derived tasks: fixed disjoint splits, nested label subsets, task targets."""

import math

import numpy as np
import pytest

from mgca_lite.data.tasks import SPLITS, TASKS, task_split, task_target


def test_splits_are_disjoint_within_and_across_tasks():
    seen: dict[int, str] = {}
    for task in TASKS:
        for split in SPLITS:
            idx = task_split(task, split)
            assert idx.dtype == np.int64 and len(idx) == len(np.unique(idx))
            clash = set(idx.tolist()) & set(seen)
            assert not clash, f"{task}/{split} reuses indices of {seen[next(iter(clash))]}"
            seen.update({i: f"{task}/{split}" for i in idx.tolist()})


def test_splits_are_stable_and_sizes_configurable():
    a = task_split("pretrain", "val")
    assert np.array_equal(a, task_split("pretrain", "val"))
    small = task_split("pretrain", "train", sizes={"train": 50})
    assert len(small) == 50
    assert np.array_equal(small, task_split("pretrain", "train")[:50])  # prefix: never moves
    assert np.array_equal(task_split("pretrain", "val", sizes={"train": 50}), a)
    with pytest.raises(KeyError):
        task_split("pretrain", "dev")
    with pytest.raises(KeyError):
        task_split("mimic", "train")


@pytest.mark.parametrize("task", [t for t in TASKS if t != "pretrain"])
def test_label_subsets_are_nested_and_fixed(task):
    full = task_split(task, "train")
    subsets = [task_split(task, "train", fraction=f) for f in (0.01, 0.1, 1.0)]
    for f, sub in zip((0.01, 0.1, 1.0), subsets):
        assert len(sub) == math.ceil(f * len(full))
        assert np.array_equal(sub, task_split(task, "train", fraction=f))  # same on every call
    assert set(subsets[0]) <= set(subsets[1]) <= set(subsets[2]) == set(full)
    assert not np.array_equal(subsets[0], full[: len(subsets[0])])  # a random, not a prefix, pick


def test_chexpert5_uncertainty_mapping():
    labels = {"atelectasis": -1, "cardiomegaly": -1, "consolidation": -1, "edema": -1,
              "pleural_effusion": -1}
    assert task_target("chexpert5", labels, set()).tolist() == [1, 0, 0, 1, 1]  # U-ones / U-zeros
    assert task_target("chexpert5", {"edema": 1, "atelectasis": None}, set()).tolist() == [0, 0, 0, 1, 0]


def test_image_task_targets_follow_what_is_drawn():
    assert task_target("covidx", {}, {"pneumonia", "edema"}).item() == 1
    assert task_target("covidx", {}, {"edema"}).item() == 2
    assert task_target("covidx", {}, {"nodule"}).item() == 0
    assert task_target("siim", {"pneumothorax": -1}, {"pneumothorax"}).tolist() == [1.0]
    assert task_target("rsna", {"pneumonia": 1}, set()).tolist() == [0.0]
    assert task_target("covidx", {}, set(), override="2").item() == 2  # target_<task> column wins

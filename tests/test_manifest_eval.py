"""Downstream evaluations on a manifest directory (`--manifest`): the same splits, targets, masks and
boxes as SynthCXR when the manifest is an export of the same studies, fixed nested label subsets
keyed on study_id, the image cache, every evaluator's CLI, and bad input named before encoder work."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from mgca_lite.cli import main
from mgca_lite.data.datasets import ManifestSource, build_image_cache, cache_paths
from mgca_lite.data.manifest import export_synth, read_manifest
from mgca_lite.data.tasks import study_subset
from mgca_lite.evaluation import compare, detection, finetune, segmentation
from mgca_lite.evaluation.downstream import (SMOKE_SIZES, UNSEEN_SEED, label_subset, open_task_manifest,
                                             render_task_splits)

TASKS = ("chexpert5", "rsna", "covidx", "siim", "object_cxr")
SIZE = 64  # synth_tiny's input size: exports at this size are read back without any resizing


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{task: manifest directory}: SynthCXR exported at the evaluators' smoke split sizes, from the
    unseen seed they render, at the encoder's input size."""
    root = tmp_path_factory.mktemp("manifests")
    return {task: export_synth(root / task, task, n_per_split=SMOKE_SIZES, image_size=SIZE, seed=UNSEEN_SEED)
            for task in TASKS}


def _rewrite_csv(directory, edit, extra_columns=()):
    """Rewrite directory/manifest.csv with edit(row) applied to every row (a dict of strings)."""
    path = directory / "manifest.csv"
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = [*reader.fieldnames, *extra_columns], list(reader)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            edit(row)
            writer.writerow(row)


def _copy_export(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------- the splits


@pytest.mark.parametrize("task", TASKS)
def test_an_export_reads_back_exactly_as_rendered(exports, task):
    # Same indices, seed and size: PNG is lossless and no resizing happens, so every tensor is equal.
    rendered = render_task_splits(task, SIZE, UNSEEN_SEED, SMOKE_SIZES, progress=False)
    read = render_task_splits(task, SIZE, progress=False, manifest=open_task_manifest(exports[task], task))
    for split in ("train", "val", "test"):
        assert len(read[split]) == SMOKE_SIZES[split]
        for a, b in zip(rendered[split], read[split]):
            for key in ("image", "target", "mask", "boxes"):
                assert torch.equal(a[key], b[key]), (split, key)


def test_the_image_cache_is_read_and_letterboxes_like_the_files(exports, tmp_path):
    # An export at 96 px evaluated at 64 px: letterboxed by the cache or by the transform alike.
    root = export_synth(tmp_path / "m96", "siim", n_per_split={"train": 24, "val": 2, "test": 2}, image_size=96)
    files = render_task_splits("siim", SIZE, progress=False, manifest=open_task_manifest(root, "siim"))
    assert any(item["mask"].any() for item in files["train"])  # some pneumothorax mask to compare
    build_image_cache(root, SIZE)
    cached = render_task_splits("siim", SIZE, progress=False, manifest=open_task_manifest(root, "siim"))
    for a, b in zip(files["train"], cached["train"]):
        assert a["image"].shape == (1, SIZE, SIZE)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        torch.testing.assert_close(a["boxes"], b["boxes"])
    # The cache really is what is read: zero it and the films come back black ((0 - 0.5) / 0.5 = -1).
    npy, _ = cache_paths(root, SIZE)
    arr = np.load(npy, mmap_mode="r+")
    arr[:] = 0
    arr.flush()
    del arr
    zeroed = render_task_splits("siim", SIZE, progress=False, manifest=open_task_manifest(root, "siim"))
    assert (zeroed["train"][0]["image"] == -1).all()


def test_a_target_column_overrides_the_derived_target(exports, tmp_path):
    root = _copy_export(exports["covidx"], tmp_path / "covidx")
    derived = render_task_splits("covidx", SIZE, progress=False, manifest=open_task_manifest(root, "covidx"))
    _rewrite_csv(root, lambda row: row.update(target_covidx=str(int(row["study_id"].split("-")[1]) % 3)),
                 ["target_covidx"])
    given = render_task_splits("covidx", SIZE, progress=False, manifest=open_task_manifest(root, "covidx"))
    index = 3_000_000 + np.arange(SMOKE_SIZES["train"])  # covidx's training block (tasks.py)
    assert [int(item["target"]) for item in given["train"]] == (index % 3).tolist()
    assert [int(item["target"]) for item in derived["train"]] != (index % 3).tolist()


# ------------------------------------------------------------------------------- label subsets


def test_study_subsets_are_nested_seeded_keep_studies_whole_and_ignore_row_order():
    ids = [f"s{i // 2}" for i in range(40)]  # 20 studies of two rows each
    subsets = {(f, seed): study_subset(ids, "rsna", f, seed) for f in (0.1, 0.5, 1.0) for seed in (0, 1)}
    for seed in (0, 1):
        small, half, full = (set(subsets[(f, seed)].tolist()) for f in (0.1, 0.5, 1.0))
        assert small < half < full == set(range(40))
        assert len(small) == 2 * 2 and len(half) == 10 * 2  # ceil(0.1 * 20) = 2, 0.5 * 20 = 10 studies, whole
        assert all(ids[i] == ids[i ^ 1] and (i ^ 1) in half for i in half)
    assert not np.array_equal(subsets[(0.5, 0)], subsets[(0.5, 1)])  # another seed, another subset
    assert not np.array_equal(subsets[(0.5, 0)], study_subset(ids, "siim", 0.5, 0))  # keyed on the task too
    shuffled = list(reversed(ids))
    assert {shuffled[i] for i in study_subset(shuffled, "rsna", 0.5, 0)} == {ids[i] for i in subsets[(0.5, 0)]}


def test_label_subsets_of_a_manifest_are_its_training_studies(exports):
    splits = render_task_splits("rsna", SIZE, progress=False, manifest=open_task_manifest(exports["rsna"], "rsna"))
    train_ids = splits["train"].source.study_ids
    for seed in (0, 1):
        positions = label_subset("rsna", splits["train"], 0.1, seed)
        assert positions.dtype == torch.int64 and len(positions) == 7  # ceil(0.1 * 64)
        assert positions.tolist() == study_subset(train_ids, "rsna", 0.1, seed).tolist()
    # Seed 0 is the subset TaskDataset.from_manifest(fraction=...) keeps (ManifestSource.subset).
    source = ManifestSource(read_manifest(exports["rsna"]), "train")
    source.subset("rsna", 0.1)
    assert source.study_ids == [train_ids[i] for i in label_subset("rsna", splits["train"], 0.1, 0)]
    val_ids = set(splits["val"].source.study_ids) | set(splits["test"].source.study_ids)
    assert not val_ids & set(train_ids)


# ---------------------------------------------------------------------------- every evaluator


RUNS = [("probe", "chexpert5"), ("probe", "covidx"), ("finetune", "rsna"), ("segment", "siim"),
        ("segment", "rsna"), ("detect", "rsna"), ("detect", "object_cxr")]


def _eval(task, dataset, out, *extra):
    # The probe's default schedule at 10 % takes ~10 s; the other evaluators also cover 10 % subsets.
    fractions = ["--fractions", "100", "--seeds", "1"] if task == "probe" else ["--fractions", "10,100", "--seeds", "2"]
    argv = ["eval", task, "--checkpoint", "random", "--config", "synth_tiny", "--dataset", dataset, "--smoke",
            *fractions, "--json", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("task,dataset", RUNS)
def test_every_evaluator_runs_on_a_manifest_and_matches_synth_at_full_labels(exports, tmp_path, task, dataset):
    read = _eval(task, dataset, tmp_path / "manifest.json", "--manifest", str(exports[dataset]))
    rendered = _eval(task, dataset, tmp_path / "synth.json", "--synth-seed", str(UNSEEN_SEED))
    assert read["manifest"] == str(exports[dataset]) and read["synth_seed"] is None
    assert rendered["manifest"] is None and rendered["synth_seed"] == UNSEEN_SEED
    assert read["n_train"] == rendered["n_train"]
    # The same images, targets and encoder: at 100 % (the whole training split) the same scores.
    # Below 100 % the subsets differ: the manifest's are keyed on study_id, SynthCXR's on its indices.
    if task == "probe":
        assert read["task"] == dataset
        for encoder in ("random", "pixels"):
            assert read["results"][encoder]["100"] == rendered["results"][encoder]["100"]
    else:
        assert (read["task"], read["dataset"]) == (task, dataset)
        assert read["results"]["100"] == rendered["results"]["100"]
        if task != "finetune":  # segment and detect keep it in their config too
            assert read["config"]["manifest"] == str(exports[dataset])


# --------------------------------------------------------------------------------- bad input


@pytest.fixture
def no_encoder_work(monkeypatch):
    """Any encoder built or checkpoint loaded fails the test: bad input must be caught before."""
    def forbidden(*args, **kwargs):
        raise AssertionError("encoder work started before the manifest was checked")

    for module in (finetune, segmentation, detection):
        monkeypatch.setattr(module, "eval_image_encoder", forbidden)
    monkeypatch.setattr(compare, "load_model", forbidden)
    monkeypatch.setattr(compare, "build_image_encoder", forbidden)


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def _bad_manifest(kind, exports, tmp_path):
    """(manifest directory, eval task, dataset) of one kind of bad input."""
    if kind == "missing":
        return tmp_path / "nowhere", "probe", "chexpert5"
    if kind == "not_a_manifest":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", "finetune", "chexpert5"
    root = tmp_path / kind
    if kind == "no_val_split":
        export_synth(root, "rsna", n_per_split={"train": 4, "test": 4}, image_size=32)
        return root, "detect", "rsna"
    _copy_export(exports["siim"], root)
    if kind == "no_label_columns":
        meta = json.loads((root / "meta.json").read_text())
        (root / "meta.json").write_text(json.dumps({**meta, "label_columns": ["pneumothorax"]}))
        return root, "probe", "chexpert5"
    if kind == "no_masks":
        _rewrite_csv(root, lambda row: row.update(mask_paths="{}"))
        return root, "segment", "siim"
    if kind == "no_boxes":  # rsna's boxes: none anywhere, and no target_rsna column
        _rewrite_csv(root, lambda row: row.update(boxes="[]", mask_paths="{}"))
        return root, "finetune", "rsna"
    if kind == "bad_target":
        _rewrite_csv(root, lambda row: row.update(target_covidx="covid"), ["target_covidx"])
        return root, "probe", "covidx"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing", "not_a_manifest", "no_val_split", "no_label_columns", "no_masks",
                                  "no_boxes", "bad_target"])
def test_a_bad_manifest_is_one_error_line_naming_it_before_encoder_work(kind, exports, tmp_path, capsys,
                                                                         no_encoder_work):
    root, task, dataset = _bad_manifest(kind, exports, tmp_path)
    line = _error(capsys, ["eval", task, "--checkpoint", "random", "--dataset", dataset, "--smoke",
                           "--manifest", str(root)])
    assert str(root) in line
    expected = {"no_val_split": "no val rows", "no_label_columns": "missing", "no_masks": "pneumothorax mask",
                "no_boxes": "no mask or box of pneumonia", "bad_target": "line 2: target_covidx 'covid'"}
    assert expected.get(kind, str(root)) in line


@pytest.mark.parametrize("argv", [
    ["eval", "finetune", "--checkpoint", "random", "--synth-seed", "3"],
    ["eval", "probe", "--checkpoint", "random", "--synth-seed", "3"],
    ["probe", "random", "--config", "synth_tiny", "--synth-seed", "3"],
    ["eval", "zeroshot", "--checkpoint", "random"],
])
def test_manifest_flag_conflicts_are_errors(argv, exports, capsys, no_encoder_work):
    line = _error(capsys, [*argv, "--manifest", str(exports["chexpert5"])])
    assert ("--synth-seed" in line) if "--synth-seed" in argv else "--manifest applies to" in line

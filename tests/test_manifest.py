"""Manifest format: export -> read roundtrip, clear errors, overwrite refusal, image cache."""

import csv
import json

import numpy as np
import pytest
import torch

from mgca_lite.data.datasets import PairedDataset, TaskDataset, build_image_cache
from mgca_lite.data.manifest import ManifestError, export_synth, read_manifest
from mgca_lite.data.synth import FINDINGS, make_sample
from mgca_lite.data.tasks import task_split

SIZE = 48


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "siim"
    export_synth(out, task="siim", n_per_split={"train": 12, "val": 4}, image_size=SIZE, seed=3)
    return out


def _rewrite(src, dst, edit):
    """Copy manifest dir `src` (meta + csv only) to `dst`, then apply edit(rows, header) in place."""
    dst.mkdir()
    (dst / "meta.json").write_text((src / "meta.json").read_text())
    with (src / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames), list(reader)
    for r in rows:
        r["image_path"] = str(src / r["image_path"])  # absolute: the images stay where they are
        r["mask_paths"] = json.dumps({k: str(src / v) for k, v in json.loads(r["mask_paths"]).items()})
    edit(rows, header)
    with (dst / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return dst / "manifest.csv"


def test_roundtrip_keeps_labels_reports_masks_boxes(exported):
    m = read_manifest(exported)
    assert m.meta["counts"] == {"train": 12, "val": 4} and m.label_columns == list(FINDINGS)
    train = m.split("train")
    assert len(train) == 12 and len(m.split("val")) == 4
    for row, index in zip(train, task_split("siim", "train", sizes={"train": 12})):
        s = make_sample(int(index), seed=3, image_size=SIZE)
        assert row["report"] == s.report and row["labels"] == s.labels
        assert set(row["mask_paths"]) == set(s.masks)
        assert [tuple(b) for b in row["boxes"]] == [(f, *map(float, b)) for f, *b in s.boxes]
    ds = PairedDataset.from_manifest(exported, "train")
    live = PairedDataset.synth("train", image_size=SIZE, seed=3, n=12, task="siim")
    for i in (0, 5):
        torch.testing.assert_close(ds[i]["image"], live[i]["image"])
        torch.testing.assert_close(ds[i]["labels"], live[i]["labels"])
        assert ds[i]["report"] == live[i]["report"]


def test_task_dataset_reads_the_same_targets_from_disk(exported):
    disk = TaskDataset.from_manifest(exported, "siim", "train")
    live = TaskDataset.synth("siim", "train", image_size=SIZE, seed=3, sizes={"train": 12})
    for i in range(12):
        a, b = disk[i], live[i]
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["mask"], b["mask"])


def test_image_cache_is_used_and_equivalent(exported):
    before = PairedDataset.from_manifest(exported, "val")
    build_image_cache(exported, size=SIZE)
    after = PairedDataset.from_manifest(exported, "val")
    assert after.source.cache is not None and before.source.cache is None
    for i in range(len(after)):
        torch.testing.assert_close(after[i]["image"], before[i]["image"])


def test_refuses_to_overwrite_foreign_directory(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="mine"):
        export_synth(foreign, n_per_split=2, image_size=SIZE)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_reexport_into_own_directory(tmp_path):
    out = tmp_path / "again"
    export_synth(out, n_per_split={"train": 3}, image_size=SIZE)
    export_synth(out, n_per_split={"val": 2}, image_size=SIZE)
    m = read_manifest(out)
    assert [r["split"] for r in m.rows] == ["val", "val"]
    assert not (out / "images" / "train").exists() or not any((out / "images" / "train").iterdir())


def test_missing_column_error_names_file_and_column(exported, tmp_path):
    def drop(rows, header):
        header.remove("study_id")
    bad = _rewrite(exported, tmp_path / "bad", drop)
    with pytest.raises(ManifestError, match=r"manifest\.csv.*study_id"):
        read_manifest(bad.parent)
    assert str(bad) in _error(bad.parent)


def test_bad_label_error_names_line_and_column(exported, tmp_path):
    def corrupt(rows, header):
        rows[2]["edema"] = "maybe"
    bad = _rewrite(exported, tmp_path / "bad", corrupt)
    msg = _error(bad.parent)
    assert "line 4" in msg and "'edema'" in msg and "maybe" in msg and str(bad) in msg


def test_missing_image_error_names_the_image(exported, tmp_path):
    def lose(rows, header):
        rows[0]["image_path"] = "images/nowhere.png"
    bad = _rewrite(exported, tmp_path / "bad", lose)
    msg = _error(bad.parent)
    assert "nowhere.png" in msg and "line 2" in msg


def test_missing_meta_and_bad_json(tmp_path):
    (tmp_path / "manifest.csv").write_text("image_path\n")
    assert "meta.json" in _error(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    assert "meta.json" in _error(tmp_path) and "JSON" in _error(tmp_path)


def _error(path) -> str:
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    return str(info.value)


def test_labels_parse_blank_as_unknown(exported, tmp_path):
    def blank(rows, header):
        rows[0]["nodule"] = ""
    bad = _rewrite(exported, tmp_path / "blank", blank)
    m = read_manifest(bad.parent)
    assert m.rows[0]["labels"]["nodule"] is None
    assert np.isfinite(PairedDataset.from_manifest(bad.parent, "train")[0]["labels"].numpy()).all()

"""data_prep chexpert: the CLI on the fixture download (counts, skip reasons, splits by patient),
the uncertainty policy through TaskDataset, the 5x200 set, refusal, interruption, bad roots."""

import json

import pytest
import torch

import data_prep.chexpert as chexpert
from data_prep import common
from data_prep.__main__ import main
from data_prep.fixtures import build_fixture
from mgca_lite.data.datasets import PairedDataset, TaskDataset
from mgca_lite.data.manifest import read_manifest

SIZE = 32
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return build_fixture("chexpert", tmp_path_factory.mktemp("chexpert"))


def _convert(root, out) -> int:
    return main(["chexpert", "--root", str(root), "--out", str(out), "--image-size", str(SIZE)])


@pytest.fixture(scope="module")
def converted(raw, tmp_path_factory):
    """The fixture converted with 2 images per class in the 5x200 set (the fixture has 1 to 3)."""
    out = tmp_path_factory.mktemp("chexpert_out") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chexpert, "PER_CLASS_5X200", 2)
        assert _convert(raw, out) == 0
    return out


def _keys(rows):
    return [r["study_id"] for r in rows]


def test_summary_counts_and_every_skip_with_its_reason(raw, converted):
    summary = json.loads((converted / "summary.json").read_text())
    assert set(summary) == {"dataset", "records", "skipped"} and summary["dataset"] == "chexpert"
    assert summary["records"] == {"train": 6, "val": 2, "test": 5}
    lateral = "not a frontal view (Frontal/Lateral 'Lateral')"
    skipped = [(s["path"], s["reason"]) for s in summary["skipped"]]
    assert skipped[:8] == [
        (str(raw / "train/patient00001/study1/view2_lateral.jpg"), lateral),
        (str(raw / "train/patient00002/study1/view3_lateral.jpg"), lateral),
        (str(raw / "train/patient00006/study1/view2_lateral.jpg"), lateral),
        (str(raw / "train/patient00008/study1/view2_lateral.jpg"), lateral),
        (str(raw / "train/patient00010/study2/view2_lateral.jpg"), lateral),
        (str(raw / "train/patient00012/study1/view1_frontal.jpg"),
         "train.csv line 24: column 'Edema' is '2.0', expected 1.0, 0.0, -1.0 or empty"),
        (str(raw / "valid/patient64542/study1/view2_lateral.jpg"), lateral),
        (str(raw / "valid/patient64545/study1/view2_lateral.jpg"), lateral),
    ]
    assert skipped[8][0] == str(raw / "train/patient00009/study1/view1_frontal.jpg")
    assert skipped[8][1].startswith("unreadable image (")
    assert skipped[9] == (str(raw / "train/patient00011/study2/view1_frontal.jpg"), "image file missing")


def test_splits_by_patient_and_test_is_the_official_valid(converted):
    m = read_manifest(converted)
    assert _keys(m.split("train")) == [
        "patient00001_study1_view1_frontal", "patient00001_study2_view1_frontal", "patient00002_study1_view2_frontal",
        "patient00003_study1_view1_frontal", "patient00006_study1_view1_frontal", "patient00012_study2_view1_frontal"]
    assert _keys(m.split("val")) == ["patient00010_study1_view1_frontal", "patient00010_study2_view1_frontal"]
    assert _keys(m.split("test")) == [f"patient6454{i}_study1_view1_frontal" for i in range(1, 6)]
    patients = {s: {r["patient_id"] for r in m.split(s)} for s in SPLITS}
    assert all(not patients[a] & patients[b] for a, b in (("train", "val"), ("train", "test"), ("val", "test")))
    assert m.rows[0]["image_path"] == "images/train/patient00001_study1_view1_frontal.png"
    assert [r["view"] for r in m.split("test")] == ["AP", "PA", "AP", "AP", "AP"]


def test_labels_are_stored_raw_and_tasks_apply_u_ones_and_u_zeros(converted):
    m = read_manifest(converted)
    uncertain = m.split("train")[1]  # patient00001/study2: every CHEXPERT5 finding -1.0
    assert uncertain["labels"] == {"atelectasis": -1, "cardiomegaly": -1, "consolidation": -1, "edema": -1,
                                   "pleural_effusion": -1, "pneumonia": None, "pneumothorax": None,
                                   "support_devices": 1}
    train = TaskDataset.from_manifest(converted, "chexpert5", "train")
    # U-ones: atelectasis, edema, pleural effusion; U-zeros: cardiomegaly, consolidation
    assert train[1]["target"].tolist() == [1, 0, 0, 1, 1]
    assert train[2]["target"].tolist() == [0, 1, 0, 1, 0]  # cardiomegaly 1.0, edema -1.0
    test = TaskDataset.from_manifest(converted, "chexpert5", "test")
    assert [test[i]["target"].tolist() for i in range(len(test))] == [
        [0, 1, 0, 0, 0], [1, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]]
    assert test[0]["image"].shape == (1, SIZE, SIZE)
    pairs = PairedDataset.from_manifest(converted, "train")
    assert len(pairs) == 6 and pairs[0]["report"] == "" and pairs[0]["image"].dtype == torch.float32


def test_the_5x200_set_is_a_second_manifest_taken_out_of_train(converted):
    subset_dir = converted / "chexpert5x200"
    summary = json.loads((subset_dir / "summary.json").read_text())
    assert summary == {"dataset": "chexpert5x200", "records": {"train": 0, "val": 0, "test": 8}, "skipped": []}
    sub = read_manifest(subset_dir)
    assert sub.meta["class_counts"] == {"atelectasis": 2, "cardiomegaly": 1, "consolidation": 1, "edema": 2,
                                        "pleural_effusion": 2}
    # atelectasis has 3 candidates (patient00001/study1 stays in train); patient00010's is in val;
    # patient00002/view2 has an uncertain edema, so is not a clean cardiomegaly case
    assert [(r["study_id"], r["target_chexpert5x200"]) for r in sub.rows] == [
        ("patient00002_study1_view1_frontal", "1"), ("patient00004_study1_view1_frontal", "2"),
        ("patient00005_study1_view1_frontal", "4"), ("patient00005_study2_view1_frontal", "4"),
        ("patient00007_study1_view1_frontal", "3"), ("patient00007_study2_view1_frontal", "3"),
        ("patient00008_study1_view1_frontal", "0"), ("patient00011_study1_view1_frontal", "0")]
    assert not set(_keys(sub.rows)) & set(_keys(read_manifest(converted).rows))
    ds = TaskDataset.from_manifest(subset_dir, "chexpert5", "test")
    for i, row in enumerate(sub.rows):  # the chexpert5 target of each is one-hot at its class
        assert ds[i]["target"].tolist() == [float(c == int(row["target_chexpert5x200"])) for c in range(5)]


def test_root_may_be_the_parent_and_a_short_5x200_set_is_reported(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert _convert(raw.parent, out) == 0  # default 200 per class: every candidate is taken
    printed = capsys.readouterr().out
    assert ("chexpert5x200: fewer than 200 single-finding training images for atelectasis (3), cardiomegaly (1), "
            "consolidation (1), edema (2), pleural_effusion (2): all of them are used") in printed
    assert json.loads((out / "summary.json").read_text())["records"] == {"train": 5, "val": 2, "test": 5}
    assert read_manifest(out / "chexpert5x200").meta["counts"]["test"] == 9


def test_refuses_a_foreign_directory_and_touches_nothing(raw, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.csv").write_text("a,b\n")
    assert _convert(raw, out) == 2
    assert "refusing to write into it" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["data.csv"] and (out / "data.csv").read_text() == "a,b\n"


def test_unrecognised_root_fails_with_a_clear_message(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert _convert(tmp_path / "raw", tmp_path / "out") == 2
    assert f"{tmp_path / 'raw'} holds nothing recognisable as chexpert: missing train.csv, valid.csv" \
        in capsys.readouterr().err
    (tmp_path / "raw" / "train.csv").write_text("Path,Sex\n")
    (tmp_path / "raw" / "valid.csv").write_text("Path,Sex\n")
    assert _convert(tmp_path / "raw", tmp_path / "out") == 2
    assert f"{tmp_path / 'raw' / 'train.csv'}: not a CheXpert label file, missing column(s) ['Frontal/Lateral'" \
        in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_interrupted_run_leaves_no_manifest(raw, tmp_path, monkeypatch):
    real, calls = common.read_image, []

    def interrupted(path):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(common, "read_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _convert(raw, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.csv").exists()
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["complete"] is False

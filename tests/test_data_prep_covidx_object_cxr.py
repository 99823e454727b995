"""data_prep covidx and object_cxr on their miniature downloads (data_prep/fixtures/)."""
import json
import shutil

import numpy as np
import pytest

from data_prep.__main__ import main
from data_prep.fixtures import build_fixture
from data_prep.fixtures import covidx as cfx
from data_prep.fixtures import object_cxr as ofx
from data_prep.object_cxr import parse_annotation
from mgca_lite.data.datasets import TaskDataset
from mgca_lite.data.manifest import read_manifest
from mgca_lite.data.tasks import COVIDX_CLASSES


def _convert(name, raw, out, size):
    assert main([name, "--root", str(raw), "--out", str(out), "--image-size", str(size)]) == 0
    return json.loads((out / "summary.json").read_text())


def _items(out, task):
    """study_id -> TaskDataset item, over all splits."""
    items = {}
    for split in ("train", "val", "test"):
        ds = TaskDataset.from_manifest(out, task, split)
        items.update({r["study_id"]: ds[i] for i, r in enumerate(ds.source.rows)})
    return items


# ------------------------------------------------------------------------------------ COVIDx
@pytest.fixture(scope="module")
def covidx(tmp_path_factory):
    raw = build_fixture("covidx", tmp_path_factory.mktemp("raw_covidx"))
    out = tmp_path_factory.mktemp("out") / "covidx"
    return raw, out, _convert("covidx", raw, out, 32)


def test_covidx_summary_counts_and_every_skip(covidx):
    raw, _, summary = covidx
    assert summary["dataset"] == "covidx"
    assert summary["records"] == {"train": 8, "val": 1, "test": 3}  # 9 usable train images, 3 test
    lst = raw / "train_COVIDx9A.txt"
    assert summary["skipped"][:3] == [
        {"path": f"{lst}:12", "reason": "malformed line: 3 field(s), expected 4 (patient_id filename class source)"},
        {"path": f"{lst}:13", "reason": "malformed line: unknown class 'tuberculosis' "
                                        "(expected one of normal, pneumonia, COVID-19)"},
        {"path": f"{lst}:14", "reason": "malformed line: p01-a.png is already listed at line 1"},
    ]
    assert summary["skipped"][3] == {"path": str(raw / "train" / "missing.png"), "reason": "image file missing"}
    assert summary["skipped"][4]["path"] == str(raw / "train" / "truncated.jpg")
    assert summary["skipped"][4]["reason"].startswith("unreadable image (") and len(summary["skipped"]) == 5


def test_covidx_targets_splits_and_patients(covidx):
    _, out, _ = covidx
    m = read_manifest(out)
    assert m.label_columns == [] and m.meta["covidx_classes"] == ["normal", "pneumonia", "COVID-19"]
    assert COVIDX_CLASSES[2] == "other_pattern"  # the synthetic third class stands for COVID-19
    written = {filename: cls for _, filename, cls, _ in cfx.TRAIN + cfx.TEST}
    expected = {"normal": 0, "pneumonia": 1, "covid-19": 2}
    items = _items(out, "covidx")
    assert set(items) == {f for f in written if f not in ("missing.png", "truncated.jpg")}
    for filename, item in items.items():
        assert int(item["target"]) == expected[written[filename].lower()]
    rows = {r["study_id"]: r for r in m.rows}
    assert rows["p01-b.png"]["covidx_class"] == "COVID-19" and rows["p01-b.png"]["source"] == "cohen"
    assert {f for f, r in rows.items() if r["split"] == "test"} == {f for _, f, _, _ in cfx.TEST}
    assert rows["p01-a.png"]["split"] == rows["p01-b.png"]["split"] != "test"  # one patient, one split
    by_split = [{r["patient_id"] for r in m.split(s)} for s in ("train", "val", "test")]
    assert sum(map(len, by_split)) == len(set().union(*by_split))


def test_covidx_plain_list_names_and_ambiguous_lists(tmp_path, capsys):
    raw = build_fixture("covidx", tmp_path / "raw")
    (raw / "train_COVIDx9A.txt").rename(raw / "train.txt")
    (raw / "test_COVIDx9A.txt").rename(raw / "test.txt")
    assert _convert("covidx", raw, tmp_path / "out", 32)["records"] == {"train": 8, "val": 1, "test": 3}
    (raw / "train.txt").rename(raw / "train_COVIDx8B.txt")
    shutil.copy(raw / "train_COVIDx8B.txt", raw / "train_COVIDx9A.txt")
    assert main(["covidx", "--root", str(raw), "--out", str(tmp_path / "out2")]) == 2
    assert ("expected one COVIDx train list (train.txt or train_*.txt, e.g. train_COVIDx9A.txt), found "
            "train_COVIDx8B.txt, train_COVIDx9A.txt; keep only the version to convert") in capsys.readouterr().err


def test_covidx_unrecognised_raw_dir(tmp_path, capsys):
    (tmp_path / "raw" / "train").mkdir(parents=True)
    (tmp_path / "raw" / "test").mkdir()
    assert main(["covidx", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 2
    assert "found none" in capsys.readouterr().err and not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------- Object-CXR
def test_annotation_shapes_become_boxes():
    assert parse_annotation("") == []
    assert parse_annotation("0 30 28 10 12") == [(10, 12, 30, 28)]  # corners in either order
    assert parse_annotation("1 40 20 60 44;2 5 40 20 35 25 55 8 58;") == [(40, 20, 60, 44), (5, 35, 25, 58)]
    for text, message in [("2 1 1 5 5", "needs 3 or more"), ("0 1 2 3 4 5 6", "needs 2 (x, y) points"),
                          ("0 a b c d", "not a number"), ("0 5 5 5 9", "encloses no area"), ("4 1 1 2 2", "type 4")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_annotation(text)


@pytest.fixture(scope="module")
def object_cxr(tmp_path_factory):
    raw = build_fixture("object_cxr", tmp_path_factory.mktemp("raw_object_cxr"))
    out = tmp_path_factory.mktemp("out") / "object_cxr"
    return raw, out, _convert("object_cxr", raw, out, 40)


def test_object_cxr_summary_counts_and_every_skip(object_cxr):
    raw, _, summary = object_cxr
    assert summary["dataset"] == "object_cxr"
    assert summary["records"] == {"train": 8, "val": 2, "test": 3}  # 10 usable train films, dev -> test
    assert summary["skipped"][:3] == [
        {"path": f"{raw / 'train.csv'}:14",
         "reason": "malformed row: object type 3 is not 0 (rectangle), 1 (ellipse) or 2 (polygon)"},
        {"path": f"{raw / 'train.csv'}:15", "reason": "malformed row: object type 0 needs 2 (x, y) points, "
                                                      "got 3 number(s)"},
        {"path": str(raw / "train" / "missing.jpg"), "reason": "image file missing"},
    ]
    assert summary["skipped"][3]["path"] == str(raw / "train" / "truncated.jpg") and len(summary["skipped"]) == 4


def test_object_cxr_boxes_labels_and_splits(object_cxr):
    _, out, _ = object_cxr
    m = read_manifest(out)
    rows = {r["study_id"]: r for r in m.rows}
    usable = [f"train/{n}" for n in ofx.TRAIN if n not in ("missing.jpg", "truncated.jpg", "bad_type.jpg",
                                                            "bad_count.jpg")] + [f"dev/{n}" for n in ofx.DEV]
    assert sorted(rows) == sorted(usable)
    assert {s for s, r in rows.items() if r["split"] == "test"} == {f"dev/{n}" for n in ofx.DEV}
    assert len({r["split"] for s, r in rows.items() if s.startswith("train/")} - {"train", "val"}) == 0
    items = _items(out, "object_cxr")
    for study_id, row in rows.items():
        boxes = ofx.BOXES.get(study_id.split("/")[1], [])
        assert row["labels"] == {"support_devices": int(bool(boxes))}
        # stored film: 80 x 60 -> 40 x 30 (scale 0.5); the task's 40 x 40 letterbox pads 5 rows on top
        assert [b[1:] for b in row["boxes"]] == [tuple(v * 0.5 for v in b) for b in boxes]
        np.testing.assert_allclose(items[study_id]["boxes"].numpy().reshape(-1, 4),
                                   np.array([[x1 / 2, y1 / 2 + 5, x2 / 2, y2 / 2 + 5] for x1, y1, x2, y2 in boxes])
                                   .reshape(-1, 4))
        assert items[study_id]["target"].tolist() == [float(bool(boxes))]
    first = items["train/00001.jpg"]["image"][0]
    assert first[15, 10] > 0.5 and first[30, 35] < 0.2  # the film's bright object lines up with its box


def test_object_cxr_unrecognised_raw_dir(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "train.csv").write_text("image_name,annotation\n")
    assert main(["object_cxr", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 2
    assert "nothing recognisable as Object-CXR: missing dev.csv, train, dev" in capsys.readouterr().err

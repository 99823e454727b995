"""data_prep rsna on the miniature RSNA download (data_prep/fixtures/rsna.py), and the real
MONOCHROME1 film of pydicom-data through common.read_image."""
import json

import numpy as np
import pydicom
import pytest

from data_prep.__main__ import main
from data_prep.common import assign_splits, read_image
from data_prep.fixtures import build_fixture
from data_prep.fixtures import rsna as fx
from data_prep.fixtures.files import real_film
from data_prep.rsna import SPLIT_FRACTIONS, SPLIT_SEED
from mgca_lite.data.datasets import TaskDataset
from mgca_lite.data.manifest import read_manifest

SIZE = 32  # stored longer side: the 64 x 64 fixture films are halved
P = fx.PATIENTS


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    raw = build_fixture("rsna", tmp_path_factory.mktemp("raw_rsna"))
    out = tmp_path_factory.mktemp("out") / "rsna"
    assert main(["rsna", "--root", str(raw), "--out", str(out), "--image-size", str(SIZE)]) == 0
    return raw, out


def _row(manifest, name):
    return next(r for r in manifest.rows if r["study_id"] == P[name])


def _item(out, name):
    """The TaskDataset item of fixture patient `name` (rsna task, its split)."""
    row = _row(read_manifest(out), name)
    ds = TaskDataset.from_manifest(out, "rsna", row["split"])
    return ds[[r["study_id"] for r in ds.source.rows].index(P[name])]


def test_real_monochrome1_film_is_inverted():
    path = real_film()
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and (ds.Rows, ds.Columns) == (1955, 1841)
    image = read_image(path)
    raw = ds.pixel_array.astype(np.float64)
    scaled = np.round((raw - raw.min()) / (raw.max() - raw.min()) * 255)
    assert np.abs(image.astype(np.float64) - (255 - scaled)).max() <= 1  # rescaled, then inverted
    # anatomy as a radiologist sees it: aerated lungs dark, the mediastinum bright (measured 141 / 227)
    lungs = np.concatenate([image[300:1000, 300:650].ravel(), image[300:1000, 1150:1550].ravel()]).mean()
    assert lungs < image[500:1500, 800:1000].mean() - 50


def test_summary_counts_and_every_skip_with_its_path(converted):
    raw, out = converted
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "rsna"
    assert sum(summary["records"].values()) == len(fx.USABLE) == 10
    assert summary["records"] == {"train": 7, "val": 2, "test": 1}
    labels, images = raw / "stage_2_train_labels.csv", raw / "stage_2_train_images"
    skipped = summary["skipped"]
    assert [s["path"] for s in skipped] == [f"{labels}:15", f"{labels}:16", str(images / f"{P['truncated']}.dcm"),
                                            str(images / f"{P['missing']}.dcm")]
    assert skipped[0]["reason"] == ("malformed row: Target 1 needs numeric x, y, width, height, got "
                                    f"['5', '5', '', '10']; patient {P['no_width']} left out")
    assert skipped[1]["reason"] == f"malformed row: 2 field(s), the header has 6; patient {P['short_row']} left out"
    assert skipped[2]["reason"].startswith("unreadable image (")
    assert skipped[3]["reason"] == "image file missing"


def test_split_is_by_patient_seeded_over_well_formed_rows(converted):
    _, out = converted
    m = read_manifest(out)
    well_formed = [P[n] for n in (*fx.USABLE, "truncated", "missing")]
    expected = assign_splits(well_formed, SPLIT_FRACTIONS, SPLIT_SEED)
    assert {r["study_id"]: r["split"] for r in m.rows} == {p: expected[p] for p in map(P.get, fx.USABLE)}
    by_split = [{r["patient_id"] for r in m.split(s)} for s in ("train", "val", "test")]
    assert sum(map(len, by_split)) == len(set().union(*by_split)) == 10  # no patient in two splits
    assert P["test_only"] not in {r["patient_id"] for r in m.rows}  # stage_2_test_images is not read


def test_labels_and_boxes_scaled_to_the_stored_image(converted):
    _, out = converted
    m = read_manifest(out)
    assert m.label_columns == ["pneumonia"]
    for name in fx.USABLE:
        assert _row(m, name)["labels"] == {"pneumonia": int(name in fx.BOXES)}
    assert _row(m, "one_box")["boxes"] == [("pneumonia", 5.0, 6.0, 15.0, 14.0)]  # (10, 12, 30, 28) / 2
    assert _row(m, "two_boxes")["boxes"] == [("pneumonia", 4.0, 4.0, 12.0, 14.0), ("pneumonia", 18.0, 5.0, 28.0, 17.0)]
    assert _row(m, "neg1")["boxes"] == [] and _row(m, "neg1")["mask_paths"] == {}
    # the real film: 1955 x 1841 -> 32 x 30, its box (300, 400, 650, 900) scaled by 32 / 1955
    real = _row(m, "real_film")
    stored = read_image(out / real["image_path"])
    assert stored.shape == (32, 30)
    np.testing.assert_allclose(real["boxes"][0][1:], np.array([300, 400, 650, 900]) * 32 / 1955, atol=0.01)
    assert stored[7:15, 5:10].mean() < stored[8:24, 13:16].mean() - 30  # still inverted: lungs dark


def test_task_dataset_gives_targets_and_boxes(converted):
    _, out = converted
    item = _item(out, "two_boxes")
    assert item["target"].tolist() == [1.0]
    assert item["boxes"].tolist() == [[4.0, 4.0, 12.0, 14.0], [18.0, 5.0, 28.0, 17.0]]
    assert item["image"][0, 9, 8] > 0.5 and item["image"][0, 30, 30] < 0.2  # painted box bright, film grey
    assert not item["mask"].any()  # rsna has boxes only; segmentation fills them in itself
    negative = _item(out, "neg2")
    assert negative["target"].tolist() == [0.0] and negative["boxes"].shape == (0, 4)
    real = _item(out, "real_film")  # 32 x 30 letterboxed to 32 x 32: one column of padding on the left
    np.testing.assert_allclose(real["boxes"][0].numpy(), np.array([300, 400, 650, 900]) * 32 / 1955 + [1, 0, 1, 0],
                               atol=0.01)


@pytest.mark.parametrize("make", ["empty", "wrong_header"])
def test_unrecognised_raw_dir_exits_with_a_clear_message(tmp_path, capsys, make):
    raw = tmp_path / "raw"
    (raw / "stage_2_train_images").mkdir(parents=True)
    if make == "wrong_header":
        (raw / "stage_2_train_labels.csv").write_text("patient,box\nabc,1\n")
    code = main(["rsna", "--root", str(raw), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "out").exists()
    if make == "empty":
        assert "nothing recognisable as RSNA Pneumonia" in err and "stage_2_train_labels.csv" in err
    else:
        assert f"{raw / 'stage_2_train_labels.csv'}: not the RSNA Pneumonia label file" in err
        assert "missing column(s) ['patientId', 'x', 'y', 'width', 'height', 'Target']" in err

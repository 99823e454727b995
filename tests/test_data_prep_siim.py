"""SIIM-ACR: the run-length codec (data_prep/rle.py) by hand and by round trip, and data_prep siim
on the miniature download (data_prep/fixtures/siim.py)."""
import json

import numpy as np
import pytest

from data_prep.__main__ import main
from data_prep.common import SkipLog
from data_prep.fixtures import build_fixture
from data_prep.fixtures import siim as fx
from data_prep.fixtures.files import film, write_dicom
from data_prep.rle import rle_decode, rle_encode
from data_prep.siim import patient_of, read_codes
from mgca_lite.data.datasets import TaskDataset
from mgca_lite.data.manifest import read_manifest

SIZE = 32  # stored longer side: the 64 x 64 fixture films are halved
ID = fx.IMAGE_IDS

# 3 rows x 4 columns; numbered down the columns the set pixels are 3, 4, 8, 10, 11
HAND_MASK = np.array([[0, 1, 0, 0],
                      [0, 1, 0, 1],
                      [0, 0, 1, 1]], bool)


def test_hand_computed_relative_column_major_code():
    assert rle_encode(HAND_MASK) == "3 2 3 1 1 2"
    assert np.array_equal(rle_decode("3 2 3 1 1 2", (3, 4)), HAND_MASK)
    with pytest.raises(ValueError, match="past the 12 pixels"):  # absolute starts, read as relative gaps
        rle_decode("3 2 8 1 10 2", (3, 4))
    row_major = np.zeros(12, bool)
    row_major[[1, 5, 7, 10, 11]] = True
    assert np.array_equal(row_major.reshape(3, 4), HAND_MASK)
    assert not np.array_equal(rle_decode("1 1 3 1 1 1 2 2", (3, 4)), HAND_MASK)  # row-major order: wrong
    assert rle_encode(np.zeros((3, 4), bool)) == "-1"


@pytest.mark.parametrize("shape", [(7, 5), (16, 16), (5, 9)])
def test_round_trip(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for density in (0.1, 0.5, 0.9):
        mask = rng.random(shape) < density
        assert np.array_equal(rle_decode(rle_encode(mask), shape), mask)
    full = np.ones(shape, bool)  # one run that ends on the last pixel
    assert rle_encode(full) == f"0 {full.size}" and rle_decode(rle_encode(full), shape).all()


@pytest.mark.parametrize("code, message", [
    ("3 2 3", "needs (gap, length) pairs, got 3 number(s)"),
    ("3 x", "not an integer"),
    ("10 3", "ends at pixel 13, past the 12 pixels of a 3x4 image"),
    ("-1 2", "negative gap or an empty run"),
    ("2 0", "negative gap or an empty run"),
])
def test_malformed_codes_are_refused(code, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rle_decode(code, (3, 4))


def test_csv_whitespace_quirk_and_merged_rows(tmp_path):
    csv = tmp_path / "train-rle.csv"
    csv.write_text("ImageId, EncodedPixels\n a, -1 \nb, 3 2 3 1\nb,  1 2\n\nc\n")
    log = SkipLog()
    codes = read_codes(csv, log)
    assert codes == {"a": (f"{csv}:2", []), "b": (f"{csv}:3", ["3 2 3 1", "1 2"])}
    assert log.skipped == [{"path": f"{csv}:6",
                            "reason": "malformed row: 1 field(s), the header has 2; image c left out"}]


def test_patient_of_reads_the_header_or_gives_none(tmp_path):
    with_id = write_dicom(tmp_path / "a.dcm", film((8, 8), 0), "1.2.3.1", "patient-7")
    without = write_dicom(tmp_path / "b.dcm", film((8, 8), 0), "1.2.3.2", "")
    (tmp_path / "c.dcm").write_bytes(b"not a dicom file")
    assert patient_of(with_id) == "patient-7"
    assert patient_of(without) is None and patient_of(tmp_path / "c.dcm") is None


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    raw = build_fixture("siim", tmp_path_factory.mktemp("raw_siim"))
    out = tmp_path_factory.mktemp("out") / "siim"
    assert main(["siim", "--root", str(raw), "--out", str(out), "--image-size", str(SIZE)]) == 0
    return raw, out


def _film(raw, name):
    return next(raw.rglob(f"{ID[name]}.dcm"))


def test_summary_counts_and_every_skip_with_its_path(converted):
    raw, out = converted
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "siim"
    assert sum(summary["records"].values()) == len(fx.USABLE) == 10
    assert summary["records"] == {"train": 8, "val": 1, "test": 1}
    csv = raw / "train-rle.csv"
    skipped = summary["skipped"]
    assert [s["path"] for s in skipped] == [f"{csv}:15", f"{csv}:14", str(_film(raw, "truncated")),
                                            str(_film(raw, "off_film"))]
    assert skipped[0]["reason"] == ("malformed row: run-length code needs (gap, length) pairs, got 3 number(s); "
                                    f"image {ID['bad_code']} left out")
    assert skipped[1]["reason"] == f"image file missing: no {ID['missing']}.dcm anywhere under {raw}"
    assert skipped[2]["reason"].startswith("unreadable image (")
    assert skipped[3]["reason"] == ("pneumothorax mask: run-length code ends at pixel 4200, past the 4096 pixels "
                                    "of a 64x64 image")


def test_labels_masks_and_patients(converted):
    raw, out = converted
    m = read_manifest(out)
    rows = {r["study_id"]: r for r in m.rows}
    assert set(rows) == {ID[n] for n in fx.USABLE}  # dicom-images-test/ is ignored
    for name in fx.USABLE:
        assert rows[ID[name]]["labels"] == {"pneumothorax": int(name in fx.REGIONS)}  # " -1" is a negative
        assert set(rows[ID[name]]["mask_paths"]) == ({"pneumothorax"} if name in fx.REGIONS else set())
        assert rows[ID[name]]["boxes"] == []
    shared = [rows[ID["shared_a"]], rows[ID["shared_b"]]]
    assert {r["patient_id"] for r in shared} == {fx.SHARED_PATIENT} and shared[0]["split"] == shared[1]["split"]
    by_split = [{r["patient_id"] for r in m.split(s)} for s in ("train", "val", "test")]
    assert sum(map(len, by_split)) == len(set().union(*by_split)) == 9  # 10 images of 9 patients, none in two splits


def _item(out, name):
    row = next(r for r in read_manifest(out).rows if r["study_id"] == ID[name])
    ds = TaskDataset.from_manifest(out, "siim", row["split"])
    return ds[[r["study_id"] for r in ds.source.rows].index(ID[name])]


def test_decoded_masks_land_where_the_fixture_drew_them(converted):
    _, out = converted
    expected = np.zeros((SIZE, SIZE), bool)
    expected[5:10, 10:15] = True  # region x 20..30, y 10..20 of the 64 x 64 film, halved
    one = _item(out, "one_region")
    assert one["target"].tolist() == [1.0] and np.array_equal(one["mask"].numpy(), expected)
    merged = np.zeros((SIZE, SIZE), bool)
    merged[15:23, 2:6] = merged[18:26, 20:28] = True  # the two rows of the image, united
    two = _item(out, "two_regions")
    assert two["target"].tolist() == [1.0] and np.array_equal(two["mask"].numpy(), merged)
    assert two["image"][0, 20, 4] > 0.5 and two["image"][0, 2, 2] < 0.2  # the film's bright regions line up
    negative = _item(out, "neg3")
    assert negative["target"].tolist() == [0.0] and not negative["mask"].any()


def test_unrecognised_raw_dir_exits_with_a_clear_message(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_dicom(raw / "dicom-images-train" / "x.dcm", film((8, 8), 0), "1.2.3", "p")
    assert main(["siim", "--root", str(raw), "--out", str(tmp_path / "out")]) == 2
    assert "nothing recognisable as SIIM-ACR Pneumothorax: missing train-rle.csv" in capsys.readouterr().err
    (raw / "train-rle.csv").write_text("ImageId,Mask\n")
    assert main(["siim", "--root", str(raw), "--out", str(tmp_path / "out")]) == 2
    assert "missing column(s) ['EncodedPixels']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

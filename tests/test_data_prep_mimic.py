"""data_prep mimic_cxr: the section extractor on hand-written MIMIC-style reports, the CLI on the
fixture download (counts, skip reasons, labels, reports), refusal, re-runs, interruption, and a
2-step pretraining run on the result."""

import json

import pytest
import torch

from data_prep import common
from data_prep.__main__ import main
from data_prep.fixtures import build_fixture
from data_prep.fixtures.mimic_cxr import dicom_id
from data_prep.mimic_cxr import study_dir
from data_prep.sections import Sections, extract_sections, report_text
from mgca_lite.data.captions import clean_report
from mgca_lite.data.datasets import PairedDataset
from mgca_lite.data.manifest import read_manifest

SIZE = 32
NONE = dict.fromkeys(("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion", "pneumonia",
                      "pneumothorax", "support_devices"))

# ------------------------------------------------------------------------------ sections
REPORTS = {
    "headers on their own lines": (
        """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old woman with fever.

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  ___.

 FINDINGS:

 No focal consolidation.  Heart size is
 normal.

 IMPRESSION:

 No acute process.
""", Sections("No focal consolidation. Heart size is normal.", "No acute process.")),
    "impression only": (
        " FINAL REPORT\n HISTORY:  Dyspnea.\n\n IMPRESSION:  Mild pulmonary edema.\n",
        Sections("", "Mild pulmonary edema.")),
    "findings and impression": (
        " FINAL REPORT\n FINDINGS AND IMPRESSION:\n Right lower lobe pneumonia.  No effusion.\n",
        Sections("", "Right lower lobe pneumonia. No effusion.")),
    "case and spacing": (
        " INDICATION: Cough.\n   Findings :\n Lungs are clear.\n   impression:\n Normal chest.\n",
        Sections("Lungs are clear.", "Normal chest.")),
    "extra spaces inside a header": (
        " FINDINGS   AND   IMPRESSION :  Small left effusion.\n", Sections("", "Small left effusion.")),
    "conclusion": (
        " FINDINGS:  Left effusion with atelectasis.\n\n CONCLUSION:  Left effusion.\n",
        Sections("Left effusion with atelectasis.", "Left effusion.")),
    "inline capitals": (
        " INDICATION:  Fall.  FINDINGS:  Heart size is normal.  IMPRESSION:  No fracture.\n",
        Sections("Heart size is normal.", "No fracture.")),
    "colon-less header alone on its line": (
        " FINAL REPORT\n IMPRESSION\n Stable cardiomegaly.\n", Sections("", "Stable cardiomegaly.")),
    "dropped sections after the impression": (
        " FINDINGS:  Small right pneumothorax.\n IMPRESSION:  Pneumothorax.\n"
        " NOTIFICATION:  Discussed with Dr. ___ at 10:05.\n RECOMMENDATION(S):  Follow-up film.\n",
        Sections("Small right pneumothorax.", "Pneumothorax.")),
    "a subheading in prose is text": (
        " FINDINGS:\n Lines and tubes: ET tube 4 cm above the carina.\n The findings: unchanged.\n",
        Sections("Lines and tubes: ET tube 4 cm above the carina. The findings: unchanged.", "")),
    "no header: the last paragraph": (
        " FINAL REPORT\n PORTABLE CHEST OF ___\n\n COMPARISON:  ___.\n\n Lungs are clear.  No effusion.\n\n",
        Sections(fallback="Lungs are clear. No effusion.")),
    "no header, nothing but dropped sections": (
        " FINAL REPORT\n INDICATION:  Chest pain.\n\n COMPARISON:  None.\n", Sections()),
}


@pytest.mark.parametrize("name", REPORTS)
def test_sections_of_each_header_variant(name):
    text, expected = REPORTS[name]
    assert extract_sections(text) == expected


def test_report_text_keeps_the_headers_so_that_clean_report_reads_the_impression_first():
    both = report_text(Sections("Heart size is normal.", "No acute process."))
    assert both == "FINDINGS: Heart size is normal.\nIMPRESSION: No acute process."
    assert clean_report(both).text == "no acute process heart size is normal"
    assert report_text(Sections("", "Mild edema.")) == "IMPRESSION: Mild edema."
    assert report_text(Sections("Lungs clear.", "")) == "FINDINGS: Lungs clear."
    assert report_text(Sections(fallback="Lungs are clear.")) == "Lungs are clear."
    assert report_text(Sections()) == ""


# ------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return build_fixture("mimic_cxr", tmp_path_factory.mktemp("mimic") / "raw")


def _convert(raw, out) -> int:
    return main(["mimic_cxr", "--root", str(raw), "--out", str(out), "--image-size", str(SIZE)])


@pytest.fixture(scope="module")
def converted(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("mimic_out") / "out"
    assert _convert(raw, out) == 0
    return out


def _image(raw, subject, study, k):
    return str(study_dir(raw, subject, study) / f"{dicom_id(study, k)}.jpg")


def _report(raw, subject, study):
    return str(study_dir(raw, subject, study).with_suffix(".txt"))


def test_summary_counts_and_every_skip_with_its_reason(raw, converted):
    summary = json.loads((converted / "summary.json").read_text())
    assert set(summary) == {"dataset", "records", "skipped"} and summary["dataset"] == "mimic_cxr"
    assert summary["records"] == {"train": 5, "val": 2, "test": 2}
    skipped = [(s["path"], s["reason"]) for s in summary["skipped"]]
    assert skipped[:3] == [
        (_image(raw, "10000032", "50000001", 1), "not a frontal view (ViewPosition LATERAL)"),
        (_image(raw, "10000764", "50000003", 2), "not a frontal view (ViewPosition LL)"),
        (_image(raw, "10000764", "50000003", 1),
         f"another frontal image of study s50000003 is used ({dicom_id('50000003', 0)}, PA)"),
    ]
    assert skipped[3][0] == _image(raw, "10001176", "50000005", 0)
    assert skipped[3][1].startswith("unreadable image (")
    assert skipped[4:] == [
        (_report(raw, "10001217", "50000006"), "report file missing"),
        (_report(raw, "10001401", "50000007"), "report has fewer than 3 words after cleaning "
                                               "(FINDINGS / IMPRESSION: 'IMPRESSION: Unchanged.')"),
    ]


def test_manifest_rows_reports_labels_and_extra_columns(converted):
    m = read_manifest(converted)
    assert m.meta["complete"] is True and m.label_columns == list(NONE)
    rows = {r["study_id"]: r for r in m.rows}
    assert [r["study_id"] for r in m.split("train")] == ["s50000001", "s50000002", "s50000003", "s50000004",
                                                         "s50000012"]
    assert [r["study_id"] for r in m.split("val")] == ["s50000008", "s50000009"]
    assert [r["study_id"] for r in m.split("test")] == ["s50000010", "s50000011"]
    assert rows["s50000002"]["labels"] == {**NONE, "cardiomegaly": -1, "edema": 1, "pleural_effusion": 1}
    assert rows["s50000003"]["labels"] == {**NONE, "consolidation": 1, "pneumonia": -1, "pneumothorax": 0}
    assert rows["s50000012"]["labels"] == NONE  # no row in the labeller file
    assert (rows["s50000003"]["dicom_id"], rows["s50000003"]["view"]) == (dicom_id("50000003", 0), "PA")
    assert rows["s50000002"]["view"] == "AP" and rows["s50000001"]["patient_id"] == "p10000032"
    assert rows["s50000002"]["report"] == ("IMPRESSION: Compared with the prior study, there is new mild pulmonary "
                                           "edema. Small bilateral pleural effusions are unchanged. The heart may "
                                           "be mildly enlarged.")
    assert rows["s50000004"]["report"] == ("Endotracheal tube terminates 4 cm above the carina. Nasogastric tube "
                                           "courses below the diaphragm. Patchy opacities at the lung bases may "
                                           "represent atelectasis.")
    assert clean_report(rows["s50000011"]["report"]).text == (
        "stable small right pneumothorax after chest tube placement right chest tube in place "
        "small right apical pneumothorax")
    assert (converted / "splits" / "val.txt").read_text() == "s50000008\ns50000009\n"


def test_patients_are_disjoint_across_splits(converted):
    m = read_manifest(converted)
    patients = {s: {r["patient_id"] for r in m.split(s)} for s in ("train", "val", "test")}
    assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]


def test_paired_dataset_reads_the_output(converted):
    ds = PairedDataset.from_manifest(converted, "train")
    assert len(ds) == 5
    item = ds[1]
    assert item["image"].shape == (1, SIZE, SIZE) and item["image"].dtype == torch.float32
    assert item["report"].startswith("IMPRESSION: Compared with the prior study")
    assert item["labels"].tolist() == [0, -1, 0, 1, 1, 0, 0, 0, 0]  # FINDINGS order, unknown = 0
    assert not torch.equal(ds[0]["image"], ds[1]["image"])


def test_refuses_a_foreign_directory_and_touches_nothing(raw, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes\n")
    assert _convert(raw, out) == 2
    assert "refusing to write into it" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "my notes\n"


def test_rerun_into_its_own_output_works(raw, tmp_path):
    out = tmp_path / "out"
    assert _convert(raw, out) == 0
    first = (out / "manifest.csv").read_text()
    assert _convert(raw, out) == 0
    assert (out / "manifest.csv").read_text() == first
    assert json.loads((out / "meta.json").read_text())["complete"] is True


@pytest.mark.parametrize("case", ["empty", "missing", "unrelated"])
def test_unrecognised_root_fails_with_a_clear_message(tmp_path, capsys, case):
    root = tmp_path / "raw"
    if case != "missing":
        root.mkdir()
    if case == "unrelated":
        (root / "files").mkdir()
        (root / "train.csv").write_text("Path\n")
    out = tmp_path / "out"
    assert main(["mimic_cxr", "--root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    if case == "missing":
        assert f"{root}: not a directory" in err
    else:
        assert f"{root} holds nothing recognisable as mimic_cxr: missing " in err
        assert "mimic-cxr-2.0.0-metadata.csv.gz" in err
    assert not out.exists()


def test_a_csv_without_mimic_columns_is_named(raw, tmp_path, capsys):
    import gzip
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    with gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "wt") as fh:
        fh.write("dicom_id,fold\n")
    assert main(["mimic_cxr", "--root", str(root), "--out", str(tmp_path / "out")]) == 2
    assert f"{root / 'mimic-cxr-2.0.0-split.csv.gz'}: missing column(s) ['study_id', 'subject_id', 'split']" \
        in capsys.readouterr().err


def test_an_interrupted_run_leaves_no_manifest(raw, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real, calls = common.read_image, []

    def interrupted(path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(common, "read_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _convert(raw, out)
    assert not (out / "manifest.csv").exists() and not (out / "summary.json").exists()
    assert json.loads((out / "meta.json").read_text())["complete"] is False
    monkeypatch.setattr(common, "read_image", real)
    assert _convert(raw, out) == 0  # the half-written directory is ours: a re-run completes it
    assert read_manifest(out).meta["complete"] is True


def test_pretraining_runs_on_the_output(converted, tmp_path):
    from mgca_lite.cli import main as mgca_main

    run = tmp_path / "run"
    assert mgca_main(["pretrain", "--config", "synth_tiny", "data.source=manifest", f"data.manifest_dir={converted}",
                      f"data.image_size={SIZE}", "train.batch_size=2", "--max-steps", "2",
                      "--output-dir", str(run), "--no-progress"]) == 0
    assert (run / "last.pt").is_file() and (run / "metrics.csv").is_file()

"""MIMIC-CXR-JPG 2.0.0 with its free-text reports -> a manifest of image-report pairs.

RAW_DIR is the download's version folder, with MIMIC-CXR's reports unpacked beside the images:

    mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, ..., ViewPosition, Rows, Columns, ...
    mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split (train / validate / test)
    mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id, the 14 CheXpert observations (1.0 / 0.0 / -1.0 / empty)
    files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg
    files/p10/p10000032/s50414267.txt (the report of study 50414267)

- frontal views only (ViewPosition PA or AP); other views are skipped and listed;
- one image per study: its PA view if it has one, else AP, the lowest dicom_id among equals. The
  reference keeps every frontal image (a user counted 232,282 pairs against about 217k studies'
  worth); we keep one so that a report is never paired with two images: two images of one study
  in a batch would be each other's false negatives in the contrastive loss, with the same text.
  The other frontal images are listed as skipped, with the one used;
- the report: FINDINGS and IMPRESSION (sections.py), stored as "FINDINGS: ...\\nIMPRESSION: ..."
  so that `clean_report` reads the impression first; a study whose report file is missing or
  keeps fewer than MIN_REPORT_WORDS cleaned words is skipped;
- splits: the official ones (validate -> val; MIMIC splits by patient);
- labels: the CheXpert labeller's observations for our FINDINGS (chexpert.OBSERVATIONS), empty
  for a study the labeller file does not list. Extra columns: `dicom_id`, `view`.
"""
from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

from mgca_lite.data.captions import MIN_REPORT_WORDS, clean_report, has_enough_words

from .chexpert import LABEL_COLUMNS, OBSERVATIONS, observation_labels
from .common import DataPrepError, SkipLog, Study, require_files
from .sections import extract_sections, report_text

METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv.gz"
COLUMNS = {METADATA: ("dicom_id", "subject_id", "study_id", "ViewPosition"),
           SPLIT: ("dicom_id", "study_id", "subject_id", "split"),
           CHEXPERT: ("subject_id", "study_id", *OBSERVATIONS)}
FRONTAL = ("PA", "AP")  # in order of preference
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}


def _read_gz_csv(path: Path):
    """Rows of a gzipped CSV as (line number, dict)."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as fh:
        yield from enumerate(csv.DictReader(fh), start=2)


def check_root(root: Path) -> None:
    """Raise DataPrepError unless RAW_DIR has files/ and the three CSVs with MIMIC's columns."""
    root = Path(root)
    require_files(root, "mimic_cxr", "files", *COLUMNS)
    for name, required in COLUMNS.items():
        try:
            with gzip.open(root / name, "rt", newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
        except (OSError, UnicodeDecodeError) as e:
            raise DataPrepError(f"{root / name}: not a gzipped CSV ({e})") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataPrepError(f"{root / name}: missing column(s) {missing}; found {header}")


@dataclass
class _Image:
    dicom_id: str
    view: str
    split: str
    path: Path


def study_dir(root: Path, subject_id: str, study_id: str) -> Path:
    """files/pXX/pXXXXXXXX/sXXXXXXXX: the folder of one study's images (its report is the .txt beside it)."""
    return Path(root) / "files" / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}"


def studies(root: Path, log: SkipLog):
    """-> (iterator of one Study per frontal study with a usable report, number of frontal studies).

    The CSVs are read here (non-frontal images and images missing from the split file are logged
    at once); reports are read as the iterator runs, so the count is an upper bound.
    """
    root = Path(root)
    splits = {row["dicom_id"]: row["split"] for _, row in _read_gz_csv(root / SPLIT)}
    labels: dict[str, dict | str] = {}  # study id -> labels, or why its labeller row is unusable
    for line, row in _read_gz_csv(root / CHEXPERT):
        try:
            labels[row["study_id"]] = observation_labels(row, f"{CHEXPERT} line {line}")
        except ValueError as e:
            labels[row["study_id"]] = str(e)
    by_study: dict[tuple[str, str], list[_Image]] = {}
    for _, row in sorted(_read_gz_csv(root / METADATA), key=lambda lr: (lr[1]["subject_id"], lr[1]["study_id"],
                                                                         lr[1]["dicom_id"])):
        subject, study, dicom, view = row["subject_id"], row["study_id"], row["dicom_id"], row["ViewPosition"]
        path = study_dir(root, subject, study) / f"{dicom}.jpg"
        if view not in FRONTAL:
            log.skip(path, f"not a frontal view (ViewPosition {view or 'empty'})")
        elif splits.get(dicom) not in SPLIT_NAMES:
            log.skip(path, f"split {splits.get(dicom)!r} in {SPLIT}, expected one of {sorted(SPLIT_NAMES)}")
        else:
            by_study.setdefault((subject, study), []).append(_Image(dicom, view, SPLIT_NAMES[splits[dicom]], path))
    return _pairs(root, by_study, labels, log), len(by_study)


def _pairs(root: Path, by_study: dict[tuple[str, str], list[_Image]], labels: dict, log: SkipLog):
    for (subject, study), images in by_study.items():
        report_path = study_dir(root, subject, study).with_suffix(".txt")
        try:
            raw = report_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            log.skip(report_path, "report file missing")
            continue
        report = report_text(extract_sections(raw))
        if not has_enough_words(clean_report(report)):
            log.skip(report_path, f"report has fewer than {MIN_REPORT_WORDS} words after cleaning "
                                  f"(FINDINGS / IMPRESSION: {report[:60]!r})")
            continue
        if isinstance(labels.get(study), str):
            log.skip(report_path, labels[study])
            continue
        used, *others = sorted(images, key=lambda im: (FRONTAL.index(im.view), im.dicom_id))
        for im in others:
            log.skip(im.path, f"another frontal image of study s{study} is used ({used.dicom_id}, {used.view})")
        yield Study(image=used.path, split=used.split, patient_id=f"p{subject}", study_id=f"s{study}",
                    report=report, labels=labels.get(study) or dict.fromkeys(LABEL_COLUMNS),
                    extra={"dicom_id": used.dicom_id, "view": used.view})

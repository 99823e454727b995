"""RSNA Pneumonia Detection Challenge (stage 2 training set) -> manifest.

RAW_DIR, as Kaggle ships it (unpacked):

    stage_2_train_labels.csv     patientId,x,y,width,height,Target   one row per box; a patient
                                 without pneumonia has one row with Target 0 and empty x/y/w/h
    stage_2_train_images/        <patientId>.dcm, 1024 x 1024, one film per patient

(stage_2_test_images/ and stage_2_detailed_class_info.csv carry no boxes and are not read.)

Each patient becomes one record: label column `pneumonia` 1 / 0 and a box
("pneumonia", x, y, x + width, y + height) per Target 1 row, in source pixels (the writer scales
them to the stored image). The rsna task's target is "pneumonia drawn", so the same manifest
serves the linear probe, detection (the boxes) and segmentation (the evaluation fills the boxes in
as the mask, see mgca_lite/evaluation/segmentation.py); no masks are written.

Splits: one patient-level split for all three tasks, 70 / 15 / 15 % (the spec's probe protocol),
drawn by `assign_splits` with SPLIT_SEED over the patients of well-formed rows. MGCA's detection
runs divided the same patients 16,010 / 5,337 / 5,337 (60 / 20 / 20), so split sizes differ from
the paper there; one split keeps the three tasks comparable and rules out a patient sitting in one
task's train and another's test.

A malformed row (a wrong number of fields, a missing or non-numeric box, Target not 0/1, a
patient with both Target 0 and Target 1 rows) leaves out its whole patient, since its boxes would
be incomplete; each such row is reported with its file:line.
"""
from __future__ import annotations

from pathlib import Path

from .common import SkipLog, Study, assign_splits, require_files
from .table import read_header, read_rows

LABELS_CSV = "stage_2_train_labels.csv"
IMAGES_DIR = "stage_2_train_images"
COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
FINDING = "pneumonia"
LABEL_COLUMNS = (FINDING,)
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_SEED = 0


def check_root(root: Path) -> None:
    """DataPrepError unless `root` holds the labels CSV (with RSNA's columns) and the image folder."""
    require_files(root, "RSNA Pneumonia (stage 2)", LABELS_CSV, IMAGES_DIR)
    read_header(root / LABELS_CSV, COLUMNS, "RSNA Pneumonia")


def _box(row: dict[str, str]) -> tuple[float, float, float, float] | None:
    """A row's (x1, y1, x2, y2), or None for a Target 0 row; ValueError saying what is wrong."""
    coords = [row[c] for c in ("x", "y", "width", "height")]
    if row["Target"] == "0":
        if any(coords):
            raise ValueError("Target 0 but a box is given")
        return None
    if row["Target"] != "1":
        raise ValueError(f"Target must be 0 or 1, got {row['Target']!r}")
    try:
        x, y, w, h = (float(v) for v in coords)
    except ValueError:
        raise ValueError(f"Target 1 needs numeric x, y, width, height, got {coords}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"box width and height must be positive, got {w} x {h}")
    return x, y, x + w, y + h


def read_boxes(csv_path: Path, log: SkipLog) -> dict[str, list[tuple[float, float, float, float]]]:
    """patientId -> its boxes ([] for a negative), in file order; patients with a malformed row
    are left out and each such row logged."""
    boxes: dict[str, list] = {}
    negative: set[str] = set()
    bad: set[str] = set()
    for where, row, problem in read_rows(csv_path, COLUMNS, "RSNA Pneumonia"):
        pid = row.get("patientId", "")
        try:
            if problem:
                raise ValueError(problem)
            if not pid:
                raise ValueError("empty patientId")
            box = _box(row)
            if (box is None and boxes.get(pid)) or (box is not None and pid in negative):
                raise ValueError("the patient has both Target 0 and Target 1 rows")
        except ValueError as e:
            log.skip(where, f"malformed row: {e}" + (f"; patient {pid} left out" if pid else ""))
            bad.add(pid)
            continue
        boxes.setdefault(pid, [])
        if box is None:
            negative.add(pid)
        else:
            boxes[pid].append(box)
    return {pid: b for pid, b in boxes.items() if pid not in bad}


def studies(root: Path, log: SkipLog):
    """(iterator of one Study per patient, number of patients); see the module docstring."""
    boxes = read_boxes(root / LABELS_CSV, log)
    split = assign_splits(boxes, SPLIT_FRACTIONS, SPLIT_SEED)

    def generate():
        for pid, patient_boxes in boxes.items():
            yield Study(image=root / IMAGES_DIR / f"{pid}.dcm", split=split[pid], patient_id=pid,
                        study_id=pid, labels={FINDING: int(bool(patient_boxes))},
                        boxes=[(FINDING, *b) for b in patient_boxes])

    return generate(), len(boxes)

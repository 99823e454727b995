"""CheXpert-v1.0 (or CheXpert-v1.0-small) -> a manifest, and the CheXpert 5x200 zero-shot set.

The download unpacks to one folder (RAW_DIR; its parent is accepted too):

    CheXpert-v1.0-small/train.csv   Path, Sex, Age, Frontal/Lateral, AP/PA, then 14 observations
    CheXpert-v1.0-small/valid.csv   the same columns (labelled by radiologists: no uncertain values)
    CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg
    CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg

`Path` is relative to the dataset folder's parent ("CheXpert-v1.0-small/train/..."); its first
part is replaced by RAW_DIR, so a renamed folder still works. Observations are 1.0 / 0.0 / -1.0
(uncertain) / empty (not mentioned) and are stored as they are: `tasks.task_target` applies the
uncertainty policy (U-ones / U-zeros) when a task reads them.

- frontal images only (Frontal/Lateral == "Frontal"); the others are skipped and listed;
- test = the official valid.csv; val = VAL_FRACTION of the train.csv patients, a seeded choice
  from the sorted patient ids (chosen by position, never by label, so no label is favoured);
  train = the other train.csv patients, so no patient is in two splits;
- the CheXpert 5x200 set (GLoRIA / MGCA zero-shot): training images with exactly one of the five
  CHEXPERT5 findings positive (1) and the other four 0 or empty (an uncertain one would make the
  image positive for two classes under U-ones: it is left out), PER_CLASS_5X200 per class
  (fewer when the data has fewer: reported), a seeded choice from the candidates sorted by path.
  They leave the main manifest's train split and form OUT/chexpert5x200/, a second manifest
  (split "test", class index 0..4 in CHEXPERT5 order in `target_chexpert5x200`). They are chosen
  from train.csv like the reference; their patients' other images stay in train.

manifest: study_id is the image ("patient00001_study1_view1_frontal": a study may hold two frontal
images, and the writer names files by study_id); extra column `view` (AP / PA).
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from mgca_lite.data.synth_case import CHEXPERT5, FINDINGS

from .common import DataPrepError, SkipLog, Study, claim_out_dir, print_summary, require_files, write_manifest

# CheXpert labeller observation -> our FINDINGS name (the ones we have; "nodule" has no column).
OBSERVATIONS: dict[str, str] = {
    "Atelectasis": "atelectasis", "Cardiomegaly": "cardiomegaly", "Consolidation": "consolidation",
    "Edema": "edema", "Pleural Effusion": "pleural_effusion", "Pneumonia": "pneumonia",
    "Pneumothorax": "pneumothorax", "Support Devices": "support_devices",
}
LABEL_COLUMNS: tuple[str, ...] = tuple(f for f in FINDINGS if f in OBSERVATIONS.values())
_LABEL_VALUES = {1.0: 1, 0.0: 0, -1.0: -1}

FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")  # what the two downloads unpack to
CSV_COLUMNS = ("Path", "Frontal/Lateral", "AP/PA", *OBSERVATIONS)
VAL_FRACTION = 0.026    # of train.csv's patients (>= 1): ~5,000 of 191,027 frontal films, the paper's val
SPLIT_SEED = 0
SUBSET = "chexpert5x200"
PER_CLASS_5X200 = 200   # GLoRIA's 5x200; tests lower it
SUBSET_SEED = 0


def observation_labels(row: dict, where: str) -> dict[str, int | None]:
    """CheXpert observation cells of one CSV row -> FINDINGS name -> 1 / 0 / -1 / None.

    Raises ValueError naming `where` and the column for a cell that is not 1.0, 0.0, -1.0 or empty.
    """
    out = {}
    for column, finding in OBSERVATIONS.items():
        cell = (row.get(column) or "").strip()
        try:
            out[finding] = None if cell == "" else _LABEL_VALUES[float(cell)]
        except (KeyError, ValueError):
            raise ValueError(f"{where}: column {column!r} is {cell!r}, expected 1.0, 0.0, -1.0 or empty") from None
    return {f: out[f] for f in LABEL_COLUMNS}


def dataset_dir(root: Path) -> Path:
    """The folder holding train.csv: `root` itself or one of FOLDERS inside it."""
    for d in (root, *(root / name for name in FOLDERS)):
        if (d / "train.csv").is_file():
            return d
    return root


def _read_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def check_root(root: Path) -> None:
    """Raise DataPrepError unless RAW_DIR (or a CheXpert folder inside it) has train.csv and
    valid.csv with CheXpert's columns."""
    d = dataset_dir(Path(root))
    require_files(d, "chexpert", "train.csv", "valid.csv")
    for name in ("train.csv", "valid.csv"):
        missing = [c for c in CSV_COLUMNS if c not in _read_header(d / name)]
        if missing:
            raise DataPrepError(f"{d / name}: not a CheXpert label file, missing column(s) {missing}")


def _image_path(d: Path, csv_path: str) -> Path:
    """`Path` cell -> file: its first part is the dataset folder's own name, replaced by `d`."""
    parts = Path(csv_path).parts
    return d.joinpath(*parts[1:]) if parts and parts[0] not in ("train", "valid") else d / csv_path


def _records(d: Path, name: str, log: SkipLog) -> list[tuple[Path, str, str, dict, str]]:
    """Frontal rows of one CSV -> (image, patient id, image key, labels, view); the rest logged."""
    out = []
    with (d / name).open(newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            image = _image_path(d, row["Path"])
            if row["Frontal/Lateral"] != "Frontal":
                log.skip(image, f"not a frontal view (Frontal/Lateral {row['Frontal/Lateral']!r})")
                continue
            parts = Path(row["Path"]).parts
            patient = next((p for p in parts if p.startswith("patient")), None)
            if patient is None or len(parts) < 3:
                log.skip(image, f"{name} line {line}: Path has no patientNNNNN/studyN folders")
                continue
            try:
                labels = observation_labels(row, f"{name} line {line}")
            except ValueError as e:
                log.skip(image, str(e))
                continue
            key = "_".join([*parts[-3:-1], Path(parts[-1]).stem])  # patient00001_study1_view1_frontal
            out.append((image, patient, key, labels, row["AP/PA"]))
    return out


def validation_patients(patients) -> set[str]:
    """VAL_FRACTION (at least one) of the sorted unique patient ids, a seeded choice."""
    unique = sorted(set(patients))
    n_val = max(1, round(VAL_FRACTION * len(unique)))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(unique))
    return {unique[i] for i in order[:n_val]}


def studies(root: Path, log: SkipLog) -> tuple[list[Study], int]:
    """Every frontal image of train.csv (train / val) and valid.csv (test), as Study records."""
    d = dataset_dir(Path(root))
    train, test = _records(d, "train.csv", log), _records(d, "valid.csv", log)
    val_patients = validation_patients(p for _, p, _, _, _ in train)
    out = []
    for records, official in ((train, "train"), (test, "test")):
        for image, patient, key, labels, view in records:
            split = "val" if official == "train" and patient in val_patients else official
            out.append(Study(image=image, split=split, patient_id=patient, study_id=key, labels=labels,
                             extra={"view": view}))
    return out, len(out)


def select_5x200(studies: list[Study], per_class: int) -> list[tuple[Study, int]]:
    """The 5x200 set: (study, class index in CHEXPERT5) for up to `per_class` training studies per
    class labelled 1 for that class and 0 or empty for the other four CHEXPERT5 findings; a seeded
    choice per class from the candidates sorted by image path, listed in path order."""
    candidates: dict[int, list[Study]] = {c: [] for c in range(len(CHEXPERT5))}
    for s in studies:
        values = [s.labels.get(f) for f in CHEXPERT5]
        if s.split == "train" and values.count(1) == 1 and -1 not in values:
            candidates[values.index(1)].append(s)
    chosen = []
    for c, found in candidates.items():
        found.sort(key=lambda s: str(s.image))
        rng = np.random.default_rng([SUBSET_SEED, c])  # one stream per class: counts elsewhere don't move it
        keep = np.sort(rng.choice(len(found), size=min(per_class, len(found)), replace=False))
        chosen += [(found[i], c) for i in keep]
    return sorted(chosen, key=lambda sc: str(sc[0].image))


def write(out: Path, studies: list[Study], log: SkipLog, image_size: int, total: int | None) -> dict:
    """Write OUT (everything but the 5x200 set) and OUT/chexpert5x200; returns OUT's summary.
    (`total` is not needed: the sizes are known once the 5x200 set is taken out.)"""
    studies = list(studies)
    chosen = select_5x200(studies, PER_CLASS_5X200)
    class_counts = {f: sum(c == k for _, c in chosen) for k, f in enumerate(CHEXPERT5)}
    subset_dir = Path(out) / SUBSET
    if chosen:
        claim_out_dir(subset_dir, SUBSET)  # refuse before the long work, like the CLI does for OUT
    taken = {s.study_id for s, _ in chosen}
    main = [s for s in studies if s.study_id not in taken]
    subset_meta = {"per_class": PER_CLASS_5X200, "class_counts": class_counts, "classes": list(CHEXPERT5)}
    summary = write_manifest(out, "chexpert", main, log, LABEL_COLUMNS, image_size, len(main),
                             extra_meta={SUBSET: {"dir": SUBSET, **subset_meta}})
    short = {f: n for f, n in class_counts.items() if n < PER_CLASS_5X200}
    if short:
        print(f"{SUBSET}: fewer than {PER_CLASS_5X200} single-finding training images for "
              + ", ".join(f"{f} ({n})" for f, n in short.items()) + ": all of them are used")
    if chosen:
        rows = [dataclasses.replace(s, split="test", targets={SUBSET: c}) for s, c in chosen]
        subset = write_manifest(subset_dir, SUBSET, rows, SkipLog(), LABEL_COLUMNS, image_size, len(rows),
                                extra_meta=subset_meta)
        print_summary(subset, subset_dir)
    return summary

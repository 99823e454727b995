"""SIIM-ACR Pneumothorax Segmentation (Kaggle, the release with train-rle.csv) -> manifest.

RAW_DIR, as Kaggle ships it (unpacked):

    train-rle.csv          header "ImageId, EncodedPixels" (a space after the comma; values may
                           start with one too): one row per pneumothorax region, "-1" for none
    dicom-images-train/    <study>/<series>/<ImageId>.dcm, 1024 x 1024 (ImageId = SOPInstanceUID)
    dicom-images-test/     unlabelled; its files are simply never looked up

Films are found by file name anywhere under RAW_DIR, so a flattened copy works as well.

Each labelled image becomes one record: label column `pneumothorax` 1 / 0 and, for a positive,
the mask "pneumothorax": every row of the image decoded (Kaggle's relative, column-major
run-length code, see data_prep/rle.py) on the film's own (h, w) and united; a "-1" row adds
nothing. A malformed code leaves out its whole image (its mask would be incomplete), reported
with the file:line; so is a labelled ImageId with no file.

Splits: 70 / 15 / 15 % by patient, drawn by `assign_splits` with SPLIT_SEED. The patient is the
PatientID in each film's header (read without pixel data, a few seconds for the full set); a
film whose header cannot be read counts as its own patient (its image will then be reported as
unreadable anyway).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pydicom

from .common import SkipLog, SkipStudy, Study, assign_splits, require_files
from .rle import parse_rle, rle_decode
from .table import read_header, read_rows

RLE_CSV = "train-rle.csv"
COLUMNS = ("ImageId", "EncodedPixels")
NEGATIVE = "-1"
FINDING = "pneumothorax"
LABEL_COLUMNS = (FINDING,)
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
SPLIT_SEED = 0


def check_root(root: Path) -> None:
    """DataPrepError unless `root` holds train-rle.csv with SIIM's columns."""
    require_files(root, "SIIM-ACR Pneumothorax", RLE_CSV)
    read_header(root / RLE_CSV, COLUMNS, "SIIM-ACR Pneumothorax")


def read_codes(csv_path: Path, log: SkipLog) -> dict[str, tuple[str, list[str]]]:
    """ImageId -> (file:line of its first row, its run-length codes; [] for a negative), in file
    order; images with a malformed row are left out and each such row logged."""
    codes: dict[str, tuple[str, list[str]]] = {}
    bad: set[str] = set()
    for where, row, problem in read_rows(csv_path, COLUMNS, "SIIM-ACR Pneumothorax"):
        image_id, code = row.get("ImageId", ""), row.get("EncodedPixels", "")
        try:
            if problem:
                raise ValueError(problem)
            if not image_id:
                raise ValueError("empty ImageId")
            if code != NEGATIVE:
                parse_rle(code)
        except ValueError as e:
            log.skip(where, f"malformed row: {e}" + (f"; image {image_id} left out" if image_id else ""))
            bad.add(image_id)
            continue
        _, image_codes = codes.setdefault(image_id, (where, []))
        if code != NEGATIVE:
            image_codes.append(code)
    return {image_id: v for image_id, v in codes.items() if image_id not in bad}


def find_films(root: Path) -> dict[str, Path]:
    """File stem (the ImageId) -> path, for every .dcm anywhere under `root` (first in sorted
    order when a name repeats)."""
    films: dict[str, Path] = {}
    for path in sorted(root.rglob("*.dcm")):
        films.setdefault(path.stem, path)
    return films


def patient_of(path: Path) -> str | None:
    """The film's PatientID from its header (no pixel data read), or None when it has none or the
    header cannot be read."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # pydicom raises many types for a broken file; the writer reports it
        return None
    return str(ds.get("PatientID", "")).strip() or None


def united_mask(codes: list[str], shape: tuple[int, int]) -> np.ndarray:
    """bool (h, w): the union of the image's decoded codes; SkipStudy if one runs off the film."""
    mask = np.zeros(shape, bool)
    for code in codes:
        try:
            mask |= rle_decode(code, shape)
        except ValueError as e:
            raise SkipStudy(f"{FINDING} mask: {e}") from None
    return mask


def studies(root: Path, log: SkipLog):
    """(iterator of one Study per labelled image, number of images); see the module docstring."""
    csv_path = root / RLE_CSV
    codes = read_codes(csv_path, log)
    films = find_films(root)
    found = {}
    for image_id, (where, _) in codes.items():
        if image_id in films:
            found[image_id] = films[image_id]
        else:
            log.skip(where, f"image file missing: no {image_id}.dcm anywhere under {root}")
    patients = {image_id: patient_of(path) or image_id for image_id, path in found.items()}
    split = assign_splits(patients.values(), SPLIT_FRACTIONS, SPLIT_SEED)

    def generate():
        for image_id, path in found.items():
            image_codes = codes[image_id][1]
            yield Study(image=path, split=split[patients[image_id]], patient_id=patients[image_id],
                        study_id=image_id, labels={FINDING: int(bool(image_codes))},
                        masks={FINDING: partial(united_mask, image_codes)} if image_codes else {})

    return generate(), len(found)

"""JF Healthcare Object-CXR (MIDL 2020 challenge: foreign objects on chest films) -> manifest.

RAW_DIR, as the challenge ships it (unpacked):

    train.csv, dev.csv     columns image_name, annotation
    train/, dev/           the JPEG films named in each CSV

`annotation` lists the objects of one film, separated by ";", each "TYPE x y x y ..." in the
film's pixels: TYPE 0 a rectangle (two corners), 1 an ellipse (two corners of its bounding box),
2 a polygon (three or more points); an empty annotation means no object. Each object becomes
the box ("support_devices", x1, y1, x2, y2) around its points; label column `support_devices`
is 1 when the film has an object.

Splits: dev -> test (its labels are public, the challenge's test labels never were); val =
VAL_FRACTION of the train films, drawn by `assign_splits` with SPLIT_SEED (the films carry no
patient id, so the split is by film); the other train films are train. A malformed annotation
or row leaves out its film, reported with its file:line.
"""
from __future__ import annotations

from pathlib import Path

from .common import SkipLog, Study, assign_splits, require_files
from .table import read_header, read_rows

CSVS = {"train": "train.csv", "dev": "dev.csv"}
COLUMNS = ("image_name", "annotation")
FINDING = "support_devices"
LABEL_COLUMNS = (FINDING,)
POINTS = {0: (2, 2), 1: (2, 2), 2: (3, None)}  # TYPE -> (fewest, most) points; None = no limit
VAL_FRACTION = 0.2
SPLIT_SEED = 0


def check_root(root: Path) -> None:
    """DataPrepError unless `root` holds train.csv and dev.csv (with Object-CXR's columns) and
    the train/ and dev/ folders."""
    require_files(root, "Object-CXR", *CSVS.values(), *CSVS)
    for name in CSVS.values():
        read_header(root / name, COLUMNS, "Object-CXR")


def parse_annotation(text: str) -> list[tuple[float, float, float, float]]:
    """An annotation -> the (x1, y1, x2, y2) box of each object; ValueError saying what is wrong."""
    boxes = []
    for shape in filter(None, (s.strip() for s in text.split(";"))):
        kind, *values = shape.split()
        try:
            kind, coords = int(kind), [float(v) for v in values]
        except ValueError:
            raise ValueError(f"object {shape[:40]!r} holds something that is not a number") from None
        if kind not in POINTS:
            raise ValueError(f"object type {kind} is not 0 (rectangle), 1 (ellipse) or 2 (polygon)")
        fewest, most = POINTS[kind]
        n = len(coords) // 2
        if len(coords) % 2 or n < fewest or (most is not None and n > most):
            raise ValueError(f"object type {kind} needs {fewest}{'' if most else ' or more'} (x, y) points, "
                             f"got {len(coords)} number(s)")
        xs, ys = coords[0::2], coords[1::2]
        box = (min(xs), min(ys), max(xs), max(ys))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"object {shape[:40]!r} encloses no area")
        boxes.append(box)
    return boxes


def read_objects(csv_path: Path, log: SkipLog) -> dict[str, list[tuple[float, float, float, float]]]:
    """image_name -> its boxes ([] for none), in file order; malformed rows logged and left out."""
    objects: dict[str, list] = {}
    for where, row, problem in read_rows(csv_path, COLUMNS, "Object-CXR"):
        name = row.get("image_name", "")
        try:
            if problem:
                raise ValueError(problem)
            if not name:
                raise ValueError("empty image_name")
            if name in objects:
                raise ValueError(f"{name} is listed twice")
            objects[name] = parse_annotation(row["annotation"])
        except ValueError as e:
            log.skip(where, f"malformed row: {e}")
    return objects


def studies(root: Path, log: SkipLog):
    """(iterator of one Study per film, number of films); see the module docstring."""
    films = {folder: read_objects(root / name, log) for folder, name in CSVS.items()}
    # the third share is empty: test comes only from dev
    val_of = assign_splits(films["train"], (1 - VAL_FRACTION, VAL_FRACTION, 0.0), SPLIT_SEED)

    def generate():
        for folder, objects in films.items():
            for name, boxes in objects.items():
                split = "test" if folder == "dev" else "val" if val_of[name] == "val" else "train"
                yield Study(image=root / folder / name, split=split, patient_id=f"{folder}/{name}",
                            study_id=f"{folder}/{name}", labels={FINDING: int(bool(boxes))},
                            boxes=[(FINDING, *b) for b in boxes])

    return generate(), sum(len(v) for v in films.values())

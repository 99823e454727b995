"""COVIDx CXR (COVID-Net's collection) -> manifest.

RAW_DIR, as the publisher ships it (unpacked):

    train.txt, test.txt    or one versioned pair, e.g. train_COVIDx9A.txt / test_COVIDx9A.txt:
                           one image per line, "patient_id filename class source", single spaces;
                           class normal / pneumonia / COVID-19, in any letter case
    train/, test/          the images named in the lists (PNG / JPEG)

Target: column `target_covidx`, the class index in tasks.COVIDX_CLASSES order: 0 normal,
1 pneumonia, 2 COVID-19. The synthetic task calls its third class "other_pattern"; on COVIDx it
stands for COVID-19 (meta.json `covidx_classes` names the three). There are no label columns;
the class as written and the source are kept in columns `covidx_class` and `source`.

Splits: test = the official test list. val = VAL_FRACTION of the train list's patients, drawn by
`assign_splits` with SPLIT_SEED; the other train patients are train. A malformed line (not four
fields, an unknown class, a file named twice) is skipped and reported with its file:line.
"""
from __future__ import annotations

from pathlib import Path

from .common import DataPrepError, SkipLog, Study, assign_splits, require_files, write_manifest

CLASS_NAMES = ("normal", "pneumonia", "COVID-19")  # index = target_covidx = tasks.COVIDX_CLASSES index
CLASS_INDEX = {name.lower(): i for i, name in enumerate(CLASS_NAMES)}
FIELDS = ("patient_id", "filename", "class", "source")
LABEL_COLUMNS = ()
VAL_FRACTION = 0.2
SPLIT_SEED = 0


def list_file(root: Path, split: str) -> Path:
    """The label list of the official `split` ("train" / "test"): split.txt or the one split_*.txt;
    DataPrepError when there is none or more than one."""
    found = [root / f"{split}.txt"] if (root / f"{split}.txt").is_file() else sorted(root.glob(f"{split}_*.txt"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataPrepError(f"{root}: expected one COVIDx {split} list ({split}.txt or {split}_*.txt, "
                            f"e.g. {split}_COVIDx9A.txt), found {names}"
                            + ("; keep only the version to convert" if found else ""))
    return found[0]


def check_root(root: Path) -> None:
    """DataPrepError unless `root` holds one train and one test list and the train/ and test/ folders."""
    require_files(root, "COVIDx", "train", "test")
    for split in ("train", "test"):
        list_file(root, split)


def read_list(path: Path, log: SkipLog) -> list[dict[str, str]]:
    """The well-formed lines of a COVIDx list as dicts with keys FIELDS, in file order; the others
    logged with their file:line."""
    entries, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where, fields = f"{path}:{number}", line.split()
        if not fields:
            continue
        if len(fields) != len(FIELDS):
            log.skip(where, f"malformed line: {len(fields)} field(s), expected {len(FIELDS)} "
                            f"({' '.join(FIELDS)})")
            continue
        entry = dict(zip(FIELDS, fields))
        if entry["class"].lower() not in CLASS_INDEX:
            log.skip(where, f"malformed line: unknown class {entry['class']!r} "
                            f"(expected one of {', '.join(CLASS_NAMES)})")
            continue
        if entry["filename"] in seen:
            log.skip(where, f"malformed line: {entry['filename']} is already listed at line {seen[entry['filename']]}")
            continue
        seen[entry["filename"]] = number
        entries.append(entry)
    return entries


def studies(root: Path, log: SkipLog):
    """(iterator of one Study per listed image, number of images); see the module docstring."""
    lists = {split: read_list(list_file(root, split), log) for split in ("train", "test")}
    # the third share is empty: test comes only from the official list
    val_of = assign_splits((e["patient_id"] for e in lists["train"]), (1 - VAL_FRACTION, VAL_FRACTION, 0.0),
                           SPLIT_SEED)

    def generate():
        for official, entries in lists.items():
            for e in entries:
                split = "test" if official == "test" else "val" if val_of[e["patient_id"]] == "val" else "train"
                yield Study(image=root / official / e["filename"], split=split, patient_id=e["patient_id"],
                            study_id=e["filename"], targets={"covidx": CLASS_INDEX[e["class"].lower()]},
                            extra={"covidx_class": e["class"], "source": e["source"]})

    return generate(), sum(len(v) for v in lists.values())


def write(out: Path, studies, log: SkipLog, image_size: int, total: int | None) -> dict:
    """write_manifest, with the class names of target_covidx recorded in meta.json."""
    return write_manifest(out, "covidx", studies, log, LABEL_COLUMNS, image_size, total,
                          extra_meta={"covidx_classes": list(CLASS_NAMES)})

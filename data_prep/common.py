"""What every converter shares: read an image, write one manifest directory, report what was skipped.

A converter (one module per dataset) only knows its publisher's layout. It yields `Study` records
and calls `skip(path, reason)` for anything it cannot use; `write_manifest` does the rest:

    studies = mimic_cxr.studies(root, log)          # iterator of Study, log: SkipLog
    write_manifest(out, "mimic_cxr", studies, log, label_columns=FINDINGS, image_size=256)

- images are decoded here (JPEG / PNG with Pillow, DICOM with pydicom, MONOCHROME1 inverted),
  resized so that the longer side is `image_size` (boxes and masks with them), stored as uint8
  PNG under images/ and masks/, then letterboxed once more into the training cache
  (`build_image_cache`);
- an unreadable or truncated image is skipped and logged with its path; the run goes on, and
  fails only when nothing usable is left;
- nothing is ever half-written: manifest.csv appears (by an atomic rename) only after every image
  is on disk, and meta.json says `"complete": true` only then; an OUT_DIR that data_prep did not
  create is never written into.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from mgca_lite.data.datasets import build_image_cache
from mgca_lite.data.manifest import FORMAT, REQUIRED_COLUMNS, VERSION, read_manifest
from mgca_lite.data.tasks import SPLITS

WRITER = "data_prep"  # meta.json "writer": marks a directory this package created


class DataPrepError(RuntimeError):
    """Input that cannot be converted at all (nothing recognisable, nothing usable); the message
    names the directory or file and what is wrong."""


class SkipStudy(Exception):
    """Raised while reading one study: it is skipped and logged with this reason."""


@dataclass
class SkipLog:
    """Every skipped record, with its path and why; shared by a converter and the writer."""

    skipped: list[dict] = field(default_factory=list)

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append({"path": str(path), "reason": reason})


# A mask is given either as an array in the source image's pixels or as a function of the source
# image's (h, w) (SIIM's run-length codes need the image size to decode).
MaskSpec = np.ndarray | Callable[[tuple[int, int]], np.ndarray]


@dataclass
class Study:
    """One image with what the dataset says about it, in the source image's pixel frame.

    image: path of the file as shipped (.jpg / .png / .dcm); boxes: (finding, x1, y1, x2, y2),
    half-open, in source pixels; masks: finding -> MaskSpec; targets: task -> value, written as
    `target_<task>` columns (e.g. COVIDx's class); extra: further columns (e.g. `view`).
    """

    image: Path
    split: str
    patient_id: str
    study_id: str
    report: str = ""
    labels: dict[str, int | None] = field(default_factory=dict)
    boxes: list[tuple] = field(default_factory=list)
    masks: dict[str, MaskSpec] = field(default_factory=dict)
    targets: dict[str, object] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- images
def read_image(path: Path) -> np.ndarray:
    """A radiograph file -> uint8 (H, W), brighter = denser (bone white).

    DICOM: pixel data rescaled to 0..255 over its own range, inverted when PhotometricInterpretation
    is MONOCHROME1 (where 0 is white). Other files: Pillow, 16-bit rescaled. Raises SkipStudy on an
    unreadable or truncated file.
    """
    try:
        if path.suffix.lower() == ".dcm":
            return _read_dicom(path)
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            if im.mode in ("I;16", "I", "I;16B"):
                return _to_uint8(np.asarray(im, np.float32))
            return np.asarray(im.convert("L"))
    except SkipStudy:
        raise
    except FileNotFoundError:
        raise SkipStudy("image file missing") from None
    except Exception as e:  # Pillow / pydicom raise many types for a broken file
        raise SkipStudy(f"unreadable image ({type(e).__name__}: {e})") from None


def _to_uint8(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / max(hi - lo, 1e-6) * 255).round().astype(np.uint8)


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom

    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    if a.ndim != 2:
        raise SkipStudy(f"DICOM pixel data has shape {a.shape}, expected one 2-D image")
    out = _to_uint8(a)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def resize_longer_side(image: np.ndarray, size: int, nearest: bool = False) -> tuple[np.ndarray, float]:
    """(image with its longer side = `size`, the scale applied); uint8 or bool (H, W)."""
    h, w = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) == (h, w):
        return image, 1.0
    is_bool = image.dtype == bool
    pil = Image.fromarray(image.astype(np.uint8) * (255 if is_bool else 1))
    out = np.asarray(pil.resize((nw, nh), Image.NEAREST if nearest or is_bool else Image.BILINEAR))
    return (out > 127 if is_bool else out), scale


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, compress_level=1)


# ----------------------------------------------------------------------------------- out dir
def claim_out_dir(out: Path, dataset: str) -> None:
    """Make `out` ours: create it, or accept an empty one, or one that data_prep wrote for the
    same dataset (its files are replaced). Anything else raises FileExistsError before any work."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        out.mkdir(parents=True, exist_ok=True)
    else:
        meta_path = out / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("writer") != WRITER or meta.get("dataset") != dataset:
            raise FileExistsError(
                f"{out} is not empty and was not written by `python -m data_prep {dataset}` "
                f"(no meta.json with writer={WRITER!r}, dataset={dataset!r}); refusing to write "
                "into it. Choose a new or empty --out directory.")
    (out / "meta.json").write_text(json.dumps(
        {"format": FORMAT, "version": VERSION, "dataset": dataset, "writer": WRITER,
         "label_columns": [], "complete": False}, indent=2) + "\n")
    (out / "manifest.csv").unlink(missing_ok=True)  # a stale manifest must never look complete


def _progress(items: Iterable, desc: str, total: int | None):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit="img", disable=not sys.stderr.isatty() and total is None)


# ------------------------------------------------------------------------------------ writer
def write_manifest(out_dir: str | Path, dataset: str, studies: Iterable[Study], log: SkipLog,
                   label_columns: Iterable[str], image_size: int = 256, total: int | None = None,
                   extra_meta: dict | None = None) -> dict:
    """Convert `studies` into the manifest directory `out_dir`; returns the summary dict
    {"dataset", "records": {split: n}, "skipped": [{"path", "reason"}]} also written to
    summary.json. Call `claim_out_dir` first (the CLI does), so refusal happens before work.

    total: the number of studies, for the progress bar. Raises DataPrepError when no study is usable.
    """
    out = Path(out_dir)
    label_columns = list(label_columns)
    rows: list[dict] = []
    extra_columns: list[str] = []
    for study in _progress(studies, f"data_prep {dataset}", total):
        try:
            row = _write_study(out, study, image_size)
        except SkipStudy as e:
            log.skip(study.image, str(e))
            continue
        for k in row:
            if k not in extra_columns and k not in REQUIRED_COLUMNS and k not in label_columns:
                extra_columns.append(k)
        rows.append(row)
    if not rows:
        raise DataPrepError(f"{dataset}: no usable study was found ({len(log.skipped)} skipped); "
                            "see the skipped records above")
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    _write_csv_atomically(out / "manifest.csv", [*REQUIRED_COLUMNS[:5], *label_columns, *extra_columns,
                                                 *REQUIRED_COLUMNS[5:]], rows)
    splits_dir = out / "splits"
    splits_dir.mkdir(exist_ok=True)
    for s in SPLITS:  # one study id per line, in manifest order
        (splits_dir / f"{s}.txt").write_text("".join(f"{r['study_id']}\n" for r in rows if r["split"] == s))
    meta = {"format": FORMAT, "version": VERSION, "dataset": dataset, "writer": WRITER,
            "label_columns": label_columns, "counts": counts, "image_size": image_size,
            **(extra_meta or {}), "complete": False}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    read_manifest(out)  # the loaders' own validation: what we wrote, they read
    build_image_cache(out, image_size)
    meta["complete"] = True
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    summary = {"dataset": dataset, "records": counts, "skipped": log.skipped}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_study(out: Path, s: Study, image_size: int) -> dict:
    """Decode, resize and store one study's image and masks; -> its manifest row."""
    if s.split not in SPLITS:
        raise SkipStudy(f"split {s.split!r} is not one of {SPLITS}")
    source = read_image(Path(s.image))
    image, scale = resize_longer_side(source, image_size)
    name = _safe_name(s.study_id)
    image_path = f"images/{s.split}/{name}.png"
    _save_png(out / image_path, image)
    mask_paths = {}
    for finding, spec in s.masks.items():
        mask = spec(source.shape) if callable(spec) else np.asarray(spec)
        if mask.shape != source.shape:
            raise SkipStudy(f"{finding} mask has shape {mask.shape}, the image {source.shape}")
        mask_paths[finding] = f"masks/{s.split}/{name}_{finding}.png"
        resized, _ = resize_longer_side(mask.astype(bool), image_size, nearest=True)
        _save_png(out / mask_paths[finding], resized.astype(np.uint8) * 255)
    boxes = [[f, *(round(float(v) * scale, 2) for v in xyxy)] for f, *xyxy in s.boxes]
    row = {"image_path": image_path, "report": s.report, "split": s.split, "patient_id": s.patient_id,
           "study_id": s.study_id, "mask_paths": json.dumps(mask_paths), "boxes": json.dumps(boxes)}
    row.update({f: ("" if v is None else int(v)) for f, v in s.labels.items()})
    row.update({f"target_{task}": v for task, v in s.targets.items()})
    row.update(s.extra)
    return row


def _safe_name(study_id: str) -> str:
    """A file name from a study id: anything but letters, digits, "-" and "_" becomes "_" (so an
    id that is itself a file name, "p01.png", is stored as "p01_png.png")."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in study_id)


def _write_csv_atomically(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def print_summary(summary: dict, out: Path, file=None) -> None:
    """The per-split counts and every skipped record, as the CLI prints them."""
    counts = ", ".join(f"{s} {n}" for s, n in summary["records"].items())
    print(f"{summary['dataset']}: wrote {sum(summary['records'].values())} records to {out} ({counts})", file=file)
    print(f"skipped {len(summary['skipped'])} record(s)" + (":" if summary["skipped"] else ""), file=file)
    for item in summary["skipped"]:
        print(f"  {item['path']}: {item['reason']}", file=file)


def assign_splits(ids: Iterable[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, str]:
    """id -> "train" / "val" / "test" for a dataset without official splits: the sorted unique
    ids, permuted by a seeded generator, cut at `fractions`. Deterministic for a given id set and
    seed; split by patient (pass patient ids) so no patient is in two splits."""
    unique = sorted(set(ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    cut_train = round(fractions[0] * len(unique))
    # each share rounded on its own; with no test share, validation takes the rest
    cut_val = len(unique) if fractions[2] == 0 else min(len(unique), cut_train + round(fractions[1] * len(unique)))
    out = {}
    for rank, i in enumerate(order):
        out[unique[i]] = "train" if rank < cut_train else "val" if rank < cut_val else "test"
    return out


def require_files(root: Path, dataset: str, *names: str) -> None:
    """Raise DataPrepError unless every name exists under `root` (what the publisher ships)."""
    if not root.is_dir():
        raise DataPrepError(f"{root}: not a directory (--root must be the unpacked {dataset} download)")
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DataPrepError(f"{root} holds nothing recognisable as {dataset}: missing {', '.join(missing)} "
                            "(see DATA.md for the layout the publisher ships)")

"""The on-disk manifest: one format for SynthCXR exports and for real datasets (data_prep/).

A manifest is a directory:

    <dir>/meta.json       {"format": "mgca-lite-manifest", "version": 1, "dataset": "synthcxr",
                           "label_columns": [...], "counts": {"train": n, ...}, "writer": ...}
    <dir>/manifest.csv    one row per image (columns below)
    <dir>/images/...      the images (PNG, or anything Pillow reads; data_prep may convert DICOM)
    <dir>/masks/...       optional binary masks as PNG (0 / 255)

manifest.csv columns (UTF-8, comma separated, header row; extra columns are kept):

| column          | meaning                                                                     |
|-----------------|-----------------------------------------------------------------------------|
| `image_path`    | path of the image, relative to the manifest directory                       |
| `report`        | report text ("" when the dataset has none)                                  |
| `split`         | `train`, `val` or `test`                                                    |
| `patient_id`    | patient identifier (splits must not share patients)                         |
| `study_id`      | study identifier                                                            |
| one per label   | every name in meta.json `label_columns`: `1`, `0`, `-1` (uncertain), or empty (unknown) |
| `mask_paths`    | JSON object finding -> mask path relative to the directory, e.g. {"pneumothorax": "masks/x.png"}; `{}` if none |
| `boxes`         | JSON list of [finding, x1, y1, x2, y2] in pixels of the stored image (half-open); `[]` if none |
| `target_<task>` | optional: a task target given by the dataset itself (e.g. COVIDx class) |

`read_manifest` checks all of this and raises `ManifestError` naming the file, the row and what is
wrong. `export_synth` writes SynthCXR in this format and refuses to overwrite a non-empty
directory that it did not write itself.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .synth import FINDINGS, make_sample
from .synth_case import SynthConfig
from .tasks import SPLITS, get_task, split_size, task_split

FORMAT, VERSION = "mgca-lite-manifest", 1
REQUIRED_COLUMNS: tuple[str, ...] = ("image_path", "report", "split", "patient_id", "study_id",
                                     "mask_paths", "boxes")
_SYNTH_WRITER = "mgca_lite.data.manifest.export_synth"


class ManifestError(ValueError):
    """A manifest that does not follow the format; the message names the file and the problem."""


@dataclass
class Manifest:
    """A validated manifest. rows: dicts with parsed `labels` (finding -> int | None),
    `mask_paths` (dict), `boxes` (list of (finding, x1, y1, x2, y2)) and all raw columns."""

    root: Path
    meta: dict
    rows: list[dict] = field(default_factory=list)

    @property
    def label_columns(self) -> list[str]:
        return list(self.meta["label_columns"])

    def split(self, split: str) -> list[dict]:
        """Rows of one split, in file order."""
        return [r for r in self.rows if r["split"] == split]


def _parse_label(value: str, where: str) -> int | None:
    value = value.strip()
    if value == "":
        return None
    try:
        v = int(float(value))
    except ValueError:
        v = None
    if v not in (1, 0, -1):
        raise ManifestError(f"{where}: label must be 1, 0, -1 or empty, got {value!r}")
    return v


def _parse_json(value: str, kind: type, where: str):
    try:
        out = json.loads(value) if value.strip() else kind()
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e.msg}): {value[:60]!r}") from None
    if not isinstance(out, kind):
        raise ManifestError(f"{where}: expected a JSON {kind.__name__}, got {value[:60]!r}")
    return out


def read_manifest(path: str | Path, check_files: bool = True) -> Manifest:
    """Read and validate the manifest directory `path` (or its manifest.csv).

    check_files: also check that every image and mask file exists (stat only, no decoding).
    Raises ManifestError with the offending file, row and column.
    """
    root = Path(path)
    if root.name == "manifest.csv":
        root = root.parent
    meta_path, csv_path = root / "meta.json", root / "manifest.csv"
    for p in (meta_path, csv_path):
        if not p.is_file():
            raise ManifestError(f"{p}: missing (a manifest directory needs meta.json and manifest.csv)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(f"{meta_path}: not valid JSON ({e.msg})") from None
    if meta.get("format") != FORMAT:
        raise ManifestError(f"{meta_path}: 'format' must be {FORMAT!r}, got {meta.get('format')!r}")
    if not isinstance(meta.get("label_columns"), list):
        raise ManifestError(f"{meta_path}: 'label_columns' must be a list of column names")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in (*REQUIRED_COLUMNS, *meta["label_columns"]) if c not in header]
        if missing:
            raise ManifestError(f"{csv_path}: missing column(s) {missing}; found {header}")
        rows = []
        for i, raw in enumerate(reader, start=2):  # line numbers as an editor shows them
            where = f"{csv_path}, line {i}"
            if raw["split"] not in SPLITS:
                raise ManifestError(f"{where}: split must be one of {SPLITS}, got {raw['split']!r}")
            row = dict(raw)
            row["labels"] = {c: _parse_label(raw[c] or "", f"{where}, column {c!r}")
                             for c in meta["label_columns"]}
            row["mask_paths"] = _parse_json(raw["mask_paths"] or "", dict, f"{where}, column 'mask_paths'")
            boxes = _parse_json(raw["boxes"] or "", list, f"{where}, column 'boxes'")
            for b in boxes:
                if not (isinstance(b, list) and len(b) == 5 and isinstance(b[0], str)):
                    raise ManifestError(f"{where}, column 'boxes': each box must be "
                                        f"[finding, x1, y1, x2, y2], got {b!r}")
            row["boxes"] = [(b[0], *(float(v) for v in b[1:])) for b in boxes]
            if check_files:
                for rel in [raw["image_path"], *row["mask_paths"].values()]:
                    if not (root / rel).is_file():
                        raise ManifestError(f"{where}: file not found: {root / rel}")
            rows.append(row)
    return Manifest(root=root, meta=meta, rows=rows)


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, optimize=False, compress_level=1)


def _claim_directory(out: Path) -> None:
    """Make `out` ready for writing; refuse a non-empty directory that export_synth didn't write."""
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    meta_path = out / "meta.json"
    try:
        ours = json.loads(meta_path.read_text()).get("writer") == _SYNTH_WRITER
    except (OSError, json.JSONDecodeError):
        ours = False
    if not ours:
        raise FileExistsError(
            f"{out} is not empty and was not written by export_synth (no meta.json with "
            f"writer={_SYNTH_WRITER!r}); refusing to overwrite it. Choose a new directory.")
    try:  # remove only what our previous export wrote
        old = read_manifest(out, check_files=False)
        for r in old.rows:
            for rel in [r["image_path"], *r["mask_paths"].values()]:
                (out / rel).unlink(missing_ok=True)
    except ManifestError:
        pass
    (out / "manifest.csv").unlink(missing_ok=True)
    meta_path.unlink()


def export_synth(out_dir: str | Path, task: str = "pretrain",
                 n_per_split: int | dict[str, int] | None = None, image_size: int = 128,
                 seed: int = 0, config: SynthConfig | None = None) -> Path:
    """Write SynthCXR samples of `task` as a manifest directory; returns its path.

    n_per_split: None = the task's default sizes; an int = that many per split; a dict
    split -> n (splits left out are not written). Images: images/<split>/<index>.png (uint8,
    image_size^2); masks: masks/<split>/<index>_<finding>.png. Re-exporting into a directory
    written by export_synth replaces it; any other non-empty directory raises FileExistsError.
    """
    get_task(task)
    out = Path(out_dir)
    _claim_directory(out)
    if n_per_split is None:
        sizes = {s: split_size(task, s) for s in SPLITS}
    elif isinstance(n_per_split, int):
        sizes = {s: n_per_split for s in SPLITS}
    else:
        sizes = dict(n_per_split)
    meta = {"format": FORMAT, "version": VERSION, "dataset": "synthcxr", "task": task,
            "label_columns": list(FINDINGS), "counts": sizes, "image_size": image_size,
            "seed": seed, "writer": _SYNTH_WRITER, "complete": False}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")  # claims the directory
    columns = [*REQUIRED_COLUMNS[:5], *FINDINGS, "view", "mask_paths", "boxes"]
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for split, n in sizes.items():
            for index in task_split(task, split, sizes={split: n}):
                s = make_sample(int(index), seed=seed, image_size=image_size, config=config)
                name = f"{int(index):07d}"
                image_path = f"images/{split}/{name}.png"
                _png(out / image_path, s.image)
                mask_paths = {}
                for f, m in s.masks.items():
                    mask_paths[f] = f"masks/{split}/{name}_{f}.png"
                    _png(out / mask_paths[f], (m * 255).astype(np.uint8))
                writer.writerow({
                    "image_path": image_path, "report": s.report, "split": split,
                    "patient_id": f"synth-{seed}-{int(index)}", "study_id": f"s{seed}-{int(index)}",
                    **{f: s.labels[f] for f in FINDINGS}, "view": s.view,
                    "mask_paths": json.dumps(mask_paths),
                    "boxes": json.dumps([list(b) for b in s.boxes]),
                })
    meta["complete"] = True
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out

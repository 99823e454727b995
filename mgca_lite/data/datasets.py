"""torch Datasets over SynthCXR (rendered on the fly) or a manifest directory — one loader for both.

    ds = PairedDataset.synth(split="train", image_size=128)          # MIMIC-like pairs
    ds = PairedDataset.from_manifest("data/mimic_manifest", "train")  # same items from disk
    ds = TaskDataset.synth("chexpert5", "train", fraction=0.01)       # 1 % label subset

A *source* turns a position into a record (uint8 image, report, labels, masks, boxes); the
datasets turn records into tensors. `SynthSource` renders with `make_sample`; `ManifestSource`
reads PNGs, or a pre-resized uint8 cache built once by `build_image_cache` so that epochs never
decode full-size images.

PairedDataset item:  image float32 (1, H, W) normalised; report str; labels float32 (F,) with
                     1 / 0 / -1 in FINDINGS order (unknown = 0); index int.
TaskDataset item:    image; target (see tasks.task_target); mask bool (H, W) of the task's finding
                     (all False when absent or when the task has no dense target); boxes float32
                     (N, 4) x1 y1 x2 y2 of that finding; index int.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .manifest import Manifest, read_manifest
from .synth import FINDINGS, make_sample
from .synth_case import SynthConfig
from .tasks import get_task, study_subset, task_split, task_target
from .transforms import ImageTransform, TransformConfig, letterbox, letterbox_geometry


class SynthSource:
    """Records rendered on the fly: position i -> make_sample(indices[i], seed, image_size)."""

    def __init__(self, indices: np.ndarray, seed: int = 0, image_size: int = 128,
                 config: SynthConfig | None = None):
        self.indices, self.seed, self.image_size, self.config = indices, seed, image_size, config

    def __len__(self) -> int:
        return len(self.indices)

    def record(self, i: int, mask_findings: tuple[str, ...] = ()) -> dict:
        s = make_sample(int(self.indices[i]), self.seed, self.image_size, self.config)
        return {"image": s.image, "report": s.report, "labels": s.labels, "index": s.index,
                "masks": s.masks, "boxes": s.boxes, "drawn": set(s.masks), "targets": {}}


def cache_paths(manifest_dir: str | Path, size: int) -> tuple[Path, Path]:
    """Where the uint8 image cache of a manifest at `size` lives: (array .npy, index .json)."""
    root = Path(manifest_dir) / "cache"
    return root / f"images_{size}.npy", root / f"images_{size}.json"


def build_image_cache(manifest_dir: str | Path, size: int = 256) -> Path:
    """Letterbox every manifest image to (size, size) uint8 once; returns the .npy path.

    The array is (N, size, size) in manifest row order, opened later as a read-only memmap; the
    .json beside it records each image's path and original (h, w) so that masks and boxes can
    be mapped into the cached geometry.
    """
    m = read_manifest(manifest_dir)
    npy, index = cache_paths(manifest_dir, size)
    npy.parent.mkdir(parents=True, exist_ok=True)
    arr = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(len(m.rows), size, size))
    shapes = []
    for k, row in enumerate(m.rows):
        img = _read_gray(m.root / row["image_path"])
        shapes.append(img.shape)
        arr[k] = letterbox(img, size)
    arr.flush()
    del arr
    index.write_text(json.dumps({"size": size, "image_paths": [r["image_path"] for r in m.rows],
                                 "shapes": shapes}))
    return npy


def _read_gray(path: Path) -> np.ndarray:
    """Any Pillow-readable image -> uint8 (H, W) (16-bit images are rescaled)."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I"):
            a = np.asarray(im, np.float32)
            a = (a - a.min()) / max(1.0, float(a.max() - a.min())) * 255
            return a.astype(np.uint8)
        return np.asarray(im.convert("L"))


class ManifestSource:
    """Records read from a manifest split; uses the image cache at `cache_size` if it exists."""

    def __init__(self, manifest: Manifest, split: str, cache_size: int | None = None):
        self.root = manifest.root
        self.rows = manifest.split(split)
        self.positions = [i for i, r in enumerate(manifest.rows) if r["split"] == split]
        self.cache = None
        npy, index = cache_paths(self.root, cache_size or 0)
        if cache_size and npy.is_file() and index.is_file():
            info = json.loads(index.read_text())
            if info["image_paths"] == [r["image_path"] for r in manifest.rows]:
                self.cache, self.cache_size = np.load(npy, mmap_mode="r"), cache_size
                self.shapes = info["shapes"]

    def __len__(self) -> int:
        return len(self.rows)

    def record(self, i: int, mask_findings: tuple[str, ...] = ()) -> dict:
        row, pos = self.rows[i], self.positions[i]
        masks = {f: _read_gray(self.root / row["mask_paths"][f]) > 127
                 for f in mask_findings if f in row["mask_paths"]}
        boxes = row["boxes"]
        if self.cache is not None:  # bring masks and boxes into the cached (letterboxed) frame
            image = np.asarray(self.cache[pos])
            scale, _, _, top, left = letterbox_geometry(*self.shapes[pos], self.cache_size)
            masks = {f: letterbox(m, self.cache_size, nearest=True) for f, m in masks.items()}
            boxes = [(f, x1 * scale + left, y1 * scale + top, x2 * scale + left, y2 * scale + top)
                     for f, x1, y1, x2, y2 in boxes]
        else:
            image = _read_gray(self.root / row["image_path"])
        drawn = set(row["mask_paths"]) | {b[0] for b in row["boxes"]}
        targets = {k[len("target_"):]: v for k, v in row.items() if k.startswith("target_")}
        return {"image": image, "report": row["report"], "labels": row["labels"], "index": pos,
                "masks": masks, "boxes": boxes, "drawn": drawn, "targets": targets}

    @property
    def study_ids(self) -> list[str]:
        """The rows' study_id, in row order (what label subsets are keyed on)."""
        return [r["study_id"] for r in self.rows]

    def subset(self, task: str, fraction: float, subset_seed: int = 0) -> None:
        """Keep a fixed, nested `fraction` of the rows (tasks.study_subset: keyed on study_id)."""
        self._keep(study_subset(self.study_ids, task, fraction, subset_seed))

    def head(self, n: int) -> None:
        """Keep the first n rows, in file order (--smoke's small splits of a large manifest)."""
        self._keep(range(min(n, len(self.rows))))

    def _keep(self, keep) -> None:
        self.rows = [self.rows[i] for i in keep]
        self.positions = [self.positions[i] for i in keep]


def _default_transform(size: int, split: str) -> ImageTransform:
    return ImageTransform(TransformConfig(resize=size), train=split == "train")


class PairedDataset(Dataset):
    """Image-report pairs for pretraining (see the module docstring for the item)."""

    def __init__(self, source, transform: ImageTransform | None = None):
        self.source = source
        self.transform = transform or ImageTransform()

    @classmethod
    def synth(cls, split: str = "train", image_size: int = 128, seed: int = 0, n: int | None = None,
              fraction: float = 1.0, task: str = "pretrain", transform: ImageTransform | None = None,
              config: SynthConfig | None = None) -> "PairedDataset":
        """SynthCXR pairs of `task`'s split (n overrides the split size)."""
        sizes = {split: n} if n is not None else None
        idx = task_split(task, split, fraction, sizes=sizes)
        return cls(SynthSource(idx, seed, image_size, config),
                   transform or _default_transform(image_size, split))

    @classmethod
    def from_manifest(cls, path: str | Path, split: str = "train",
                      transform: ImageTransform | None = None) -> "PairedDataset":
        """Pairs from a manifest directory; uses build_image_cache's output at the transform's
        resize size when present."""
        m = read_manifest(path)
        transform = transform or _default_transform(int(m.meta.get("image_size", 256)), split)
        return cls(ManifestSource(m, split, transform.cfg.resize), transform)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        r = self.source.record(i)
        image, _, _ = self.transform(r["image"])
        labels = torch.tensor([r["labels"].get(f) or 0 for f in FINDINGS], dtype=torch.float32)
        return {"image": image, "report": r["report"], "labels": labels, "index": int(r["index"])}


class TaskDataset(Dataset):
    """A downstream task (chexpert5, rsna, covidx, siim, object_cxr; see tasks.py)."""

    def __init__(self, source, task: str, transform: ImageTransform | None = None):
        self.source, self.task, self.spec = source, task, get_task(task)
        self.transform = transform or ImageTransform()

    @classmethod
    def synth(cls, task: str, split: str = "train", fraction: float = 1.0, image_size: int = 128,
              seed: int = 0, sizes: dict[str, int] | None = None,
              transform: ImageTransform | None = None,
              config: SynthConfig | None = None) -> "TaskDataset":
        idx = task_split(task, split, fraction, sizes=sizes)
        return cls(SynthSource(idx, seed, image_size, config), task,
                   transform or _default_transform(image_size, split))

    @classmethod
    def from_manifest(cls, path: str | Path, task: str, split: str = "train", fraction: float = 1.0,
                      transform: ImageTransform | None = None) -> "TaskDataset":
        m = read_manifest(path)
        transform = transform or _default_transform(int(m.meta.get("image_size", 256)), split)
        source = ManifestSource(m, split, transform.cfg.resize)
        source.subset(task, fraction)
        return cls(source, task, transform)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict:
        f = self.spec.finding
        r = self.source.record(i, mask_findings=(f,) if f else ())
        h, w = r["image"].shape
        mask = r["masks"].get(f, np.zeros((h, w), bool)) if f else np.zeros((h, w), bool)
        boxes = np.array([b[1:] for b in r["boxes"] if b[0] == f], np.float32).reshape(-1, 4)
        image, mask, boxes = self.transform(r["image"], mask, boxes)
        target = task_target(self.task, r["labels"], r["drawn"], r["targets"].get(self.task))
        return {"image": image, "target": torch.from_numpy(target), "mask": mask, "boxes": boxes,
                "index": int(r["index"])}

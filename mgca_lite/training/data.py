"""Pretraining datasets from a `DataConfig`: SynthCXR rendered once into memory
(`data.memory.MemorySource`), or a manifest read through its pre-resized uint8 image cache."""
from __future__ import annotations

from pathlib import Path

from mgca_lite.data.datasets import PairedDataset, SynthSource, build_image_cache, cache_paths
from mgca_lite.data.memory import MemorySource
from mgca_lite.data.tasks import task_split
from mgca_lite.data.transforms import ImageTransform, TransformConfig
from mgca_lite.training.config import DataConfig
from mgca_lite.training.ddp import barrier


def _transform(cfg: DataConfig, train: bool) -> ImageTransform:
    return ImageTransform(TransformConfig(resize=cfg.image_size, crop=cfg.crop_size), train=train)


def synth_pretrain_split(cfg: DataConfig, split: str, progress: bool = True) -> PairedDataset:
    """SynthCXR pairs of the pretraining `split` ("train" or "val"), rendered once into memory."""
    size = cfg.train_size if split == "train" else cfg.val_size
    indices = task_split("pretrain", split, sizes={split: size} if size else None)
    source = MemorySource(SynthSource(indices, cfg.seed, cfg.image_size), desc=f"SynthCXR {split}",
                          progress=progress)
    return PairedDataset(source, _transform(cfg, train=split == "train"))


def build_pretrain_datasets(cfg: DataConfig, progress: bool = True, is_main: bool = True):
    """-> (train PairedDataset, val PairedDataset) for `cfg.source` ("synth" or "manifest")."""
    if cfg.source == "synth":
        return tuple(synth_pretrain_split(cfg, split, progress and is_main) for split in ("train", "val"))
    if cfg.source == "manifest":
        if not cfg.manifest_dir:
            raise ValueError("data.source=manifest needs data.manifest_dir=<directory holding manifest.csv>")
        root = Path(cfg.manifest_dir)
        npy, _ = cache_paths(root, cfg.image_size)
        if not npy.is_file() and is_main:
            print(f"building the {cfg.image_size}px uint8 image cache under {npy.parent} (once)")
            build_image_cache(root, cfg.image_size)
        barrier()
        return (PairedDataset.from_manifest(root, "train", _transform(cfg, train=True)),
                PairedDataset.from_manifest(root, "val", _transform(cfg, train=False)))
    raise ValueError(f"data.source must be 'synth' or 'manifest', not {cfg.source!r}")

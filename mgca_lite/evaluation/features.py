"""Frozen features for probes: a pretrained encoder, a random one with recalibrated BatchNorm, raw pixels.

The feasibility run behind SynthCXR showed why all three belong in every table: a randomly
initialised CNN can score *below* a probe on raw pixels, so "MGCA beats random init" alone can
flatter pretraining. Random-init BatchNorm layers hold running statistics of 0/1 that do not match
the data; `recalibrate_batchnorm` re-estimates them (no weights change) so the random baseline is fair.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mgca_lite.data.collate import collate_task


def _loader(dataset, batch_size: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_task)


@torch.no_grad()
def extract_features(encode, dataset, batch_size: int = 256, device: str | torch.device = "cpu"):
    """Run `encode(images (B, 1, H, W)) -> (B, C)` over a TaskDataset.

    Returns (features float32 (N, C), targets (N, ...)) in dataset order.
    """
    feats, targets = [], []
    for batch in _loader(dataset, batch_size):
        feats.append(encode(batch["images"].to(device)).float().cpu())
        targets.append(batch["targets"])
    return torch.cat(feats), torch.cat(targets)


@torch.no_grad()
def recalibrate_batchnorm(encoder: nn.Module, dataset, batches: int = 20, batch_size: int = 128,
                          device: str | torch.device = "cpu") -> nn.Module:
    """Re-estimate every BatchNorm's running mean/var on `dataset` (cumulative average), then eval()."""
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None = cumulative moving average over the batches seen
    encoder.train()
    for i, batch in enumerate(_loader(dataset, batch_size)):
        if i >= batches:
            break
        encoder(batch["images"].to(device))
    return encoder.eval()


def raw_pixels(images: torch.Tensor, side: int = 16) -> torch.Tensor:
    """The pixel baseline: images (B, 1, H, W) area-downsampled to side x side -> (B, side*side).

    Fed the images the encoders see (the pretraining input resolution), so it reads the same pixels.
    """
    return F.adaptive_avg_pool2d(images, side).flatten(1)

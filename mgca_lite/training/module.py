"""The model and the loss in one `nn.Module`, so DDP synchronises encoders, heads and prototypes alike."""
from __future__ import annotations

import torch
from torch import nn

from mgca_lite.losses.mgca_loss import MGCALoss
from mgca_lite.models.mgca import MGCAModel


class PretrainModule(nn.Module):
    """`forward(batch) -> dict` of the loss terms and retrieval accuracy (see `MGCALoss`)."""

    def __init__(self, model: MGCAModel, criterion: MGCALoss):
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                step: int | None = None) -> dict:
        """images (B, 1, H, W), input_ids / attention_mask (B, L) -> {"loss", "ita", "cta", "cpa", "top1", "top5"};
        step: the training step, for loss-weight warm-ups (None: full weights, as in validation)."""
        out = self.model(images, input_ids, attention_mask)
        return self.criterion(out, step)

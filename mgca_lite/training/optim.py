"""AdamW with decay only where it belongs, and the reference's warm-up + cosine schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

from mgca_lite.training.config import OptimConfig


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into decayed weights and undecayed norms/biases.

    Norm scales and biases are 1-D; decaying them pulls activations towards zero for no benefit
    (the reference decays everything; we follow common practice and the issue).
    """
    decay, no_decay = [], []
    for _, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, peak: float, floor: float) -> float:
    """Learning rate at `step` divided by `peak`: linear floor -> peak, then cosine peak -> floor."""
    if warmup_steps > 0 and step < warmup_steps:
        lr = floor + (peak - floor) * step / warmup_steps
    else:
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        lr = floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
    return lr / peak


def build_optimizer(module: nn.Module, cfg: OptimConfig, total_steps: int):
    """AdamW over `module`'s parameters and a LambdaLR that follows `warmup_cosine_factor`."""
    optimizer = torch.optim.AdamW(parameter_groups(module, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    warmup = int(round(cfg.warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, total_steps, warmup, cfg.lr, cfg.min_lr)
    )
    return optimizer, scheduler

"""Token importance weights for CTA (spec §2, "importance weights").

Per sample: clip the valid raw weights (word: [CLS]->word attention; ViT patch: [CLS]->patch
attention) to that sample's own [low, high] quantiles, zero the invalid entries, divide by the
sum so the valid weights sum to 1. No gradient.

- The reference code does: a Python loop over the batch, two `torch.quantile` calls per sample
  and side; "valid" words are the non-zero ones.
- We do: one `torch.nanquantile` over the whole batch (invalid entries set to NaN so they are
  ignored), "valid" given by an explicit mask. Same numbers (linear interpolation), no loop.
"""

from __future__ import annotations

import torch

__all__ = ["token_importance"]


@torch.no_grad()
def token_importance(attention: torch.Tensor, mask: torch.Tensor | None,
                     low: float = 0.1, high: float = 0.9) -> torch.Tensor:
    """Clip each sample's valid weights to its own quantiles and renormalise.

    Args:
        attention: (B, N) non-negative raw weights.
        mask: (B, N) bool, True = valid token; None = all valid (e.g. ViT patches).
        low, high: quantile levels in [0, 1], low <= high (linear interpolation, as
            `torch.quantile`'s default).
    Returns:
        (B, N) weights in `attention`'s dtype: zero where invalid, summing to 1 over each
        sample's valid entries. A sample with a single valid entry gets weight 1 there; a sample
        whose clipped weights sum to 0 (all-zero attention) gets uniform weights.
    Raises:
        ValueError: if a sample has no valid entry, or the shapes/levels are wrong.
    """
    if attention.dim() != 2:
        raise ValueError(f"attention must be (B, N), got {tuple(attention.shape)}")
    if mask is None:
        mask = torch.ones_like(attention, dtype=torch.bool)       # (B, N)
    if mask.shape != attention.shape:
        raise ValueError(f"mask {tuple(mask.shape)} != attention {tuple(attention.shape)}")
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    mask = mask.bool()
    counts = mask.sum(dim=1, keepdim=True)                        # (B, 1)
    if bool((counts == 0).any()):
        raise ValueError("token_importance: a sample has no valid token (empty report?)")

    # quantiles need float32/float64; bf16/fp16 are upcast and cast back at the end
    work = attention if attention.dtype == torch.float64 else attention.float()  # (B, N)
    levels = torch.tensor([low, high], dtype=work.dtype, device=work.device)     # (2,)
    bounds = torch.nanquantile(work.masked_fill(~mask, float("nan")), levels, dim=1)  # (2, B)
    clipped = torch.clamp(work, min=bounds[0][:, None], max=bounds[1][:, None])  # (B, N)
    clipped = clipped.masked_fill(~mask, 0.0)                                    # (B, N)
    total = clipped.sum(dim=1, keepdim=True)                                     # (B, 1)
    uniform = mask.to(work.dtype) / counts                                       # (B, N)
    weights = torch.where(total > 0, clipped / total.clamp_min(torch.finfo(work.dtype).tiny),
                          uniform)                                               # (B, N)
    return weights.to(attention.dtype)

"""`MGCALoss`: lambda1 * ITA + lambda2 * CTA + lambda3 * CPA, with a switch per term.

Beyond the paper, off by default: `use_local_contrast` adds lambda_local * the GLoRIA-style
cross-sample word-region contrast of `local_contrast.py` (CTA only contrasts within one report).

The module owns the K prototypes (an `nn.Parameter`, so DDP and the optimiser see them) and the
importance-weight clipping; the trainer calls two hooks:

    out = loss_fn(model_output); out["loss"].backward()
    loss_fn.drop_frozen_prototype_grads(epoch)   # after backward: no prototype update in epoch 0
    optimizer.step()
    loss_fn.normalize_prototypes_()              # after each optimiser step: rows back to unit norm,
                                                 # so the next forward scores with unit prototypes

- The reference code does: lambdas 1/0.7/0.5 in the constructor but 1/1/1 from its CLI; ITA is
  the sum of both directions.
- We do: 1/1/1 by default (the CLI's values), ITA as the mean (see `ita.py`); a switched-off term
  is not computed at all and is reported as 0. The local contrast is not one of MGCA's terms: its
  key "local" is only in the result while it is switched on, so with the switch off the result is
  exactly MGCA's (same keys, same values).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cpa import cpa_loss
from .cta import cta_loss
from .importance import token_importance
from .ita import ita_loss, retrieval_topk
from .local_contrast import local_contrast_loss

__all__ = ["MGCALossConfig", "MGCALoss"]


@dataclass
class MGCALossConfig:
    lambda_ita: float = 1.0          # weight of ITA in the total (reference CLI: 1)
    lambda_cta: float = 1.0          # weight of CTA in the total (reference CLI: 1; ctor: 0.7)
    lambda_cpa: float = 1.0          # weight of CPA in the total (reference CLI: 1; ctor: 0.5)
    use_ita: bool = True             # ablation switch: compute ITA at all
    use_cta: bool = True             # ablation switch: compute CTA at all
    use_cpa: bool = True             # ablation switch: compute CPA at all
    ita_temperature: float = 0.07    # tau of the global InfoNCE
    cta_temperature: float = 0.1     # tau_l of the token attention and token logits
    cpa_temperature: float = 0.2     # softmax temperature of the prototype predictions
    num_prototypes: int = 500        # K
    embed_dim: int = 128             # D, dimension of every embedding and prototype
    sinkhorn_epsilon: float = 0.05   # entropic regularisation of the Sinkhorn codes
    sinkhorn_iterations: int = 3     # Sinkhorn scaling rounds
    freeze_prototypes_epochs: int = 1  # prototypes get no gradient while epoch < this
    # beyond the paper: CTA's weight ramps linearly from 0 to lambda_cta over the first N training
    # steps (0 = off, the paper). From scratch on SynthCXR, CTA's early gradients hold ITA on its
    # chance plateau (docs/experiments.md, "The ITA plateau"); validation always uses the full weight.
    cta_warmup_steps: int = 0
    importance_low: float = 0.1      # lower quantile for clipping the token importance weights
    importance_high: float = 0.9     # upper quantile for clipping the token importance weights
    # beyond the paper: GLoRIA-style cross-sample word-region contrast; see losses/local_contrast.py
    use_local_contrast: bool = False
    lambda_local_contrast: float = 1.0             # weight of the local contrast in the total
    local_contrast_attn_temperature: float = 0.1   # tau_a of its word -> patch attention
    local_contrast_temperature: float = 0.1        # tau of its report-image logits
    local_contrast_gamma: float = 0.0  # word aggregation: 0 = weighted mean, > 0 = weighted LSE

    def __post_init__(self):
        if self.cta_warmup_steps < 0:
            raise ValueError(f"cta_warmup_steps must be >= 0 (0 = no warm-up), got {self.cta_warmup_steps}")


class MGCALoss(nn.Module):
    """The MGCA objective. `forward(out)` reads `out.img_emb (B, D)`, `out.rep_emb (B, D)`,
    `out.patch_emb (B, P, D)`, `out.word_emb (B, T, D)`, `out.word_mask (B, T)`,
    `out.word_weights (B, T)` and `out.patch_weights (B, P) | None` (an `MGCAOutput` or any
    object with these attributes; the token ones are only read when CTA or the local contrast
    is on).

    Returns a dict of 0-dim tensors:
        loss  weighted total (with gradient);
        ita, cta, cpa  each term's unweighted value (attached to the graph; `.detach()` them for
              logging), a zero tensor for a switched-off term;
        local  the local contrast's unweighted value, present only when `use_local_contrast`;
        top1, top5  image->report retrieval accuracy within the local batch, in [0, 1], no grad.
    """

    def __init__(self, cfg: MGCALossConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or MGCALossConfig()
        if not (cfg.use_ita or cfg.use_cta or cfg.use_cpa or cfg.use_local_contrast):
            raise ValueError("MGCALoss: at least one of use_ita / use_cta / use_cpa / "
                             "use_local_contrast must be on")
        # (K, D), drawn from the caller's torch RNG (seed before constructing), rows unit-norm
        init = F.normalize(torch.randn(cfg.num_prototypes, cfg.embed_dim), dim=1)
        self.prototypes = nn.Parameter(init)

    def cta_weight(self, step: int | None = None) -> float:
        """CTA's weight at training step `step` (None: after any warm-up, e.g. for validation)."""
        warmup = self.cfg.cta_warmup_steps
        if step is None or warmup <= 0:
            return self.cfg.lambda_cta
        return self.cfg.lambda_cta * min(1.0, step / warmup)

    def forward(self, out, step: int | None = None) -> dict[str, torch.Tensor]:
        """`out`: an `MGCAOutput`; `step`: the training step (only `cta_warmup_steps` reads it)."""
        cfg = self.cfg
        img, rep = out.img_emb, out.rep_emb                                   # (B, D) each
        zero = img.new_zeros((), dtype=torch.float32)
        terms = {"ita": zero, "cta": zero, "cpa": zero}
        if cfg.use_ita:
            terms["ita"] = ita_loss(img, rep, cfg.ita_temperature)
        if cfg.use_cta or cfg.use_local_contrast:  # both weight words by clipped importance
            word_w = token_importance(out.word_weights, out.word_mask,
                                      cfg.importance_low, cfg.importance_high)  # (B, T)
        if cfg.use_cta:
            patch_w = None                                                    # ResNet: uniform
            if out.patch_weights is not None:
                patch_w = token_importance(out.patch_weights, None,
                                           cfg.importance_low, cfg.importance_high)  # (B, P)
            terms["cta"] = cta_loss(out.word_emb, out.patch_emb, out.word_mask,
                                    word_w, patch_w, cfg.cta_temperature)
        if cfg.use_cpa:
            terms["cpa"] = cpa_loss(img, rep, self.prototypes, cfg.sinkhorn_epsilon,
                                    cfg.cpa_temperature, cfg.sinkhorn_iterations)
        total = (cfg.lambda_ita * terms["ita"] if cfg.use_ita else 0.0) \
            + (self.cta_weight(step) * terms["cta"] if cfg.use_cta else 0.0) \
            + (cfg.lambda_cpa * terms["cpa"] if cfg.use_cpa else 0.0)
        if cfg.use_local_contrast:
            terms["local"] = local_contrast_loss(
                out.word_emb, out.patch_emb, out.word_mask, word_w,
                cfg.local_contrast_attn_temperature, cfg.local_contrast_temperature,
                cfg.local_contrast_gamma)
            total = total + cfg.lambda_local_contrast * terms["local"]
        acc = retrieval_topk(img.detach(), rep.detach(), ks=(1, 5))
        return {"loss": total, **terms, "top1": acc["top1"], "top5": acc["top5"]}

    def drop_frozen_prototype_grads(self, epoch: int) -> None:
        """Call after `backward()`: while `epoch < freeze_prototypes_epochs` the prototypes keep
        their place in the graph (so DDP's buckets do not change between epochs) but lose their
        gradient, so the optimiser leaves them alone. The encoders get CPA gradients from step 0."""
        if epoch < self.cfg.freeze_prototypes_epochs:
            self.prototypes.grad = None

    @torch.no_grad()
    def normalize_prototypes_(self) -> None:
        """L2-normalise the prototype rows in place (call after each optimiser step, so every
        forward sees unit-norm prototypes)."""
        self.prototypes.copy_(F.normalize(self.prototypes, dim=1))

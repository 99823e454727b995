"""CPA — cross-modal prototype alignment (spec §2): Sinkhorn codes + swapped prediction.

    C = normalize(prototypes)                  (K, D), K = 500
    z = emb @ C.T                              (B, K) for image and report global embeddings
    q = sinkhorn(z)                            (B, K) codes, no gradient, rows sum to 1
    log p = log_softmax(z / 0.2)               (B, K)
    CPA = 0.5 * ( CE(q_img, p_rep) + CE(q_rep, p_img) ),  CE(q, p) = -mean_b sum_k q log p

- The reference code does: a distributed Sinkhorn exists but is dead code — the choice is made in
  the module's constructor, before the process group exists, so the local version always runs
  and with several GPUs each GPU balances the prototypes over its own batch only; the codes are
  computed in the scores' dtype and cast to float only at the end.
- We do: marginals are all-reduced, so the prototype marginal is balanced over the **global**
  batch and the codes on W processes equal the one-process codes on the concatenated batch;
  Sinkhorn always runs in float32 or wider (exp(1/0.05) = e^20 overflows fp16; float64 input
  stays float64) and the scores are computed in that precision with autocast disabled. The
  image and report problems are solved together as one (2, B, K) stack (half the small ops).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import all_reduce_max, all_reduce_sum

__all__ = ["sinkhorn", "cpa_loss"]


def _wide(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16/fp32, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp equipartition codes.

    The paper's matrix is Q = exp(scores / eps).T of shape (K, B); we keep it as (B, K) (rows =
    samples, columns = prototypes) and scale the matching axes:
      1. Q /= sum(Q)                                  (global sum)
      2. `iterations` times: each prototype (column) scaled to total 1/K (global column sums),
         then each sample (row) scaled to total 1/B_global;
      3. each sample's row divided by its sum, so rows sum to exactly 1.
    A constant (the global max score) is subtracted before exp for safety; step 1 makes the
    result independent of it. No gradient.

    Args:
        scores: (B, K) scores (any float dtype), e.g. cosine similarities to prototypes; or
            (G, B, K) for G independent problems at once (CPA solves image and report together).
        epsilon: entropic regularisation; smaller = sharper codes.
        iterations: number of (prototype, sample) scaling rounds.
    Returns:
        codes of the same shape, each sample's row summing to 1, in float32 whatever the input
        dtype (bf16, fp16, fp32); float64 input is kept in float64 (never narrower than float32).
    """
    if scores.dim() not in (2, 3):
        raise ValueError(f"scores must be (B, K) or (G, B, K), got {tuple(scores.shape)}")
    z = scores.detach().to(_wide(scores.dtype))                   # (..., B, K) float32 (or 64)
    tiny = torch.finfo(z.dtype).tiny
    num_protos = z.shape[-1]
    global_batch = all_reduce_sum(z.new_tensor(float(z.shape[-2])))   # () global B
    shift = all_reduce_max(z.amax(dim=(-2, -1), keepdim=True))    # (..., 1, 1) global max
    q = torch.exp((z - shift) / epsilon)                          # (..., B, K), in (0, 1]
    q /= all_reduce_sum(q.sum(dim=(-2, -1), keepdim=True))
    for _ in range(iterations):
        per_proto = all_reduce_sum(q.sum(dim=-2, keepdim=True))   # (..., 1, K) global marginals
        q *= (1.0 / num_protos) / per_proto.clamp_min(tiny)
        q *= (1.0 / global_batch) / q.sum(dim=-1, keepdim=True).clamp_min(tiny)  # (..., B, 1)
    q /= q.sum(dim=-1, keepdim=True).clamp_min(tiny)
    return q                                                      # (..., B, K)


def cpa_loss(image_emb: torch.Tensor, report_emb: torch.Tensor, prototypes: torch.Tensor,
             epsilon: float = 0.05, temperature: float = 0.2, iterations: int = 3) -> torch.Tensor:
    """Swapped-prediction prototype loss.

    Args:
        image_emb, report_emb: (B, D) L2-normalised global embeddings (row i = a pair).
        prototypes: (K, D) prototype vectors; rows are L2-normalised here (with gradient), so the
            result does not depend on their norm.
        epsilon, iterations: Sinkhorn parameters.
        temperature: softmax temperature of the predictions.
    Returns:
        scalar tensor, float32 (float64 for float64 input):
        0.5 * (CE(q_img, p_rep) + CE(q_rep, p_img)).
    """
    if image_emb.shape != report_emb.shape or image_emb.dim() != 2 \
            or prototypes.dim() != 2 or prototypes.shape[1] != image_emb.shape[1]:
        raise ValueError(f"expected (B, D), (B, D), (K, D); got {tuple(image_emb.shape)}, "
                         f"{tuple(report_emb.shape)}, {tuple(prototypes.shape)}")
    with torch.autocast(device_type=image_emb.device.type, enabled=False):
        wide = _wide(image_emb.dtype)                             # float32 (float64 kept)
        protos = F.normalize(prototypes.to(wide), dim=1)          # (K, D)
        emb = torch.stack([image_emb, report_emb]).to(wide)       # (2, B, D): image, report
        scores = emb @ protos.T                                   # (2, B, K) z_img, z_rep
        codes = sinkhorn(scores, epsilon, iterations)             # (2, B, K) q_img, q_rep
        log_probs = F.log_softmax(scores / temperature, dim=-1)   # (2, B, K) log p_img, p_rep
        # swapped: report codes supervise image predictions and image codes report predictions
        ce = -(codes.flip(0) * log_probs).sum(dim=-1).mean(dim=-1)  # (2,) CE(q_rep, p_img), ..
        return 0.5 * ce.sum()

"""ITA — instance-wise image-report alignment (spec §2), and retrieval top-k accuracy.

    logits = img_emb @ rep_emb.T / tau                       (B, B), tau = 0.07
    ITA    = mean( CE(logits, arange(B)), CE(logits.T, arange(B)) )

- The paper says: the mean of the image->report and report->image InfoNCE terms.
- The reference code does: their *sum* (twice the paper's value), and with several GPUs each GPU
  only sees its own batch as negatives.
- We do: the mean, and with several processes every process scores its local rows against the
  **global** batch (all-gather with gradient, `distributed.gather_with_grad`), target of local row
  i = rank*B + i. The loss is the mean over local rows; see `distributed.py` for why DDP's gradient
  averaging then gives exactly the one-process gradient on the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather_with_grad, is_distributed, rank_and_world

__all__ = ["ita_loss", "retrieval_topk"]


def ita_loss(image_emb: torch.Tensor, report_emb: torch.Tensor,
             temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE between paired global embeddings.

    Args:
        image_emb: (B, D), L2-normalised image embeddings.
        report_emb: (B, D), L2-normalised report embeddings; row i is the pair of image i.
        temperature: tau; logits are cosine similarities / tau.
    Returns:
        scalar tensor: 0.5 * (CE image->report + CE report->image), each a mean over (local) rows.
    """
    assert image_emb.dim() == 2 and image_emb.shape == report_emb.shape, \
        f"expected two (B, D) tensors, got {tuple(image_emb.shape)} and {tuple(report_emb.shape)}"
    batch = image_emb.shape[0]
    scale = 1.0 / temperature
    if is_distributed():
        rank, _ = rank_and_world()
        all_img = gather_with_grad(image_emb)                  # (W*B, D)
        all_rep = gather_with_grad(report_emb)                 # (W*B, D)
        logits_i2r = image_emb @ all_rep.T * scale             # (B, W*B)
        logits_r2i = report_emb @ all_img.T * scale            # (B, W*B)
        offset = rank * batch
    else:
        logits_i2r = image_emb @ report_emb.T * scale          # (B, B), computed once
        logits_r2i = logits_i2r.T                              # (B, B)
        offset = 0
    target = torch.arange(offset, offset + batch, device=image_emb.device)  # (B,)
    return 0.5 * (F.cross_entropy(logits_i2r, target) + F.cross_entropy(logits_r2i, target))


@torch.no_grad()
def retrieval_topk(image_emb: torch.Tensor, report_emb: torch.Tensor,
                   ks: tuple[int, ...] = (1, 5)) -> dict[str, torch.Tensor]:
    """Image->report retrieval accuracy within the (local) batch, no gradient.

    Args:
        image_emb, report_emb: (B, D); row i of each is a pair.
    Returns:
        {"top{k}": 0-dim float tensor in [0, 1]} for each k in `ks`: the fraction of images whose
        own report is among the min(k, B) most similar reports. (The reference reports percent,
        averaged over both directions; we report the image->report fraction.)
    """
    batch = image_emb.shape[0]
    sim = image_emb @ report_emb.T                             # (B, B)
    kmax = min(max(ks), batch)
    top = sim.topk(kmax, dim=1).indices                        # (B, kmax)
    hit = top == torch.arange(batch, device=sim.device)[:, None]  # (B, kmax)
    return {f"top{k}": hit[:, :min(k, batch)].any(dim=1).float().mean() for k in ks}

"""BENCHMARK / TEACHING BASELINE ONLY — never used in training.

A transcription of the *arithmetic* of the reference implementation (HKU-MedAI/MGCA,
`mgca_module.py`, ViT-B setting, one GPU), written for `losses.py` and `pretrain.py` to time
side by side with our losses, and for the parity tests and notebooks to show where the two
differ. It keeps the reference's costs and quirks on purpose:

- importance weights: a Python loop over the batch, two `torch.quantile` calls per sample and
  side; words are "valid" where their weight is non-zero;
- ITA: two cross-entropies, **summed** (2x the paper);
- CTA: the word-patch similarity computed twice (once per attention direction) and the word
  similarity matrix S_w computed twice (the first result is thrown away), [PAD] words kept as
  negatives, two `cross_entropy(reduction="none")` calls per side on rearranged copies, ViT patch
  contexts not re-normalised;
- CPA: Sinkhorn in the (K, B) layout, local marginals only, `log(softmax(.))`.
Inputs and outputs follow our function signatures so the benchmark can feed both the same data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["reference_ita", "reference_importance", "reference_cta", "reference_sinkhorn",
           "reference_cpa"]


def reference_ita(image_emb: torch.Tensor, report_emb: torch.Tensor,
                  temperature: float = 0.07) -> torch.Tensor:
    """(B, D), (B, D) -> CE(i->r) + CE(r->i) (the reference's sum)."""
    target = torch.arange(image_emb.shape[0], device=image_emb.device)
    logits = image_emb.mm(report_emb.t()) / temperature       # (B, B)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.transpose(0, 1), target)


@torch.no_grad()
def reference_importance(attention: torch.Tensor, nonzero_only: bool) -> torch.Tensor:
    """Per-sample loop: clip to the sample's [10 %, 90 %] quantiles (of its non-zero entries
    when `nonzero_only`), then divide by the row sum. (B, N) -> (B, N)."""
    rows = []
    work = attention.detach().clone()
    for b in range(work.shape[0]):
        row = work[b]
        if nonzero_only:
            idx = row.nonzero().squeeze()
            picked = row[idx]
            row[idx] = picked.clip(torch.quantile(picked, 0.1), torch.quantile(picked, 0.9))
        else:
            row = row.clip(torch.quantile(row, 0.1), torch.quantile(row, 0.9))
        rows.append(row.clone())
    weights = torch.stack(rows)                               # (B, N)
    return weights / weights.sum(dim=1, keepdim=True)


def _two_ce_calls(sim: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, N, N) -> mean of row-CE and column-CE, each a separate cross_entropy call."""
    batch, n, _ = sim.shape
    target = torch.arange(n, device=sim.device).repeat(batch)            # (B*N,)
    rows = sim.reshape(batch * n, n)                                      # "(b n1) n2"
    cols = sim.transpose(1, 2).reshape(batch * n, n)                      # "(b n2) n1", a copy
    loss_1 = torch.sum(F.cross_entropy(rows, target, reduction="none") * weights.view(-1)) / batch
    loss_2 = torch.sum(F.cross_entropy(cols, target, reduction="none") * weights.view(-1)) / batch
    return (loss_1 + loss_2) / 2.0


def reference_cta(word_emb: torch.Tensor, patch_emb: torch.Tensor, word_mask: torch.Tensor,
                  word_attention: torch.Tensor, patch_attention: torch.Tensor,
                  temperature: float = 0.1) -> torch.Tensor:
    """(B, T, D), (B, P, D), (B, T) bool, raw (B, T) and (B, P) attention -> loss_word + loss_patch.
    The quantile loops run inside, as in the reference's forward."""
    pad = ~word_mask.bool()                                               # (B, T)
    # word -> patch
    atten = torch.bmm(word_emb, patch_emb.permute(0, 2, 1))               # (B, T, P)
    scores = F.softmax(atten / temperature, dim=-1)
    word_ctx = F.normalize(torch.bmm(scores, patch_emb), dim=-1)          # (B, T, D)
    _unused = torch.bmm(word_emb, word_ctx.permute(0, 2, 1)) / temperature  # computed, unused
    word_w = reference_importance(word_attention, nonzero_only=True)      # (B, T)
    word_sim = torch.bmm(word_emb, word_ctx.permute(0, 2, 1)) / temperature  # (B, T, T)
    loss_word = _two_ce_calls(word_sim, word_w)
    # patch -> word (similarity computed again, [PAD] masked by boolean indexing)
    atten = torch.bmm(patch_emb, word_emb.permute(0, 2, 1))               # (B, P, T)
    atten[pad.unsqueeze(1).repeat(1, patch_emb.shape[1], 1)] = float("-inf")
    scores = F.softmax(atten / temperature, dim=-1)
    patch_ctx = torch.bmm(scores, word_emb)                               # (B, P, D), ViT: raw
    patch_w = reference_importance(patch_attention, nonzero_only=False)   # (B, P)
    patch_sim = torch.bmm(patch_emb, patch_ctx.permute(0, 2, 1)) / temperature  # (B, P, P)
    loss_patch = _two_ce_calls(patch_sim, patch_w)
    return loss_patch + loss_word


@torch.no_grad()
def reference_sinkhorn(q: torch.Tensor, iterations: int) -> torch.Tensor:
    """q = exp(scores / eps).T (K, B), modified in place -> codes (B, K)."""
    q /= torch.sum(q)
    num_protos, batch = q.shape
    r = torch.ones(num_protos, device=q.device) / num_protos
    c = torch.ones(batch, device=q.device) / batch
    for _ in range(iterations):
        u = torch.sum(q, dim=1)
        q *= (r / u).unsqueeze(1)
        q *= (c / torch.sum(q, dim=0)).unsqueeze(0)
    return (q / torch.sum(q, dim=0, keepdim=True)).t().float()


def reference_cpa(image_emb: torch.Tensor, report_emb: torch.Tensor, prototypes: torch.Tensor,
                  epsilon: float = 0.05, temperature: float = 0.2,
                  iterations: int = 3) -> torch.Tensor:
    """(B, D), (B, D), (K, D) -> swapped-prediction loss (prototypes re-normalised in place)."""
    with torch.no_grad():
        prototypes.copy_(F.normalize(prototypes.clone(), dim=1))
    img_out = F.linear(image_emb, prototypes)                             # (B, K)
    rep_out = F.linear(report_emb, prototypes)                            # (B, K)
    with torch.no_grad():
        img_code = reference_sinkhorn(torch.exp(img_out / epsilon).t(), iterations)
        rep_code = reference_sinkhorn(torch.exp(rep_out / epsilon).t(), iterations)
    img_prob = F.softmax(img_out / temperature, dim=1)
    rep_prob = F.softmax(rep_out / temperature, dim=1)
    loss_i2t = -torch.mean(torch.sum(img_code * torch.log(rep_prob), dim=1))
    loss_t2i = -torch.mean(torch.sum(rep_code * torch.log(img_prob), dim=1))
    return (loss_i2t + loss_t2i) / 2.0

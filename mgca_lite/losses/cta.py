"""CTA — cross-modal token-wise alignment (spec §2).

With W = word embeddings (B, T, D), P = patch embeddings (B, P, D), tau = tau_l = 0.1:

    A[b, i, p]  = W[b, i] . P[b, p] / tau                           (B, T, P), computed ONCE
    word -> patch: c_w = normalize( softmax_p(A) @ P )                (B, T, D)
    patch -> word: c_p = normalize( softmax_{valid i}(A)^T @ W )      (B, P, D)
    S_w[b, i, j] = W[b, i] . c_w[b, j] / tau                          (B, T, T)
    S_p[b, p, q] = P[b, p] . c_p[b, q] / tau                          (B, P, P)

For each side, two weighted cross-entropies with the diagonal as target:
    rows:    CE_row[b, i] = logsumexp_j S[b, i, j] - S[b, i, i]   (token i picks its context)
    columns: CE_col[b, j] = logsumexp_i S[b, i, j] - S[b, j, j]   (context j picks its token)
    side loss = 0.5 * ( sum_b sum_i w_bi CE_row[b,i] / B + sum_b sum_j w_bj CE_col[b,j] / B )
and CTA = loss_word + loss_patch (the reference sums the two sides too).

- The reference code does: [PAD] words stay in S_w as negatives (rows with weight 0, but live
  columns), the word-patch similarity is computed twice (once per attention direction) and S_w
  twice, two full `cross_entropy` calls per side on rearranged copies, and ViT patch contexts
  c_p are not re-normalised (ResNet ones are).
- We do: [PAD] words are neither rows nor columns (masked out of both logsumexps and of the
  patch->word attention; their embeddings are zeroed first so garbage there — even NaN —
  changes nothing), c_p always re-normalised, and for speed:
    * A is computed once and shared by both attention directions, each S once;
    * both cross-entropies of a side share one exp pass and one hand-written backward
      (`_DiagonalCE`); the L2 normalisation has a hand-written backward too (`_ScaledUnit`);
    * since padded words take no part, the columns after a batch's last real word are dropped,
      and on CPU the batch is split into a few groups of similar report length (`_buckets`), each
      trimmed to its own longest report. CTA is a sum of per-sample terms, so this is exact.
Importance weights are NOT clipped here: `MGCALoss` calls `token_importance` first. Here weights
are only detached and renormalised over valid tokens.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["cta_loss", "word_patch_attention"]

# Length groups per device type: on CPU time follows FLOPs, so skipping padded words pays; on
# accelerators small batched GEMMs are launch-bound, so one group (trimmed to the longest report).
_BUCKETS = {"cpu": 4}
_NORM_EPS = 1e-12  # as F.normalize


class _ScaledUnit(torch.autograd.Function):
    """y = scale * x / max(||x||, eps) over the last dim, i.e. `scale * F.normalize(x, dim=-1)`.

    backward: dy/dx^T g = k * (g - u (u . g)) with u = x / ||x||, k = scale / ||x||
    (just g * k where the norm was clamped to eps). Two passes instead of autograd's chain.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)         # (..., 1)
        unit = x / norm.clamp_min(_NORM_EPS)                             # (..., D)
        ctx.save_for_backward(unit, norm)
        ctx.scale = scale
        return unit * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        unit, norm = ctx.saved_tensors
        dot = (grad * unit).sum(dim=-1, keepdim=True) * (norm >= _NORM_EPS)  # (..., 1)
        return torch.addcmul(grad, unit, dot, value=-1.0).mul_(
            ctx.scale / norm.clamp_min(_NORM_EPS)), None


class _DiagonalCE(torch.autograd.Function):
    """sum_b sum_i w[b, i] * (CE_row[b, i] + CE_col[b, i]) for (B, N, N) scores, target = diagonal.

    Both directions share one exp: E = exp(S - m_b) with m_b the sample's max score, then
        CE_row[b, i] = log sum_j E[b, i, j] - (S[b, i, i] - m_b),   same with sum_i for CE_col,
        dLoss/dS[b, i, j] = E[b,i,j] * (w[b,i] / rowsum[b,i] + w[b,j] / colsum[b,j])
                            - 2 w[b, i] [i == j].
    `valid` (B, N) bool (None = all valid) removes tokens as rows and columns (E set to 0); their
    weights must be 0. Computed in float32 at least (the result is float32 for bf16 input).
    One shared shift is exact as long as no whole row or column lies ~87 below
    the sample's max: true for unit-norm embeddings (|S| <= 1/tau) with tau > 0.023.
    Weights are constants (no gradient).
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor, weights: torch.Tensor,
                valid: torch.Tensor | None) -> torch.Tensor:
        ctx.in_dtype = scores.dtype
        wide = torch.promote_types(scores.dtype, torch.float32)  # bf16/fp16 -> float32 inside
        scores, weights = scores.to(wide), weights.to(wide)
        top = scores.amax(dim=(1, 2), keepdim=True)                      # (B, 1, 1)
        diag = scores.diagonal(dim1=1, dim2=2) - top[:, :, 0]            # (B, N)
        e = torch.sub(scores, top).exp_()                                # (B, N, N)
        if valid is not None:
            e.masked_fill_(~valid[:, :, None], 0.0).masked_fill_(~valid[:, None, :], 0.0)
        tiny = torch.finfo(e.dtype).tiny
        rows = e.sum(dim=2).clamp_min_(tiny)                             # (B, N)
        cols = e.sum(dim=1).clamp_min_(tiny)                             # (B, N)
        ce = (rows.log() - diag) + (cols.log() - diag)                   # (B, N) finite
        ctx.save_for_backward(e, rows, cols, weights)
        return (weights * ce).sum()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        e, rows, cols, weights = ctx.saved_tensors
        w = weights * grad                                               # (B, N)
        out = e * (w / rows)[:, :, None]                                 # row softmax * w_i
        out.addcmul_(e, (w / cols)[:, None, :])                          # col softmax * w_j
        out.diagonal(dim1=1, dim2=2).sub_(2.0 * w)                       # minus the targets
        return out.to(ctx.in_dtype), None, None


def check_token_shapes(word_emb: torch.Tensor, patch_emb: torch.Tensor,
                       word_mask: torch.Tensor) -> tuple[int, int]:
    """(B, T, D) words, (B, P, D) patches and a (B, T) word mask that fit together -> (B, T);
    ValueError naming the shapes otherwise. Shared by the token-level losses."""
    if word_emb.dim() != 3 or patch_emb.dim() != 3 or word_emb.shape[0] != patch_emb.shape[0] \
            or word_emb.shape[2] != patch_emb.shape[2]:
        raise ValueError(f"expected (B, T, D) and (B, P, D), got {tuple(word_emb.shape)} "
                         f"and {tuple(patch_emb.shape)}")
    batch, num_words, _ = word_emb.shape
    if word_mask.shape != (batch, num_words):
        raise ValueError(f"word_mask {tuple(word_mask.shape)} != (B, T) {(batch, num_words)}")
    return batch, num_words


def word_patch_attention(word_emb: torch.Tensor, patch_emb: torch.Tensor, word_mask: torch.Tensor,
                         temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """CTA's word -> patch cross-attention, on its own: what each word looks at and what it reads.

    (`cta_loss` computes the same inside `_cta_block`, fused with the rest; this plain version is
    for teaching, checks and figures.)
    Args:
        word_emb: (B, T, D) L2-normalised word embeddings (padded slots may hold anything).
        patch_emb: (B, P, D) L2-normalised patch embeddings.
        word_mask: (B, T) bool, True = real word.
    Returns:
        attention (B, T, P) = softmax over patches of W . P / tau, each real word's row summing to 1;
        context (B, T, D) = normalize(attention @ P), the word's attended patch vector.
        Both are 0 for padded words.
    """
    check_token_shapes(word_emb, patch_emb, word_mask)
    valid = word_mask.bool()[:, :, None]                                 # (B, T, 1)
    words = word_emb.masked_fill(~valid, 0.0)                            # garbage (even NaN) -> 0
    attention = (words @ patch_emb.transpose(1, 2) / temperature).softmax(dim=2)  # (B, T, P)
    attention = attention.masked_fill(~valid, 0.0)
    context = torch.nn.functional.normalize(attention @ patch_emb, dim=-1)  # (B, T, D), 0 rows stay 0
    return attention, context


def _valid_weights(weights: torch.Tensor | None, mask: torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
    """(B, N) weights (None = uniform) -> detached, zero where invalid, sum 1 over valid."""
    if weights is None:
        w = mask.to(dtype)                                               # (B, N)
    else:
        if weights.shape != mask.shape:
            raise ValueError(f"weights {tuple(weights.shape)} != mask {tuple(mask.shape)}")
        w = weights.detach().to(dtype).masked_fill(~mask, 0.0)           # (B, N)
    return w / w.sum(dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)


def _cta_block(words: torch.Tensor, patches: torch.Tensor, mask: torch.Tensor,
               w_word: torch.Tensor, w_patch: torch.Tensor, temperature: float) -> torch.Tensor:
    """sum over this block's samples of 0.5 * (word CEs) + 0.5 * (patch CEs), weighted.

    words (b, t, D) with padded rows already zeroed, patches (b, P, D), mask (b, t),
    w_word (b, t), w_patch (b, P) already renormalised.
    """
    scale = 1.0 / temperature
    words_s = words * scale                                              # (b, t, D) W / tau
    sim = torch.bmm(words_s, patches.transpose(1, 2))                    # (b, t, P) A

    # word -> patch: each word attends over all patches
    attn_w = sim.softmax(dim=2)                                          # (b, t, P)
    ctx_w = _ScaledUnit.apply(torch.bmm(attn_w, patches), 1.0)           # (b, t, D) c_w
    # patch -> word: each patch attends over valid words only. A huge negative is *added* to the
    # padded rows in place: softmax saved its output and bmm its inputs, so `sim` is free, and an
    # in-place add needs no backward pass of its own (unlike masked_fill). (Padded words are zero
    # vectors, so even unmasked they would only shrink a @ W by a factor that the normalisation
    # removes; the mask keeps that factor from underflowing at small temperatures.)
    pad_bias = torch.zeros_like(w_word).masked_fill_(~mask, torch.finfo(sim.dtype).min)
    attn_p = sim.add_(pad_bias[:, :, None]).softmax(dim=1)              # (b, t, P)
    ctx_p_s = _ScaledUnit.apply(torch.bmm(attn_p.transpose(1, 2), words), scale)  # c_p / tau

    sim_w = torch.bmm(words_s, ctx_w.transpose(1, 2))                    # (b, t, t) S_w
    sim_p = torch.bmm(patches, ctx_p_s.transpose(1, 2))                  # (b, P, P) S_p
    return 0.5 * (_DiagonalCE.apply(sim_w, w_word, mask) + _DiagonalCE.apply(sim_p, w_patch, None))


def _buckets(last: list[int], groups: int) -> list[tuple[list[int], int]]:
    """Split sample indices into <= `groups` groups of similar length (sorted, equal counts).

    last[b] = 1 + position of sample b's last valid word. Returns [(indices, width)], width =
    the group's longest `last`.
    """
    order = sorted(range(len(last)), key=last.__getitem__)
    groups = max(1, min(groups, len(order)))
    size, extra = divmod(len(order), groups)
    out, start = [], 0
    for g in range(groups):
        stop = start + size + (g < extra)
        idx = order[start:stop]
        out.append((idx, max(last[i] for i in idx)))
        start = stop
    return out


def cta_loss(word_emb: torch.Tensor, patch_emb: torch.Tensor, word_mask: torch.Tensor,
             word_weights: torch.Tensor | None = None, patch_weights: torch.Tensor | None = None,
             temperature: float = 0.1) -> torch.Tensor:
    """Token-wise alignment loss, loss_word + loss_patch.

    Args:
        word_emb: (B, T, D) L2-normalised word embeddings (padded slots may hold anything).
        patch_emb: (B, P, D) L2-normalised patch embeddings.
        word_mask: (B, T) bool, True = real word; every sample needs at least one.
        word_weights: (B, T) importance of each word (already clipped), or None = uniform over
            valid words. Detached and renormalised over valid words here.
        patch_weights: (B, P) importance of each patch, or None = uniform 1/P.
        temperature: tau_l, used for both attentions and both similarity matrices.
    Returns:
        scalar tensor, loss_word + loss_patch.
    Raises:
        ValueError: on shape mismatch or a sample without any valid word.
    """
    batch, num_words = check_token_shapes(word_emb, patch_emb, word_mask)
    mask = word_mask.bool()                                              # (B, T)
    dtype = word_emb.dtype
    positions = torch.arange(1, num_words + 1, device=mask.device)       # (T,)
    last = (mask * positions).amax(dim=1).tolist()  # (B,) 1 + last valid index; one host sync
    if min(last) == 0:
        raise ValueError("cta_loss: a sample has no valid word (empty report?)")

    words = word_emb.masked_fill(~mask[:, :, None], 0.0)                 # (B, T, D)
    w_word = _valid_weights(word_weights, mask, dtype)                   # (B, T)
    all_patches = torch.ones(patch_emb.shape[:2], dtype=torch.bool, device=patch_emb.device)
    w_patch = _valid_weights(patch_weights, all_patches, dtype)          # (B, P)

    groups = _buckets(last, _BUCKETS.get(word_emb.device.type, 1))
    if len(groups) == 1:
        width = groups[0][1]                                             # drop all-pad columns
        total = _cta_block(words[:, :width], patch_emb, mask[:, :width], w_word[:, :width],
                           w_patch, temperature)
    else:  # one gather into length order, then contiguous groups (split's backward is a cat)
        order = torch.tensor([i for idx, _ in groups for i in idx], device=mask.device)
        sizes = [len(idx) for idx, _ in groups]
        parts = zip(words[order].split(sizes), patch_emb[order].split(sizes),
                    mask[order].split(sizes), w_word[order].split(sizes),
                    w_patch[order].split(sizes), (width for _, width in groups))
        total = sum(_cta_block(w[:, :n], p, m[:, :n], ww[:, :n], wp, temperature)
                    for w, p, m, ww, wp, n in parts)
    return total / batch

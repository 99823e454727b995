"""Cross-sample word-region contrast ("local contrast"): GLoRIA's local loss, beyond MGCA's paper.

Why. MGCA's CTA (`cta.py`) contrasts word i's attended image context only against the contexts
of the OTHER words of the SAME report. That context, c_i = normalize(softmax(W_i P^T / tau) P),
is by construction the one most aligned with W_i, so any set of diverse patch embeddings meets
CTA's diagonal target whatever the image shows. Measured on SynthCXR (spec §4, "Grounding"):
CTA's loss falls to ~0.03 while its word -> patch attention localises nothing (pointing game at
chance, CNR equal to a shuffled-mask control). Contrasting the word-attended contexts ACROSS the
batch's images ties them to the image's content: a report's words must find better regions in
their own image than in any other image of the batch.

This is the idea of GLoRIA's local loss (Huang et al., ICCV 2021), written here from the formula.
It is NOT part of MGCA's paper or reference code: `MGCALoss` adds it only when
`MGCALossConfig.use_local_contrast` is on (off by default).

What it computes, for word embeddings W (B, T, D) and patch embeddings P (B, P, D), all rows
unit-norm, report b and image c (tau_a = `temperature_attn`, tau = `temperature`):

    x[b, i, c, p] = W[b, i] . P[c, p]                       (B, T, B, P)  word-patch cosines
    a[b, i, c, :] = softmax_p( x[b, i, c, :] / tau_a )      word i of report b attends over image c
    ctx[b, i, c]  = normalize( sum_p a[b, i, c, p] P[c, p] )        (D,)  its context in image c
    cos[b, i, c]  = W[b, i] . ctx[b, i, c]                  (B, T, B)
    s[b, c] = sum_i w[b, i] cos[b, i, c]                            gamma = 0 (default)
            = (1 / gamma) log sum_i w[b, i] exp(gamma cos[b, i, c])  gamma > 0
    loss  = 0.5 * ( mean_c CE(s[:, c] / tau, target c)      image c -> its report
                  + mean_b CE(s[b, :] / tau, target b) )    report b -> its image

w[b] = report b's word weights (MGCA's importance weights, or uniform when None), renormalised to
sum 1 over its valid words and detached. [PAD] words neither attend nor count: their embeddings
are zeroed and their weight is 0, so garbage there (even NaN) changes nothing.

Aggregation over words, explicit through `gamma`:
- gamma = 0 (default): the importance-weighted mean, the same weighting CTA uses for its word rows.
- gamma > 0: a weighted soft maximum. It tends to the weighted mean as gamma -> 0 and to the best
  valid word's similarity as gamma -> infinity, so a report can be scored by the few words that
  find their region (findings) rather than by all of them. GLoRIA aggregates
  log sum_i exp(gamma cos) unweighted, with gamma = 5; with uniform weights ours equals that minus
  log(n_b) / gamma. That offset depends on the report's length n_b, and in the image -> report
  direction it would favour long reports; with weights summing to 1 every s stays in [-1, 1].
Temperatures: tau_a = 0.1 (MGCA's tau_l; GLoRIA uses 1/4), tau = 0.1 (GLoRIA's 1/gamma_3 = 1/10).

Cost. The context's norm is computed without forming any B*T*B*D tensor:
||sum_p a_p P_p||^2 = a^T G a with G = P P^T, one (P, P) Gram matrix per image, so every
intermediate has B*T*B*P entries. That is cheaper than forming the contexts when P < D (this
project's grids: P = 16..64, D = 128); at P = 361 > D the Gram step costs P^2 instead of P*D per
word-image pair. The work is about B times CTA's word side (every word against every image):
measured on one CPU thread, forward + backward at B = 64, T = 60, D = 128 takes about 8x CTA's
time at P = 16 and 29x at P = 64 (~0.13 s and ~0.67 s). Autograd keeps three such intermediates
(~190 MB at that P = 64 shape in float32). When one pass would exceed `chunk_elements` entries,
the images are processed in chunks under activation checkpointing, so only one chunk's
intermediates are alive; the price is the chunk's forward being recomputed during backward.
Columns after the batch's longest report are dropped first (padded words take no part).

Distributed: like ITA, the negatives come from the GLOBAL batch. Each process gathers every
process's words, weights and patches (`gather_with_grad`; reports are first padded to a common
number of words), scores its local reports against all images and all reports against its local
images, and returns the mean over its local rows; `distributed.py` explains why DDP's gradient
averaging then gives exactly the one-process gradient. Per-process batch sizes must be equal.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .cta import _valid_weights, check_token_shapes
from .distributed import all_reduce_max, gather_with_grad, is_distributed, rank_and_world

__all__ = ["local_contrast_loss"]

_NORM_EPS = 1e-12  # as F.normalize: the context's norm is clamped here


def _pair_scores(words: torch.Tensor, weights: torch.Tensor, patches: torch.Tensor,
                 temperature_attn: float, gamma: float) -> torch.Tensor:
    """s[b, c] for every report b against every image c, in one batched pass.

    Args:
        words: (Br, T, D) unit rows; padded rows zero.
        weights: (Br, T) >= 0, sum 1 per report, 0 on padded words; no gradient.
        patches: (Bc, P, D) unit rows.
    Returns:
        (Br, Bc) report-image scores.
    """
    br, t, d = words.shape
    bc, p, _ = patches.shape
    # Layout (image, patch, report word): softmax over dim 1 and the Gram product below are then
    # contiguous batched ops over images. All word-patch cosines / tau_a in one GEMM.
    x_s = (patches.reshape(bc * p, d) @ (words.reshape(br * t, d) / temperature_attn).T
           ).view(bc, p, br * t)                                     # (Bc, P, Br*T) x / tau_a
    attn = x_s.softmax(dim=1)                                        # (Bc, P, Br*T)
    along = (attn * x_s).sum(dim=1) * temperature_attn               # (Bc, Br*T) W . (a P)
    gram = patches @ patches.transpose(1, 2)                         # (Bc, P, P)
    sq_norm = (torch.bmm(gram, attn) * attn).sum(dim=1)              # (Bc, Br*T) ||a P||^2
    cos = (along / sq_norm.clamp_min(_NORM_EPS ** 2).sqrt()).view(bc, br, t).permute(1, 2, 0)
    if gamma == 0:
        return torch.einsum("btc,bt->bc", cos, weights)              # weighted mean
    # weighted log-sum-exp: log w = -inf on padded words drops them from the sum
    return torch.logsumexp(gamma * cos + weights.log()[:, :, None], dim=1) / gamma


def _all_pair_scores(words: torch.Tensor, weights: torch.Tensor, patches: torch.Tensor,
                     temperature_attn: float, gamma: float, chunk_elements: int) -> torch.Tensor:
    """`_pair_scores`, over chunks of images under checkpointing when one pass is too big.

    words (Br, T, D), weights (Br, T), patches (Bc, P, D) -> (Br, Bc).
    """
    per_image = words.shape[0] * words.shape[1] * patches.shape[1]   # entries per image
    step = max(1, chunk_elements // per_image)
    if step >= patches.shape[0]:
        return _pair_scores(words, weights, patches, temperature_attn, gamma)
    return torch.cat([checkpoint(_pair_scores, words, weights, chunk, temperature_attn, gamma,
                                 use_reentrant=False)
                      for chunk in patches.split(step)], dim=1)


def _to_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """Cut or zero-pad dim 1 of (B, T, ...) to `width`."""
    if x.shape[1] >= width:
        return x[:, :width]
    pad = x.new_zeros((x.shape[0], width - x.shape[1], *x.shape[2:]))
    return torch.cat([x, pad], dim=1)


def local_contrast_loss(word_emb: torch.Tensor, patch_emb: torch.Tensor, word_mask: torch.Tensor,
                        word_weights: torch.Tensor | None = None, temperature_attn: float = 0.1,
                        temperature: float = 0.1, gamma: float = 0.0,
                        chunk_elements: int = 2 ** 25) -> torch.Tensor:
    """GLoRIA-style cross-sample word-region contrast (formula in the module docstring).

    Args:
        word_emb: (B, T, D) L2-normalised word embeddings (padded slots may hold anything).
        patch_emb: (B, P, D) L2-normalised patch embeddings; image b is the pair of report b.
        word_mask: (B, T) bool, True = real word; every report needs at least one.
        word_weights: (B, T) word importance (e.g. MGCA's clipped importance weights), or None =
            uniform over valid words. Detached and renormalised over valid words here.
        temperature_attn: tau_a of the word -> patch attention softmax.
        temperature: tau of the report-image logits s / tau.
        gamma: word aggregation; 0 = weighted mean, > 0 = weighted log-sum-exp (soft maximum).
        chunk_elements: largest (reports x words x images x patches) count computed in one pass;
            above it, images are processed in chunks with activation checkpointing.
    Returns:
        scalar tensor: 0.5 * (CE image -> report + CE report -> image), each a mean over the
        (local) rows; negatives from the global batch when distributed.
    Raises:
        ValueError: on shape mismatch, gamma < 0, or a report without a valid word of weight > 0.
    """
    batch, num_words = check_token_shapes(word_emb, patch_emb, word_mask)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    mask = word_mask.bool()                                              # (B, T)
    words = word_emb.masked_fill(~mask[:, :, None], 0.0)                 # (B, T, D)
    weights = _valid_weights(word_weights, mask, word_emb.dtype)         # (B, T), sum 1 or 0
    if not bool((weights.sum(dim=1) > 0).all()):
        raise ValueError("local_contrast_loss: a report has no valid word of weight > 0")
    # words after each batch's last real word take no part: drop those columns
    positions = torch.arange(1, num_words + 1, device=mask.device)       # (T,)
    width = (mask * positions).amax()                                    # 0-dim: last valid + 1
    scores = partial(_all_pair_scores, temperature_attn=temperature_attn, gamma=gamma,
                     chunk_elements=chunk_elements)            # (words, weights, patches) -> s

    if is_distributed():
        rank, _ = rank_and_world()
        width = int(all_reduce_max(width))       # a common width, so the gathers' shapes agree
        words, weights = _to_width(words, width), _to_width(weights, width)
        all_patches = gather_with_grad(patch_emb)                        # (W*B, P, D)
        report_to_image = scores(words, weights, all_patches)            # (B, W*B)
        image_to_report = scores(gather_with_grad(words), gather_with_grad(weights),
                                 patch_emb).T                            # (B, W*B)
        offset = rank * batch
    else:
        width = int(width)
        report_to_image = scores(words[:, :width], weights[:, :width], patch_emb)  # (B, B)
        image_to_report = report_to_image.T                              # (B, B)
        offset = 0
    target = torch.arange(offset, offset + batch, device=word_emb.device)  # (B,)
    return 0.5 * (F.cross_entropy(image_to_report / temperature, target)
                  + F.cross_entropy(report_to_image / temperature, target))

"""Exercises of notebook 04: the word -> patch cross-attention and the CTA loss.

- `my_word_attention(word_emb, patch_emb, word_mask, tau=0.1)` -> (attention (B, T, P),
  context (B, T, D)), against `mgca_lite.losses.cta.word_patch_attention`;
- `my_cta(word_emb, patch_emb, word_mask, word_weights, patch_weights, tau=0.1)` -> scalar,
  against `mgca_lite.losses.cta_loss`: the value and the gradients w.r.t. both embeddings.

Inputs: seeded unit word and patch vectors, reports of different lengths padded with garbage
(random vectors in the padded slots: a correct function never looks at them).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..losses import cta_loss
from ..losses.cta import word_patch_attention
from .core import Case, Exercise, Mistake, unit, value_and_grads


def _tokens(seed: int, lengths: list[int], patches: int, dim: int = 16, uniform_patches: bool = True) -> tuple:
    """words (B, T, D) with garbage after each report's length, patches (B, P, D), mask (B, T),
    word weights (B, T) summing to 1 over real words, patch weights (B, P)."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    words = unit(torch.randn(B, T, dim, generator=g))
    patch = unit(torch.randn(B, patches, dim, generator=g))
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    weights = torch.rand(B, T, generator=g).masked_fill(~mask, 0.0)
    weights = weights / weights.sum(1, keepdim=True)
    patch_w = (torch.full((B, patches), 1 / patches) if uniform_patches
               else torch.rand(B, patches, generator=g).softmax(1))
    return words, patch, mask, weights, patch_w


# ---- word -> patch cross-attention -------------------------------------------------------------

def _run_attention(function, case: Case) -> tuple:
    words, patch, mask, *tau = case.args
    attention, context = function(words, patch, mask, *tau)[:2]
    return attention, context


def _attention_variant(words, patch, mask, tau=0.1, axis=2, scale=True, keep_pad=False, normalise=True):
    logits = words @ patch.transpose(1, 2) / (tau if scale else 1.0)    # (B, T, P)
    attention = logits.softmax(dim=axis)
    if not keep_pad:
        attention = attention.masked_fill(~mask[:, :, None], 0.0)
    context = attention @ patch
    return attention, F.normalize(context, dim=-1) if normalise else context


ATTENTION_MISTAKES = [
    Mistake(lambda *a: _attention_variant(*a, axis=1),
            "wrong softmax axis: each word attends over the PATCHES (softmax over dim=2 of (B, T, P))"),
    Mistake(lambda *a: _attention_variant(*a, scale=False),
            "temperature forgotten: the logits are W . P / tau"),
    Mistake(lambda *a: _attention_variant(*a, keep_pad=True),
            "padded words left in: their attention rows and contexts must be 0 (use word_mask)"),
    Mistake(lambda *a: _attention_variant(*a, normalise=False),
            "the context is L2-normalised: F.normalize(attention @ patches, dim=-1)"),
]


def _attention_visible() -> list[Case]:
    return [Case("4 seeded reports of 5-9 words, 16 patches", _tokens(0, [5, 9, 7, 8], 16)[:3])]


def _attention_hidden() -> list[Case]:
    return [Case("another seed, 64 patches", _tokens(4, [3, 20, 11], 64, dim=32)[:3]),
            Case("B = 1, one word", _tokens(2, [1], 9)[:3]),
            Case("tau = 0.5 passed explicitly", (*_tokens(6, [6, 2], 16)[:3], 0.5))]


ATTENTION = Exercise("word_attention", "word -> patch cross-attention", word_patch_attention,
                     _run_attention, _attention_visible, _attention_hidden, ATTENTION_MISTAKES,
                     "attention = softmax over patches of W . P / tau (0 for padded words);"
                     " context = normalize(attention @ P)")


# ---- the CTA loss ------------------------------------------------------------------------------

def _run_cta(function, case: Case) -> tuple:
    words, patch, *rest = case.args
    return value_and_grads(function, (words, patch), *rest)


def _diagonal_ce(S, weights, valid, reduce_mean=True):
    """sum_b sum_i w_bi * CE[b, i] / B with the diagonal as target; `valid` masks rows and columns."""
    if valid is not None:
        S = S.masked_fill(~valid[:, None, :], -math.inf).masked_fill(~valid[:, :, None], -math.inf)
    ce_row = -S.log_softmax(dim=2).diagonal(dim1=1, dim2=2)
    ce_col = -S.log_softmax(dim=1).diagonal(dim1=1, dim2=2)
    ce = (0.5 if reduce_mean else 1.0) * (ce_row + ce_col)
    if valid is not None:
        ce = torch.where(valid, ce, 0.0)
    return (weights * ce).sum() / S.shape[0]


def _cta_variant(words, patch, mask, word_w, patch_w, tau=0.1, pad_negatives=False, sides="both",
                 attention_tau=None, score_tau=None, weighted=True, reduce_mean=True):
    """The CTA loss with one rule broken (for the hints)."""
    t_attn, t_score = attention_tau or tau, score_tau or tau
    W = words.masked_fill(~mask[:, :, None], 0.0)
    A = W @ patch.transpose(1, 2) / t_attn
    c_w = F.normalize(A.softmax(dim=2) @ patch, dim=-1)
    c_p = F.normalize(A.masked_fill(~mask[:, :, None], -math.inf).softmax(dim=1).transpose(1, 2) @ W, dim=-1)
    if not weighted:
        word_w = mask.float() / mask.sum(1, keepdim=True)
        patch_w = torch.full_like(patch_w, 1 / patch.shape[1])
    word_side = _diagonal_ce(W @ c_w.transpose(1, 2) / t_score, word_w, None if pad_negatives else mask, reduce_mean)
    patch_side = _diagonal_ce(patch @ c_p.transpose(1, 2) / t_score, patch_w, None, reduce_mean)
    return {"both": word_side + patch_side, "word": word_side, "patch": patch_side}[sides]


CTA_MISTAKES = [
    Mistake(lambda *a: _cta_variant(*a, pad_negatives=True),
            "padded words left in as negatives: mask them out of BOTH softmaxes of S_w (rows and columns)"),
    Mistake(lambda *a: _cta_variant(*a, attention_tau=1.0, score_tau=1.0),
            "temperature forgotten: divide the attention logits and both score matrices by tau"),
    Mistake(lambda *a: _cta_variant(*a, score_tau=1.0),
            "temperature forgotten in the scores: S = W . c / tau (and P . c / tau)"),
    Mistake(lambda *a: _cta_variant(*a, attention_tau=1.0),
            "temperature forgotten in the attention: softmax of W . P / tau"),
    Mistake(lambda *a: _cta_variant(*a, sides="word"),
            "only the word side: CTA = loss_word + loss_patch (patches attend over the words too)"),
    Mistake(lambda *a: _cta_variant(*a, sides="patch"),
            "only the patch side: CTA = loss_word + loss_patch"),
    Mistake(lambda *a: _cta_variant(*a, weighted=False),
            "importance weights ignored: weight each token's cross-entropies by word_weights / patch_weights"),
    Mistake(lambda *a: _cta_variant(*a, reduce_mean=False),
            "each token's two cross-entropies are AVERAGED (0.5 * (row + column)), not summed"),
]


def _cta_visible() -> list[Case]:
    return [Case("4 seeded reports of 5-9 words, 16 patches", _tokens(0, [5, 9, 7, 8], 16))]


def _cta_hidden() -> list[Case]:
    nan_padded = list(_tokens(1, [4, 12, 6], 16))
    nan_padded[0] = nan_padded[0].masked_fill(~nan_padded[2][:, :, None], math.nan)
    return [Case("another seed, ViT-like patch weights", _tokens(3, [10, 3, 14, 6, 8], 36, uniform_patches=False)),
            Case("B = 1", _tokens(5, [7], 16)),
            Case("NaN in the padded word slots", tuple(nan_padded)),
            Case("tau = 0.3 passed explicitly", (*_tokens(8, [5, 5, 2], 9), 0.3))]


CTA = Exercise("cta", "CTA loss", cta_loss, _run_cta, _cta_visible, _cta_hidden, CTA_MISTAKES,
               "follow the recipe: attention, contexts, S_w and S_p, diagonal cross-entropies weighted per token")

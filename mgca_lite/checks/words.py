"""Exercise: merging WordPiece pieces into words (notebook 02),
`merge_words(piece_feat, piece_attn, input_ids, attention_mask, is_continuation, is_special)`
-> (word_feat (B, T, C), word_weights (B, T), word_mask (B, T)).

Compared with the first three outputs of `mgca_lite.models.words.merge_pieces`, on a made-up
vocabulary: id 0 [PAD], 1 [CLS], 2 [SEP], 3-9 word starts, 10-15 "##" continuations.
"""
from __future__ import annotations

import torch

from ..models.words import merge_pieces
from .core import Case, Exercise, Mistake

PAD, CLS, SEP, VOCAB, FIRST_CONTINUATION = 0, 1, 2, 16, 10
IS_SPECIAL = torch.arange(VOCAB) <= SEP                      # (V,) [PAD], [CLS], [SEP]
IS_CONTINUATION = torch.arange(VOCAB) >= FIRST_CONTINUATION  # (V,) "##x" pieces


def _batch(seed: int, lengths: list[int], dim: int = 4) -> tuple:
    """Seeded pieces: row b = [CLS], lengths[b] word pieces (the first a word start), [SEP], [PAD]..."""
    g = torch.Generator().manual_seed(seed)
    L = max(lengths) + 2
    ids = torch.full((len(lengths), L), PAD)
    for b, n in enumerate(lengths):
        pieces = torch.randint(SEP + 1, VOCAB, (n,), generator=g)
        pieces[0] = torch.randint(SEP + 1, FIRST_CONTINUATION, (1,), generator=g)  # a word starts first
        ids[b, :n + 2] = torch.cat([torch.tensor([CLS]), pieces, torch.tensor([SEP])])
    mask = (ids != PAD).long()
    feat = torch.randn(len(lengths), L, dim, generator=g)
    attn = torch.rand(len(lengths), L, generator=g)
    return feat, attn, ids, mask, IS_CONTINUATION, IS_SPECIAL


def _run(function, case: Case) -> tuple:
    feat, weights, mask = tuple(function(*case.args))[:3]
    return feat, weights, torch.as_tensor(mask).float()


def _library(*args):
    return merge_pieces(*args)[:3]


def _variant(piece_feat, piece_attn, input_ids, attention_mask, is_continuation, is_special,
             mean=False, keep_special=False, keep_pad=False, normalise=True, merge=True):
    """merge_pieces with one rule broken (for the hints)."""
    special = is_special.clone()
    if keep_special:
        special[[CLS, SEP]] = False
    if keep_pad:
        special[PAD] = False
        attention_mask = torch.ones_like(attention_mask)
    cont = is_continuation if merge else torch.zeros_like(is_continuation)
    feat, weights, mask, index = merge_pieces(piece_feat, piece_attn, input_ids, attention_mask, cont, special)
    if mean:  # divide each word's sum by its number of pieces
        counts = torch.zeros(mask.shape).scatter_add(1, index.clamp_min(0), (index >= 0).float())
        feat = feat / counts.clamp_min(1)[:, :, None]
    if not normalise:
        weights = torch.zeros(mask.shape).scatter_add(1, index.clamp_min(0), piece_attn * (index >= 0))
    return feat, weights, mask


MISTAKES = [
    Mistake(lambda *a: _variant(*a, mean=True),
            "a word's vector is the SUM of its pieces' vectors, not their mean"),
    Mistake(lambda *a: _variant(*a, keep_special=True),
            "[CLS] and [SEP] are words in your output: skip the special pieces (is_special)"),
    Mistake(lambda *a: _variant(*a, keep_pad=True),
            "padded pieces left in: skip the pieces where attention_mask is 0"),
    Mistake(lambda *a: _variant(*a, normalise=False),
            "the word weights must be renormalised to sum to 1 over each report's words"),
    Mistake(lambda *a: _variant(*a, merge=False),
            "every piece became a word: a '##' piece (is_continuation) extends the word before it"),
]


def _visible() -> list[Case]:
    return [Case("3 seeded reports of 5, 9 and 12 pieces", _batch(0, [5, 9, 12]))]


def _hidden() -> list[Case]:
    return [Case("another seed, 6 reports", _batch(3, [1, 7, 20, 2, 15, 15], dim=8)),
            Case("B = 1, no padding", _batch(5, [11])),
            Case("a one-piece report beside a long one", _batch(9, [1, 30]))]


EXERCISE = Exercise("merge_words", "word-piece merging", _library, _run, _visible, _hidden, MISTAKES,
                    "word i = the sum of its pieces ([CLS], [SEP] and [PAD] are never words); weights sum to 1")

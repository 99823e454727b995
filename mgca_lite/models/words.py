"""From WordPiece pieces to words: features, importance weights, masks and strings.

MGCA aligns *words* with image patches, but BERT sees *pieces*: "pneumothorax" may arrive as
"pneumo ##thorax". A word's feature is the SUM of its pieces' last-layer vectors, and its importance
weight is the sum of the [CLS] -> piece attention over its pieces. [CLS], [SEP], [PAD] (and [MASK])
are never words; [UNK] is (it stands for a whole word the vocabulary could not spell).

Everything here is batched tensor code (no Python loop over the batch) except `word_strings`,
which only builds display strings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def vocab_tables(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-id lookup tables over the tokenizer's vocabulary (V = len(tokenizer)).

    Returns is_continuation (V,) bool (the piece starts with "##", so it extends the previous word)
    and is_special (V,) bool ([CLS]/[SEP]/[PAD]/[MASK]...: never part of a word; [UNK] is not special here).
    """
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    is_continuation = torch.tensor([p.startswith("##") for p in pieces], dtype=torch.bool)
    is_special = torch.zeros(len(pieces), dtype=torch.bool)
    special_ids = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    is_special[sorted(special_ids)] = True
    return is_continuation, is_special


def cls_piece_attention(attentions: torch.Tensor, shift: bool = False) -> torch.Tensor:
    """[CLS] -> piece attention of one layer, mean over heads.

    attentions (B, H, Lq, L) attention probabilities whose query row 0 is [CLS] (Lq = L for a full
    attention matrix, 1 for `text_encoder.cls_attention_probs`) -> (B, L); column j belongs to piece j.
    shift=True reproduces the reference's off-by-one: piece j gets column j+1 (the last piece gets 0).
    """
    attn = attentions[:, :, 0, :].mean(dim=1)  # (B, L): row 0 is what [CLS] attends to
    if shift:
        attn = F.pad(attn[:, 1:], (0, 1))  # (B, L): attn[:, j] <- attn[:, j + 1]
    return attn


def merge_pieces(
    piece_feat: torch.Tensor,
    piece_attn: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    is_continuation: torch.Tensor,
    is_special: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge pieces into words by summing, vectorised over the batch.

    piece_feat (B, L, C), piece_attn (B, L), input_ids (B, L), attention_mask (B, L) 0/1 or bool,
    is_continuation (V,) bool, is_special (V,) bool.
    Returns
      word_feat (B, T, C)  sum of each word's piece vectors, zeros after the last word,
      word_weights (B, T)  sum of each word's piece attention, normalised to 1 over the sample's words,
      word_mask (B, T)     bool, True for real words,
      word_index (B, L)    int64, the word each piece belongs to, -1 for pieces in no word,
    with T = the largest number of words of any sample in the batch.
    """
    B, L, C = piece_feat.shape
    in_word = attention_mask.bool() & ~is_special[input_ids]  # (B, L) pieces that belong to words
    continues = is_continuation[input_ids]                       # (B, L)
    # A piece starts a new word unless it is "##x" right after another word piece. (A "##x" after
    # [CLS] only occurs in hand-made inputs; it then starts a word rather than joining nothing.)
    prev_in_word = F.pad(in_word[:, :-1], (1, 0), value=False)   # (B, L)
    starts = in_word & ~(continues & prev_in_word)               # (B, L)
    word_index = starts.long().cumsum(dim=1) - 1                 # (B, L): 0, 0, 1, 2, 2, ...
    word_index = word_index.masked_fill(~in_word, -1)
    n_words = starts.sum(dim=1)                                  # (B,)
    T = int(n_words.max()) if B > 0 else 0

    # Pieces in no word are sent to an extra slot T, which is dropped: no masking arithmetic needed.
    slot = word_index.masked_fill(~in_word, T)                                       # (B, L)
    word_feat = piece_feat.new_zeros(B, T + 1, C)
    word_feat = word_feat.scatter_add(1, slot.unsqueeze(-1).expand(B, L, C), piece_feat)[:, :T]  # (B, T, C)
    weights = piece_attn.new_zeros(B, T + 1).scatter_add(1, slot, piece_attn)[:, :T]            # (B, T)

    word_mask = torch.arange(T, device=input_ids.device) < n_words.unsqueeze(1)      # (B, T)
    total = weights.sum(dim=1, keepdim=True)                                         # (B, 1)
    word_weights = weights / total.clamp_min(torch.finfo(weights.dtype).tiny)       # 0 for word-less samples
    return word_feat, word_weights, word_mask, word_index


def word_strings(input_ids: torch.Tensor, word_index: torch.Tensor, pieces: list[str],
                 is_continuation: torch.Tensor) -> list[list[str]]:
    """Words as strings, for display: input_ids, word_index (B, L) -> B lists of words.

    pieces[i] is the vocabulary string of id i; a continuation piece loses its "##".
    """
    ids, index, cont = input_ids.tolist(), word_index.tolist(), is_continuation.tolist()
    batch = []
    for row_ids, row_index in zip(ids, index):
        words: list[str] = []
        for piece_id, w in zip(row_ids, row_index):
            if w < 0:
                continue
            piece = pieces[piece_id][2:] if cont[piece_id] else pieces[piece_id]
            if w == len(words):
                words.append(piece)
            else:
                words[w] += piece
        batch.append(words)
    return batch

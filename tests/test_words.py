"""Merging WordPiece pieces into words (mgca_lite/models/words.py), checked against plain loops."""
from __future__ import annotations

import torch

from mgca_lite.models.words import cls_piece_attention, merge_pieces, word_strings

# A hand-made vocabulary: ids 0-4 are BERT's special tokens.
PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pneumo", "##thorax", ".", "small", "##er", "##s"]
ID = {p: i for i, p in enumerate(PIECES)}
IS_CONT = torch.tensor([p.startswith("##") for p in PIECES])
IS_SPECIAL = torch.tensor([p in ("[PAD]", "[CLS]", "[SEP]", "[MASK]") for p in PIECES])


def _ids(*rows: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Space-separated pieces per row -> right-padded input_ids, attention_mask (B, L)."""
    split = [r.split() for r in rows]
    L = max(map(len, split))
    ids = torch.tensor([[ID[p] for p in r] + [0] * (L - len(r)) for r in split])
    return ids, (torch.arange(L) < torch.tensor([len(r) for r in split])[:, None]).long()


def reference_merge(feat, attn, ids, mask, is_cont, is_special):
    """The plain Python loop the vectorised merge must match."""
    B, L, C = feat.shape
    groups = []  # per sample: list of words, each a list of piece positions
    for b in range(B):
        words, prev_in_word = [], False
        for j in range(L):
            in_word = bool(mask[b, j]) and not bool(is_special[ids[b, j]])
            if in_word and bool(is_cont[ids[b, j]]) and prev_in_word:
                words[-1].append(j)
            elif in_word:
                words.append([j])
            prev_in_word = in_word
        groups.append(words)
    T = max(len(w) for w in groups)
    word_feat, weights = torch.zeros(B, T, C), torch.zeros(B, T)
    word_mask, word_index = torch.zeros(B, T, dtype=torch.bool), torch.full((B, L), -1)
    for b, words in enumerate(groups):
        for t, positions in enumerate(words):
            word_mask[b, t] = True
            for j in positions:
                word_feat[b, t] += feat[b, j]
                weights[b, t] += attn[b, j]
                word_index[b, j] = t
        if words:
            weights[b] /= weights[b].sum()
    return word_feat, weights, word_mask, word_index


def test_hand_case_pneumothorax_is_one_word_and_specials_are_never_words():
    ids, mask = _ids("[CLS] no pneumo ##thorax [SEP]", "[CLS] small ##er pneumo ##thorax ##s [UNK] [SEP]")
    B, L = ids.shape
    feat = torch.randn(B, L, 5)
    attn = torch.rand(B, L)
    word_feat, weights, word_mask, word_index = merge_pieces(feat, attn, ids, mask, IS_CONT, IS_SPECIAL)

    assert word_feat.shape == (2, 3, 5) and weights.shape == (2, 3)
    assert word_mask.tolist() == [[True, True, False], [True, True, True]]
    assert word_index.tolist() == [[-1, 0, 1, 1, -1, -1, -1, -1], [-1, 0, 0, 1, 1, 1, 2, -1]]
    assert word_strings(ids, word_index, PIECES, IS_CONT) == [
        ["no", "pneumothorax"], ["smaller", "pneumothoraxs", "[UNK]"]]
    torch.testing.assert_close(word_feat[0, 1], feat[0, 2] + feat[0, 3])           # pneumo + ##thorax
    torch.testing.assert_close(word_feat[1, 1], feat[1, 3] + feat[1, 4] + feat[1, 5])
    assert (word_feat[0, 2] == 0).all() and weights[0, 2] == 0                       # padded word slot
    raw = torch.stack([attn[0, 1], attn[0, 2] + attn[0, 3]])                         # column j <-> piece j
    torch.testing.assert_close(weights[0, :2], raw / raw.sum())


def test_merge_matches_loop_on_random_batches():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        B, L, C = 4, 12, 3
        ids = torch.randint(0, len(PIECES), (B, L), generator=g)  # any order: specials and "##" anywhere
        ids[:, 0] = ID["[CLS]"]
        ids[1] = ID["[PAD]"]
        ids[1, 0], ids[1, 1] = ID["[CLS]"], ID["[SEP]"]                     # an empty report
        mask = (torch.arange(L) < torch.randint(2, L + 1, (B, 1), generator=g)).long()
        mask[1] = 0
        mask[1, :2] = 1
        feat, attn = torch.randn(B, L, C, generator=g), torch.rand(B, L, generator=g)
        got = merge_pieces(feat, attn, ids, mask, IS_CONT, IS_SPECIAL)
        want = reference_merge(feat, attn, ids, mask, IS_CONT, IS_SPECIAL)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
        weights, word_mask = got[1], got[2]
        assert not word_mask[1].any() and (weights[1] == 0).all()  # the empty report has no words
        has_words = word_mask.any(dim=1)
        torch.testing.assert_close(weights.sum(1)[has_words], torch.ones(int(has_words.sum())))


def test_gradient_reaches_exactly_the_word_pieces():
    ids, mask = _ids("[CLS] no pneumo ##thorax . [SEP]", "[CLS] small [SEP]")
    feat = torch.randn(*ids.shape, 4, requires_grad=True)
    word_feat, *_ = merge_pieces(feat, torch.rand(ids.shape), ids, mask, IS_CONT, IS_SPECIAL)
    word_feat.sum().backward()
    in_word = torch.tensor([[0, 1, 1, 1, 1, 0], [0, 1, 0, 0, 0, 0]], dtype=torch.float)
    torch.testing.assert_close(feat.grad, in_word[..., None].expand_as(feat))


def test_cls_attention_alignment_and_reference_shift():
    attn = torch.rand(2, 3, 6, 6).softmax(-1)  # (B, H, L, L)
    plain = cls_piece_attention(attn)
    shifted = cls_piece_attention(attn, shift=True)
    for j in range(6):
        torch.testing.assert_close(plain[:, j], attn[:, :, 0, j].mean(1))  # column j <-> piece j
    for j in range(5):
        torch.testing.assert_close(shifted[:, j], attn[:, :, 0, j + 1].mean(1))  # reference: column j+1
    assert (shifted[:, 5] == 0).all()

"""The benchmark's reference transcription agrees with our losses wherever the two are meant to
(so the speed comparison compares like with like), and differs exactly as documented."""

import torch
import torch.nn.functional as F

from mgca_lite.bench.reference_transcription import (reference_cpa, reference_cta,
                                                     reference_importance, reference_ita)
from mgca_lite.losses import cpa_loss, cta_loss, ita_loss, token_importance


def _emb(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def test_reference_ita_is_twice_ours():
    img, rep = _emb(5, 8, seed=1), _emb(5, 8, seed=2)
    torch.testing.assert_close(reference_ita(img, rep), 2 * ita_loss(img, rep))


def test_reference_cpa_and_importance_match_ours():
    img, rep, protos = _emb(6, 8, seed=3), _emb(6, 8, seed=4), _emb(11, 8, seed=5)
    torch.testing.assert_close(reference_cpa(img, rep, protos.clone()).double(),
                               cpa_loss(img, rep, protos))
    g = torch.Generator().manual_seed(6)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 4, 6])[:, None]
    att = (torch.rand(3, 9, generator=g, dtype=torch.float64) + 0.01) * mask
    torch.testing.assert_close(reference_importance(att, nonzero_only=True),
                               token_importance(att, mask))
    patch_att = torch.rand(3, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(reference_importance(patch_att, nonzero_only=False),
                               token_importance(patch_att, None))


def test_reference_cta_differs_only_by_its_quirks():
    # no padding and patch contexts that are already unit vectors (one word): then neither
    # [PAD]-as-negatives nor the missing re-normalisation matters, and the two agree
    words, patches = _emb(2, 1, 8, seed=7), _emb(2, 5, 8, seed=8)
    mask = torch.ones(2, 1, dtype=torch.bool)
    word_att = torch.ones(2, 1, dtype=torch.float64)
    patch_att = torch.rand(2, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ours = cta_loss(words, patches, mask, token_importance(word_att, mask),
                    token_importance(patch_att, None))
    torch.testing.assert_close(reference_cta(words, patches, mask, word_att, patch_att), ours)

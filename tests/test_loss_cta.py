"""CTA and token importance: parity with loops written from the spec, masking, edge cases."""

import pytest
import torch
import torch.nn.functional as F

from mgca_lite.losses import cta_loss, token_importance

B, T, P, D = 3, 5, 7, 8


def _emb(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


def _mask():
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 2] = False    # an interior pad
    mask[1, 3:] = False   # 3 valid words
    mask[2, 1:] = False   # a single valid word
    return mask


def _unit(v):
    return v / torch.sqrt(v.dot(v))


def _two_way_ce(tokens, contexts, weights, tau):
    """Weighted row-CE + column-CE with the diagonal as target, for ONE sample (lists)."""
    n = len(tokens)
    s = [[tokens[i].dot(contexts[j]) / tau for j in range(n)] for i in range(n)]
    rows = sum(weights[i] * -(s[i][i] - torch.log(sum(torch.exp(s[i][j]) for j in range(n))))
               for i in range(n))
    cols = sum(weights[j] * -(s[j][j] - torch.log(sum(torch.exp(s[i][j]) for i in range(n))))
               for j in range(n))
    return 0.5 * (rows + cols)


def loop_cta(words, patches, mask, word_w, patch_w, tau):
    """Spec §2 CTA, sample by sample, token by token; padded words never appear."""
    total = 0.0
    for b in range(words.shape[0]):
        W = [words[b, i] for i in range(words.shape[1]) if mask[b, i]]
        Pt = [patches[b, p] for p in range(patches.shape[1])]
        ww = [word_w[b, i] for i in range(words.shape[1]) if mask[b, i]] if word_w is not None \
            else [1.0] * len(W)
        pw = [patch_w[b, p] for p in range(len(Pt))] if patch_w is not None else [1.0] * len(Pt)
        ww = [w / sum(ww) for w in ww]
        pw = [w / sum(pw) for w in pw]
        ctx_w = []
        for w in W:   # word -> patch attention over all patches
            e = [torch.exp(w.dot(p) / tau) for p in Pt]
            ctx_w.append(_unit(sum(e[k] / sum(e) * Pt[k] for k in range(len(Pt)))))
        ctx_p = []
        for p in Pt:  # patch -> word attention over valid words only
            e = [torch.exp(p.dot(w) / tau) for w in W]
            ctx_p.append(_unit(sum(e[k] / sum(e) * W[k] for k in range(len(W)))))
        total = total + _two_way_ce(W, ctx_w, ww, tau) + _two_way_ce(Pt, ctx_p, pw, tau)
    return total / words.shape[0]


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_cta_matches_loop_values_and_grads(weighted, groups, monkeypatch):
    # groups = 1: one batch, padded words masked; 4: each sample trimmed to its own length
    import mgca_lite.losses.cta as cta_module

    monkeypatch.setitem(cta_module._BUCKETS, "cpu", groups)
    words = _emb(B, T, D, seed=1).requires_grad_()
    patches = _emb(B, P, D, seed=2).requires_grad_()
    mask = _mask()
    g = torch.Generator().manual_seed(3)
    word_w = torch.rand(B, T, generator=g, dtype=torch.float64) if weighted else None
    patch_w = torch.rand(B, P, generator=g, dtype=torch.float64) if weighted else None
    ours = cta_loss(words, patches, mask, word_w, patch_w, temperature=0.1)
    ref = loop_cta(words, patches, mask, word_w, patch_w, 0.1)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, (words, patches)),
                               torch.autograd.grad(ref, (words, patches)))


def test_cta_ignores_garbage_in_padded_words():
    words, patches, mask = _emb(B, T, D, seed=4), _emb(B, P, D, seed=5), _mask()
    word_w = torch.rand(B, T, dtype=torch.float64)
    clean = words.clone().requires_grad_()
    dirty = words.masked_fill(~mask[..., None], 1e6)
    dirty[1, 4, 0] = float("nan")
    dirty.requires_grad_()
    dirty_w = word_w.masked_fill(~mask, 5.0)
    a = cta_loss(clean, patches, mask, word_w)
    b = cta_loss(dirty, patches, mask, dirty_w)
    torch.testing.assert_close(a, b)
    (ga,), (gb,) = torch.autograd.grad(a, clean), torch.autograd.grad(b, dirty)
    torch.testing.assert_close(ga, gb)
    assert (gb[~mask] == 0).all()


def test_cta_aligned_lower_than_shuffled():
    # every patch is described by one word (a noisy copy of it, in another order). With more
    # patches than words the unmatched patches dominate the patch side, so keep P = T here.
    patches = _emb(4, 6, 16, seed=6)
    words = F.normalize(patches[:, [3, 0, 5, 1, 4, 2]] + 0.2 * _emb(4, 6, 16, seed=7), dim=-1)
    mask = torch.ones(4, 6, dtype=torch.bool)
    assert cta_loss(words, patches, mask) < cta_loss(words.roll(1, dims=0), patches, mask)


def test_cta_edge_cases_bf16_batch_one_single_word():
    words, patches, mask = _emb(B, T, D, seed=8), _emb(B, P, D, seed=9), _mask()
    out = cta_loss(words.bfloat16().requires_grad_(), patches.bfloat16(), mask)
    assert torch.isfinite(out)
    one = cta_loss(words[2:].requires_grad_(), patches[2:], mask[2:])   # B = 1, one valid word
    assert torch.isfinite(one)
    one.backward()
    no_word = mask.clone()
    no_word[0] = False
    with pytest.raises(ValueError, match="no valid word"):
        cta_loss(words, patches, no_word)


def loop_importance(att, mask, low, high):
    out = torch.zeros_like(att)
    for b in range(att.shape[0]):
        valid = att[b][mask[b]]
        lo, hi = torch.quantile(valid, low), torch.quantile(valid, high)
        clipped = valid.clamp(lo, hi)
        out[b][mask[b]] = clipped / clipped.sum()
    return out


def test_token_importance_matches_per_sample_quantiles():
    g = torch.Generator().manual_seed(10)
    att = torch.rand(4, 11, generator=g)
    mask = torch.rand(4, 11, generator=g) > 0.3
    mask[:, 0] = True
    mask[3, 1:] = False    # a single valid token
    w = token_importance(att, mask)
    torch.testing.assert_close(w, loop_importance(att, mask, 0.1, 0.9))
    assert (w[~mask] == 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(4))
    assert w[3, 0].item() == 1.0
    torch.testing.assert_close(token_importance(att, None, 0.2, 0.7),
                               loop_importance(att, torch.ones_like(mask), 0.2, 0.7))


def test_token_importance_edge_cases():
    att = torch.zeros(2, 3)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    # all-zero attention -> uniform over the valid tokens
    torch.testing.assert_close(token_importance(att, mask),
                               torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    assert token_importance(torch.rand(2, 3).bfloat16(), mask).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="no valid token"):
        token_importance(torch.rand(2, 3), torch.tensor([[True, False, False], [False] * 3]))


def test_cta_length_groups_change_nothing(monkeypatch):
    # on CPU the batch is split into groups of similar report length, each trimmed to its own
    # longest report; one group (as on GPU) and no trimming at all must give the same numbers
    import mgca_lite.losses.cta as cta_module

    g = torch.Generator().manual_seed(11)
    words = _emb(8, 9, D, seed=12).requires_grad_()
    patches = _emb(8, P, D, seed=13).requires_grad_()
    lengths = torch.tensor([9, 2, 5, 1, 7, 3, 9, 4])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    mask[0, 4] = False                      # an interior pad as well
    word_w = torch.rand(8, 9, generator=g, dtype=torch.float64)
    results = []
    for groups in (4, 1):
        monkeypatch.setitem(cta_module._BUCKETS, "cpu", groups)
        loss = cta_loss(words, patches, mask, word_w)
        results.append((loss, *torch.autograd.grad(loss, (words, patches))))
    torch.testing.assert_close(results[0], results[1])
    full = loop_cta(words, patches, mask, word_w, None, 0.1)
    torch.testing.assert_close(results[0][0], full)


def test_hand_written_backwards_pass_gradcheck():
    from mgca_lite.losses.cta import _DiagonalCE, _ScaledUnit

    g = torch.Generator().manual_seed(14)
    x = torch.randn(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _ScaledUnit.apply(t, 2.5), (x,))
    scores = torch.randn(2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([[True, True, False, True], [True, True, True, True]])
    weights = torch.rand(2, 4, generator=g, dtype=torch.float64) * valid
    assert torch.autograd.gradcheck(lambda s: _DiagonalCE.apply(s, weights, valid), (scores,))
    assert torch.autograd.gradcheck(lambda s: _DiagonalCE.apply(s, weights.abs() + valid, None),
                                    (scores,))

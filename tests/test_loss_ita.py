"""ITA and retrieval top-k: parity with a loop written from the formula, invariances, edge cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from mgca_lite.losses import ita_loss, retrieval_topk


def _emb(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


def loop_ita(img, rep, tau):
    """Spec §2: mean over the two directions of -log softmax of the matching pair."""
    batch = img.shape[0]
    i2r = 0.0
    for i in range(batch):
        logits = [img[i].dot(rep[j]) / tau for j in range(batch)]
        i2r = i2r - (logits[i] - torch.log(sum(torch.exp(x) for x in logits)))
    r2i = 0.0
    for j in range(batch):
        logits = [rep[j].dot(img[i]) / tau for i in range(batch)]
        r2i = r2i - (logits[j] - torch.log(sum(torch.exp(x) for x in logits)))
    return 0.5 * (i2r / batch + r2i / batch)


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_ita_matches_loop_values_and_grads(tau):
    img = _emb(3, 8, seed=1).requires_grad_()
    rep = _emb(3, 8, seed=2).requires_grad_()
    ours = ita_loss(img, rep, temperature=tau)
    ref = loop_ita(img, rep, tau)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, (img, rep)),
                               torch.autograd.grad(ref, (img, rep)))


def test_ita_is_mean_not_sum_of_directions():
    # identical orthogonal embeddings: both directions have the same CE, so mean == one of them
    img = torch.eye(4, dtype=torch.float64)
    ce = F.cross_entropy(img @ img.T / 0.07, torch.arange(4))
    torch.testing.assert_close(ita_loss(img, img), ce)


def test_ita_batch_permutation_invariance():
    img, rep = _emb(6, 8, seed=3), _emb(6, 8, seed=4)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ita_loss(img[perm], rep[perm]), ita_loss(img, rep))


def test_ita_aligned_lower_than_shuffled():
    img = _emb(8, 16, seed=5)
    rep = F.normalize(img + 0.3 * _emb(8, 16, seed=6), dim=-1)
    shuffled = rep.roll(1, dims=0)
    assert ita_loss(img, rep) < ita_loss(img, shuffled)


def test_ita_batch_of_one_is_zero_and_bf16_finite():
    img, rep = _emb(1, 8, seed=7), _emb(1, 8, seed=8)
    assert ita_loss(img, rep).item() == 0.0  # one candidate: softmax = 1
    bf16 = torch.bfloat16
    out = ita_loss(_emb(5, 8, seed=9, dtype=bf16), _emb(5, 8, seed=10, dtype=bf16))
    assert torch.isfinite(out)


def test_retrieval_topk():
    img = torch.eye(4)
    rep = torch.eye(4)[[0, 2, 1, 3]]   # images 0 and 3 retrieve their own report
    acc = retrieval_topk(img, rep)
    assert acc["top1"].item() == 0.5
    assert acc["top5"].item() == 1.0   # k clipped to B = 4
    assert math.isclose(retrieval_topk(img[:1], rep[:1])["top5"].item(), 1.0)

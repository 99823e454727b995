"""CPA: parity with a loop written from the formula (values and gradients), invariances."""

import math

import pytest
import torch
import torch.nn.functional as F

from mgca_lite.losses import cpa_loss, sinkhorn

B, D, K = 3, 8, 11


def _emb(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


def loop_codes(z, eps, iterations):
    """Sinkhorn on a nested list z[b][k] (no gradient), paper layout inside."""
    nb, nk = len(z), len(z[0])
    Q = [[math.exp(z[b][k] / eps) for b in range(nb)] for k in range(nk)]
    total = sum(map(sum, Q))
    Q = [[x / total for x in row] for row in Q]
    for _ in range(iterations):
        Q = [[x / sum(row) / nk for x in row] for row in Q]
        col = [sum(Q[k][b] for k in range(nk)) for b in range(nb)]
        Q = [[Q[k][b] / col[b] / nb for b in range(nb)] for k in range(nk)]
    col = [sum(Q[k][b] for k in range(nk)) for b in range(nb)]
    return [[Q[k][b] / col[b] for k in range(nk)] for b in range(nb)]


def loop_cpa(img, rep, protos, eps, tau, iterations):
    C = [protos[k] / torch.sqrt(protos[k].dot(protos[k])) for k in range(protos.shape[0])]
    z_img = [[img[b].dot(c) for c in C] for b in range(img.shape[0])]
    z_rep = [[rep[b].dot(c) for c in C] for b in range(rep.shape[0])]
    q_img = loop_codes([[x.item() for x in row] for row in z_img], eps, iterations)
    q_rep = loop_codes([[x.item() for x in row] for row in z_rep], eps, iterations)

    def ce(q, z):   # -mean_b sum_k q log softmax(z / tau)
        total = 0.0
        for b in range(len(z)):
            log_norm = torch.log(sum(torch.exp(x / tau) for x in z[b]))
            total = total - sum(q[b][k] * (z[b][k] / tau - log_norm) for k in range(len(z[b])))
        return total / len(z)

    return 0.5 * (ce(q_img, z_rep) + ce(q_rep, z_img))


@pytest.mark.parametrize("iterations", [0, 3])
def test_cpa_matches_loop_values_and_grads(iterations):
    img = _emb(B, D, seed=1).requires_grad_()
    rep = _emb(B, D, seed=2).requires_grad_()
    protos = (3 * torch.randn(K, D, generator=torch.Generator().manual_seed(3),
                              dtype=torch.float64)).requires_grad_()   # not unit-norm on purpose
    ours = cpa_loss(img, rep, protos, epsilon=0.05, temperature=0.2, iterations=iterations)
    ref = loop_cpa(img, rep, protos, 0.05, 0.2, iterations)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, (img, rep, protos)),
                               torch.autograd.grad(ref, (img, rep, protos)))


def test_cpa_permutation_and_prototype_scale_invariance():
    img, rep, protos = _emb(6, D, seed=4), _emb(6, D, seed=5), _emb(K, D, seed=6)
    base = cpa_loss(img, rep, protos)
    perm = torch.tensor([3, 1, 5, 0, 2, 4])
    torch.testing.assert_close(cpa_loss(img[perm], rep[perm], protos), base)
    torch.testing.assert_close(cpa_loss(img, rep, 7.0 * protos), base)


def test_cpa_aligned_lower_than_shuffled():
    img = _emb(16, 32, seed=7)
    rep = F.normalize(img + 0.2 * _emb(16, 32, seed=8), dim=-1)
    protos = _emb(20, 32, seed=9)
    assert cpa_loss(img, rep, protos) < cpa_loss(img, rep.roll(1, dims=0), protos)


def test_cpa_codes_get_no_gradient():
    # the codes are constants: the gradient equals that of -sum(q_fixed * log p) alone
    img = _emb(B, D, seed=10).requires_grad_()
    rep, protos = _emb(B, D, seed=11), _emb(K, D, seed=12)
    q_img, q_rep = sinkhorn(img.detach() @ protos.T), sinkhorn(rep @ protos.T)
    manual = 0.5 * (-(q_img * F.log_softmax(rep @ protos.T / 0.2, 1)).sum(1).mean()
                    - (q_rep * F.log_softmax(img @ protos.T / 0.2, 1)).sum(1).mean())
    torch.testing.assert_close(torch.autograd.grad(cpa_loss(img, rep, protos), img),
                               torch.autograd.grad(manual, img))


def test_cpa_bf16_and_batch_of_one_are_finite():
    img, rep, protos = _emb(5, D, seed=13), _emb(5, D, seed=14), _emb(K, D, seed=15)
    out = cpa_loss(img.bfloat16(), rep.bfloat16(), protos.float().requires_grad_())
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(cpa_loss(img[:1], rep[:1], protos))

"""Sinkhorn-Knopp codes: parity with a loop in the paper's (K, B) layout, marginals, dtypes."""

import math

import pytest
import torch

from mgca_lite.losses import sinkhorn


def loop_sinkhorn(scores, eps, iterations):
    """Spec §2 in the paper's layout: Q[k][b] = exp(z[b, k] / eps), plain Python floats."""
    batch, protos = scores.shape
    Q = [[math.exp(scores[b, k].item() / eps) for b in range(batch)] for k in range(protos)]
    total = sum(map(sum, Q))
    Q = [[x / total for x in row] for row in Q]
    for _ in range(iterations):
        for k in range(protos):                       # prototype marginals -> 1/K
            s = sum(Q[k])
            Q[k] = [x / s / protos for x in Q[k]]
        for b in range(batch):                        # sample marginals -> 1/B
            s = sum(Q[k][b] for k in range(protos))
            for k in range(protos):
                Q[k][b] = Q[k][b] / s / batch
    for b in range(batch):                            # each sample sums to 1
        s = sum(Q[k][b] for k in range(protos))
        for k in range(protos):
            Q[k][b] = Q[k][b] / s
    return torch.tensor([[Q[k][b] for k in range(protos)] for b in range(batch)],
                        dtype=torch.float64)


def _scores(batch=3, protos=11, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(batch, protos, generator=g, dtype=torch.float64) - 1).to(dtype)


@pytest.mark.parametrize("iterations", [0, 1, 3])
def test_sinkhorn_matches_loop(iterations):
    z = _scores()
    torch.testing.assert_close(sinkhorn(z, 0.05, iterations), loop_sinkhorn(z, 0.05, iterations))


def test_sinkhorn_marginals():
    z = _scores(batch=8, protos=4, seed=1)
    q = sinkhorn(z, epsilon=0.5, iterations=3)
    torch.testing.assert_close(q.sum(1), torch.ones(8, dtype=torch.float64))   # exact per sample
    q = sinkhorn(z, epsilon=0.5, iterations=200)                              # converged:
    torch.testing.assert_close(q.sum(0), torch.full((4,), 8 / 4, dtype=torch.float64),
                               rtol=0, atol=1e-6)                             # equipartition
    assert (q >= 0).all()


def test_sinkhorn_no_grad_shift_and_permutation():
    z = _scores(batch=6, seed=2).requires_grad_()
    q = sinkhorn(z)
    assert not q.requires_grad
    torch.testing.assert_close(sinkhorn(z + 3.0), q)             # global constant: no effect
    perm = torch.tensor([5, 2, 0, 1, 4, 3])
    torch.testing.assert_close(sinkhorn(z[perm]), q[perm])       # equivariant


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_sinkhorn_low_precision_input_is_float32_inside(dtype):
    z = _scores(batch=5, seed=3, dtype=dtype)
    q = sinkhorn(z)                      # exp(1/0.05) = 4.9e8 would overflow fp16
    assert q.dtype == torch.float32
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q, sinkhorn(z.float()))
    one = sinkhorn(z[:1])                # batch of one
    assert torch.isfinite(one).all() and math.isclose(one.sum().item(), 1.0, rel_tol=1e-5)


def test_sinkhorn_solves_stacked_problems_independently():
    a, b = _scores(batch=4, seed=4), 0.3 * _scores(batch=4, seed=5) + 0.5
    torch.testing.assert_close(sinkhorn(torch.stack([a, b])),
                               torch.stack([sinkhorn(a), sinkhorn(b)]))

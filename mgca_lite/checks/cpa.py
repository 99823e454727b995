"""Exercises of notebook 05: Sinkhorn-Knopp and the CPA loss.

- `sinkhorn_steps(scores, eps=0.05, iterations=3)` -> codes (B, K) (or (codes, history), as the
  notebook's version returns), against `mgca_lite.losses.sinkhorn`;
- `my_cpa(img, rep, prototypes, eps=0.05, temperature=0.2)` -> scalar, against
  `mgca_lite.losses.cpa_loss`: the value and the gradients w.r.t. both embeddings and the prototypes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cpa_loss, sinkhorn
from .core import Case, Exercise, Mistake, unit, value_and_grads


def _scores(seed: int, batch: int, protos: int, dim: int = 16, bias: float = 1.5) -> torch.Tensor:
    """(B, K) cosine scores of seeded samples drawn near prototype 0 (a plain argmax would collapse)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = unit(torch.randn(protos, dim, generator=g))
    emb = unit(torch.randn(batch, dim, generator=g) + bias * prototypes[0])
    return emb @ prototypes.T


def library_sinkhorn_steps(scores: torch.Tensor, eps: float = 0.05, iterations: int = 3):
    """Notebook 05's `sinkhorn_steps`, from the library: (codes (B, K), history of the marginals).
    history: ("start" | "k: columns" | "k: rows", row sums (B,), column sums (K,)) per half-step."""
    B, K = scores.shape
    Q = torch.exp((scores.float() - scores.float().max()) / eps)
    Q = Q / Q.sum()
    history = [("start", Q.sum(dim=1), Q.sum(dim=0))]
    for it in range(1, iterations + 1):
        Q = Q / Q.sum(dim=0, keepdim=True) / K
        history.append((f"{it}: columns", Q.sum(dim=1), Q.sum(dim=0)))
        Q = Q / Q.sum(dim=1, keepdim=True) / B
        history.append((f"{it}: rows", Q.sum(dim=1), Q.sum(dim=0)))
    return sinkhorn(scores, epsilon=eps, iterations=iterations), history


def _run_sinkhorn(function, case: Case) -> tuple:
    out = function(*case.args)
    return (out[0] if isinstance(out, (tuple, list)) else out,)


def _sinkhorn_variant(scores, eps=0.05, iterations=3, rows_first=False, final_rows=True, transpose=False,
                      use_eps=True):
    """Sinkhorn-Knopp with one rule broken (for the hints)."""
    z = scores.float().T if transpose else scores.float()
    B, K = z.shape
    Q = torch.exp((z - z.max()) / (eps if use_eps else 1.0))
    Q = Q / Q.sum()
    for _ in range(iterations):
        if rows_first:
            Q = Q / Q.sum(dim=1, keepdim=True) / B
        Q = Q / Q.sum(dim=0, keepdim=True) / K
        if not rows_first:
            Q = Q / Q.sum(dim=1, keepdim=True) / B
    if final_rows:
        Q = Q / Q.sum(dim=1, keepdim=True)
    return Q.T if transpose else Q


SINKHORN_MISTAKES = [
    Mistake(lambda *a: _sinkhorn_variant(*a, use_eps=False),
            "epsilon forgotten: Q = exp(scores / eps)"),
    Mistake(lambda *a: _sinkhorn_variant(*a, rows_first=True),
            "the order of the two steps: first the columns (each prototype to 1/K), then the rows (1/B)"),
    Mistake(lambda *a: _sinkhorn_variant(*a, final_rows=False),
            "each sample's code must sum to 1: divide every row by its sum at the end (rows sum to 1/B before)"),
    Mistake(lambda *a: _sinkhorn_variant(*a, transpose=True),
            "samples and prototypes swapped: rows are samples (B), columns are prototypes (K)"),
    Mistake(lambda scores, eps=0.05, iterations=3: F.softmax(scores / eps, dim=1),
            "these are plain softmax codes: balance the columns (prototypes) and rows (samples) in turn"),
    Mistake(lambda scores, eps=0.05, iterations=3: _sinkhorn_variant(scores, eps, 3),
            "use the `iterations` argument, not a fixed 3"),
]


def _sinkhorn_visible() -> list[Case]:
    return [Case("8 seeded samples x 5 prototypes", (_scores(0, 8, 5),)),
            Case("eps = 0.1, 5 iterations", (_scores(1, 8, 5), 0.1, 5))]


def _sinkhorn_hidden() -> list[Case]:
    return [Case("another seed, B = 64, K = 16", (_scores(2, 64, 16),)),
            Case("B = 1", (_scores(3, 1, 6),)),
            Case("float16 scores (the library computes in float32)", (_scores(4, 16, 8).half(),)),
            Case("20 iterations", (_scores(5, 12, 4), 0.05, 20))]


SINKHORN = Exercise("sinkhorn", "Sinkhorn-Knopp codes", library_sinkhorn_steps, _run_sinkhorn,
                    _sinkhorn_visible, _sinkhorn_hidden, SINKHORN_MISTAKES,
                    "Q = exp((z - max) / eps), total 1; then `iterations` times: columns to 1/K, rows to 1/B;"
                    " finally rows to 1")


def _pairs(seed: int, batch: int, dim: int, protos: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    img = unit(torch.randn(batch, dim, generator=g))
    rep = unit(img + 0.7 * unit(torch.randn(batch, dim, generator=g)))
    return img, rep, torch.randn(protos, dim, generator=g)          # prototypes: not normalised on purpose


def _run_cpa(function, case: Case) -> tuple:
    img, rep, protos, *rest = case.args
    return value_and_grads(function, (img, rep, protos), *rest)


def _cpa_variant(img, rep, prototypes, eps=0.05, temperature=0.2, swapped=True, normalise=True,
                 use_temperature=True, codes_with_grad=False):
    C = F.normalize(prototypes, dim=1) if normalise else prototypes
    z_img, z_rep = img @ C.T, rep @ C.T
    if codes_with_grad:
        q_img, q_rep = _sinkhorn_variant(z_img, eps), _sinkhorn_variant(z_rep, eps)
    else:
        q_img, q_rep = sinkhorn(z_img, eps), sinkhorn(z_rep, eps)
    t = temperature if use_temperature else 1.0
    logp_img, logp_rep = F.log_softmax(z_img / t, dim=1), F.log_softmax(z_rep / t, dim=1)
    if not swapped:
        logp_img, logp_rep = logp_rep, logp_img
    return 0.5 * (-(q_img * logp_rep).sum(1).mean() - (q_rep * logp_img).sum(1).mean())


CPA_MISTAKES = [
    Mistake(lambda *a: _cpa_variant(*a, swapped=False),
            "not swapped: the IMAGE codes are the targets of the REPORT predictions, and vice versa"),
    Mistake(lambda *a: _cpa_variant(*a, use_temperature=False),
            "temperature forgotten: the predictions are log_softmax(z / temperature)"),
    Mistake(lambda *a: _cpa_variant(*a, normalise=False),
            "normalise the prototypes (rows of C) before scoring: the loss must not depend on their norm"),
    Mistake(lambda *a: _cpa_variant(*a, codes_with_grad=True),
            "the codes are targets: compute them under torch.no_grad() (no gradient through Sinkhorn)"),
]


def _cpa_visible() -> list[Case]:
    return [Case("16 seeded pairs, 10 prototypes", _pairs(1, 16, 32, 10))]


def _cpa_hidden() -> list[Case]:
    return [Case("another seed, B = 40, K = 24", _pairs(6, 40, 16, 24)),
            Case("B = 1", _pairs(2, 1, 8, 5)),
            Case("temperature 0.5 passed explicitly", (*_pairs(3, 12, 16, 8), 0.05, 0.5))]


CPA = Exercise("cpa", "CPA loss", cpa_loss, _run_cpa, _cpa_visible, _cpa_hidden, CPA_MISTAKES,
               "codes = Sinkhorn of each modality's scores (no gradient); predictions = log_softmax(z / T);"
               " CPA = 0.5 * (CE(q_img, p_rep) + CE(q_rep, p_img))")

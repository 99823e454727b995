"""Exercise: the ITA loss (notebook 03), `my_ita(image_emb, report_emb, tau=0.07)` -> scalar.

Compared with `mgca_lite.losses.ita_loss`: the value and the gradients w.r.t. both embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import ita_loss
from .core import Case, Exercise, Mistake, unit, value_and_grads


def _pairs(seed: int, batch: int, dim: int, noise: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded unit image embeddings (B, D) and their reports (B, D): image + noise."""
    g = torch.Generator().manual_seed(seed)
    image = unit(torch.randn(batch, dim, generator=g))
    return image, unit(image + noise * unit(torch.randn(batch, dim, generator=g)))


def _run(function, case: Case) -> tuple:
    image, report, *tau = case.args
    return value_and_grads(function, (image, report), *tau)


def _i2r(logits):   # -mean log softmax over rows (image -> report), target the diagonal
    return -logits.log_softmax(dim=1).diagonal().mean()


def _r2i(logits):   # the same over columns (report -> image)
    return -logits.log_softmax(dim=0).diagonal().mean()


MISTAKES = [
    Mistake(lambda i, r, tau=0.07: _i2r(i @ r.T / tau) + _r2i(i @ r.T / tau),
            "your loss is twice the library's: ITA is the MEAN of the two directions (0.5 * (i2r + r2i)), "
            "not their sum (the reference code's factor of two)"),
    Mistake(lambda i, r, tau=0.07: 0.5 * (_i2r(i @ r.T) + _r2i(i @ r.T)),
            "temperature forgotten: the logits are the similarities divided by tau"),
    Mistake(lambda i, r, tau=0.07: 0.5 * (_i2r(i @ r.T * tau) + _r2i(i @ r.T * tau)),
            "the logits are similarities DIVIDED by tau, not multiplied"),
    Mistake(lambda i, r, tau=0.07: _i2r(i @ r.T / tau),
            "wrong softmax axis or a direction missing: image -> report is a softmax over rows (dim=1),"
            " report -> image one over columns (dim=0); ITA is the mean of both"),
    Mistake(lambda i, r, tau=0.07: _r2i(i @ r.T / tau),
            "wrong softmax axis or a direction missing: image -> report is a softmax over rows (dim=1),"
            " report -> image one over columns (dim=0); ITA is the mean of both"),
    Mistake(lambda i, r, tau=0.07: 0.5 * (F.cross_entropy(i @ r.T / tau, torch.arange(len(i)), reduction="sum")
                                          + F.cross_entropy(r @ i.T / tau, torch.arange(len(i)), reduction="sum")),
            "each cross-entropy is a MEAN over the batch, not a sum"),
]


def _visible() -> list[Case]:
    return [Case("8 seeded pairs (D = 128)", _pairs(0, 8, 128))]


def _hidden() -> list[Case]:
    return [Case("another seed, B = 33, D = 16", _pairs(7, 33, 16)),
            Case("B = 1", _pairs(3, 1, 32)),
            Case("tau = 0.5 passed explicitly", (*_pairs(5, 12, 64, noise=2.0), 0.5)),
            Case("hard negatives (noisy pairs)", _pairs(11, 24, 32, noise=3.0))]


EXERCISE = Exercise("ita", "ITA loss", ita_loss, _run, _visible, _hidden, MISTAKES,
                    "check the two cross-entropies: logits = image_emb @ report_emb.T / tau, targets on the diagonal")

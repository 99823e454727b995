"""MGCA losses: ITA (global), CTA (token), CPA (prototype), and their combination; beyond the
paper, a GLoRIA-style cross-sample word-region contrast (`local_contrast_loss`, off by default).

One function per loss, distributed communication isolated in `distributed.py`; every loss has a
parity test against a loop written from the formula (`tests/test_loss*.py`).
"""

from .cpa import cpa_loss, sinkhorn
from .cta import cta_loss
from .distributed import all_reduce_sum, gather_with_grad, is_distributed
from .importance import token_importance
from .ita import ita_loss, retrieval_topk
from .local_contrast import local_contrast_loss
from .mgca_loss import MGCALoss, MGCALossConfig

__all__ = [
    "ita_loss", "retrieval_topk", "token_importance", "cta_loss", "sinkhorn", "cpa_loss",
    "local_contrast_loss", "MGCALossConfig", "MGCALoss", "gather_with_grad", "all_reduce_sum",
    "is_distributed",
]

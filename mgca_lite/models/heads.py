"""Projection heads: encoder features -> the shared D-dimensional embedding space.

Both heads are Linear-BN-ReLU-Linear-BN(affine=False) (ref: GlobalEmbedding / LocalEmbedding).
The local head applies it to every token. Its BatchNorm statistics come from VALID tokens only:
the reference normalises over all rows, [PAD] words included, so the statistics shift with the
amount of padding in the batch. Outputs are not L2-normalised here; the model does that.
"""
from __future__ import annotations

import torch
from torch import nn


def projection(in_dim: int, hidden: int, out: int) -> nn.Sequential:
    """(N, in_dim) -> (N, out). The Linears have no bias: the BatchNorm after each removes it anyway."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out, bias=False),
        nn.BatchNorm1d(out, affine=False),
    )


class GlobalHead(nn.Module):
    """forward(x (B, in_dim)) -> (B, out)."""

    def __init__(self, in_dim: int, hidden: int = 2048, out: int = 128):
        super().__init__()
        self.net = projection(in_dim, hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LocalHead(nn.Module):
    """forward(x (B, T, in_dim), mask (B, T) bool | None) -> (B, T, out).

    Only rows with mask True go through the MLP (so BatchNorm sees only them); the other rows of
    the output are 0. mask None = every token is valid (image patches).
    """

    def __init__(self, in_dim: int, hidden: int = 2048, out: int = 128):
        super().__init__()
        self.net = projection(in_dim, hidden, out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        if mask is None:
            return self.net(x.reshape(B * T, C)).reshape(B, T, -1)  # (B, T, out)
        rows = self.net(x[mask])                # (N, out), N = number of valid tokens
        out = rows.new_zeros(B, T, rows.shape[-1])
        out[mask] = rows                        # scatter back; padded rows stay 0
        return out

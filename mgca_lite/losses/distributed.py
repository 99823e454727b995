"""The only file in `mgca_lite` that talks to `torch.distributed`.

Every loss works unchanged on one process; when a process group is initialised (and has more
than one member) two things change, and both go through the helpers below:

- ITA takes its negatives from the **global** batch: `gather_with_grad` concatenates every
  process's embeddings and lets the gradient flow back to the process that owns each row.
- Sinkhorn uses **global** marginals: `all_reduce_sum` / `all_reduce_max` (no gradient).

Gradient bookkeeping (checked by `tests/test_distributed_losses.py`). Each process computes the
loss as a mean over its *local* rows, L_r. The one-process loss on the concatenated batch is the
average L = (1/W) sum_r L_r. `gather_with_grad`'s backward sums the incoming gradients of all
processes, so on process r the gradient w.r.t. its own embeddings is sum_r' dL_r'/d emb_r
= W * dL/d emb_r; DDP then *averages* parameter gradients over the W processes, which cancels the
W: the DDP gradient equals the one-process gradient of L. (Equivalently: without DDP, divide the
per-process gradients by W, or all-reduce-mean them for shared parameters.)

Why a custom autograd Function rather than `torch.distributed.nn.functional.all_gather`: in
torch 2.14 that one works on gloo, but its backward emulates reduce-scatter with W scatters
(one per rank); ours is one all-gather forward and one all-reduce backward on every backend.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "rank_and_world", "gather_with_grad", "all_reduce_sum",
           "all_reduce_max"]


def is_distributed() -> bool:
    """True when a process group is initialised and has more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not distributed."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward returns this rank's slice of the summed gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = rank_and_world()
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x)  # every rank must pass the same shape
        ctx.rank, ctx.rows = rank, x.shape[0]
        return torch.cat(parts, dim=0)  # (W*B, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # (W*B, ...): d(L_this_rank)/d(gathered)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # sum_r' d(L_r')/d(gathered)
        start = ctx.rank * ctx.rows
        return grad[start:start + ctx.rows]  # (B, ...): the rows this rank owns


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) on each of W processes -> (W*B, ...), rank order, gradient flows back.

    Rows [rank*B, (rank+1)*B) are this process's own `x`. Identity when not distributed.
    All processes must pass tensors of the same shape (equal per-process batch size).
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of `x` over all processes (no gradient). `x` itself is never modified;
    when not distributed `x` is returned as is."""
    if not is_distributed():
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


@torch.no_grad()
def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """Element-wise max of `x` over all processes (no gradient); `x` is never modified."""
    if not is_distributed():
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out

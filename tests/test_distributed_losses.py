"""Two CPU processes (gloo) give the one-process loss and gradients on the concatenated batch.

Each rank computes the loss as a mean over its local rows; the one-process loss on the global
batch is their average. Gradient rule (what DDP relies on): on each rank, the gradient w.r.t. its
own embeddings = W * the one-process gradient of those rows (gather_with_grad's backward sums
every rank's contribution; DDP's averaging divides by W again); for a shared parameter (the
prototypes) the mean over ranks of the per-rank gradients = the one-process gradient.
"""

import socket
from datetime import timedelta
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mgca_lite.losses import MGCALoss, MGCALossConfig, gather_with_grad, sinkhorn

WORLD, B, T, P, D, K = 2, 3, 5, 6, 8, 7
LEAVES = ("img_emb", "rep_emb", "word_emb", "patch_emb")


def _global_batch():
    """Seeded inputs for the global batch of WORLD * B pairs (float64)."""
    g = torch.Generator().manual_seed(0)
    n = lambda *s: F.normalize(torch.randn(*s, generator=g, dtype=torch.float64), dim=-1)
    mask = torch.rand(WORLD * B, T, generator=g) > 0.3
    mask[:, 0] = True
    return dict(img_emb=n(WORLD * B, D), rep_emb=n(WORLD * B, D), word_emb=n(WORLD * B, T, D),
                patch_emb=n(WORLD * B, P, D), word_mask=mask,
                word_weights=torch.rand(WORLD * B, T, generator=g, dtype=torch.float64) * mask,
                patch_weights=torch.rand(WORLD * B, P, generator=g, dtype=torch.float64),
                protos=n(K, D))


def _loss_and_grads(data, rows):
    """MGCALoss on data[rows]; returns ({term: value}, {leaf: grad}, prototype grad)."""
    crit = MGCALoss(MGCALossConfig(num_prototypes=K, embed_dim=D)).double()
    with torch.no_grad():
        crit.prototypes.copy_(data["protos"])
    out = SimpleNamespace(**{k: v[rows].clone() for k, v in data.items() if k != "protos"})
    for name in LEAVES:
        getattr(out, name).requires_grad_()
    res = crit(out)
    res["loss"].backward()
    terms = {k: res[k].detach() for k in ("loss", "ita", "cta", "cpa")}
    return terms, {k: getattr(out, k).grad for k in LEAVES}, crit.prototypes.grad


def _worker(rank, port, expected):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        exp_terms, exp_grads, exp_proto_grad, exp_codes = expected
        data = _global_batch()
        rows = slice(rank * B, (rank + 1) * B)
        terms, grads, proto_grad = _loss_and_grads(data, rows)
        for name, value in terms.items():                       # average of per-rank losses
            dist.all_reduce(value)
            torch.testing.assert_close(value / WORLD, exp_terms[name], msg=name)
        for name, grad in grads.items():                        # local rows: W * 1-proc grad
            torch.testing.assert_close(grad, WORLD * exp_grads[name][rows], msg=name)
        dist.all_reduce(proto_grad)                             # shared: mean over ranks
        torch.testing.assert_close(proto_grad / WORLD, exp_proto_grad)
        codes = sinkhorn(data["img_emb"][rows] @ data["protos"].T)   # global marginals
        torch.testing.assert_close(codes, exp_codes[rows])
        x = data["rep_emb"][rows].clone().requires_grad_()
        gathered = gather_with_grad(x)
        torch.testing.assert_close(gathered, data["rep_emb"])
        (gathered * (rank + 1.0)).sum().backward()              # grad = sum over ranks = 1 + 2
        torch.testing.assert_close(x.grad, torch.full_like(x, 3.0))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process_on_concatenated_batch():
    assert not dist.is_initialized()
    data = _global_batch()
    terms, grads, proto_grad = _loss_and_grads(data, slice(None))   # one process, 2B pairs
    codes = sinkhorn(data["img_emb"] @ data["protos"].T)
    mp.spawn(_worker, args=(_free_port(), (terms, grads, proto_grad, codes)), nprocs=WORLD,
             join=True)

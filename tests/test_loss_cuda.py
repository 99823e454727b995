"""The losses on a GPU give the CPU numbers (values and gradients) and stay finite under bf16
autocast. Skipped where there is no CUDA device."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mgca_lite.losses import (MGCALoss, MGCALossConfig, cpa_loss, cta_loss, ita_loss, sinkhorn,
                              token_importance)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

B, T, P, D, K = 6, 9, 12, 16, 10


def _inputs(device, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    n = lambda *s: F.normalize(torch.randn(*s, generator=g, dtype=dtype), dim=-1)
    lengths = torch.tensor([9, 2, 5, 1, 7, 3])
    mask = torch.arange(T)[None, :] < lengths[:, None]
    data = dict(img=n(B, D), rep=n(B, D), words=n(B, T, D), patches=n(B, P, D), mask=mask,
                word_att=torch.rand(B, T, generator=g, dtype=dtype) * mask,
                patch_att=torch.rand(B, P, generator=g, dtype=dtype), protos=n(K, D))
    return {k: v.to(device) for k, v in data.items()}


def _all_losses(d):
    leaves = [d[k].clone().requires_grad_() for k in ("img", "rep", "words", "patches", "protos")]
    img, rep, words, patches, protos = leaves
    ww = token_importance(d["word_att"], d["mask"])
    pw = token_importance(d["patch_att"], None)
    losses = [ita_loss(img, rep), cta_loss(words, patches, d["mask"], ww, pw),
              cpa_loss(img, rep, protos)]
    grads = torch.autograd.grad(sum(losses), leaves)
    return [x.cpu() for x in (*losses, ww, pw, sinkhorn(img @ protos.T), *grads)]


def test_cuda_matches_cpu():
    cpu = _all_losses(_inputs("cpu"))
    gpu = _all_losses(_inputs("cuda"))
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b, a)


def test_mgca_loss_under_bf16_autocast_is_finite():
    torch.manual_seed(0)
    d = _inputs("cuda", torch.float32)
    head = torch.nn.Linear(D, D).cuda()
    crit = MGCALoss(MGCALossConfig(num_prototypes=K, embed_dim=D)).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        emb = lambda x: F.normalize(head(x), dim=-1)      # bf16 embeddings, as a model gives
        out = SimpleNamespace(img_emb=emb(d["img"]), rep_emb=emb(d["rep"]),
                              word_emb=emb(d["words"]), patch_emb=emb(d["patches"]),
                              word_mask=d["mask"], word_weights=d["word_att"],
                              patch_weights=d["patch_att"])
        res = crit(out)
    assert all(torch.isfinite(res[k]) for k in ("loss", "ita", "cta", "cpa"))
    res["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in (*head.parameters(), crit.prototypes))

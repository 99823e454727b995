"""MGCALoss: composition of the three terms, ablation switches, prototype hooks."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mgca_lite.losses import (MGCALoss, MGCALossConfig, cpa_loss, cta_loss, ita_loss,
                              token_importance)

B, T, P, D, K = 4, 6, 9, 16, 10


def _out(patch_weights=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = lambda *s: F.normalize(torch.randn(*s, generator=g), dim=-1).requires_grad_()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    mask[3, 1:] = False
    word_w = torch.rand(B, T, generator=g) * mask
    patch_w = torch.rand(B, P, generator=g) if patch_weights else None
    return SimpleNamespace(img_emb=n(B, D), rep_emb=n(B, D), patch_emb=n(B, P, D),
                           word_emb=n(B, T, D), word_mask=mask, word_weights=word_w,
                           patch_weights=patch_w)


def _cfg(**kw):
    return MGCALossConfig(num_prototypes=K, embed_dim=D, **kw)


@pytest.mark.parametrize("vit", [True, False])
def test_total_is_weighted_sum_of_the_three_functions(vit):
    torch.manual_seed(0)
    crit = MGCALoss(_cfg(lambda_ita=0.5, lambda_cta=0.7, lambda_cpa=0.3))
    out = _out(patch_weights=vit)
    res = crit(out)
    ita = ita_loss(out.img_emb, out.rep_emb, 0.07)
    pw = token_importance(out.patch_weights, None) if vit else None
    cta = cta_loss(out.word_emb, out.patch_emb, out.word_mask,
                   token_importance(out.word_weights, out.word_mask), pw, 0.1)
    cpa = cpa_loss(out.img_emb, out.rep_emb, crit.prototypes, 0.05, 0.2, 3)
    for name, value in {"ita": ita, "cta": cta, "cpa": cpa}.items():
        torch.testing.assert_close(res[name], value)
    torch.testing.assert_close(res["loss"], 0.5 * ita + 0.7 * cta + 0.3 * cpa)
    assert set(res) == {"loss", "ita", "cta", "cpa", "top1", "top5"}
    assert 0 <= res["top1"] <= res["top5"] <= 1 and not res["top1"].requires_grad
    res["loss"].backward()
    assert crit.prototypes.grad is not None and out.word_emb.grad is not None


def test_switched_off_terms_are_zero_and_not_computed():
    torch.manual_seed(0)
    out = _out()
    out.word_emb = out.patch_emb = out.word_mask = out.word_weights = None  # would crash CTA
    res = MGCALoss(_cfg(use_cta=False, use_cpa=False))(out)
    assert res["cta"].item() == 0.0 and res["cpa"].item() == 0.0
    torch.testing.assert_close(res["loss"], res["ita"])
    with pytest.raises(ValueError):
        MGCALoss(_cfg(use_ita=False, use_cta=False, use_cpa=False))


def test_prototype_freeze_and_normalisation_hooks():
    torch.manual_seed(0)
    crit = MGCALoss(_cfg(freeze_prototypes_epochs=1))
    assert crit.prototypes.shape == (K, D)
    crit(_out())["loss"].backward()
    crit.drop_frozen_prototype_grads(epoch=0)
    assert crit.prototypes.grad is None
    crit(_out())["loss"].backward()
    crit.drop_frozen_prototype_grads(epoch=1)
    assert crit.prototypes.grad is not None
    with torch.no_grad():
        crit.prototypes.mul_(3.0)
    crit.normalize_prototypes_()
    torch.testing.assert_close(crit.prototypes.norm(dim=1), torch.ones(K))


def test_prototypes_follow_the_callers_seed():
    torch.manual_seed(123)
    a = MGCALoss(_cfg()).prototypes
    torch.manual_seed(123)
    torch.testing.assert_close(a, MGCALoss(_cfg()).prototypes)


def test_cta_warmup_ramps_its_weight_in_training_only():
    torch.manual_seed(0)
    crit = MGCALoss(_cfg(lambda_cta=0.8, cta_warmup_steps=100))
    assert [crit.cta_weight(s) for s in (0, 25, 100, 5000, None)] == [0.0, 0.2, 0.8, 0.8, 0.8]
    out = _out()
    for step, weight in ((0, 0.0), (50, 0.4), (None, 0.8)):
        res = crit(out, step)
        torch.testing.assert_close(res["loss"], res["ita"] + weight * res["cta"] + res["cpa"])
    only_cta = MGCALoss(_cfg(use_ita=False, use_cpa=False, cta_warmup_steps=10))
    only_cta(out, step=0)["loss"].backward()  # weight 0 at step 0: CTA sends no gradient yet
    assert out.word_emb.grad is None or out.word_emb.grad.abs().max() == 0
    assert MGCALoss(_cfg()).cta_weight(0) == 1.0  # off by default: the paper's objective from step 0
    with pytest.raises(ValueError, match="cta_warmup_steps"):
        MGCALossConfig(cta_warmup_steps=-1)

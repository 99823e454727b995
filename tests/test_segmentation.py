"""Segmentation (`eval segment`): Dice against torchmetrics on hand-made masks, the loss against its
formula and torchvision's focal loss, decoders' shapes, boxes as masks, training, and the CLI."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torchmetrics.functional.segmentation import dice_score
from torchmetrics.segmentation import DiceScore
from torchvision.ops import sigmoid_focal_loss

from mgca_lite.evaluation.segmentation import (SegmentConfig, SETRNaiveHead, SplitCache, UNetDecoder, balanced,
                                               box_masks, build_decoder, dice_per_image, focal_loss, frozen_maps,
                                               predict, predict_mask, segmentation_loss, train_segmentation)
from mgca_lite.models.config import ImageEncoderConfig
from mgca_lite.models.image_encoder import build_image_encoder


def _masks() -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Five hand-made (pred, truth) pairs on 4x4 and the Dice worked out by hand."""
    pred, true = torch.zeros(5, 4, 4, dtype=torch.bool), torch.zeros(5, 4, 4, dtype=torch.bool)
    true[0, :2, :2] = True; pred[0, :2, :1] = True    # 2 of 4 found: 2*2 / (2 + 4) = 2/3
    true[1, 1:3, 1:3] = True; pred[1, 1:3, 1:3] = True  # exact: 1
    true[2, 0, 0] = True; pred[2, 3, 3] = True        # disjoint: 0
    true[3] = False; pred[3, 0, :3] = True            # empty truth, 3 pixels predicted: 0
    # image 4: empty truth and empty prediction: 1 (ours and the reference's; torchmetrics NaN)
    return pred, true, [2 / 3, 1.0, 0.0, 0.0, 1.0]


def test_dice_per_image_equals_hand_worked_values():
    pred, true, expected = _masks()
    assert torch.allclose(dice_per_image(pred, true), torch.tensor(expected))
    # truth present, nothing predicted: 0
    assert dice_per_image(torch.zeros(1, 4, 4, dtype=torch.bool), true[:1]).item() == 0.0


def test_dice_per_image_equals_torchmetrics_except_empty_empty_which_scores_one():
    pred, true, _ = _masks()
    theirs = dice_score(pred[:, None].long(), true[:, None].long(), num_classes=1, average="none")[:, 0]
    ours = dice_per_image(pred, true)
    empty_empty = ~pred.flatten(1).any(1) & ~true.flatten(1).any(1)
    assert empty_empty.tolist() == [False, False, False, False, True]
    assert torch.allclose(ours[~empty_empty], theirs[~empty_empty])
    assert torch.isnan(theirs[empty_empty]).all() and (ours[empty_empty] == 1).all()

    # Random masks (never both empty): equal everywhere.
    g = torch.Generator().manual_seed(0)
    p, t = torch.rand(16, 8, 8, generator=g) < 0.3, torch.rand(16, 8, 8, generator=g) < 0.2
    theirs = dice_score(p[:, None].long(), t[:, None].long(), num_classes=1, average="none")[:, 0]
    assert torch.allclose(dice_per_image(p, t), theirs)


def test_the_mean_counts_empty_empty_images_which_torchmetrics_dicescore_drops():
    # DiceScore's mean over samples skips the NaN of an empty/empty image; ours scores it 1, as the
    # reference does (so a model that predicts nothing on a healthy film is rewarded, not ignored).
    pred, true, expected = _masks()
    metric = DiceScore(num_classes=1, average="macro")  # one class: macro = micro
    metric.update(pred[:, None].long(), true[:, None].long())
    assert math.isclose(metric.compute().item(), sum(expected[:4]) / 4, rel_tol=1e-6)
    assert math.isclose(dice_per_image(pred, true).mean().item(), sum(expected) / 5, rel_tol=1e-6)


def test_predict_mask_thresholds_the_probability_strictly_at_one_half():
    logits = torch.tensor([-1.0, 0.0, 1e-3, 2.0]).view(1, 1, 1, 4)
    assert predict_mask(logits).tolist() == [[[False, False, True, True]]]


def _loss_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(2, 1, 6, 6, generator=g, dtype=torch.float64)).requires_grad_()
    target = (torch.rand(2, 1, 6, 6, generator=g) < 0.3).double()
    return logits, target


def test_focal_loss_equals_torchvision_without_alpha_values_and_gradients():
    # The reference's FocalLoss has no class weight: torchvision's alpha=-1 switches its weight off.
    for gamma in (0.0, 2.0, 3.5):
        logits, target = _loss_inputs(int(gamma))
        ours = focal_loss(logits, target, gamma)
        (g_ours,) = torch.autograd.grad(ours, logits)
        theirs = sigmoid_focal_loss(logits, target, alpha=-1, gamma=gamma, reduction="mean")
        (g_theirs,) = torch.autograd.grad(theirs, logits)
        assert torch.allclose(ours, theirs, atol=1e-12)
        assert torch.allclose(g_ours, g_theirs, atol=1e-12)


def _loss_from_formula(x: torch.Tensor, t: torch.Tensor, w: float = 10.0, gamma: float = 2.0) -> torch.Tensor:
    """10 * mean((1 - p_t)^2 BCE) - log((2 sum(p t) + 1) / (sum p + sum t + 1)), written out plainly."""
    p = 1 / (1 + torch.exp(-x))
    bce = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    p_t = t * p + (1 - t) * (1 - p)
    focal = ((1 - p_t) ** gamma * bce).sum() / x.numel()
    dice = (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    return w * focal - torch.log(dice)


def test_segmentation_loss_equals_its_formula_values_and_gradients():
    logits, target = _loss_inputs(1)
    ours = segmentation_loss(logits, target)
    (g_ours,) = torch.autograd.grad(ours, logits)
    ref = _loss_from_formula(logits, target)
    (g_ref,) = torch.autograd.grad(ref, logits)
    assert torch.allclose(ours, ref, atol=1e-12) and torch.allclose(g_ours, g_ref, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: segmentation_loss(x, target), (logits,))


def test_segmentation_loss_hand_worked_at_zero_logits():
    # p = 1/2 everywhere, no positive pixel among N = 16: focal = (1/2)^2 log 2, Dice = 1 / (N/2 + 1).
    loss = segmentation_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    assert math.isclose(loss.item(), 10 * 0.25 * math.log(2) + math.log(9), rel_tol=1e-6)


def test_box_masks_fill_half_open_pixel_boxes():
    masks = box_masks([torch.tensor([[1.0, 2.0, 4.0, 5.0], [5.0, 0.0, 6.0, 1.0]]), torch.zeros(0, 4)], (6, 8))
    expected = torch.zeros(2, 6, 8, dtype=torch.bool)
    expected[0, 2:5, 1:4] = True
    expected[0, 0:1, 5:6] = True
    assert torch.equal(masks, expected)


def test_rsna_box_masks_are_non_empty_for_every_positive_at_64_px():
    from mgca_lite.evaluation.downstream import render_task_splits

    ds = render_task_splits("rsna", 64, sizes={"train": 48, "val": 1, "test": 1}, progress=False)["train"]
    items = [ds[i] for i in range(len(ds))]
    masks = box_masks([it["boxes"] for it in items], (64, 64))
    positive = torch.tensor([bool(it["target"][0]) for it in items])
    assert positive.any() and (~positive).any()
    assert torch.equal(masks.flatten(1).any(1), positive)


def test_balanced_keeps_every_positive_and_as_many_negatives():
    positive = torch.tensor([True, False, False, True, False, False, False])
    kept = balanced(torch.arange(7), positive, seed=0)
    assert positive[kept].sum() == 2 and (~positive[kept]).sum() == 2
    assert torch.equal(kept, kept.sort().values)
    # no positive in the subset: one negative, so there is still something to train on
    assert len(balanced(torch.tensor([1, 2]), positive, seed=0)) == 1


@pytest.mark.parametrize("stride", [8, 16])
def test_unet_decoder_returns_one_logit_per_input_pixel(stride):
    encoder = build_image_encoder(ImageEncoderConfig(image_size=32, width=4, local_stride=stride)).eval()
    images = torch.randn(2, 1, 32, 32)
    maps = frozen_maps(encoder, images)
    decoder = build_decoder(encoder, SegmentConfig())
    assert isinstance(decoder, UNetDecoder)
    assert decoder(maps, (32, 32)).shape == (2, 1, 32, 32)


def test_setr_head_reads_the_vit_patch_grid():
    encoder = build_image_encoder(ImageEncoderConfig(arch="vit_tiny", image_size=32, patch_size=8)).eval()
    maps = frozen_maps(encoder, torch.randn(2, 1, 32, 32))
    assert [m.shape for m in maps] == [(2, encoder.local_dim, 4, 4)]
    decoder = build_decoder(encoder, SegmentConfig())
    assert isinstance(decoder, SETRNaiveHead)
    assert decoder(maps, (32, 32)).shape == (2, 1, 32, 32)


def _square_task(n: int, seed: int) -> SplitCache:
    """Maps of a fake encoder whose x1 channel 0 marks a square; the mask is that square, 16x16."""
    g = torch.Generator().manual_seed(seed)
    dims, sizes = (4, 4, 4, 4), (4, 2, 2, 1)
    maps = [torch.randn(n, c, s, s, generator=g) * 0.1 for c, s in zip(dims, sizes)]
    masks = torch.zeros(n, 16, 16, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(0, 3, (2,), generator=g).tolist()
        maps[0][i, 0, r:r + 2, c:c + 2] = 3.0
        masks[i, 4 * r:4 * r + 8, 4 * c:4 * c + 8] = True
    return SplitCache(maps, masks)


def test_training_learns_a_readable_mask_and_keeps_the_best_validation_state():
    train, val = _square_task(32, 0), _square_task(16, 1)
    cfg = SegmentConfig(lr=1e-2, batch_size=8, max_steps=60, val_every=10, patience=10)
    torch.manual_seed(0)
    history = []
    decoder = train_segmentation(UNetDecoder((4, 4, 4, 4), (8, 8, 8, 8)), train, val, cfg, history=history)
    dice = dice_per_image(predict(decoder, val), val.masks).mean().item()
    assert dice > 0.8
    assert math.isclose(dice, max(h["val_dice"] for h in history), rel_tol=1e-6)
    assert [h["step"] for h in history] == [10, 20, 30, 40, 50, 60]


def test_cli_smoke_writes_the_per_fraction_result(tmp_path, capsys):
    from mgca_lite.cli import main

    out = tmp_path / "segment.json"
    assert main(["eval", "segment", "--checkpoint", "random", "--smoke", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {k: result[k] for k in ("task", "dataset", "metric", "checkpoint", "synth_seed", "image_size")} == \
        {"task": "segment", "dataset": "siim", "metric": "dice", "checkpoint": "random", "synth_seed": 1234,
         "image_size": 64}
    assert list(result["results"]) == list(result["results_positive"]) == list(result["n_train"]) == ["1", "10", "100"]
    assert [len(result["results"][k]["seeds"]) for k in ("1", "10", "100")] == [3, 3, 1]
    for block in (*result["results"].values(), *result["results_positive"].values()):
        assert all(0.0 <= s <= 1.0 for s in block["seeds"])
    assert result["n_test"] == 32 and 0 < result["empty_baseline"] <= 1
    assert result["config"]["smoke"] and result["config"]["balance"] is True
    assert "segment on siim (dice" in capsys.readouterr().out

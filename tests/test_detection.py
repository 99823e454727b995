"""Detection (`eval detect`): mAP on hand-made boxes, the frozen-encoder backbone, the CLI's JSON."""
import json
from collections import OrderedDict

import pytest
import torch

from mgca_lite.evaluation.detection import (IOU_THRESHOLDS, DetectConfig, FrozenEncoderFPN, build_detector,
                                            detection_map, detection_map_skipping_empty_predictions)
from mgca_lite.models.config import ImageEncoderConfig
from mgca_lite.models.image_encoder import ResNetEncoder

# COCO's AP reads precision at 101 recall points 0, 0.01, ..., 1: a detector that finds half the
# boxes with precision 1 and nothing more scores 51 / 101 (recalls 0 .. 0.50).
HALF_RECALL_AP = 51 / 101


def _pred(*boxes_scores):
    boxes = torch.tensor([b for b, _ in boxes_scores], dtype=torch.float32).reshape(-1, 4)
    return {"boxes": boxes, "scores": torch.tensor([s for _, s in boxes_scores]),
            "labels": torch.zeros(len(boxes_scores), dtype=torch.int64)}


def _gt(*boxes):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.zeros(len(boxes), dtype=torch.int64)}


A, B = [10.0, 10.0, 30.0, 30.0], [40.0, 5.0, 50.0, 25.0]


def test_iou_thresholds_are_040_to_075_in_005_steps():
    assert IOU_THRESHOLDS == pytest.approx([0.40 + 0.05 * i for i in range(8)])


def test_perfect_prediction_scores_one():
    assert detection_map([_pred((A, 0.9)), _pred((B, 0.8))], [_gt(A), _gt(B)]) == pytest.approx(1.0)


def test_partial_match_by_hand():
    # Image 1: exact hit, score 0.9. Image 2: the box's top 58 % (IoU 0.58), score 0.8.
    # At IoU 0.40, 0.45, 0.50, 0.55 both are hits: AP 1. At 0.60 .. 0.75 only the top-ranked one
    # is: AP = HALF_RECALL_AP. mAP = (4 * 1 + 4 * 51 / 101) / 8.
    partial = [40.0, 5.0, 50.0, 5.0 + 0.58 * 20]
    value = detection_map([_pred((A, 0.9)), _pred((partial, 0.8))], [_gt(A), _gt(B)])
    assert value == pytest.approx((4 + 4 * HALF_RECALL_AP) / 8)


def test_image_without_prediction_counts_against_the_model_but_the_reference_skips_it():
    preds, targets = [_pred((A, 0.9)), _pred()], [_gt(A), _gt(B)]  # image 2: a box, no prediction
    assert detection_map(preds, targets) == pytest.approx(HALF_RECALL_AP)  # B is a miss
    assert detection_map_skipping_empty_predictions(preds, targets) == pytest.approx(1.0)  # B vanishes


def test_films_without_boxes_are_scored_too():
    preds, targets = [_pred((A, 0.9))], [_gt(A)]
    # a normal film with no prediction changes nothing; a confident false positive on it ranks
    # above the hit, so precision at recall 1 is 1 / 2 at every threshold
    assert detection_map(preds + [_pred()], targets + [_gt()]) == pytest.approx(1.0)
    assert detection_map(preds + [_pred((B, 0.95))], targets + [_gt()]) == pytest.approx(0.5)


def test_nothing_to_find_is_nan_and_nothing_found_is_zero():
    assert torch.isnan(torch.tensor(detection_map([_pred((A, 0.9))], [_gt()])))
    assert detection_map([_pred(), _pred()], [_gt(A), _gt(B)]) == 0.0


@pytest.mark.parametrize("local_stride", [16, 8])
def test_backbone_gives_stages_2_to_4_through_an_fpn_and_keeps_the_encoder_frozen(local_stride):
    encoder = ResNetEncoder(ImageEncoderConfig(arch="resnet_tiny", width=8, image_size=64, local_stride=local_stride))
    backbone = FrozenEncoderFPN(encoder, out_channels=24).train()
    feats = backbone(torch.randn(2, 1, 64, 64))
    s = local_stride
    assert isinstance(feats, OrderedDict) and backbone.out_channels == 24
    assert [tuple(v.shape) for v in feats.values()] == [(2, 24, 8, 8), (2, 24, 64 // s, 64 // s),
                                                       (2, 24, 32 // s, 32 // s)]
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    assert all(p.requires_grad for p in backbone.fpn.parameters())


def test_detector_trains_on_one_channel_films_at_their_own_size():
    # torchvision's transform must neither resize a 64 px film nor turn it into 3 channels
    encoder = ResNetEncoder(ImageEncoderConfig(arch="resnet_tiny", width=8, image_size=64))
    detector = build_detector(encoder, 64, DetectConfig(fpn_channels=16))
    images, targets = [torch.rand(1, 64, 64) * 2 - 1], [_gt(A)]
    batch, _ = detector.transform(images, [dict(t) for t in targets])
    assert torch.equal(batch.tensors[0], images[0]) and batch.tensors.shape == (1, 1, 64, 64)
    losses = detector.train()(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    sum(losses.values()).backward()
    assert all(p.grad is None for p in encoder.parameters())


def test_cli_smoke_writes_the_result_shape(tmp_path, capsys):
    from mgca_lite.cli import main

    out = tmp_path / "detect.json"
    assert main(["eval", "detect", "--checkpoint", "random", "--smoke", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {k: result[k] for k in ("task", "dataset", "metric", "checkpoint", "synth_seed")} == {
        "task": "detect", "dataset": "rsna", "metric": "mAP@[0.40:0.75]", "checkpoint": "random", "synth_seed": 1234}
    assert set(result["results"]) == set(result["n_train"]) == set(result["no_prediction"]) == {"1", "10", "100"}
    for block in result["results"].values():
        assert set(block) == {"mean", "std", "seeds"} and len(block["seeds"]) == 1  # smoke: one seed
        assert all(0.0 <= s <= 1.0 for s in block["seeds"])
    assert result["n_train"]["100"] == 64 and result["config"]["smoke"] is True
    assert "detect on rsna" in capsys.readouterr().out

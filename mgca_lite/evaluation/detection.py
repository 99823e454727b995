"""Detection on RSNA-like (pneumonia boxes) and Object-CXR-like (support-device boxes) SynthCXR, or
a manifest directory's splits of those tasks (`--manifest`), over the frozen ResNet stages 2-4
(spec §4): `python -m mgca_lite eval detect`.

The detector is torchvision's RetinaNet, with our frozen encoder + a trainable FPN as its backbone.
Why RetinaNet and not FCOS or the reference's YOLOv3 head:
- torchvision ships, tests and maintains it (anchors, focal loss, box coding, NMS); a YOLOv3 head
  would be ~300 hand-written lines, and writing it is not this course's lesson;
- like YOLOv3 it is anchor based, and its matcher keeps each ground-truth box's best anchor as a
  positive even below the IoU threshold (`allow_low_quality_matches`), so every box trains. FCOS
  only learns from grid points that fall *inside* a box: on a 64 px film the finest map (stage 2)
  is an 8 x 8 grid of stride 8, and 35 % of the Object-CXR-like boxes (thin tubes) contain no grid
  point (6 % of the RSNA-like ones), so they would never be positives.

Box sizes measured on 400 training films of each task at 64 px (synth seed 1234):
- rsna: 12 % of films have a box, always one; sqrt(w h) 7-16 px (median 11), h/w 0.6-1.1;
- object_cxr: 23 % of films have boxes, 2.1 per such film (at most 6); sqrt(w h) 3.5-32 px
  (median 14), h/w 0.4-8.5 (median 3.6: upright tubes and lines, 2-35 px wide, 3-59 px tall).
So the anchors (`DetectConfig.anchor_sizes`, in px of a 64 px film, scaled with the input size)
run from 6 to 38 px over the three levels, with aspect ratios h/w 0.5, 1, 2 and 4.

mAP is torchmetrics' `MeanAveragePrecision` (pycocotools backend) at IoU 0.40:0.05:0.75 over
every test image: an image on which the detector predicts nothing keeps its boxes as misses. The
reference drops such images before scoring, which raises mAP; `detection_map_skipping_empty_
predictions` reproduces that, for the test that shows the difference only.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn
from torchmetrics.detection import MeanAveragePrecision
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork

from mgca_lite.evaluation.downstream import (SMOKE_SIZES, UNSEEN_SEED, KeepBest, calibrate_if_random, eval_image_encoder,
                                             fraction_key, fraction_results, format_fraction_table, label_subset,
                                             open_task_manifest, render_task_splits)

IOU_THRESHOLDS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75)  # spec §4: IoU 0.40..0.75
METRIC = "mAP@[0.40:0.75]"
DATASETS = ("rsna", "object_cxr")


@dataclass
class DetectConfig:
    """One detection evaluation: data, detector, schedule. Sizes / anchors are for SynthCXR films."""

    dataset: str = "rsna"                      # "rsna" (pneumonia boxes) or "object_cxr" (device boxes)
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    seeds: int = 3                             # label subsets (and head inits) per fraction; 100 % has one
    synth_seed: int | None = None              # None = downstream.UNSEEN_SEED
    manifest: str | None = None                # read the splits from this manifest directory instead
    sizes: dict | None = None                  # {split: n} overrides of the task's split sizes (a manifest:
                                               # at most the first n rows)
    fpn_channels: int = 64                     # FPN + RetinaNet head width: 256 (torchvision's) is 16x the
                                               # compute for 8 x 8 maps that need far less
    head_groups: int = 16                      # GroupNorm groups in the head (torchvision's v2 uses 32 of 256)
    anchor_sizes: tuple = ((6, 9), (13, 18), (26, 38))  # per level (stage 2, 3, 4), px of a 64 px film
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # h / w; 4 for Object-CXR-like tubes
    lr: float = 1e-3                           # AdamW on the FPN + head only (the encoder is frozen)
    weight_decay: float = 1e-4
    batch_size: int = 32
    steps: int = 600                           # optimiser updates per run, whatever the label fraction
    eval_every: int = 50                       # validation mAP every this many steps; the best is kept
    patience: int = 4                          # stop after this many validations without improvement
    score_thresh: float = 0.05                 # torchvision's default: lower scores are not predictions
    detections_per_img: int = 100              # COCO's maxDets, which mAP reads
    smoke: bool = False                        # a few films and steps: every code path in seconds
    device: str = "auto"                       # "auto" = cuda when available

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"detect: dataset must be one of {DATASETS}, not {self.dataset!r}")
        if self.smoke:
            self.sizes = self.sizes or dict(SMOKE_SIZES)
            self.steps, self.eval_every, self.seeds = min(self.steps, 2), 2, min(self.seeds, 1)


class FrozenEncoderFPN(nn.Module):
    """Backbone for torchvision detectors: our frozen ResNet's stages 2-4 -> a trainable FPN.

    forward(images (B, 1|3, H, W)) -> OrderedDict {"0": (B, F, H/8, W/8), "1": (B, F, H/s, W/s),
    "2": (B, F, H/2s, W/2s)}, F = `out_channels`, s = the encoder's local stride. The encoder stays
    in eval mode (BatchNorm statistics fixed) and out of autograd, whatever mode the detector is in.
    """

    def __init__(self, encoder: nn.Module, out_channels: int):
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.fpn = FeaturePyramidNetwork(list(encoder.stage_dims[1:]), out_channels)
        self.out_channels = out_channels

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: detector.train() must not update its BatchNorm statistics
        return self

    def forward(self, images: torch.Tensor) -> OrderedDict:
        with torch.no_grad():
            _, x2, x3, x4 = self.encoder.feature_maps(images)
        return self.fpn(OrderedDict((str(i), x) for i, x in enumerate((x2, x3, x4))))


def build_detector(encoder: nn.Module, input_size: int, cfg: DetectConfig) -> RetinaNet:
    """A 1-class RetinaNet (label 0) on `FrozenEncoderFPN(encoder)` for input_size x input_size films.

    torchvision's transform is made a no-op for our films: min/max size = the input size (no
    resize), mean 0 / std 1 on one channel (the films are already in [-1, 1]; an ImageNet
    mean/std of 3 values would broadcast a 1-channel film to 3 differently scaled channels), and
    the encoder repeats the channel to 3 itself.
    """
    scale = input_size / 64
    sizes = tuple(tuple(round(s * scale) for s in level) for level in cfg.anchor_sizes)
    anchors = AnchorGenerator(sizes, (tuple(cfg.aspect_ratios),) * len(sizes))
    # torchvision's "v2" RetinaNet head, as its retinanet_resnet50_fpn_v2 builds it: GroupNorm in the
    # head's convs and a GIoU box loss. Measured on 71 RSNA-like training positives (reference
    # encoder, AdamW lr 1e-3, 200 steps): mAP on those films 0.75 with it, 0.06 with the v1 head
    # (no norm, smooth L1), which diverged at lr 3e-3.
    head = RetinaNetHead(cfg.fpn_channels, anchors.num_anchors_per_location()[0], num_classes=1,
                         norm_layer=partial(nn.GroupNorm, cfg.head_groups))
    head.regression_head._loss_type = "giou"
    return RetinaNet(FrozenEncoderFPN(encoder, cfg.fpn_channels), num_classes=1, min_size=input_size,
                     max_size=input_size, image_mean=[0.0], image_std=[1.0], anchor_generator=anchors,
                     head=head, score_thresh=cfg.score_thresh, detections_per_img=cfg.detections_per_img)


def _targets(boxes: list[torch.Tensor]) -> list[dict]:
    """Per-image boxes (N, 4) xyxy -> torchvision / torchmetrics targets, all of class 0."""
    return [{"boxes": b.float(), "labels": torch.zeros(len(b), dtype=torch.int64)} for b in boxes]


def detection_map(preds: list[dict], targets: list[dict]) -> float:
    """COCO mAP at IoU 0.40:0.05:0.75 over *every* image (torchmetrics, pycocotools backend).

    preds: one dict per image {"boxes" (N, 4) xyxy px, "scores" (N,), "labels" (N,) int64}; an
    image with no prediction has N = 0, and its ground-truth boxes count as misses.
    targets: one dict per image {"boxes" (M, 4), "labels" (M,)}; M = 0 for a film without a finding
    (its predictions are false positives). NaN when no image has a ground-truth box.
    """
    metric = MeanAveragePrecision(box_format="xyxy", iou_thresholds=list(IOU_THRESHOLDS))
    metric.update([{k: v.detach().cpu() for k, v in p.items()} for p in preds],
                  [{k: v.detach().cpu() for k, v in t.items()} for t in targets])
    value = float(metric.compute()["map"])
    return float("nan") if value == -1 else value  # COCO writes -1 when there is nothing to find


def detection_map_skipping_empty_predictions(preds: list[dict], targets: list[dict]) -> float:
    """The reference's mAP: images without any prediction are dropped before scoring, so the boxes
    the model missed entirely there count for nothing. Only to show the inflation; we report
    `detection_map`."""
    kept = [i for i, p in enumerate(preds) if len(p["boxes"])]
    return detection_map([preds[i] for i in kept], [targets[i] for i in kept])


@torch.no_grad()
def predict(detector: RetinaNet, dataset, batch_size: int = 64) -> tuple[list[dict], list[dict]]:
    """(predictions, targets) over a TaskDataset, one dict per image in dataset order (see
    `detection_map`); the detector runs in eval mode on its own device, results come back on CPU."""
    from mgca_lite.data.collate import collate_task

    device = next(detector.parameters()).device
    detector.eval()
    preds, targets = [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate_task([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        out = detector(list(batch["images"].to(device)))
        preds += [{k: v.cpu() for k, v in o.items()} for o in out]
        targets += _targets(batch["boxes"])
    return preds, targets


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


def train_detector(encoder: nn.Module, train_ds, positions: torch.Tensor, val_ds, input_size: int,
                   cfg: DetectConfig, seed: int = 0, history: list | None = None) -> RetinaNet:
    """Train a RetinaNet's FPN + head on the training films at `positions` (n,) over the frozen
    encoder; keep the weights of the best validation mAP (checked every `cfg.eval_every` steps).

    Runs exactly `cfg.steps` updates (batches drawn epoch by epoch from the subset) unless the
    validation mAP has not improved for `cfg.patience` checks. `history`, when given, receives one
    dict {step, loss, val_map} per check. Returns the detector in eval mode.
    """
    from mgca_lite.data.collate import collate_task

    device = _device(cfg.device)
    torch.manual_seed(seed)  # the FPN / head init
    detector = build_detector(encoder, input_size, cfg).to(device)
    params = [p for p in detector.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    keep, step, losses = KeepBest(cfg.patience), 0, []
    while step < cfg.steps and not keep.stop:
        order = positions[torch.randperm(len(positions), generator=gen)]
        for start in range(0, len(order), cfg.batch_size):
            batch = collate_task([train_ds[int(i)] for i in order[start:start + cfg.batch_size]])
            detector.train()
            loss_parts = detector(list(batch["images"].to(device)),
                                  [{k: v.to(device) for k, v in t.items()} for t in _targets(batch["boxes"])])
            loss = sum(loss_parts.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if step % cfg.eval_every == 0 or step == cfg.steps:
                val_map = detection_map(*predict(detector, val_ds))
                if history is not None:
                    history.append({"step": step, "loss": float(np.mean(losses)), "val_map": val_map})
                losses = []
                keep.check(val_map, detector)  # NaN (no box in the validation split): the first check is kept
            if step >= cfg.steps or keep.stop:
                break
    return keep.restore(detector)


def evaluate_detection(checkpoint, cfg: DetectConfig = DetectConfig(), config: str = "synth_tiny",
                       progress: bool = True) -> dict:
    """Test mAP of RetinaNets trained on frozen features at each label fraction, seeds per fraction.

    checkpoint: a pretrain checkpoint, or "random" (`config` at random init, BatchNorm recalibrated on
    the training split). cfg.manifest: the splits of that manifest directory instead of SynthCXR.
    Returns {"task": "detect", "dataset", "metric", "checkpoint", "manifest", "synth_seed",
    "image_size", "n_train", "results": {"1"|"10"|"100": {"mean", "std", "seeds"}}, "config",
    "no_prediction": {fraction: share of test films with no prediction, mean over seeds}}.
    """

    manifest = open_task_manifest(cfg.manifest, cfg.dataset, "boxes")  # checked before the encoder loads
    synth_seed = None if manifest else (UNSEEN_SEED if cfg.synth_seed is None else cfg.synth_seed)
    encoder, _, size = eval_image_encoder(checkpoint, config)  # the input size decides the render size
    splits = render_task_splits(cfg.dataset, size, synth_seed, cfg.sizes, progress, manifest)
    calibrate_if_random(encoder, checkpoint, splits["train"])
    rows, empty, n_train = [], {}, {}
    for fraction in cfg.fractions:
        for seed in range(1 if fraction >= 1.0 else cfg.seeds):  # 100 % is one subset
            positions = label_subset(cfg.dataset, splits["train"], fraction, seed)
            detector = train_detector(encoder, splits["train"], positions, splits["val"], size, cfg, seed)
            preds, targets = predict(detector, splits["test"])
            rows.append({"fraction": fraction, "seed": seed, "score": detection_map(preds, targets)})
            empty.setdefault(fraction_key(fraction), []).append(float(np.mean([len(p["boxes"]) == 0 for p in preds])))
            n_train[fraction_key(fraction)] = len(positions)
    return {"task": "detect", "dataset": cfg.dataset, "metric": METRIC, "checkpoint": str(checkpoint),
            "manifest": cfg.manifest, "synth_seed": synth_seed, "image_size": size, "n_train": n_train, "results": fraction_results(rows),
            "config": dataclasses.asdict(cfg), "no_prediction": {k: float(np.mean(v)) for k, v in empty.items()}}


def cli_result(args) -> tuple[dict, str]:
    """`eval detect`: (result of `evaluate_detection`, its table) from the eval CLI's arguments."""

    cfg = DetectConfig(dataset=args.dataset or "rsna", fractions=tuple(float(f) / 100 for f in args.fractions.split(",")),
                       seeds=args.seeds, synth_seed=args.synth_seed, manifest=args.manifest, smoke=args.smoke)
    result = evaluate_detection(args.checkpoint, cfg, args.config, progress=args.progress and not args.smoke)
    empty = ", ".join(f"{k} % {v:.2f}" for k, v in result["no_prediction"].items())
    return result, format_fraction_table(result) + f"\nshare of test films with no prediction: {empty}"

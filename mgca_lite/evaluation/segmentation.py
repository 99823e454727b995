"""Segmentation on frozen image features (spec §4): `python -m mgca_lite eval segment`, on SynthCXR
or on a manifest directory's splits (`--manifest`).

A decoder is trained on the frozen encoder's stage maps: a U-Net over ResNet stages x4 -> x3 -> x2
-> x1 with skip connections, or a SETR-naive head over ViT patch tokens. The encoder never trains,
so its maps are computed once per split (`frozen_maps`) and every (fraction, seed) decoder reads
that cache. Loss 10 * focal(gamma 2) - log(soft Dice); the score is the mean over test images of the
per-image Dice at probability 0.5, an empty truth with an empty prediction scoring 1.

Datasets, as the reference builds them:
- siim (pneumothorax): the finding's mask; the training set keeps every positive image and as many
  negatives (`balance`); validation and test keep all images, most of them empty.
- rsna (pneumonia): the union of the finding's boxes filled in as the mask (RSNA has only boxes);
  all training images.
Because most test images are empty, the result also reports the Dice over positive test images only
(`results_positive`) and what predicting nothing everywhere scores (`empty_baseline`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mgca_lite.data.collate import collate_task
from mgca_lite.evaluation.downstream import (SMOKE_SIZES, UNSEEN_SEED, KeepBest, calibrate_if_random, eval_image_encoder, fraction_key,
                                             fraction_results, format_fraction_table, label_subset,
                                             open_task_manifest, render_task_splits)

DATASETS = ("siim", "rsna")
BOX_MASK_DATASETS = ("rsna",)  # the target mask is the finding's boxes filled in
SMOKE_SCHEDULE = {"max_steps": 4, "val_every": 2, "patience": 1}  # --smoke: every code path, in seconds


@dataclass
class SegmentConfig:
    """One segmentation evaluation: data, decoder, schedule.

    ref (MGCA's segmentation script): AdamW lr 5e-4, wd 1e-6, loss 10 * focal(2) - log(soft Dice);
    its schedule is epochs with early stopping; ours counts steps, so a 1 % subset (a few images)
    gets as many updates as the full set, and checks validation Dice every `val_every` steps.
    """

    dataset: str = "siim"                            # "siim" | "rsna"
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)  # training label fractions
    seeds: int = 3                                   # label subsets / decoder inits below 100 %
    synth_seed: int = UNSEEN_SEED                    # SynthCXR seed of every split
    manifest: str | None = None                      # read the splits from this manifest directory instead
    train_size: int | None = None                    # None = the task's default split sizes (a manifest: all rows)
    val_size: int | None = None
    test_size: int | None = None
    balance: bool | None = None     # train on all positives + as many negatives; None = as the
                                    # reference per dataset (siim yes, rsna no)
    decoder_channels: tuple[int, ...] = (64, 32, 16, 8)  # U-Net blocks at x3, x2, x1, full size
    setr_hidden: int = 64           # ViT: the SETR-naive head's hidden 1x1 conv width
    lr: float = 5e-4                # ref: 5e-4
    weight_decay: float = 1e-6      # ref: 1e-6
    batch_size: int = 16
    max_steps: int = 1000           # updates at most per decoder
    val_every: int = 50             # steps between validation Dice checks
    patience: int = 5               # stop after this many checks without a better validation Dice
    focal_weight: float = 10.0      # ref: 10
    gamma: float = 2.0              # ref: 2
    smoke: bool = False             # SMOKE_SIZES and SMOKE_SCHEDULE: the whole run in seconds
    progress: bool = True

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"segment: dataset must be one of {DATASETS}, not {self.dataset!r}")

    def effective(self) -> "SegmentConfig":
        """The config as run: --smoke's sizes and schedule applied, `balance` resolved."""
        cfg = self
        if cfg.smoke:
            cfg = replace(cfg, train_size=SMOKE_SIZES["train"], val_size=SMOKE_SIZES["val"],
                          test_size=SMOKE_SIZES["test"], progress=False, **SMOKE_SCHEDULE)
        if cfg.balance is None:
            cfg = replace(cfg, balance=cfg.dataset == "siim")
        return cfg

    def sizes(self) -> dict[str, int] | None:
        sizes = {k: v for k, v in (("train", self.train_size), ("val", self.val_size),
                                   ("test", self.test_size)) if v}
        return sizes or None


# ----------------------------------------------------------------------------------------- metric


def predict_mask(logits: torch.Tensor) -> torch.Tensor:
    """Logits (B, 1, H, W) -> bool (B, H, W): probability > 0.5 (the reference's threshold)."""
    return torch.sigmoid(logits.squeeze(1)) > 0.5


def dice_per_image(pred_mask: torch.Tensor, true_mask: torch.Tensor) -> torch.Tensor:
    """Dice of each image, 2 |P & T| / (|P| + |T|): pred_mask, true_mask bool (B, H, W) -> (B,) float.

    An empty truth with an empty prediction scores 1 (the reference's and SIIM's rule); an empty
    truth with any predicted pixel scores 0. torchmetrics' `dice_score` returns NaN there instead.
    """
    p, t = pred_mask.flatten(1).float(), true_mask.flatten(1).float()
    total = p.sum(1) + t.sum(1)
    return torch.where(total > 0, 2 * (p * t).sum(1) / total.clamp_min(1), torch.ones_like(total))


# ------------------------------------------------------------------------------------------- loss


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean over pixels of (1 - p_t)^gamma * BCE, without a class weight (the reference's FocalLoss;
    = torchvision's `sigmoid_focal_loss(alpha=-1, reduction="mean")`). logits, target: same shape."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)  # the probability given to the true class
    return ((1 - p_t) ** gamma * bce).mean()


def soft_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """(2 sum(p t) + smooth) / (sum p + sum t + smooth) over the whole batch, p = sigmoid(logits)
    (the reference's `dice_loss`, which despite its name is the Dice, not 1 - Dice)."""
    p = torch.sigmoid(logits)
    return (2 * (p * target).sum() + smooth) / (p.sum() + target.sum() + smooth)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, focal_weight: float = 10.0,
                      gamma: float = 2.0) -> torch.Tensor:
    """focal_weight * focal(gamma) - log(soft Dice), a scalar. logits (B, 1, H, W); target 0/1 of
    the same shape (float)."""
    return focal_weight * focal_loss(logits, target, gamma) - torch.log(soft_dice(logits, target))


# ---------------------------------------------------------------------------------------- decoders


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class _UpBlock(nn.Module):
    """Upsample to the skip's size (or `size`), concatenate the skip, two 3x3 conv-BN-ReLU."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.convs = nn.Sequential(_conv_bn_relu(c_in + c_skip, c_out), _conv_bn_relu(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        return self.convs(x if skip is None else torch.cat([x, skip], 1))


class UNetDecoder(nn.Module):
    """U-Net decoder over ResNet stages [x1 (H/4), x2 (H/8), x3 (H/s), x4 (H/2s)] -> logits (B, 1, H, W).

    x4 is upsampled to x3's size and joined with it, then to x2's and x1's (the skips), then to the
    input size with no skip (as segmentation_models' U-Net, which the reference uses, ends), and a
    3x3 conv gives one logit per pixel. Sizes come from the skips, so x3 at stride 8 (x2's size)
    works unchanged. stage_dims: the encoder's (C1, C2, C3, C4).
    """

    def __init__(self, stage_dims, channels: tuple[int, ...] = (64, 32, 16, 8)):
        super().__init__()
        c1, c2, c3, c4 = stage_dims
        d3, d2, d1, d0 = channels
        self.blocks = nn.ModuleList([_UpBlock(c4, c3, d3), _UpBlock(d3, c2, d2), _UpBlock(d2, c1, d1),
                                     _UpBlock(d1, 0, d0)])
        self.head = nn.Conv2d(d0, 1, 3, padding=1)

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        x1, x2, x3, x4 = maps
        x = x4
        for block, skip in zip(self.blocks, (x3, x2, x1, None)):
            x = block(x, skip, skip.shape[-2:] if skip is not None else size)
        return self.head(x)


class SETRNaiveHead(nn.Module):
    """SETR-naive decoder (Zheng et al. 2021) for ViT: the patch-token grid (B, C, g, g) -> 1x1 conv
    -> BN -> ReLU -> 1x1 conv to one logit -> bilinear upsampling to the input size (B, 1, H, W)."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, 1, 1))

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.head(maps[-1]), size=size, mode="bilinear", align_corners=False)


def _is_vit(encoder: nn.Module) -> bool:
    return not hasattr(encoder, "feature_maps")


def build_decoder(encoder: nn.Module, cfg: SegmentConfig) -> nn.Module:
    """UNetDecoder for a ResNetEncoder (its stage_dims), SETRNaiveHead for a ViTEncoder."""
    if _is_vit(encoder):
        return SETRNaiveHead(encoder.local_dim, cfg.setr_hidden)
    return UNetDecoder(encoder.stage_dims, cfg.decoder_channels)


@torch.no_grad()
def frozen_maps(encoder: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """What the decoder reads from a frozen encoder: images (B, 1, H, W) -> ResNet: the four stage
    maps; ViT: [the patch tokens (B, P, C) as a grid (B, C, g, g)], g = sqrt(P)."""
    if not _is_vit(encoder):
        return encoder.feature_maps(images)
    tokens = encoder(images).local_feat
    g = math.isqrt(tokens.shape[1])
    return [tokens.transpose(1, 2).reshape(len(tokens), -1, g, g)]


# ----------------------------------------------------------------------------------------- data


def box_masks(boxes: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Boxes as masks: B float (N_b, 4) xyxy pixel boxes -> bool (B, H, W), a pixel inside when its
    centre is (so the half-open box [x1, x2) of integer corners covers columns x1 .. x2 - 1)."""
    h, w = size
    ys, xs = torch.arange(h) + 0.5, torch.arange(w) + 0.5
    out = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for i, bs in enumerate(boxes):
        for x1, y1, x2, y2 in bs.tolist():
            out[i] |= ((ys >= y1) & (ys <= y2))[:, None] & ((xs >= x1) & (xs <= x2))[None, :]
    return out


@dataclass
class SplitCache:
    """A split's frozen maps, per stage (N, C_k, h_k, w_k), and its masks bool (N, H, W)."""

    maps: list[torch.Tensor]
    masks: torch.Tensor

    def take(self, idx: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return [m[idx] for m in self.maps], self.masks[idx]


def cache_split(encoder: nn.Module, dataset, dataset_name: str, positions: torch.Tensor | None = None,
                batch_size: int = 128) -> SplitCache:
    """Frozen maps and target masks of `dataset` (all items, or only `positions`), computed once."""
    if positions is not None:
        dataset = torch.utils.data.Subset(dataset, positions.tolist())
    maps, masks = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_task):
        maps.append([m.float() for m in frozen_maps(encoder, batch["images"])])
        size = batch["masks"].shape[-2:]
        masks.append(box_masks(batch["boxes"], size) if dataset_name in BOX_MASK_DATASETS else batch["masks"])
    return SplitCache([torch.cat(stage) for stage in zip(*maps)], torch.cat(masks))


def balanced(positions: torch.Tensor, positive: torch.Tensor, seed: int) -> torch.Tensor:
    """positions (n,) of a label subset -> its positives and as many of its negatives (seeded draw;
    at least one negative, so a subset without positives still trains), sorted.
    positive: bool (N,) over the whole training split."""
    pos, neg = positions[positive[positions]], positions[~positive[positions]]
    gen = torch.Generator().manual_seed(seed)
    keep = neg[torch.randperm(len(neg), generator=gen)[:max(len(pos), 1)]]
    return torch.sort(torch.cat([pos, keep])).values


# -------------------------------------------------------------------------------------- training


@torch.no_grad()
def predict(decoder: nn.Module, cache: SplitCache, batch_size: int = 128) -> torch.Tensor:
    """Predicted masks bool (N, H, W) of a cached split, decoder in eval mode."""
    decoder.eval()
    size = tuple(cache.masks.shape[-2:])
    out = [predict_mask(decoder([m[i:i + batch_size] for m in cache.maps], size))
           for i in range(0, len(cache.masks), batch_size)]
    return torch.cat(out)


def train_segmentation(decoder: nn.Module, train: SplitCache, val: SplitCache, cfg: SegmentConfig,
                       seed: int = 0, history: list | None = None) -> nn.Module:
    """Train `decoder` on cached frozen maps; keep the state with the best validation Dice.

    Batches of cfg.batch_size are drawn from a fresh shuffle each pass; every cfg.val_every steps
    (and at the end) the mean per-image Dice on `val` is checked, and training stops after
    cfg.patience checks without improvement or at cfg.max_steps. `history`, when given, receives
    {step, train_loss, val_dice} per check. Returns the decoder in eval mode.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    size = tuple(train.masks.shape[-2:])
    keep, step, losses = KeepBest(cfg.patience), 0, []
    order = torch.empty(0, dtype=torch.long)
    while step < cfg.max_steps:
        if len(order) == 0:
            order = torch.randperm(len(train.masks), generator=gen)
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        maps, masks = train.take(idx)
        decoder.train()
        loss = segmentation_loss(decoder(maps, size), masks[:, None].float(), cfg.focal_weight, cfg.gamma)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(loss.item())
        if step % cfg.val_every and step < cfg.max_steps:
            continue
        val_dice = float(dice_per_image(predict(decoder, val), val.masks).mean())
        if history is not None:
            history.append({"step": step, "train_loss": float(np.mean(losses)), "val_dice": val_dice})
        losses = []
        if keep.check(val_dice, decoder):
            break
    return keep.restore(decoder)


# ------------------------------------------------------------------------------------ evaluation


def evaluate_segmentation(checkpoint, cfg: SegmentConfig = SegmentConfig(), config: str = "synth_tiny") -> dict:
    """Dice of decoders trained on a frozen encoder at each label fraction x seed.

    checkpoint: a pretrain checkpoint, or "random" (`config`'s architecture at random init, BatchNorm
    recalibrated on the training split). Seed s picks the s-th fixed label subset and the decoder's
    init; 100 % has one subset, so one seed. Returns the per-fraction result shape of every task
    (metric "dice": mean per-image Dice over the test split) plus `results_positive` (the same over
    test images with a non-empty truth), `empty_baseline` (predicting nothing: the share of empty
    test truths), `n_test`, `n_test_positive`.
    """
    cfg = cfg.effective()
    # checked before the encoder loads; rsna's target masks are its boxes filled in
    manifest = open_task_manifest(cfg.manifest, cfg.dataset, "boxes" if cfg.dataset in BOX_MASK_DATASETS else "masks")
    encoder, _, size = eval_image_encoder(checkpoint, config)  # the input size decides the render size
    splits = render_task_splits(cfg.dataset, size, cfg.synth_seed, cfg.sizes(), cfg.progress, manifest)
    calibrate_if_random(encoder, checkpoint, splits["train"])
    train_ds = splits["train"]
    if cfg.balance:
        positive = torch.stack([train_ds[i]["target"] for i in range(len(train_ds))])[:, 0] > 0

    runs = []  # (fraction, seed, positions in the training split)
    for fraction in cfg.fractions:
        for seed in range(cfg.seeds if fraction < 1.0 else 1):
            pos = label_subset(cfg.dataset, train_ds, fraction, seed)
            runs.append((fraction, seed, balanced(pos, positive, seed) if cfg.balance else pos))
    # Only the training images some run uses are encoded (the balanced pool is a fifth of siim's).
    used = torch.unique(torch.cat([pos for _, _, pos in runs]))
    train = cache_split(encoder, train_ds, cfg.dataset, used)
    val, test = (cache_split(encoder, splits[s], cfg.dataset) for s in ("val", "test"))
    row_of = torch.full((len(train_ds),), -1, dtype=torch.long)  # training position -> cache row
    row_of[used] = torch.arange(len(used))

    rows, rows_positive, n_train = [], [], {}
    test_positive = test.masks.flatten(1).any(1)
    for fraction, seed, pos in runs:
        torch.manual_seed(seed)
        decoder = build_decoder(encoder, cfg)
        maps, masks = train.take(row_of[pos])
        decoder = train_segmentation(decoder, SplitCache(maps, masks), val, cfg, seed)
        dice = dice_per_image(predict(decoder, test), test.masks)
        rows.append({"fraction": fraction, "seed": seed, "score": float(dice.mean())})
        rows_positive.append({"fraction": fraction, "seed": seed, "score": float(dice[test_positive].mean())})
        n_train.setdefault(fraction_key(fraction), len(pos))
    return {"task": "segment", "dataset": cfg.dataset, "metric": "dice", "checkpoint": str(checkpoint),
            "manifest": cfg.manifest, "synth_seed": None if manifest else cfg.synth_seed, "image_size": size, "n_train": n_train,
            "results": fraction_results(rows), "results_positive": fraction_results(rows_positive),
            "empty_baseline": float((~test_positive).float().mean()), "n_test": len(test.masks),
            "n_test_positive": int(test_positive.sum()), "config": dataclasses.asdict(cfg)}


def format_segmentation(result: dict) -> str:
    """The per-fraction table, then Dice over positive test images and the predict-nothing baseline."""
    lines = [format_fraction_table(result),
             f"Dice over the {result['n_test_positive']} positive of {result['n_test']} test images: " +
             ", ".join(f"{k} % {b['mean']:.3f} ± {b['std']:.3f}" for k, b in result["results_positive"].items()),
             f"predicting no pixel anywhere scores {result['empty_baseline']:.3f} (the share of empty test truths)"]
    return "\n".join(lines)


def cli_result(args) -> tuple[dict, str]:
    """`eval segment`: the CLI's args -> (result of `evaluate_segmentation`, printed table)."""
    cfg = SegmentConfig(dataset=args.dataset or "siim",
                        fractions=tuple(float(f) / 100 for f in args.fractions.split(",")),
                        seeds=args.seeds, synth_seed=UNSEEN_SEED if args.synth_seed is None else args.synth_seed,
                        manifest=args.manifest, smoke=args.smoke, progress=args.progress)
    result = evaluate_segmentation(args.checkpoint, cfg, args.config)
    return result, format_segmentation(result)

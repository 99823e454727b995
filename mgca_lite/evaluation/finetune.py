"""Full fine-tuning on a SynthCXR task (or a manifest's): the whole image encoder and a linear head
train together.

The same splits, label subsets, metric and result shape as the linear probe (chexpert5 / rsna:
macro AUROC; covidx: accuracy; 1 / 10 / 100 % labels, several seeds), but nothing is frozen: the
encoder is updated at a lower learning rate than the freshly initialised head, so the pretrained
features are adapted rather than overwritten by the head's early, noisy gradients.

    splits = render_task_splits("chexpert5", 64)
    model = finetune(encoder, split_tensors(splits["train"]), split_tensors(splits["val"]),
                     "multilabel", 5, FinetuneConfig())
    score("multilabel", y.numpy(), predict(model, x).numpy())
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from mgca_lite.data.collate import collate_task
from mgca_lite.data.tasks import get_task
from mgca_lite.evaluation.downstream import (SMOKE_SIZES, KeepBest, UNSEEN_SEED, calibrate_if_random, eval_image_encoder, fraction_key,
                                             fraction_results, format_fraction_table, label_subset,
                                             open_task_manifest, render_task_splits)
from mgca_lite.evaluation.linear_probe import score

DEFAULT_DATASET = "chexpert5"


@dataclass
class FinetuneConfig:
    """One fine-tuning run's optimiser, schedule and stopping rule.

    Images are the deterministic evaluation views (no augmentation), as the probe's; BatchNorm
    layers train (batch statistics, running statistics updated) like every other encoder layer.
    """

    encoder_lr: float = 1e-4    # AdamW lr of the pretrained encoder: low, to adapt its features
    head_lr: float = 1e-3       # AdamW lr of the new linear head
    weight_decay: float = 1e-6  # as the probe's
    batch_size: int = 32
    max_steps: int = 600        # the step cap: every run stops here at the latest
    eval_every: int = 25        # steps between validation checks
    patience: int = 8           # stop after this many checks without a better validation score
    seed: int = 0               # head init and batch order
    device: str = "cpu"


class Classifier(nn.Module):
    """encoder -> global feature (B, Cg) -> Linear -> logits (B, num_outputs)."""

    def __init__(self, encoder: nn.Module, num_outputs: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.global_dim, num_outputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 1, H, W) -> logits (B, num_outputs)."""
        return self.head(self.encoder(images).global_feat)


def split_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A TaskDataset as (images (N, 1, H, W) float32, targets (N, K) float or (N,) int64), in order.
    Held in memory once so that every fine-tuning step indexes tensors instead of collating items."""
    batches = list(DataLoader(dataset, batch_size=256, shuffle=False, collate_fn=collate_task))
    return torch.cat([b["images"] for b in batches]), torch.cat([b["targets"] for b in batches])


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, K) float32 on the CPU of `model` in eval mode over images (N, 1, H, W); the
    model's training mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(images[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(images), batch_size)])
    model.train(was_training)
    return out


def _loss_fn(kind: str) -> nn.Module:
    return nn.CrossEntropyLoss() if kind == "multiclass" else nn.BCEWithLogitsLoss()


def finetune(encoder: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
             kind: str, num_outputs: int, cfg: FinetuneConfig = FinetuneConfig(),
             history: list | None = None) -> Classifier:
    """Fine-tune a copy of `encoder` (left untouched) with a new linear head; keep the best check.

    train / val: (images (N, 1, H, W), targets): (N, K) 0/1 for "multilabel"/"binary", (N,) class
    ids for "multiclass". Every `cfg.eval_every` steps (and at the last step) the validation score
    (`linear_probe.score`) is computed; the returned Classifier (eval mode) holds the weights of the
    best check. Training stops after `cfg.patience` checks without improvement or at `cfg.max_steps`.
    `history`, when given, receives one dict {steps, train_loss, val_score} per check.
    """
    torch.manual_seed(cfg.seed)  # the head's init
    model = Classifier(copy.deepcopy(encoder), num_outputs).to(cfg.device).train()
    optimizer = torch.optim.AdamW([{"params": model.encoder.parameters(), "lr": cfg.encoder_lr},
                                   {"params": model.head.parameters(), "lr": cfg.head_lr}],
                                  weight_decay=cfg.weight_decay)
    loss_fn = _loss_fn(kind)
    (xs, ys), (vx, vy) = train, val
    ys = ys.long() if kind == "multiclass" else ys.float()
    gen = torch.Generator().manual_seed(cfg.seed)
    # Batches never exceed the training set: at 1 % labels (50 images) a batch of 32 must still fit,
    # and a final batch of one image would break BatchNorm's batch statistics.
    batch = min(cfg.batch_size, len(xs))
    keep, steps, order = KeepBest(cfg.patience), 0, torch.empty(0, dtype=torch.long)
    while steps < cfg.max_steps:
        if len(order) < batch:  # a new epoch: a fresh permutation, dropping the short remainder
            order = torch.randperm(len(xs), generator=gen)
        idx, order = order[:batch], order[batch:]
        optimizer.zero_grad()
        loss = loss_fn(model(xs[idx].to(cfg.device)), ys[idx].to(cfg.device))
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % cfg.eval_every and steps < cfg.max_steps:
            continue
        val_score = score(kind, vy.numpy(), predict(model, vx).numpy())
        if history is not None:
            history.append({"steps": steps, "train_loss": loss.item(), "val_score": val_score})
        if keep.check(val_score, model):
            break
    return keep.restore(model)


def _metric(kind: str) -> str:
    return "accuracy" if kind == "multiclass" else "macro AUROC"


def cli_result(args) -> tuple[dict, str]:
    """`eval finetune`: fine-tune `args.checkpoint`'s image encoder on `args.dataset` (default
    chexpert5; SynthCXR, or the splits of the manifest directory `args.manifest`) at every fraction
    of `args.fractions` (percent) x `args.seeds` label subsets (one at 100 %). Returns (result dict
    of the per-fraction shape, its table)."""
    task = args.dataset or DEFAULT_DATASET
    spec = get_task(task)
    if spec.kind not in ("multilabel", "binary", "multiclass"):
        raise ValueError(f"eval finetune: {task} is not a classification task")
    kind = "multiclass" if spec.kind == "multiclass" else "multilabel"
    manifest = open_task_manifest(args.manifest, task)  # checked before the encoder loads
    synth_seed = None if manifest else (UNSEEN_SEED if args.synth_seed is None else args.synth_seed)
    cfg = FinetuneConfig(max_steps=6, eval_every=3) if args.smoke else FinetuneConfig()
    fractions = [float(f) / 100 for f in args.fractions.split(",")]

    encoder, _, size = eval_image_encoder(args.checkpoint, args.config)  # the input size decides the render size
    splits = render_task_splits(task, size, synth_seed, SMOKE_SIZES if args.smoke else None,
                                args.progress and not args.smoke, manifest)
    calibrate_if_random(encoder, args.checkpoint, splits["train"])
    train, val, test = (split_tensors(splits[s]) for s in ("train", "val", "test"))

    rows, n_train = [], {}
    for fraction in fractions:
        for seed in range(args.seeds if fraction < 1.0 else 1):  # 100 % has one subset
            pos = label_subset(task, splits["train"], fraction, seed)
            model = finetune(encoder, (train[0][pos], train[1][pos]), val, kind, len(spec.classes),
                             dataclasses.replace(cfg, seed=seed))
            test_score, val_score = (score(kind, y.numpy(), predict(model, x).numpy()) for x, y in (test, val))
            rows.append({"fraction": fraction, "seed": seed, "score": test_score, "val_score": val_score})
            n_train[fraction_key(fraction)] = len(pos)
    result = {"task": "finetune", "dataset": task, "metric": _metric(kind), "checkpoint": str(args.checkpoint),
              "manifest": args.manifest, "synth_seed": synth_seed, "image_size": size, "n_train": n_train,
              "results": fraction_results(rows),
              # the kept checks' validation scores: what any choice of settings must read (test stays unseen)
              "val_results": fraction_results([{**r, "score": r["val_score"]} for r in rows]),
              "config": dataclasses.asdict(cfg)}
    return result, format_fraction_table(result)

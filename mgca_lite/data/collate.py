"""Batching: dataset items -> the batch dicts the model, trainer and evaluators consume.

PairCollator output (the contract in docs/architecture.md):

    images          float32 (B, 1, H, W)   normalised, (x/255 - 0.5) / 0.5
    input_ids       int64   (B, L)         L = longest report in the batch, at most max_length
    attention_mask  int64   (B, L)
    labels          float32 (B, F)         1 / 0 / -1 per finding in FINDINGS order
    index           int64   (B,)
    reports         list[str] (B,)

Tokenising in the collator (not in the dataset) pads each batch only to its own longest report.
"""

from __future__ import annotations

import torch


class PairCollator:
    """Collate PairedDataset items and tokenise their reports with a BertTokenizerFast."""

    def __init__(self, tokenizer, max_length: int = 112):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, items: list[dict]) -> dict:
        reports = [it["report"] for it in items]
        tok = self.tokenizer(reports, padding="longest", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {
            "images": torch.stack([it["image"] for it in items]),                  # (B, 1, H, W)
            "input_ids": tok["input_ids"].long(),                                  # (B, L)
            "attention_mask": tok["attention_mask"].long(),                        # (B, L)
            "labels": torch.stack([it["labels"] for it in items]),                 # (B, F)
            "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),  # (B,)
            "reports": reports,
        }


def collate_task(items: list[dict]) -> dict:
    """Collate TaskDataset items: images (B, 1, H, W), targets (B, ...) stacked, masks bool
    (B, H, W), index (B,), and boxes as a list of B float32 (N_b, 4) tensors (N_b varies)."""
    return {
        "images": torch.stack([it["image"] for it in items]),
        "targets": torch.stack([it["target"] for it in items]),
        "masks": torch.stack([it["mask"] for it in items]),
        "boxes": [it["boxes"] for it in items],
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
    }

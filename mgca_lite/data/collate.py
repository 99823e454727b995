"""Batching: dataset items -> the batch dicts the model, trainer and evaluators consume.

PairCollator output (the contract in docs/architecture.md):

    images          float32 (B, 1, H, W)   normalised, (x/255 - 0.5) / 0.5
    input_ids       int64   (B, L)         L = longest report in the batch, at most max_length
    attention_mask  int64   (B, L)
    labels          float32 (B, F)         1 / 0 / -1 per finding in FINDINGS order
    index           int64   (B,)
    reports         list[str] (B,)         the reports as the dataset gave them (before cleaning)

Tokenising in the collator (not in the dataset) pads each batch only to its own longest report.
With clean=True (the default; the trainer passes `TextEncoderConfig.clean_reports`) every report
is tokenised as `clean_report(report).text` (spec §3, data/captions.py), the text the tokenizer
was trained on.
"""

from __future__ import annotations

import torch

from .captions import clean_report


class PairCollator:
    """Collate PairedDataset items and tokenise their reports with a BertTokenizerFast.

    clean=True tokenises the cleaned reports (impression first, words only), False the raw text.
    """

    def __init__(self, tokenizer, max_length: int = 112, clean: bool = True):
        self.tokenizer, self.max_length, self.clean = tokenizer, max_length, clean

    def __call__(self, items: list[dict]) -> dict:
        reports = [it["report"] for it in items]
        texts = [clean_report(r).text for r in reports] if self.clean else reports
        tok = self.tokenizer(texts, padding="longest", truncation=True,
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

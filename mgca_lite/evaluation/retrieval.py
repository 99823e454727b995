"""Image -> report retrieval over a fixed pool: a number that does not depend on the batch size.

Top-k accuracy *inside a training batch* (`mgca_lite.losses.ita.retrieval_topk`) has chance k/B, so
runs trained or validated with different batch sizes cannot be compared by it. Here every image
is ranked against the same N reports (by default the 1,000 studies of SynthCXR's pretraining test
split), so recall@k of two checkpoints is comparable whatever their batch sizes were.

    pool = retrieval_pool(image_size=cfg.model.image.image_size)          # fixed test studies
    img, rep = embed_pool(model, tokenizer, pool, max_length=cfg.model.text.max_length)
    retrieval_recall(img, rep)   # {"R@1": 0.12, "R@5": 0.31, "R@10": 0.45} (chance k / N)
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from mgca_lite.data.collate import PairCollator
from mgca_lite.data.datasets import PairedDataset

POOL_SIZE = 1000  # the course's fixed pool: SynthCXR's pretraining test split


def recall_at_k(similarity: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k of a query x candidate similarity matrix whose correct candidate for query i is i.

    Args:
        similarity: (N, M) float, M >= N; row i scores every candidate for query i, and column i
            is its match (for image -> report retrieval: img_emb @ rep_emb.T).
        ks: the k's to report.
    Returns:
        {"R@k": fraction of queries whose match is among the k most similar candidates}. The rank
        of the match is the number of candidates scoring strictly higher, so a tie counts in the
        match's favour (identical reports give identical scores). Chance level is k / M.
    """
    n, m = similarity.shape
    if m < n:
        raise ValueError(f"similarity {tuple(similarity.shape)}: needs a candidate per query (M >= N)")
    true = similarity.diagonal()[:, None]                          # (N, 1) score of each match
    rank = (similarity > true).sum(dim=1)                          # (N,) candidates ranked above it
    return {f"R@{k}": (rank < k).float().mean().item() for k in ks}


def retrieval_recall(image_emb: torch.Tensor, report_emb: torch.Tensor,
                     ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Image -> report recall@k over the pool: image_emb, report_emb (N, D), L2-normalised, row i
    of each a pair; every image is ranked against all N reports (chance k / N)."""
    return recall_at_k(image_emb.float() @ report_emb.float().T, ks)  # (N, N) cosine similarities


def retrieval_pool(n: int = POOL_SIZE, image_size: int = 64, seed: int = 0,
                   split: str = "test") -> PairedDataset:
    """The fixed pool: the first `n` studies of SynthCXR's pretraining `split` (test by default,
    never seen in pretraining), rendered at `image_size` px with the evaluation transform."""
    return PairedDataset.synth(split=split, image_size=image_size, seed=seed, n=n)


@torch.no_grad()
def embed_pool(model, tokenizer, pool, max_length: int = 112, clean: bool = True,
               batch_size: int = 128, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Embed every pair of `pool` with an MGCA model in eval mode.

    Returns (img_emb (N, D), rep_emb (N, D)) float32 on the CPU, L2-normalised, in pool order.
    `clean` must match how the model was trained (`cfg.model.text.clean_reports`). The batch size
    only sets memory use: in eval mode every embedding is computed independently of the others.
    """
    was_training = model.training
    model.eval()
    collate = PairCollator(tokenizer, max_length, clean=clean)
    images, reports = [], []
    for batch in DataLoader(pool, batch_size=batch_size, shuffle=False, collate_fn=collate):
        out = model(batch["images"].to(device), batch["input_ids"].to(device),
                    batch["attention_mask"].to(device))
        images.append(out.img_emb.float().cpu())                   # (b, D)
        reports.append(out.rep_emb.float().cpu())                  # (b, D)
    model.train(was_training)
    return torch.cat(images), torch.cat(reports)

"""Image <-> report retrieval over a fixed pool: a number that does not depend on the batch size.

Top-k accuracy *inside a training batch* (`mgca_lite.losses.ita.retrieval_topk`) has chance k/B, so
runs trained or validated with different batch sizes cannot be compared by it. Here every image
is ranked against the same N reports, and every report against the same N images (by default the
1,000 studies of SynthCXR's pretraining test split), so recall@k of two checkpoints is comparable
whatever their batch sizes were.

    pool = retrieval_pool(image_size=cfg.model.image.image_size)          # fixed test studies
    img, rep = embed_pool(model, tokenizer, pool, max_length=cfg.model.text.max_length)
    retrieval_recall(img, rep)   # {"R@1": 0.12, "R@5": 0.31, "R@10": 0.45} (chance k / N)
    report_to_image_recall(img, rep)

Ties: SynthCXR's grammar writes some reports word for word more than once (a normal study's report
is often another's), and identical reports get identical embeddings. Recall counts a tie in the
match's favour, so image -> report retrieval finds "its" report when it finds any copy of it. In
report -> image retrieval the copies are different queries against different images, so no tie
helps there: the two directions are not symmetric on a pool with repeated reports.
`python -m mgca_lite eval retrieval` reports both directions and the pool's number of distinct reports.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mgca_lite.data.captions import clean_report
from mgca_lite.data.collate import PairCollator
from mgca_lite.data.datasets import PairedDataset, TaskDataset
from mgca_lite.data.synth import sample_report
from mgca_lite.data.tasks import split_size
from mgca_lite.data.transforms import ImageTransform, TransformConfig
from mgca_lite.evaluation.downstream import UNSEEN_SEED

POOL_SIZE = split_size("pretrain", "test")  # the course's fixed pool: SynthCXR's pretraining test split (1,000)
SMOKE_POOL = 64           # --smoke: a pool scored in seconds
CALIBRATION_STUDIES = 256  # "random": pretraining-split images its BatchNorm statistics are estimated on


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


def report_to_image_recall(image_emb: torch.Tensor, report_emb: torch.Tensor,
                           ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Report -> image recall@k over the pool: image_emb, report_emb (N, D), L2-normalised, row i
    of each a pair; every report is ranked against all N images (chance k / N)."""
    return recall_at_k(report_emb.float() @ image_emb.float().T, ks)  # (N, N) cosine similarities


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


def paired_model(checkpoint: str | Path, config: str = "synth_tiny", synth_seed: int = UNSEEN_SEED):
    """(MGCA model in eval mode, tokenizer, PretrainConfig, input size, clean) for an image-text
    evaluation (retrieval, zero-shot).

    checkpoint "random": `config` at random init (`loading.load_model`) with its image encoder's
    BatchNorm statistics re-estimated on CALIBRATION_STUDIES pretraining-split images rendered at
    `synth_seed` (never the evaluation pool). input size: crop size, else image size, as trained.
    clean: whether the model reads cleaned reports (`loading.reads_clean_reports`).
    """
    from mgca_lite.evaluation.features import recalibrate_batchnorm
    from mgca_lite.evaluation.loading import RANDOM, load_model, reads_clean_reports

    model, tokenizer, cfg = load_model(checkpoint, config)
    size = cfg.data.crop_size or cfg.data.image_size
    if str(checkpoint) == RANDOM:
        images = TaskDataset.synth("pretrain", "train", image_size=size, seed=synth_seed,
                                   sizes={"train": CALIBRATION_STUDIES},
                                   transform=ImageTransform(TransformConfig(resize=size)))
        recalibrate_batchnorm(model.image_encoder, images)
    return model.eval(), tokenizer, cfg, size, reads_clean_reports(checkpoint, cfg)


def cli_result(args) -> tuple[dict, str]:
    """`eval retrieval`: image -> report and report -> image recall@1/5/10 of `args.checkpoint`
    over the whole pretraining test split (or its first `args.n` studies; SMOKE_POOL with
    `args.smoke`) rendered at `args.synth_seed` (default UNSEEN_SEED). Returns (result, table)."""
    synth_seed = UNSEEN_SEED if args.synth_seed is None else args.synth_seed
    n = args.n or (SMOKE_POOL if args.smoke else POOL_SIZE)
    model, tokenizer, cfg, size, clean = paired_model(args.checkpoint, args.config, synth_seed)
    pool = retrieval_pool(n, size, synth_seed)
    img, rep = embed_pool(model, tokenizer, pool, max_length=cfg.model.text.max_length, clean=clean)
    ks = (1, 5, 10)
    raw = [sample_report(int(i), synth_seed)[0] for i in pool.source.indices]  # the pool's reports, not re-rendered
    reports = {clean_report(r).text for r in raw} if clean else set(raw)       # what the text encoder reads
    result = {"task": "retrieval", "checkpoint": str(args.checkpoint), "synth_seed": synth_seed, "n": n,
              "image_size": size, "distinct_reports": len(reports),
              "image_to_report": retrieval_recall(img, rep, ks),
              "report_to_image": report_to_image_recall(img, rep, ks),
              "chance": {f"R@{k}": min(k, n) / n for k in ks}}
    return result, format_retrieval(result)


def format_retrieval(result: dict) -> str:
    """A plain-text table of a `cli_result` result: one row per direction, one column per k."""
    keys = list(result["chance"])
    lines = [f"retrieval of {result['checkpoint']} over {result['n']} test studies ({result['distinct_reports']} "
             f"distinct reports; synth seed {result['synth_seed']}); ties count for the match",
             f"{'direction':<18}" + "".join(f"{k:>8}" for k in keys), "-" * (18 + 8 * len(keys))]
    for label, key in (("image -> report", "image_to_report"), ("report -> image", "report_to_image"),
                       ("chance", "chance")):
        lines.append(f"{label:<18}" + "".join(f"{result[key][k]:>8.3f}" for k in keys))
    return "\n".join(lines)

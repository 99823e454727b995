"""What the trained CPA prototypes hold: usage, purity and NMI against finding sets (spec §4).

Each test image embedding is assigned to its nearest prototype (argmax of img_emb @ C^T, C's rows
unit-norm). A study's *finding set* is the tuple of its positive (label == 1) CheXpert-5 findings;
() is a study with none of them.

Purity and NMI are read beside a shuffled-assignment baseline: the same assignment histogram
permuted over the studies (seeded, averaged over several permutations), which keeps every
prototype's size but breaks any link to the images. Purity's baseline is high when one finding set
dominates (most studies are normal: a prototype's majority set is () by chance), so purity is
judged by its excess over the baseline, and NMI is the score to compare across runs.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import normalized_mutual_info_score

from mgca_lite.data.synth import CHEXPERT5, make_sample
from mgca_lite.data.tasks import task_split
from mgca_lite.data.transforms import normalize


@dataclass
class PrototypeEvalConfig:
    n_studies: int = 1000      # unseen pretraining-test studies to assign
    synth_seed: int = 1234     # SynthCXR seed of those studies (not the training seed)
    batch_size: int = 64       # images per forward pass
    permutations: int = 20     # shuffled assignments averaged for the baselines
    seed: int = 0              # the permutations


def assign(img_emb: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Nearest prototype of each embedding: img_emb (N, D), prototypes (K, D) -> int64 (N,)."""
    return (img_emb @ F.normalize(prototypes, dim=1).T).argmax(dim=1)


def usage(assignment: np.ndarray, k: int) -> dict:
    """How the N studies spread over K prototypes: entropy of the assignment histogram (nats, and
    divided by log K: 1 = all equally used), dead (never assigned) and used counts, and the dead
    count expected if every study picked a prototype uniformly at random, K (1 - 1/K)^N."""
    counts = np.bincount(assignment, minlength=k)
    p = counts[counts > 0] / len(assignment)
    entropy = float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: no "-0.0" for a single used prototype
    return {"entropy": entropy, "entropy_normalized": entropy / math.log(k) if k > 1 else 0.0,
            "dead": int((counts == 0).sum()), "used": int((counts > 0).sum()),
            "dead_if_uniform": k * (1 - 1 / k) ** len(assignment)}


def purity(assignment: np.ndarray, sets: list[tuple]) -> float:
    """Sum over used prototypes of the count of its most common finding set, divided by N."""
    per_proto = _sets_per_prototype(assignment, sets).values()
    return sum(counter.most_common(1)[0][1] for counter in per_proto) / len(assignment)


def nmi(assignment: np.ndarray, sets: list[tuple]) -> float:
    """Normalised mutual information (sklearn, arithmetic mean) between prototype and finding set."""
    return float(normalized_mutual_info_score(_set_ids(sets), assignment))


def shuffled_baseline(metric, assignment: np.ndarray, sets: list[tuple], permutations: int = 20,
                      seed: int = 0) -> float:
    """Mean of metric(permuted assignment, sets) over seeded permutations of the N studies."""
    rng = np.random.default_rng(seed)
    return float(np.mean([metric(rng.permutation(assignment), sets) for _ in range(permutations)]))


def finding_table(assignment: np.ndarray, labels: np.ndarray, findings=CHEXPERT5) -> list[dict]:
    """One row per used prototype, largest first: {"prototype", "size", "share": {finding: share of
    its studies positive}}; labels (N, F) with 1 = positive, in `findings` order."""
    rows = []
    for proto in np.unique(assignment):
        members = labels[assignment == proto] == 1                       # (n_k, F)
        rows.append({"prototype": int(proto), "size": int(len(members)),
                     "share": {f: float(members[:, j].mean()) for j, f in enumerate(findings)}})
    return sorted(rows, key=lambda r: (-r["size"], r["prototype"]))


def finding_sets(labels: np.ndarray, findings=CHEXPERT5) -> list[tuple]:
    """labels (N, F) 1 / 0 / -1 -> N tuples of the positive findings (label == 1)."""
    return [tuple(f for f, v in zip(findings, row) if v == 1) for row in labels]


def prototype_report(assignment: np.ndarray, labels: np.ndarray, k: int,
                     cfg: PrototypeEvalConfig | None = None) -> dict:
    """Usage, purity (with its excess over the shuffled baseline), NMI and the prototype x finding
    table for an assignment (N,) into K prototypes and CheXpert-5 labels (N, 5)."""
    cfg = cfg or PrototypeEvalConfig()
    sets = finding_sets(labels)
    pur, pur0 = purity(assignment, sets), shuffled_baseline(purity, assignment, sets, cfg.permutations, cfg.seed)
    info, info0 = nmi(assignment, sets), shuffled_baseline(nmi, assignment, sets, cfg.permutations, cfg.seed)
    return {
        "n_studies": int(len(assignment)), "n_prototypes": int(k), "usage": usage(assignment, k),
        "purity": {"value": pur, "shuffled": pur0, "excess": pur - pur0},
        "nmi": {"value": info, "shuffled": info0},
        "n_finding_sets": len(set(sets)),
        "base_rate": {f: float((labels[:, j] == 1).mean()) for j, f in enumerate(CHEXPERT5)},
        "table": finding_table(assignment, labels),
    }


@torch.no_grad()
def embed_test_studies(model, image_size: int, cfg: PrototypeEvalConfig) -> tuple[torch.Tensor, np.ndarray]:
    """Image embeddings (N, D) of the first N pretraining-test studies rendered from
    cfg.synth_seed at `image_size`, and their CheXpert-5 labels (N, 5) int 1 / 0 / -1."""
    indices = task_split("pretrain", "test", sizes={"test": cfg.n_studies})
    embs, labels = [], []
    for start in range(0, len(indices), cfg.batch_size):
        samples = [make_sample(int(i), cfg.synth_seed, image_size) for i in indices[start:start + cfg.batch_size]]
        images = torch.stack([normalize(s.image) for s in samples])              # (b, 1, H, W)
        feat = model.image_encoder(images).global_feat                            # (b, Cg)
        embs.append(F.normalize(model.image_global_head(feat), dim=-1))         # (b, D), as MGCAModel
        labels += [[s.labels[f] for f in CHEXPERT5] for s in samples]
    return torch.cat(embs), np.asarray(labels, dtype=np.int64)


def evaluate_prototypes(checkpoint, cfg: PrototypeEvalConfig | None = None, config: str = "synth_tiny") -> dict:
    """`prototype_report` of a checkpoint (or "random": `config` at random init) on unseen studies."""
    from mgca_lite.evaluation.loading import load_model, load_prototypes

    cfg = cfg or PrototypeEvalConfig()
    model, _, pcfg = load_model(checkpoint, config)
    protos = load_prototypes(checkpoint, pcfg)
    emb, labels = embed_test_studies(model, pcfg.data.crop_size or pcfg.data.image_size, cfg)
    report = prototype_report(assign(emb, protos).numpy(), labels, len(protos), cfg)
    return {**report, "checkpoint": str(checkpoint), "synth_seed": cfg.synth_seed}


def _set_ids(sets: list[tuple]) -> np.ndarray:
    """Finding sets -> int labels (N,), one id per distinct set."""
    ids: dict[tuple, int] = {}
    return np.asarray([ids.setdefault(s, len(ids)) for s in sets])


def _sets_per_prototype(assignment: np.ndarray, sets: list[tuple]) -> dict[int, Counter]:
    """{prototype: Counter of its studies' finding sets} over used prototypes."""
    out: dict[int, Counter] = {}
    for proto, s in zip(assignment.tolist(), sets):
        out.setdefault(proto, Counter())[s] += 1
    return out

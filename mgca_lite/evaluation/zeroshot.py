"""Zero-shot classification from prompts on a CheXpert-5x200-like set (MGCA's zero-shot protocol).

- the set: studies of the chexpert5 task's test block with exactly one of the five CheXpert findings
  positive (the chexpert5 target, uncertainty policy included), the first `per_class` of each
  class in index order;
- the prompts: every sentence the SynthCXR report grammar writes to assert a class's finding in a
  study without a prior (`class_sentences`), cleaned and tokenised as in training;
- the score: cosine(image embedding, class embedding), the class embedding being the mean of its
  prompts' report embeddings re-normalised to unit length (so a class whose prompts disagree more
  is not penalised by a shorter mean); the prediction is the highest-scoring class.

    model, tokenizer, cfg, size, clean = paired_model("checkpoints/reference.pt")
    prompts = class_prompts(clean=clean)
    classes = class_embeddings(model, tokenizer, prompts, cfg.model.text.max_length)   # (5, D)
    dataset, labels, _ = zeroshot_set(size)
    image_emb, _ = embed_images(model, dataset)                                     # (1000, D)
    metrics(labels, zeroshot_logits(image_emb, classes).argmax(1).numpy(), 5)
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from mgca_lite.data.captions import clean_report
from mgca_lite.data.datasets import SynthSource, TaskDataset
from mgca_lite.data.synth import sample_labels
from mgca_lite.data.synth_case import CHEXPERT5, ZONES, FindingCase
# The grammar's own sentence builders (private there: the report writer is their only other user).
from mgca_lite.data.synth_report import positive_sentence
from mgca_lite.data.tasks import task_split, task_target
from mgca_lite.data.transforms import ImageTransform, TransformConfig
from mgca_lite.evaluation.downstream import UNSEEN_SEED
from mgca_lite.evaluation.features import extract_features
from mgca_lite.evaluation.retrieval import paired_model

PER_CLASS = 200       # CheXpert 5x200: 200 single-finding studies per class
SCAN = 20_000         # test-block studies searched for them (labels only, no rendering); ~4,000 suffice at seed 1234
SMOKE_PER_CLASS = 8   # --smoke
# The grammar's phrases depend on side, zone and severity only through these values: severity in
# thirds (small / moderate / large), edema's "congestion" below 0.25, atelectasis' "collapse" above
# 0.75. Only effusion and atelectasis are ever drawn bilateral (synth_case.draw_case).
SEVERITIES = (0.1, 0.5, 0.9)
BILATERAL = ("pleural_effusion", "atelectasis")


class _EveryBranch:
    """Stands in for the grammar's np.random.Generator and follows one branch of its draws.

    `integers(n)` takes option `path[i]` of the i-th draw (0 past the path); `random()` is either
    0.0 or just below 1, i.e. below or above every threshold the grammar compares with. After a
    run, `taken` and `widths` hold each draw's choice and number of options, for `_every_outcome`.
    """

    def __init__(self, path: list[int]):
        self.path, self.taken, self.widths = path, [], []

    def _choose(self, width: int) -> int:
        i = self.path[len(self.taken)] if len(self.taken) < len(self.path) else 0
        self.taken.append(i)
        self.widths.append(width)
        return i

    def integers(self, n) -> int:
        return self._choose(int(n))

    def random(self) -> float:
        return (0.0, 1.0 - 1e-12)[self._choose(2)]


def _every_outcome(draw) -> list:
    """Every value `draw(rng)` can return, by depth-first search over the rng's choices (a draw's
    number of options may depend on earlier choices; each branch is visited once)."""
    out, path = [], []
    while True:
        rng = _EveryBranch(path)
        out.append(draw(rng))
        k = len(rng.taken) - 1  # the last draw with an option not yet taken
        while k >= 0 and rng.taken[k] + 1 >= rng.widths[k]:
            k -= 1
        if k < 0:
            return out
        path = rng.taken[:k] + [rng.taken[k] + 1]


def class_sentences(finding: str) -> list[str]:
    """Every sentence (sorted, unique) by which the SynthCXR grammar asserts `finding` in a study
    with no prior (`synth_report.positive_sentence`), over every side, zone and severity it can take, e.g.
    "There is small right pleural effusion." or "Bibasilar atelectasis is seen."."""
    sides = ("right", "left") + (("bilateral",) if finding in BILATERAL else ())
    sentences = set()
    for side, zone, severity in itertools.product(sides, ZONES, SEVERITIES):
        fc = FindingCase(present=True, label=1, severity=severity, side=side, zone=zone)

        sentences.update(_every_outcome(lambda rng, fc=fc: positive_sentence(finding, fc, rng)))
    return sorted(sentences)


def class_prompts(classes: tuple[str, ...] = CHEXPERT5, clean: bool = True) -> dict[str, list[str]]:
    """{class: its prompts}: `class_sentences` as the text encoder reads them. With clean (as the
    model was trained: `TextEncoderConfig.clean_reports`), each is `clean_report(...).text`, and a
    sentence that cleaning empties ("Cardiomegaly.", one word, dropped as in training) is left out;
    duplicates after cleaning are merged."""
    out = {}
    for c in classes:
        texts = [clean_report(s).text for s in class_sentences(c)] if clean else class_sentences(c)
        out[c] = sorted({t for t in texts if t})
    return out


@torch.no_grad()
def embed_texts(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 256) -> torch.Tensor:
    """Report embeddings (N, D) float32, L2-normalised, of an MGCA model in eval mode. `texts` are
    tokenised as given (clean them first if the model reads cleaned reports)."""
    model.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        tok = tokenizer(texts[i:i + batch_size], padding="longest", truncation=True,
                        max_length=max_length, return_tensors="pt")
        feat = model.text_encoder(tok["input_ids"], tok["attention_mask"]).report_feat
        out.append(F.normalize(model.text_global_head(feat), dim=-1).float())
    return torch.cat(out)


def class_centroids(prompt_emb: list[torch.Tensor]) -> torch.Tensor:
    """K tensors (P_k, D) of one class's prompt embeddings -> (K, D): each class's mean,
    re-normalised to unit length."""
    return F.normalize(torch.stack([e.float().mean(0) for e in prompt_emb]), dim=-1)


def class_embeddings(model, tokenizer, prompts: dict[str, list[str]], max_length: int) -> torch.Tensor:
    """(K, D): `class_centroids` of each class's prompt embeddings, in `prompts` order."""
    return class_centroids([embed_texts(model, tokenizer, p, max_length) for p in prompts.values()])


@torch.no_grad()
def embed_images(model, dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(image embeddings (N, D) float32 L2-normalised, targets (N, ...)) of a TaskDataset."""
    model.eval()
    encode = lambda images: F.normalize(model.image_global_head(model.image_encoder(images).global_feat), dim=-1)
    return extract_features(encode, dataset)


def zeroshot_logits(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarities (N, K) of image embeddings (N, D) with class embeddings (K, D), both
    L2-normalised."""
    return image_emb.float() @ class_emb.float().T


def zeroshot_indices(synth_seed: int = UNSEEN_SEED, per_class: int = PER_CLASS,
                     scan: int = SCAN) -> tuple[np.ndarray, np.ndarray, int]:
    """The 5x200-like set: (indices (N,) int64 sorted, class ids (N,) int64, studies scanned).

    Scans the chexpert5 test block in index order (labels only), keeping a study when exactly one
    of its five chexpert5 targets is 1, until every class has `per_class` or `scan` studies were
    read; a class with fewer keeps all it found (the caller reports the counts).
    """
    kept: dict[int, list[int]] = {c: [] for c in range(len(CHEXPERT5))}
    scanned = 0
    for index in task_split("chexpert5", "test", sizes={"test": scan}):
        scanned += 1
        target = task_target("chexpert5", sample_labels(int(index), synth_seed), set())
        if target.sum() == 1 and len(kept[int(target.argmax())]) < per_class:
            kept[int(target.argmax())].append(int(index))
        if all(len(v) == per_class for v in kept.values()):
            break
    pairs = sorted((i, c) for c, v in kept.items() for i in v)
    return np.array([i for i, _ in pairs], np.int64), np.array([c for _, c in pairs], np.int64), scanned


def zeroshot_set(image_size: int, synth_seed: int = UNSEEN_SEED, per_class: int = PER_CLASS,
                 scan: int = SCAN) -> tuple[TaskDataset, np.ndarray, int]:
    """(chexpert5 TaskDataset of the `zeroshot_indices` studies at `image_size` px with the
    evaluation view, class ids (N,), studies scanned)."""
    indices, labels, scanned = zeroshot_indices(synth_seed, per_class, scan)
    source = SynthSource(indices, synth_seed, image_size)
    return TaskDataset(source, "chexpert5", ImageTransform(TransformConfig(resize=image_size))), labels, scanned


def metrics(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """Accuracy and macro F1 (scikit-learn) of class ids (N,), each beside the expectation of a
    uniform random guess, and the confusion matrix (rows: truth, columns: prediction).

    Chance: a uniform guess is right 1/K of the time; class c's F1 for it (expected counts) is
    2 p_c (1/K) / (p_c + 1/K), p_c the class's share, so 1/K on a balanced set. A class that is
    never predicted has F1 0 (scikit-learn's zero_division=0).
    """
    k = list(range(num_classes))
    share = np.bincount(labels, minlength=num_classes) / len(labels)
    chance_f1 = float(np.mean(2 * share / num_classes / (share + 1 / num_classes)))
    return {"accuracy": {"value": float(accuracy_score(labels, predicted)), "chance": 1 / num_classes},
            "macro_f1": {"value": float(f1_score(labels, predicted, labels=k, average="macro", zero_division=0)),
                         "chance": chance_f1},
            "confusion": confusion_matrix(labels, predicted, labels=k).tolist()}


@dataclass
class ZeroShotConfig:
    """Which studies the zero-shot set holds (the prompts are fixed by the grammar)."""

    per_class: int = PER_CLASS
    scan: int = SCAN
    synth_seed: int = UNSEEN_SEED


def evaluate_zeroshot(checkpoint, cfg: ZeroShotConfig = ZeroShotConfig(), config: str = "synth_tiny") -> dict:
    """The zero-shot result of a checkpoint (or "random" of `config`); shape in `cli_result`."""
    model, tokenizer, pretrain_cfg, size, clean = paired_model(checkpoint, config, cfg.synth_seed)
    prompts = class_prompts(CHEXPERT5, clean)
    classes = class_embeddings(model, tokenizer, prompts, pretrain_cfg.model.text.max_length)
    dataset, labels, scanned = zeroshot_set(size, cfg.synth_seed, cfg.per_class, cfg.scan)
    image_emb, targets = embed_images(model, dataset)
    assert (targets.argmax(1).numpy() == labels).all()  # the rendered targets are the scanned ones
    predicted = zeroshot_logits(image_emb, classes).argmax(1).numpy()
    return {"task": "zeroshot", "dataset": "chexpert5x200", "metric": "accuracy", "checkpoint": str(checkpoint),
            "synth_seed": cfg.synth_seed, "image_size": size, "n_images": len(labels), "scanned": scanned,
            "per_class_n": {c: int((labels == i).sum()) for i, c in enumerate(CHEXPERT5)},
            **metrics(labels, predicted, len(CHEXPERT5)), "prompts": prompts, "config": dataclasses.asdict(cfg)}


def cli_result(args) -> tuple[dict, str]:
    """`eval zeroshot`: {"task": "zeroshot", "dataset": "chexpert5x200", "metric": "accuracy",
    "checkpoint", "synth_seed", "image_size", "n_images", "scanned", "per_class_n": {class: n},
    "accuracy": {"value", "chance"}, "macro_f1": {"value", "chance"}, "confusion": [[...]] (truth x
    prediction, CHEXPERT5 order), "prompts": {class: [...]}, "config"}, and its table.
    --n sets the studies per class (default 200; SMOKE_PER_CLASS with --smoke)."""
    cfg = ZeroShotConfig(per_class=args.n or (SMOKE_PER_CLASS if args.smoke else PER_CLASS))
    if args.synth_seed is not None:
        cfg.synth_seed = args.synth_seed
    result = evaluate_zeroshot(args.checkpoint, cfg, args.config)
    return result, format_zeroshot(result)


def format_zeroshot(result: dict) -> str:
    """A plain-text summary: accuracy and macro F1 beside chance, studies and prompts per class,
    and the confusion matrix."""
    classes = list(result["per_class_n"])
    short, header = [c[:12] for c in classes], "truth \\ predicted"
    lines = [f"zero-shot on {result['dataset']} of {result['checkpoint']}: {result['n_images']} studies "
             f"(synth seed {result['synth_seed']}, {result['scanned']} scanned)",
             f"{'metric':<10}{'value':>8}{'chance':>8}",
             *(f"{label:<10}{result[key]['value']:>8.3f}{result[key]['chance']:>8.3f}"
               for label, key in (("accuracy", "accuracy"), ("macro F1", "macro_f1"))),
             "", f"{header:<18}{'n':>5}{'prompts':>8}" + "".join(f"{s:>13}" for s in short)]
    for c, row in zip(classes, result["confusion"]):
        lines.append(f"{c[:18]:<18}{result['per_class_n'][c]:>5}{len(result['prompts'][c]):>8}"
                     + "".join(f"{v:>13}" for v in row))
    short_classes = [c for c in classes if result["per_class_n"][c] < result["config"]["per_class"]]
    if short_classes:
        lines.append(f"fewer than {result['config']['per_class']} studies found for: {', '.join(short_classes)}")
    return "\n".join(lines)

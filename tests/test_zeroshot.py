"""Zero-shot classification (mgca_lite.evaluation.zeroshot): class scores on hand-made embeddings,
metrics beside scikit-learn and hand-worked values, prompts that cover what the report grammar
writes, the 5x200-like set, and `eval zeroshot --smoke`."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from mgca_lite.cli import main
from mgca_lite.data.captions import clean_report
from mgca_lite.data.synth import make_case, sample_labels
from mgca_lite.data.synth_case import CHEXPERT5
from mgca_lite.data.synth_report import SYNONYM_WORDS, _positive, _Writer
from mgca_lite.data.tasks import task_target
from mgca_lite.evaluation.zeroshot import (class_centroids, class_prompts, metrics, zeroshot_indices,
                                           zeroshot_logits)


def _unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def test_class_scores_use_the_renormalised_mean_of_the_prompts():
    # Class 0's prompts agree (mean (1, 0), length 1); class 1's point at 60 and 120 degrees (mean
    # (0, 0.866), length 0.866). An image at 47 degrees is closer in angle to class 1 (43 degrees
    # away, vs 47): only the re-normalised mean gives it to class 1 (raw mean: 0.731 * 0.866 = 0.633
    # < 0.682).
    prompts = [torch.tensor([_unit(0), _unit(0)]), torch.tensor([_unit(60), _unit(120)])]
    centroids = class_centroids(prompts)
    torch.testing.assert_close(centroids, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    image = torch.tensor([_unit(47)])
    logits = zeroshot_logits(image, centroids)
    torch.testing.assert_close(logits, torch.tensor([[math.cos(math.radians(47)), math.sin(math.radians(47))]]))
    assert logits.argmax(1).item() == 1
    raw_means = torch.stack([p.mean(0) for p in prompts])
    assert (image @ raw_means.T).argmax(1).item() == 0   # what skipping the re-normalisation would say


def test_metrics_by_hand_and_beside_scikit_learn():
    # 3 classes, 6 images; class 2 is never predicted.
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])
    m = metrics(labels, predicted, 3)
    assert m["confusion"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert m["accuracy"]["value"] == pytest.approx(4 / 6)
    # F1 = 2 tp / (2 tp + fp + fn): class 0: 4 / (4 + 0 + 1); class 1: 4 / (4 + 2 + 0); class 2: 0
    assert m["macro_f1"]["value"] == pytest.approx((4 / 5 + 4 / 6 + 0) / 3)
    assert m["macro_f1"]["value"] == pytest.approx(f1_score(labels, predicted, average="macro", zero_division=0))
    assert m["accuracy"]["chance"] == pytest.approx(1 / 3)
    # uniform guess, shares 1/2, 1/3, 1/6: F1_c = 2 p (1/3) / (p + 1/3)
    assert m["macro_f1"]["chance"] == pytest.approx(np.mean([2 * p / 3 / (p + 1 / 3) for p in (1 / 2, 1 / 3, 1 / 6)]))
    balanced = metrics(np.arange(5).repeat(4), np.zeros(20, int), 5)
    assert balanced["macro_f1"]["chance"] == pytest.approx(0.2)


@pytest.fixture(scope="module")
def prompts():
    return class_prompts()


def test_prompts_cover_every_sentence_the_grammar_writes_for_a_drawn_case(prompts):
    # Real cases (continuous severities, drawn sides and zones), each finding's sentence written
    # with ordinary random draws: every one must be among the enumerated prompts.
    seen = {c: set() for c in CHEXPERT5}
    for index in range(400):
        case = make_case(index, seed=7)
        for f in CHEXPERT5:
            fc = case.findings[f]
            if fc.label != 1:
                continue
            for r in range(3):
                w = _Writer()
                w.sentence(_positive(f, dataclasses.replace(fc, change=""), np.random.default_rng([index, r])))
                text = clean_report(w.text).text
                if text:
                    seen[f].add(text)
    for f in CHEXPERT5:
        assert seen[f] and seen[f] <= set(prompts[f]), f
        assert len(seen[f]) > 5


def test_every_prompt_names_its_finding_and_one_word_sentences_are_dropped(prompts):
    assert list(prompts) == list(CHEXPERT5)
    for f, texts in prompts.items():
        assert len(texts) == len(set(texts))
        assert all(any(w in t for w in SYNONYM_WORDS[f]) for t in texts), f
        assert all(len(t.split()) >= 2 for t in texts)
    assert "cardiomegaly" not in prompts["cardiomegaly"]           # "Cardiomegaly." is one word
    assert {"there is cardiomegaly", "bibasilar atelectasis", "right lower lobe collapse is seen",
            "mild pulmonary vascular congestion", "bilateral pleural effusions are seen"} <= \
        {t for texts in prompts.values() for t in texts}
    raw = class_prompts(clean=False)
    assert "There is cardiomegaly." in raw["cardiomegaly"] and "Cardiomegaly." in raw["cardiomegaly"]


def test_the_5x200_like_set_keeps_single_finding_studies_up_to_the_cap():
    indices, labels, scanned = zeroshot_indices(synth_seed=3, per_class=4, scan=2000)
    assert np.bincount(labels, minlength=5).tolist() == [4] * 5
    assert (np.diff(indices) > 0).all() and scanned < 2000   # stopped once every class was full
    for i, c in zip(indices, labels):
        target = task_target("chexpert5", sample_labels(int(i), 3), set())
        assert target.sum() == 1 and target[c] == 1
    few, few_labels, scanned = zeroshot_indices(synth_seed=3, per_class=200, scan=50)
    assert scanned == 50 and len(few) == len(few_labels) < 50   # fewer found: kept, counts reported


def test_eval_zeroshot_smoke_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "zeroshot.json"
    assert main(["eval", "zeroshot", "--checkpoint", "random", "--smoke", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"task", "dataset", "metric", "checkpoint", "synth_seed", "n_images", "per_class_n", "accuracy",
            "macro_f1", "prompts", "confusion"} <= set(data)
    assert (data["task"], data["dataset"], data["metric"], data["checkpoint"], data["synth_seed"]) == \
        ("zeroshot", "chexpert5x200", "accuracy", "random", 1234)
    assert data["per_class_n"] == {c: 8 for c in CHEXPERT5} and data["n_images"] == 40
    confusion = np.array(data["confusion"])
    assert confusion.shape == (5, 5) and confusion.sum(1).tolist() == [8] * 5
    assert data["accuracy"]["value"] == pytest.approx(np.trace(confusion) / 40)
    assert data["accuracy"]["chance"] == pytest.approx(0.2) and data["macro_f1"]["chance"] == pytest.approx(0.2)
    assert list(data["prompts"]) == list(CHEXPERT5)
    assert "accuracy" in capsys.readouterr().out

"""Prototype usage, purity, NMI and shuffled baselines on hand-made assignments; the loader, `eval prototypes`."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_grounding import tiny_run  # noqa: F401 - the fixture: a 2-step tiny run

from mgca_lite.evaluation.prototypes import (
    assign, finding_sets, finding_table, nmi, prototype_report, purity, shuffled_baseline, usage,
)

SETS = [(), ("edema",), ("cardiomegaly", "edema")]


def test_perfect_clustering_has_purity_and_nmi_one():
    sets = [SETS[i % 3] for i in range(30)]
    assignment = np.array([i % 3 for i in range(30)]) + 5  # prototype ids need not start at 0
    assert purity(assignment, sets) == 1.0
    assert nmi(assignment, sets) == pytest.approx(1.0)


def test_one_prototype_for_everything_has_purity_equal_to_the_majority_share():
    sets = [()] * 7 + [("edema",)] * 2 + [("atelectasis",)]
    assignment = np.zeros(10, dtype=np.int64)
    assert purity(assignment, sets) == pytest.approx(0.7)
    assert nmi(assignment, sets) == pytest.approx(0.0)


def test_usage_counts_dead_prototypes_and_entropy():
    u = usage(np.array([0, 0, 1, 1, 3, 3]), k=5)
    assert (u["dead"], u["used"]) == (2, 3)
    assert u["entropy"] == pytest.approx(math.log(3))
    assert u["entropy_normalized"] == pytest.approx(math.log(3) / math.log(5))
    assert u["dead_if_uniform"] == pytest.approx(5 * 0.8 ** 6)


def test_shuffled_baseline_is_below_the_real_score_for_a_structured_assignment():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    sets = [SETS[t] for t in truth]
    noisy = np.where(rng.random(300) < 0.8, truth, rng.integers(0, 3, 300))  # 80 % right
    for metric in (purity, nmi):
        real, shuffled = metric(noisy, sets), shuffled_baseline(metric, noisy, sets, permutations=20, seed=1)
        assert shuffled < real
        assert shuffled == shuffled_baseline(metric, noisy, sets, permutations=20, seed=1)  # seeded


def test_assign_picks_the_nearest_unit_prototype():
    protos = torch.tensor([[10.0, 0.0], [0.0, 0.1]])  # rows are normalised before comparing
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.2, 1.0], [-1.0, 0.0]]), dim=1)
    assert assign(emb, protos).tolist() == [0, 1, 1]


def test_finding_sets_table_and_report():
    labels = np.array([[1, 0, 0, 0, 0], [1, 0, -1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]])
    assert finding_sets(labels) == [("atelectasis",), ("atelectasis",), (), ("cardiomegaly", "pleural_effusion")]
    assignment = np.array([2, 2, 0, 0])
    table = finding_table(assignment, labels)
    assert [r["prototype"] for r in table] == [0, 2] and table[1]["share"]["atelectasis"] == 1.0
    assert table[0]["share"]["cardiomegaly"] == 0.5 and table[0]["size"] == 2
    report = prototype_report(assignment, labels, k=4)
    assert report["usage"]["dead"] == 2 and report["purity"]["value"] == 0.75
    assert report["purity"]["excess"] == pytest.approx(report["purity"]["value"] - report["purity"]["shuffled"])
    assert set(report["nmi"]) == {"value", "shuffled"} and report["n_finding_sets"] == 3


def test_prototypes_load_from_the_checkpoint_and_random_ones_are_seeded(tiny_run):
    from mgca_lite.evaluation.loading import load_model, load_prototypes
    from mgca_lite.training.checkpoint import load_checkpoint

    _, _, cfg = load_model(tiny_run)
    protos = load_prototypes(tiny_run, cfg)
    saved = load_checkpoint(tiny_run)["model"]["criterion.prototypes"]
    assert protos.shape == (16, 32) and torch.allclose(protos, torch.nn.functional.normalize(saved, dim=1))
    assert torch.equal(load_prototypes("random", cfg), load_prototypes("random", cfg))


def test_eval_prototypes_cli_writes_usage_purity_nmi_and_the_table(tiny_run, tmp_path, capsys):
    import json

    from mgca_lite.cli import main

    out = tmp_path / "prototypes.json"
    assert main(["eval", "prototypes", "--checkpoint", str(tiny_run), "--n", "40", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_studies"] == 40 and result["n_prototypes"] == 16
    assert result["usage"]["used"] + result["usage"]["dead"] == 16
    assert sum(row["size"] for row in result["table"]) == 40
    assert 0.0 <= result["nmi"]["value"] <= 1.0 and "excess" in result["purity"]
    assert "purity" in capsys.readouterr().out

"""Linear probe, features and the probe suite."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mgca_lite.evaluation.features import raw_pixels, recalibrate_batchnorm
from mgca_lite.evaluation.linear_probe import ProbeConfig, auroc, macro_auroc, score, train_linear_probe
from mgca_lite.evaluation.probe import ProbeSuite, ProbeSuiteConfig, format_table, summarize


def _blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, 2, generator=g) < 0.3).float()
    x = torch.randn(n, 8, generator=g) * 5 + 100  # far from standardised on purpose
    x[:, :2] += 15 * y  # 3 noise standard deviations: clearly separable
    return x, y


def test_probe_learns_separable_labels_and_folds_the_standardisation():
    tx, ty = _blobs(400, 0)
    vx, vy = _blobs(200, 1)
    layer = train_linear_probe(tx, ty, vx, vy, "multilabel", 2, ProbeConfig(max_epochs=20))
    with torch.no_grad():
        auc = macro_auroc(vy.numpy(), layer(vx).numpy())
    assert auc > 0.9  # the raw (un-standardised) features go straight into the returned layer


def test_auroc_equals_sklearn_including_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.random(50) < 0.3
        scores = np.round(rng.normal(size=50) + labels, 1)  # rounding makes ties
        assert abs(auroc(labels, scores) - roc_auc_score(labels, scores)) < 1e-12


def test_macro_auroc_skips_columns_with_one_class_and_accuracy_for_multiclass():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.1, 0.2], [0.8, 0.3], [0.2, 0.4]])
    assert macro_auroc(labels, scores) == 1.0
    assert score("multiclass", np.array([0, 2, 1]), np.eye(3)[[0, 2, 2]]) == 2 / 3


def test_recalibrated_batchnorm_matches_the_data_statistics():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    data = [{"image": torch.randn(1, 8, 8) * 3 + 2, "target": torch.zeros(1), "mask": torch.zeros(8, 8, dtype=torch.bool),
             "boxes": torch.zeros(0, 4), "index": i} for i in range(64)]
    recalibrate_batchnorm(net, data, batches=4, batch_size=16)
    assert not net.training
    with torch.no_grad():
        conv = net[0](torch.stack([d["image"] for d in data]))
    torch.testing.assert_close(net[1].running_mean, conv.mean((0, 2, 3)), rtol=1e-4, atol=1e-4)


def test_probe_suite_runs_every_encoder_fraction_and_seed():
    suite = ProbeSuite(ProbeSuiteConfig(task="chexpert5", fractions=(0.1, 1.0), seeds=2, image_size=32,
                                        train_size=60, test_size=40, progress=False))
    rows = suite.run({"pixels": lambda x: raw_pixels(x, 8)})
    assert [(r["fraction"], r["seed"], r["n_train"]) for r in rows] == [(0.1, 0, 6), (0.1, 1, 6), (1.0, 0, 60)]
    table = format_table(summarize(rows))
    assert "pixels" in table and "10% labels" in table

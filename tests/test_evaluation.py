"""Linear probe, features and the probe suite."""
from __future__ import annotations

import numpy as np
import pytest
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


def _noisy(n: int, seed: int):
    """Weakly informative features: the validation loss bottoms out and then rises (overfitting)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, 2, generator=g) < 0.4).float()
    return torch.randn(n, 16, generator=g) + 0.3 * y.repeat(1, 8), y


def _val_loss(layer, x, y) -> float:
    with torch.no_grad():
        return float(nn.functional.binary_cross_entropy_with_logits(layer(x), y))


def test_min_steps_zero_is_the_plain_epoch_budget_and_min_steps_extends_it():
    tx, ty = _blobs(100, 0)  # 3 batches of 48 an epoch
    vx, vy = _blobs(50, 1)
    plain, extended = [], []
    train_linear_probe(tx, ty, vx, vy, "multilabel", 2, ProbeConfig(max_epochs=5, patience=100, min_steps=0), plain)
    train_linear_probe(tx, ty, vx, vy, "multilabel", 2, ProbeConfig(max_epochs=5, patience=100, min_steps=30), extended)
    assert [h["epoch"] for h in plain] == [1, 2, 3, 4, 5] and plain[-1]["steps"] == 15
    assert len(extended) == 10 and extended[-1]["steps"] == 30  # past max_epochs until 30 updates


def test_early_stop_on_score_or_loss_keeps_and_stops_on_that_validation_number():
    tx, ty = _noisy(40, 0)
    vx, vy = _noisy(300, 1)
    kept_epoch = {}
    for monitor in ("score", "loss"):
        history: list = []
        cfg = ProbeConfig(lr=0.05, batch_size=8, max_epochs=400, patience=5, min_steps=0, early_stop_on=monitor)
        layer = train_linear_probe(tx, ty, vx, vy, "multilabel", 2, cfg, history)
        values = [h["val_score"] if monitor == "score" else -h["val_loss"] for h in history]
        best = int(np.argmax(values))  # the first best: a tie is not an improvement
        assert len(history) == best + 1 + cfg.patience < cfg.max_epochs  # stopped `patience` epochs after it
        with torch.no_grad():
            kept = (score("multilabel", vy.numpy(), layer(vx).numpy()) if monitor == "score"
                    else -_val_loss(layer, vx, vy))
        assert abs(kept - values[best]) < 1e-5
        kept_epoch[monitor] = history[best]["epoch"]
    assert kept_epoch["loss"] != kept_epoch["score"]  # here the loss turns up before the AUROC does
    with pytest.raises(ValueError, match="early_stop_on"):
        ProbeConfig(early_stop_on="accuracy")


def test_standardize_makes_the_probe_blind_to_feature_scale_and_off_it_is_not():
    tx, ty = _blobs(200, 0)
    vx, vy = _blobs(100, 1)
    scale, shift = torch.linspace(0.1, 10.0, 8), torch.linspace(-50.0, 50.0, 8)

    def logits(standardize: bool, a=1.0, b=0.0):
        cfg = ProbeConfig(max_epochs=5, min_steps=0, standardize=standardize)
        layer = train_linear_probe(tx * a + b, ty, vx * a + b, vy, "multilabel", 2, cfg)
        with torch.no_grad():
            return layer(vx * a + b)

    torch.testing.assert_close(logits(True), logits(True, scale, shift), rtol=1e-3, atol=1e-3)
    assert (logits(False) - logits(False, scale, shift)).abs().max() > 1.0

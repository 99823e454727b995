"""Full fine-tuning (mgca_lite.evaluation.finetune): it learns a separable signal from random init,
every encoder weight trains (and the caller's encoder is left as it was), early stopping, and
`eval finetune --smoke`'s JSON."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from mgca_lite.cli import main
from mgca_lite.evaluation.finetune import FinetuneConfig, finetune, predict
from mgca_lite.evaluation.linear_probe import score
from mgca_lite.models import ImageEncoderConfig
from mgca_lite.models.image_encoder import build_image_encoder


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_image_encoder(ImageEncoderConfig(arch="resnet_tiny", image_size=32, width=8))


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise films (n, 1, 32, 32) whose left half is brighter exactly when the target (n, 1) is 1."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).float()[:, None]
    x = 0.3 * torch.randn(n, 1, 32, 32, generator=g)
    x[:, :, :, :16] += 0.8 * y[:, :, None, None]
    return x, y


def test_finetuning_a_random_encoder_learns_a_separable_signal():
    train, val, test = _separable(48, 0), _separable(32, 1), _separable(32, 2)
    history = []
    model = finetune(_encoder(), train, val, "multilabel", 1,
                     FinetuneConfig(batch_size=16, max_steps=30, eval_every=10, head_lr=1e-2, encoder_lr=1e-3),
                     history)
    assert not model.training
    assert [h["steps"] for h in history] == [10, 20, 30]
    assert score("multilabel", test[1].numpy(), predict(model, test[0]).numpy()) > 0.9


def test_every_encoder_weight_trains_and_the_callers_encoder_is_untouched():
    encoder = _encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    train, val = _separable(8, 0), _separable(8, 1)
    model = finetune(encoder, train, val, "multilabel", 1, FinetuneConfig(batch_size=4, max_steps=2, eval_every=1))
    for name, param in model.encoder.named_parameters():
        assert param.requires_grad, name
        assert not torch.equal(param, encoder.get_parameter(name)), f"{name} did not train"
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)   # a copy was trained


def test_early_stopping_without_a_better_check_keeps_the_first():
    # One class only in validation: the AUROC is NaN at every check, never "better", so training
    # stops after `patience` checks past the first, and the first check's weights are kept.
    train, (vx, vy) = _separable(8, 0), _separable(8, 1)
    history = []
    cfg = FinetuneConfig(batch_size=4, max_steps=100, eval_every=2, patience=3)
    one_class = (vx, torch.zeros_like(vy))
    model = finetune(_encoder(), train, one_class, "multilabel", 1, cfg, history)
    assert [h["steps"] for h in history] == [2, 4, 6, 8]
    assert all(np.isnan(h["val_score"]) for h in history)
    first = finetune(_encoder(), train, one_class, "multilabel", 1, dataclasses.replace(cfg, max_steps=2))
    for key, value in first.state_dict().items():   # the same seed: the same first two steps
        torch.testing.assert_close(model.state_dict()[key], value)


def test_multiclass_targets_train_with_cross_entropy():
    x, y = _separable(12, 0)
    model = finetune(_encoder(), (x, y[:, 0].long()), (x, y[:, 0].long()), "multiclass", 2,
                     FinetuneConfig(batch_size=6, max_steps=2, eval_every=2))
    assert predict(model, x).shape == (12, 2)


def test_eval_finetune_smoke_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "finetune.json"
    assert main(["eval", "finetune", "--checkpoint", "random", "--smoke", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert (data["task"], data["dataset"], data["metric"], data["checkpoint"]) == \
        ("finetune", "chexpert5", "macro AUROC", "random")
    assert (data["synth_seed"], data["image_size"]) == (1234, 64)
    assert data["n_train"] == {"1": 1, "10": 7, "100": 64}   # of the 64 smoke training studies
    for results in (data["results"], data["val_results"]):
        assert list(results) == ["1", "10", "100"]
        assert [len(results[f]["seeds"]) for f in results] == [3, 3, 1]   # 100 % has one label subset
        for cell in results.values():
            assert cell["mean"] == pytest.approx(np.mean(cell["seeds"]))
            assert all(0 <= s <= 1 for s in cell["seeds"])
    assert data["config"]["max_steps"] == 6 and data["config"]["encoder_lr"] < data["config"]["head_lr"]
    assert "finetune on chexpert5" in capsys.readouterr().out

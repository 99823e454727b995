"""Packing a finished run into the reference format (float16 weights, config, vocabulary, and the
validation loss those weights give)."""
from __future__ import annotations

import torch

from mgca_lite.evaluation.loading import load_prototypes
from mgca_lite.training.checkpoint import load_checkpoint, load_pretrained
from mgca_lite.training.reference import REFERENCE_FORMAT, export_reference, validation_loss
from mgca_lite.training.trainer import Trainer

from test_training import tiny_config


def test_export_is_small_loads_safely_and_reproduces_its_validation_loss(tmp_path):
    cfg = tiny_config("train.max_steps=6")
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    info = export_reference(tmp_path / "run" / "best.pt", tmp_path / "reference.pt", command="pretrain ...")
    packed = load_checkpoint(tmp_path / "reference.pt")  # weights_only=True inside
    assert packed["format"] == REFERENCE_FORMAT and packed["command"] == "pretrain ..."
    assert all(v.dtype == torch.float16 for v in packed["model"].values() if v.is_floating_point())
    # The recorded loss is what the float16 weights give, and close to the float32 run's best.
    assert abs(validation_loss(packed) - info["val_loss"]) < 1e-4
    assert abs(info["val_loss"] - info["best_val_fp32"]) < 0.05 * info["best_val_fp32"]
    # Every consumer of a run's best.pt reads the packed file the same way.
    model, _, _ = load_pretrained(tmp_path / "reference.pt")
    full, _, loaded_cfg = load_pretrained(tmp_path / "run" / "best.pt")
    for (name, a), b in zip(model.state_dict().items(), full.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3, msg=name)
    assert load_prototypes(tmp_path / "reference.pt", loaded_cfg).shape == (16, 32)
    assert (tmp_path / "reference.pt").stat().st_size < (tmp_path / "run" / "best.pt").stat().st_size / 3

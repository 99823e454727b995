"""Load-or-train: a finished run is read back, an interrupted one resumed; lessons fall back to the
course reference checkpoint."""
from __future__ import annotations

import pytest

from mgca_lite.training.load_or_train import course_checkpoint, pretrain_or_resume
from mgca_lite.training.trainer import Trainer

from test_training import tiny_config


def test_pretrain_or_resume_trains_resumes_then_only_loads(tmp_path):
    cfg = tiny_config("train.max_steps=4")
    Trainer(cfg, tmp_path, progress=False).fit(stop_after_steps=2)        # an interrupted run
    assert pretrain_or_resume(cfg, tmp_path, progress=False)["action"] == "resumed"
    again = pretrain_or_resume(cfg, tmp_path, progress=False, quiet=True)
    assert again["action"] == "loaded" and again["step"] == 4


def test_course_checkpoint_prefers_a_finished_run_then_the_reference(tmp_path):
    reference = tmp_path / "reference.pt"
    reference.write_bytes(b"stand-in")
    assert course_checkpoint(tmp_path / "no_run", reference) == reference
    cfg = tiny_config("train.max_steps=2")
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert course_checkpoint(tmp_path / "run", reference) == tmp_path / "run" / "best.pt"
    with pytest.raises(FileNotFoundError, match="missing"):
        course_checkpoint(tmp_path / "no_run", tmp_path / "absent.pt")

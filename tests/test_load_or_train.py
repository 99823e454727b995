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


def test_a_run_of_another_config_is_never_read_back_or_resumed_as_this_one(tmp_path):
    import json

    cfg = tiny_config("train.max_steps=2", "loss.cta_warmup_steps=0")
    Trainer(cfg, tmp_path, progress=False).fit()
    # what is learned differs: refused, naming the file and the field
    other = tiny_config("train.max_steps=2", "loss.cta_warmup_steps=5")
    with pytest.raises(ValueError, match=r"config\.json.*loss\.cta_warmup_steps: the run has 0, asked for 5"):
        pretrain_or_resume(other, tmp_path, progress=False)
    written = (tmp_path / "config.json").read_text()
    with pytest.raises(ValueError, match=r"last\.pt.*loss\.cta_warmup_steps"):
        Trainer(other, tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"model\.embed_dim: the run has \d+, asked for 24"):
        Trainer(tiny_config("train.max_steps=2", "loss.cta_warmup_steps=0", "model.embed_dim=24"), tmp_path,
                resume=True, progress=False)
    assert (tmp_path / "config.json").read_text() == written  # refused before the run's config is rewritten
    # --resume may change the budget
    Trainer(tiny_config("train.max_steps=3", "loss.cta_warmup_steps=0"), tmp_path, resume=True, progress=False)
    (tmp_path / "config.json").write_text(written)
    # only bookkeeping differs (how often it logs): read back
    assert pretrain_or_resume(tiny_config("train.max_steps=2", "loss.cta_warmup_steps=0", "train.log_every=7"),
                              tmp_path, progress=False, quiet=True)["action"] == "loaded"
    # a run written before a field existed counts it at its default (0 here)
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["loss"]["cta_warmup_steps"]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    assert pretrain_or_resume(cfg, tmp_path, progress=False, quiet=True)["action"] == "loaded"
    with pytest.raises(ValueError, match="cta_warmup_steps"):
        pretrain_or_resume(other, tmp_path, progress=False)

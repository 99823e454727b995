"""The pretraining engine: configs, schedule, exact resume, atomic checkpoints, torchrun/DDP on CPU."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mgca_lite.training.checkpoint import load_checkpoint, load_pretrained, model_fingerprint, run_is_finished, save_atomic
from mgca_lite.training.config import load_config
from mgca_lite.training.metrics import read_metrics
from mgca_lite.training.optim import warmup_cosine_factor
from mgca_lite.training.trainer import TERMS, Trainer

ROOT = Path(__file__).resolve().parents[1]
# A model small enough that a handful of steps takes seconds, on the real code path.
TINY = [
    "model.image.image_size=32", "model.image.width=8", "model.text.num_layers=1", "model.text.hidden_size=32",
    "model.text.num_heads=2", "model.text.intermediate_size=64", "model.head_hidden=64", "model.embed_dim=32",
    "loss.embed_dim=32", "loss.num_prototypes=16", "data.image_size=36", "data.crop_size=32",
    "data.train_size=96", "data.val_size=32", "train.batch_size=16", "train.log_every=1", "train.save_every=2",
    "train.tensorboard=false",
]


def tiny_config(*extra: str):
    return load_config("synth_tiny", TINY + list(extra))


def test_named_configs_load_and_overrides_apply():
    for name in ("synth_tiny", "synth_base", "mimic_resnet50", "mimic_vit_b16"):
        assert load_config(name).name == name
    cfg = load_config("synth_tiny", ["train.batch_size=7", "loss.use_cta=false", "optim.lr=1e-4"])
    assert (cfg.train.batch_size, cfg.loss.use_cta, cfg.optim.lr) == (7, False, 1e-4)
    with pytest.raises(ValueError, match="unknown field"):
        load_config("synth_tiny", ["train.bach_size=7"])
    with pytest.raises(FileNotFoundError, match="not one of"):
        load_config("no_such_config")


def test_schedule_warms_up_linearly_then_follows_cosine_to_the_floor():
    peak, floor, total, warm = 1e-3, 1e-8, 100, 40
    lrs = [peak * warmup_cosine_factor(s, total, warm, peak, floor) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(floor)
    assert lrs[20] == pytest.approx(floor + (peak - floor) / 2)
    assert lrs[40] == pytest.approx(peak)
    assert lrs[70] == pytest.approx(floor + (peak - floor) / 2)
    assert lrs[100] == pytest.approx(floor)
    assert all(a <= b for a, b in zip(lrs[:40], lrs[1:41])) and all(a >= b for a, b in zip(lrs[40:], lrs[41:]))


def test_max_steps_overrides_the_epoch_budget(tmp_path):
    # 6 batches per epoch and max_epochs 1: max_steps 9 must still run all 9 steps (2 epochs), as its
    # LR schedule spans 9; it once stopped after the first epoch, mid-schedule
    cfg = tiny_config("train.max_steps=9", "train.max_epochs=1")
    summary = Trainer(cfg, tmp_path, progress=False).fit()
    assert summary["step"] == 9 and summary["epoch"] == 1
    assert run_is_finished(tmp_path)

def test_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one(tmp_path):
    cfg = tiny_config("train.max_steps=8", "train.max_epochs=100")
    straight = Trainer(cfg, tmp_path / "straight", progress=False)
    straight.fit()
    interrupted = Trainer(cfg, tmp_path / "resumed", progress=False)
    assert interrupted.fit(stop_after_steps=5)["step"] == 5  # stops mid-epoch (6 batches per epoch)
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True, progress=False)
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (5, 0, 5)
    assert resumed.fit()["step"] == 8
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=f"{key} differs after resume")
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed") if r["split"] == "train"]
    assert steps == list(range(1, 9)), "metrics.csv must have each step once after a resume"


def test_run_directory_contents_and_refusal_to_overwrite(tmp_path):
    cfg = tiny_config("train.max_steps=3")
    Trainer(cfg, tmp_path, progress=False).fit()
    for name in ("last.pt", "best.pt", "config.json", "metrics.csv"):
        assert (tmp_path / name).is_file(), name
    ckpt = load_checkpoint(tmp_path / "last.pt")  # weights_only=True inside
    assert ckpt["step"] == 3 and isinstance(ckpt["vocab"], list)
    model, tokenizer, saved = load_pretrained(tmp_path / "best.pt")
    assert saved == cfg and len(tokenizer) == len(ckpt["vocab"])
    assert run_is_finished(tmp_path) and not run_is_finished(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(cfg, tmp_path, progress=False)


def test_switched_off_terms_stay_zero_and_prototypes_freeze_in_epoch_zero(tmp_path):
    cfg = tiny_config("train.max_steps=2", "loss.use_cta=false")
    trainer = Trainer(cfg, tmp_path, progress=False)
    before = trainer.module.criterion.prototypes.detach().clone()
    trainer.fit()
    rows = [r for r in read_metrics(tmp_path) if r["split"] == "train"]
    assert all(r["cta"] == 0 for r in rows) and all(r["ita"] > 0 and r["cpa"] > 0 for r in rows)
    torch.testing.assert_close(trainer.module.criterion.prototypes.detach(), torch.nn.functional.normalize(before, dim=1))


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_atomic({"step": 2}, path)
    assert load_checkpoint(path)["step"] == 1  # the old checkpoint is intact
    with pytest.raises(RuntimeError, match="not a readable"):
        (tmp_path / "bad.pt").write_bytes(b"garbage")
        load_checkpoint(tmp_path / "bad.pt")


def test_model_fingerprint_names_the_weights_not_the_file(tmp_path):
    model = {"model.a": torch.arange(6.0).reshape(2, 3), "model.b": torch.tensor([1, 2]), "model.c": torch.ones(2).bfloat16()}
    save_atomic({"model": model, "step": 1}, tmp_path / "one.pt")
    save_atomic({"model": dict(reversed(list(model.items()))), "step": 2}, tmp_path / "two.pt")  # other order, other step
    same = model_fingerprint(tmp_path / "one.pt")
    assert same == model_fingerprint(tmp_path / "two.pt") and len(same) == 16
    nudged = {**model, "model.a": model["model.a"] + torch.tensor([[0, 0, 1e-6], [0, 0, 0]])}
    reshaped = {**model, "model.a": model["model.a"].reshape(3, 2)}
    for i, other in enumerate((nudged, reshaped)):
        save_atomic({"model": other}, tmp_path / f"other{i}.pt")
        assert model_fingerprint(tmp_path / f"other{i}.pt") != same


def test_torchrun_two_cpu_processes_train_and_agree(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "mgca_lite", "pretrain", "--config", "synth_tiny", "--max-steps", "3", "--no-progress",
           "--output-dir", str(tmp_path), *TINY]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes, ranks agree: True" in done.stdout
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    cfg = tiny_config("train.batch_size=8", "train.grad_accum=3", "train.max_epochs=1", "train.max_steps=null")
    trainer = Trainer(cfg, tmp_path, progress=False)
    assert trainer.batches_per_epoch == 12 and trainer.steps_per_epoch == 4
    summary = trainer.fit()
    assert summary["step"] == 4 and summary["epoch"] == 1


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    cfg = tiny_config("train.max_epochs=10", "train.max_steps=null", "train.early_stop_patience=2")
    trainer = Trainer(cfg, tmp_path, progress=False)
    trainer.validate = lambda: {key: 1.0 for key in TERMS}  # validation never improves after epoch 1
    summary = trainer.fit()
    assert summary["stopped_early"] and summary["epoch"] == 3 and summary["best_val"] == 1.0


def test_training_from_a_manifest_builds_the_image_cache_once(tmp_path):
    from mgca_lite.data.datasets import cache_paths
    from mgca_lite.data.manifest import export_synth

    manifest = export_synth(tmp_path / "manifest", "pretrain", n_per_split={"train": 48, "val": 16}, image_size=48)
    cfg = tiny_config("data.source=manifest", f"data.manifest_dir={manifest}", "data.image_size=36",
                      "train.max_steps=2")
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert cache_paths(manifest, 36)[0].is_file(), "the uint8 image cache was not built"
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2
    with pytest.raises(ValueError, match="manifest_dir"):
        Trainer(tiny_config("data.source=manifest"), tmp_path / "run2", progress=False)


def test_cli_resume_reads_the_runs_own_config(tmp_path):
    from mgca_lite.cli import main

    out = str(tmp_path / "run")
    assert main(["pretrain", "--config", "synth_tiny", "--max-steps", "2", "--output-dir", out, "--no-progress", *TINY]) == 0
    assert main(["pretrain", "--resume", "--output-dir", out, "--max-steps", "3", "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 3


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from mgca_lite.cli import main

    assert main(["pretrain", "--config", "no_such_config"]) == 2
    assert main(["pretrain", "--config", "synth_tiny", "train.bach_size=3"]) == 2
    err = capsys.readouterr().err
    assert "error: config 'no_such_config' not found" in err and "unknown field(s) ['bach_size']" in err


def test_bad_config_values_fail_when_the_config_loads():
    # Before any film is rendered: the error names the section and the field.
    for override, field in (("train.batch_size=-3", "batch_size"), ("optim.lr=0", "lr"),
                            ("data.crop_size=512", "crop_size"), ("train.precision=fp8", "precision")):
        with pytest.raises(ValueError, match=rf"synth_tiny\.\w+: .*{field}"):
            load_config("synth_tiny", [override])

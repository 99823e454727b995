"""`python -m mgca_lite probe`: the JSON results, --synth-seed, the pixel pool, `random`, bad input."""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_training import TINY  # the tiny model whose 2 pretraining steps take seconds

from mgca_lite.cli import main
from mgca_lite.evaluation import compare
from mgca_lite.evaluation.compare import choose_by_validation
from mgca_lite.evaluation.probe import ProbeSuite

# Small probe splits and short probes: each probe run takes seconds.
SMALL = ["--seeds", "2", "--fractions", "0.1,1.0", "--no-progress", "train_size=60", "val_size=40",
         "test_size=40", "probe.min_steps=10", "probe.max_epochs=3"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("probe_cli") / "run"
    assert main(["pretrain", "--config", "synth_tiny", "--max-steps", "2", "--output-dir", str(run),
                 "--no-progress", *TINY]) == 0
    return run / "best.pt"


@pytest.fixture(scope="module")
def probed(checkpoint):
    """(JSON written by `probe CKPT --json`, its stdout) with the default synth seed."""
    out, stdout = checkpoint.parent / "probe.json", io.StringIO()
    with contextlib.redirect_stdout(stdout):  # capsys is per test; this fixture is shared by several
        assert main(["probe", str(checkpoint), "--json", str(out), *SMALL]) == 0
    return json.loads(out.read_text()), stdout.getvalue()


def test_probe_json_has_the_documented_shape(probed):
    data, stdout = probed
    assert data["task"] == "chexpert5" and data["metric"] == "macro AUROC"
    assert list(data["results"]) == ["mgca", "random", "pixels"]
    for by_fraction in data["results"].values():
        assert list(by_fraction) == ["10", "100"]
        assert [len(cell["seeds"]) for cell in by_fraction.values()] == [2, 1]  # 100 % has one label subset
        for cell in by_fraction.values():
            assert list(cell) == ["mean", "std", "seeds"]
            assert cell["mean"] == pytest.approx(np.mean(cell["seeds"]))
            assert cell["std"] == pytest.approx(np.std(cell["seeds"]))
    assert data["synth_seed"] == 0 and data["image_size"] == 32  # the checkpoint's data.seed and crop size
    assert data["n_train"] == {"10": 6, "100": 60}
    assert data["probe_config"]["min_steps"] == 10 and data["probe_config"]["max_epochs"] == 3
    assert "MGCA" in stdout and "random init (BN recal.)" in stdout and f"raw pixels {data['pixels_pool']}" in stdout


def test_pixel_pool_is_the_best_on_validation(probed):
    data, _ = probed
    assert set(data["pixels_pool_val"]) == {"8x8", "16x16"}
    assert data["pixels_pool"] == max(data["pixels_pool_val"], key=data["pixels_pool_val"].get)


def test_pool_choice_reads_validation_scores_only():
    # Validation says A, test says B: the choice must be A. Fractions weigh equally whatever their seeds.
    rows = [{"encoder": enc, "fraction": f, "seed": s, "val_score": val, "score": test}
            for enc, val, test in (("A", 0.7, 0.5), ("B", 0.6, 0.9))
            for f, seeds in ((0.1, 3), (1.0, 1)) for s in range(seeds)]
    best, values = choose_by_validation(rows, ["A", "B"])
    assert best == "A" and values == pytest.approx({"A": 0.7, "B": 0.6})


def test_synth_seed_renders_other_images(checkpoint, tmp_path, monkeypatch):
    built = []

    class Recording(ProbeSuite):
        def __init__(self, cfg, manifest=None):
            super().__init__(cfg, manifest)
            built.append(self)

    monkeypatch.setattr(compare, "ProbeSuite", Recording)
    out = tmp_path / "seed3.json"
    assert main(["probe", str(checkpoint), "--synth-seed", "3", "--json", str(out), *SMALL]) == 0
    assert json.loads(out.read_text())["synth_seed"] == 3
    suite, = built
    assert suite.cfg.synth_seed == 3
    own = ProbeSuite(replace(suite.cfg, synth_seed=0))  # the checkpoint's own seed, same splits
    for split in ("train", "val", "test"):
        assert not torch.equal(suite.datasets[split][0]["image"], own.datasets[split][0]["image"])


def test_random_checkpoint_probes_random_init_and_pixels_only(probed, tmp_path):
    out = tmp_path / "random.json"
    assert main(["probe", "random", "--config", "synth_tiny", "--json", str(out), *SMALL, *TINY]) == 0
    data = json.loads(out.read_text())
    assert list(data["results"]) == ["random", "pixels"] and data["checkpoint"] == "random"
    # The same architecture and seed as the checkpoint's random-init row: the same numbers.
    assert data["results"] == {k: probed[0]["results"][k] for k in ("random", "pixels")}


@pytest.mark.parametrize("kind", ["missing", "text", "torch_but_not_a_checkpoint", "model_override"])
def test_bad_input_is_one_error_line_naming_the_file(kind, checkpoint, tmp_path, capsys):
    path = tmp_path / "not_a_checkpoint.pt"
    extra = []
    if kind == "text":
        path.write_text("hello, not a checkpoint\n")
    elif kind == "torch_but_not_a_checkpoint":
        torch.save({"weights": torch.zeros(2)}, path)
    elif kind == "model_override":
        path, extra = checkpoint, ["model.image.width=4"]
    assert main(["probe", str(path), *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]


def test_eval_probe_smoke_shrinks_the_splits(tmp_path):
    from mgca_lite.cli import main

    out = tmp_path / "probe.json"
    assert main(["eval", "probe", "--checkpoint", "random", "--smoke", "--seeds", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"random", "pixels"} and result["n_train"]["100"] == 64

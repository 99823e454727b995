"""Every data_prep output goes unchanged into the evaluator that reads its dataset: the probes
(CheXpert, RSNA, COVIDx), segmentation (SIIM, RSNA boxes as masks) and detection (RSNA, Object-CXR),
each run end to end on the converted miniature of the publisher's layout (data_prep.fixtures).
The scores of a random encoder on a dozen films mean nothing; what is checked is that each
evaluator reads the manifest's splits and targets and writes its result."""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from data_prep.__main__ import run
from data_prep.fixtures import build_fixture
from mgca_lite.cli import main

CASES = [("probe", "chexpert5", "chexpert"), ("probe", "rsna", "rsna"), ("probe", "covidx", "covidx"),
         ("segment", "siim", "siim"), ("segment", "rsna", "rsna"),
         ("detect", "rsna", "rsna"), ("detect", "object_cxr", "object_cxr")]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("data_prep_eval")
    out = {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for name in sorted({c[2] for c in CASES}):
            out[name] = run(name, build_fixture(name, root / "raw" / name), root / "out" / name, image_size=64) and \
                root / "out" / name
    return out


@pytest.mark.parametrize("task,dataset,name", CASES)
def test_evaluator_reads_the_converted_manifest(converted, tmp_path, task, dataset, name):
    out = tmp_path / "result.json"
    argv = ["eval", task, "--checkpoint", "random", "--config", "synth_tiny", "--dataset", dataset,
            "--manifest", str(converted[name]), "--fractions", "100", "--seeds", "1", "--smoke", "--json", str(out)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    result = json.loads(out.read_text())
    # probe keeps `probe --json`'s shape, whose "task" is the dataset's task; the others name themselves
    assert result["task"] == (dataset if task == "probe" else task) and result["manifest"] == str(converted[name])
    assert result["n_train"]["100"] >= 1

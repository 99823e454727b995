"""The ablation command: every method x seed pretrained and evaluated, aggregated over seeds, resumable."""
from __future__ import annotations

import json
import shutil
from argparse import Namespace

import pytest

from mgca_lite.ablation import EVALUATIONS, METHODS, summarize, write_report
from mgca_lite.cli import main
from mgca_lite.training.checkpoint import model_fingerprint


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    argv = ["ablation", "--smoke", "--seeds", "2", "--tasks", "prototypes", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return out, argv


def _copy_of(smoke_run, tmp_path):
    """(a copy of the smoke ablation's folder, the smoke argv pointed at it): for tests that change files."""
    out, argv = smoke_run
    other = tmp_path / "other"
    shutil.copytree(out, other)
    return other, [a if a != str(out) else str(other) for a in argv]


def test_every_method_and_seed_lands_in_the_json_and_the_readme(smoke_run):
    out, _ = smoke_run
    report = json.loads((out / "synth_synth_tiny.json").read_text())
    block = report["prototypes"]["pretrain_test"]
    assert list(block) == list(METHODS) == ["random", "ita", "ita_cta", "ita_cpa", "mgca"]
    for method in METHODS:
        per_seed = [json.loads((out / "evals" / f"{method}_s{s}" / "prototypes_pretrain_test.json").read_text())
                    for s in range(2)]
        assert block[method]["nmi"]["seeds"] == [r["nmi"]["value"] for r in per_seed]
    assert (out / "runs" / "mgca_s1" / "best.pt").is_file() and not (out / "runs" / "random_s0" / "best.pt").exists()
    readme = (out / "README.md").read_text()
    assert "ITA + CTA + CPA (MGCA)" in readme and f"{block['mgca']['nmi']['mean']:.3f}" in readme


def test_the_report_covers_each_sections_finished_seeds(smoke_run, tmp_path):
    """A stopped ablation leaves a report with every seed that all methods finished, section by section."""
    out, _ = smoke_run
    partial = tmp_path / "partial"
    for method in METHODS:
        for seed in (0, 1):  # prototypes: seeds 0 and 1 of every method
            (partial / "evals" / f"{method}_s{seed}").mkdir(parents=True)
            shutil.copy(out / "evals" / f"{method}_s{seed}" / "prototypes_pretrain_test.json", partial / "evals" / f"{method}_s{seed}")
        zero_shot = {"accuracy": {"value": 0.3}, "macro_f1": {"value": 0.2}}  # zero-shot: seed 0 of every method,
        for seed in (0, 1) if method != "mgca" else (0,):                    # seed 1 of all but MGCA
            (partial / "evals" / f"{method}_s{seed}" / "zero_shot_chexpert5x200.json").write_text(json.dumps(zero_shot))
    args = Namespace(config="synth_tiny", seeds=3, tasks=None, smoke=True, out=str(partial))
    report = json.loads(write_report(partial, args, 0.0).read_text())
    assert report["meta"]["seeds_per_section"] == {"zero_shot": 1, "prototypes": 2} and report["meta"]["seeds"] == 1
    assert len(report["prototypes"]["pretrain_test"]["mgca"]["nmi"]["seeds"]) == 2
    assert report["zero_shot"]["chexpert5x200"]["ita"]["accuracy"]["seeds"] == [0.3]
    assert "linear_probe" not in report  # no seed finished: left out
    readme = (partial / "README.md").read_text()
    assert "Over 1 of 3 pretraining seeds" in readme and "Over 2 of 3 pretraining seeds" in readme
    assert write_report(tmp_path / "empty", args, 0.0) is None


def test_the_seeds_are_different_runs(smoke_run):
    out, _ = smoke_run
    a, b = (json.loads((out / "runs" / f"ita_s{s}" / "config.json").read_text()) for s in (0, 1))
    assert a["train"]["seed"] == 0 and b["train"]["seed"] == 1
    assert a["loss"]["use_cta"] is False and a["loss"]["use_cpa"] is False


def test_a_second_invocation_redoes_only_what_is_missing(smoke_run):
    out, argv = smoke_run
    kept = out / "evals" / "ita_s0" / "prototypes_pretrain_test.json"
    lost = out / "evals" / "mgca_s1" / "prototypes_pretrain_test.json"
    kept.write_text(kept.read_text().replace('"checkpoint"', '"kept": true, "checkpoint"'))
    lost.unlink()
    shutil.rmtree(out / "runs" / "ita_s0")  # all of its evaluations are kept: it must not be pretrained again
    assert main(argv) == 0
    assert json.loads(kept.read_text())["kept"] is True and lost.is_file()
    assert not (out / "runs" / "ita_s0").exists()


def test_results_of_other_or_unknown_weights_are_redone_from_the_runs_checkpoint(smoke_run, tmp_path):
    """Pretraining a config again need not give the same weights: one run's results come from one model."""
    out, _ = smoke_run
    other, argv = _copy_of(smoke_run, tmp_path)

    def keep(run: str, name: str, fingerprint: str | None):  # a kept result, marked so that a redo shows
        path = other / "evals" / run / name
        result = {**json.loads((out / "evals" / run / "prototypes_pretrain_test.json").read_text()), "kept": True}
        result.pop("checkpoint_fingerprint", None)
        if fingerprint is not None:
            result["checkpoint_fingerprint"] = fingerprint
        path.write_text(json.dumps(result))
        return path

    unknown = keep("mgca_s0", "prototypes_pretrain_test.json", None)        # made before fingerprints were kept
    stale = keep("ita_s1", "zero_shot_chexpert5x200.json", "0" * 16)        # made from other weights ...
    (other / "evals" / "ita_s1" / "prototypes_pretrain_test.json").unlink()  # ... and its run lacks a result
    own = keep("ita_cta_s0", "prototypes_pretrain_test.json", model_fingerprint(out / "runs" / "ita_cta_s0" / "best.pt"))
    random = keep("random_s0", "prototypes_pretrain_test.json", None)       # random init: the seed names the weights
    assert main(argv) == 0
    for path, run in ((unknown, "mgca_s0"), (stale, "ita_s1")):
        redone = json.loads(path.read_text())
        assert "kept" not in redone and redone["checkpoint_fingerprint"] == model_fingerprint(other / "runs" / run / "best.pt")
    assert json.loads(stale.read_text())["task"] == "zeroshot"  # redone although --tasks asks for prototypes only
    assert json.loads(own.read_text())["kept"] is True
    assert json.loads(random.read_text())["kept"] is True and "checkpoint_fingerprint" not in json.loads(random.read_text())


def test_an_invocation_with_other_tasks_adds_to_the_report(smoke_run, tmp_path):
    """--tasks B after --tasks A: the report keeps A's sections (their results are on disk) and adds B's."""
    out, _ = smoke_run
    other, argv = _copy_of(smoke_run, tmp_path)
    argv[argv.index("--tasks") + 1] = "zeroshot"
    assert main(argv) == 0
    report = json.loads((other / "synth_synth_tiny.json").read_text())
    assert "prototypes" in report and "zero_shot" in report
    assert report["prototypes"] == json.loads((out / "synth_synth_tiny.json").read_text())["prototypes"]
    assert "segmentation" not in report  # never run: not reported


def test_summarize_per_fraction_and_named_metrics():
    rows = [{"results": {"1": {"mean": 0.5}, "100": {"mean": 0.7}}}, {"results": {"1": {"mean": 0.7}, "100": {"mean": 0.7}}}]
    s = summarize(rows, None)
    assert s["1"] == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "seeds": [0.5, 0.7]} and s["100"]["std"] == 0
    s = summarize([{"nmi": {"value": 0.2}}, {"nmi": {"value": 0.4}}], {"nmi": ("nmi", "value")})
    assert s["nmi"]["mean"] == pytest.approx(0.3)


def test_kept_results_made_with_another_config_are_refused_before_any_run(smoke_run, tmp_path, capsys):
    """A kept evaluation is only reused when the config.json beside it matches the run asked for."""
    out, argv = smoke_run
    stored = json.loads((out / "evals" / "mgca_s0" / "config.json").read_text())
    assert stored["loss"]["use_cta"] is True and stored["train"]["seed"] == 0
    changed = tmp_path / "changed"
    shutil.copytree(out / "evals", changed / "evals")
    stored["model"]["text"]["report_pooling"] = "cls" if stored["model"]["text"]["report_pooling"] == "mean" else "mean"
    (changed / "evals" / "mgca_s0" / "config.json").write_text(json.dumps(stored))
    (changed / "evals" / "mgca_s1" / "prototypes_pretrain_test.json").unlink()  # work that a reuse would start
    argv = [*argv[:-3], "--out", str(changed), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "mgca_s0/config.json" in err and "model.text.report_pooling" in err
    assert not (changed / "runs").exists()  # refused before any pretraining
    shutil.copy(out / "evals" / "mgca_s0" / "config.json", changed / "evals" / "mgca_s0" / "config.json")
    (changed / "evals" / "ita_s1" / "config.json").unlink()
    assert main(argv) == 2
    assert "ita_s1: holds evaluations but no config.json" in capsys.readouterr().err


def test_methods_runs_only_those_and_the_report_still_covers_every_method(smoke_run, tmp_path):
    """--methods splits the work between invocations; the report is made from every kept result."""
    out, _ = smoke_run
    other, argv = _copy_of(smoke_run, tmp_path)
    for run in ("ita_s1", "mgca_s1"):
        (other / "evals" / run / "prototypes_pretrain_test.json").unlink()
    assert main([*argv, "--methods", "mgca"]) == 0
    assert (other / "evals" / "mgca_s1" / "prototypes_pretrain_test.json").is_file()
    assert not (other / "evals" / "ita_s1" / "prototypes_pretrain_test.json").exists()  # not asked for
    report = json.loads((other / "synth_synth_tiny.json").read_text())
    assert report["meta"]["seeds_per_section"]["prototypes"] == 1  # ita's seed 1 is missing
    assert list(report["prototypes"]["pretrain_test"]) == list(METHODS)
    assert "--methods" not in report["meta"]["command"]
    assert main([*argv, "--methods", "ita,random"]) == 0
    assert json.loads((other / "synth_synth_tiny.json").read_text())["meta"]["seeds_per_section"]["prototypes"] == 2


@pytest.mark.parametrize("flag, value, said", [("--methods", "mgca,clip", "unknown clip"),
                                               ("--methods", ",", "names nothing"),
                                               ("--tasks", "probe,segmentation", "unknown segmentation")])
def test_an_unknown_method_or_task_is_refused_before_any_run(tmp_path, capsys, flag, value, said):
    argv = ["ablation", "--smoke", "--seeds", "1", flag, value, "--out", str(tmp_path / "x"), "--no-progress"]
    assert main(argv) == 2
    assert f"{flag} {value!r}: {said}" in capsys.readouterr().err and not (tmp_path / "x").exists()

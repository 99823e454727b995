"""The course notebooks: clean when committed, parameterised, and runnable by papermill in smoke mode.

Strict output comparison is nbval's job (`make test` passes `--nbval` over notebooks/, then again
on a second math-kernel path); this file proves the papermill path (the `parameters` cell accepts
injected values) and the commit hygiene, including the two things that keep strict comparison
honest: few cells opt out of it, and the sanitize file never masks plain numbers.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
from clean_notebooks import clean_notebook, dumps  # noqa: E402


def test_course_has_notebooks():
    assert len(NOTEBOOKS) >= 3, "the course's numbered notebooks are missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    text = path.read_text(encoding="utf-8")
    assert dumps(clean_notebook(json.loads(text))) == text, (
        f"{path.name} is not clean: run `make clean-notebooks` (strips execution counts and metadata)"
    )


def test_ignored_outputs_stay_a_minority():
    # `nbval-ignore-output` is for outputs that depend on the mode, timing or training, never for
    # rounding noise (print a bound or fewer digits instead: docs/notebooks.md).
    cells = [c for p in NOTEBOOKS for c in json.loads(p.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    ignored = [c for c in cells if "nbval-ignore-output" in c.get("metadata", {}).get("tags", [])]
    assert len(ignored) * 8 <= len(cells), (
        f"{len(ignored)} of {len(cells)} code cells skip output comparison: keep it at most 1 in 8"
    )


def test_sanitize_file_masks_no_plain_numbers():
    # The sanitize patterns mask what differs legitimately (paths, timings, rates, progress bars);
    # one that also matched plain numbers would hide exactly the machine-dependent outputs that the
    # second kernel-path pass of `make test` is there to catch.
    nbval_plugin = pytest.importorskip("nbval.plugin")  # parse the file the way nbval does
    patterns = nbval_plugin.get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text("utf-8"))
    assert patterns, "tests/nbval_sanitize.cfg: no regex/replace pairs found"
    stable = "CPA inline 1.741 == library 1.741; top-1 0.062 (chance 0.062); 41 of 64 used; error < 1e-6"
    for regex, replace in patterns:
        assert re.sub(regex, replace, stable) == stable, f"sanitize pattern {regex!r} masks plain numbers"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_smoke_parameters_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    assert "MGCA_SMOKE" in "".join(tagged[0]["source"]), f"{path.name}: parameters must read MGCA_SMOKE"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_papermill_in_smoke_mode(path, tmp_path):
    papermill = pytest.importorskip("papermill")
    out = ROOT / "build" / "papermill" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(path), str(out), parameters={"SMOKE": True}, kernel_name="python3",
        cwd=str(path.parent), progress_bar=False,
    )
    executed = json.loads(out.read_text(encoding="utf-8"))
    assert any(c.get("metadata", {}).get("tags") == ["injected-parameters"] for c in executed["cells"])


EXERCISES = sorted((ROOT / "notebooks" / "exercises").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_notebook_runs_top_to_bottom_unsolved(path):
    """A learner's notebook with every exercise still a stub runs to the end: each check reports
    the stub instead of raising, and the cells after it use the library's version."""
    papermill = pytest.importorskip("papermill")
    out = ROOT / "build" / "papermill" / "exercises" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(path), str(out), parameters={"SMOKE": True}, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False)
    text = out.read_text(encoding="utf-8")
    assert "NotImplementedError" in json.dumps([c["source"] for c in json.loads(text)["cells"]])  # still stubs
    assert "NOT DONE" in text  # and the checks said so

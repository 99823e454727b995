"""The course notebooks: clean when committed, parameterised, and runnable by papermill in smoke mode.

Strict output comparison is nbval's job (`make test` passes `--nbval` over notebooks/); this file
proves the papermill path (the `parameters` cell accepts injected values) and the commit hygiene.
"""
from __future__ import annotations

import json
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

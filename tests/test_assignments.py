"""mgca_lite.assignments: the committed exercise notebooks are up to date with the masters, and the
grader scores masters full, unsolved notebooks zero (with the hint), and hostile submissions
(an endless loop, a monkey-patched mgca_lite.checks, deleted check cells, network use) correctly,
without crashing."""
from __future__ import annotations

import json
import socket

import pytest

from mgca_lite.assignments.build import build, strip_region
from mgca_lite.assignments.course import EXERCISES, MASTERS, exercises_of, nbgrader, read_notebook, source
from mgca_lite.assignments.grade import grade

ITA_MASTER = MASTERS / "03_instance_alignment_ITA.ipynb"   # one exercise: the fastest to grade


def test_committed_exercises_are_up_to_date(tmp_path):
    built = build(tmp_path)
    assert [p.name for p in built] == sorted(p.name for p in EXERCISES.glob("[0-9][0-9]_*.ipynb"))
    for path in built:
        committed = EXERCISES / path.name
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"notebooks/exercises/{path.name} is out of date: run `python -m mgca_lite.assignments build`")


def test_student_version_hides_solutions_hidden_tests_and_their_outputs():
    for path in sorted(EXERCISES.glob("[0-9][0-9]_*.ipynb")):
        nb = read_notebook(path)
        text = json.dumps(nb)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, path.name
        for cell in nb["cells"]:
            meta = nbgrader(cell)
            if meta.get("solution") and cell["cell_type"] == "code":
                assert "raise NotImplementedError()" in source(cell) and not cell["outputs"], path.name
            if meta.get("grade") and cell["cell_type"] == "code":
                assert not cell["outputs"] and ".function" in source(cell), path.name  # falls back to the library


def test_strip_region_keeps_indent_and_refuses_an_open_region():
    text = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
    assert strip_region(text, "### BEGIN SOLUTION", "### END SOLUTION", ("# YOUR CODE HERE", "raise NotImplementedError()")) \
        == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    with pytest.raises(ValueError, match="without"):
        strip_region("### BEGIN SOLUTION\nx = 1", "### BEGIN SOLUTION", "### END SOLUTION")


def test_master_scores_full_marks():
    report = grade(ITA_MASTER)
    assert report["score"] == report["max_score"] == 2
    assert report["exercises"][0]["passed"] and report["manual"][0]["grade_id"] == "investigate_03"


@pytest.mark.parametrize("name", sorted(p.name for p in EXERCISES.glob("[0-9][0-9]_*.ipynb")
                                        if p.name != ITA_MASTER.name))
def test_every_other_master_scores_full_marks(name):
    report = grade(MASTERS / name)
    assert report["exercises"] and all(e["passed"] for e in report["exercises"]), report["exercises"]
    assert report["score"] == report["max_score"]


def test_unsolved_exercise_scores_zero_with_its_hint(tmp_path):
    report = grade(EXERCISES / ITA_MASTER.name)
    (ita,) = report["exercises"]
    assert report["score"] == 0 and not ita["passed"] and "NotImplementedError" in ita["hint"]


def _write(nb, path):
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_hostile_submission_is_graded_correctly(tmp_path):
    """Notebook 04's three exercises: word_attention unsolved but monkey-patching mgca_lite.checks,
    cta looping forever, pointing_game solved (trying the network first) with every check cell deleted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    nb = read_notebook(MASTERS / "04_token_alignment_CTA.ipynb")
    cells = []
    for cell in nb["cells"]:
        meta = nbgrader(cell)
        if meta.get("grade"):
            continue                                           # check cells deleted
        if meta.get("grade_id") == "word_attention":
            cell["source"] = ("import mgca_lite.checks as checks, mgca_lite.checks.core as core\n"
                              "core.difference = lambda *a: 0.0\n"
                              "core.judge = lambda *a, **k: core.CheckResult('word_attention', True, 0.0, '', None)\n"
                              "checks.grade_word_attention = lambda f: None\n"
                              "def my_word_attention(word_emb, patch_emb, word_mask, tau=0.1):\n"
                              "    raise NotImplementedError()\n")
        if meta.get("grade_id") == "cta":
            cell["source"] = "def my_cta(*args):\n    while True:\n        pass\n"
        if meta.get("grade_id") == "pointing_game":
            cell["source"] = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                              "    NETWORK = True\nexcept OSError:\n    NETWORK = False\n" + source(cell) +
                              "\nif NETWORK:\n    my_pointing_game = None\n")
        cells.append(cell)
    nb["cells"] = cells
    try:
        report = grade(_write(nb, tmp_path / "04_hostile.ipynb"), cell_timeout=3, notebook_timeout=120)
    finally:
        server.close()
    by_name = {s["name"]: s for s in report["exercises"]}
    assert [n for n, _ in exercises_of(read_notebook(MASTERS / "04_token_alignment_CTA.ipynb"))] == list(by_name)
    assert by_name["word_attention"]["score"] == 0 and "NotImplementedError" in by_name["word_attention"]["hint"]
    assert by_name["cta"]["score"] == 0 and "CellTimeout" in by_name["cta"]["hint"]
    assert by_name["pointing_game"]["passed"]                   # graded although its check cell is gone
    assert report["score"] == by_name["pointing_game"]["points"]


def test_a_submission_past_the_notebook_limit_is_stopped_and_graded(tmp_path):
    nb = read_notebook(ITA_MASTER)
    for cell in nb["cells"]:
        if nbgrader(cell).get("grade_id") == "ita":
            cell["source"] = "import time\ntime.sleep(600)\n" + source(cell)
    report = grade(_write(nb, tmp_path / "03_slow.ipynb"), cell_timeout=600, notebook_timeout=8)
    assert report["score"] == 0 and "time limit" in report["log"]


def test_not_a_notebook_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "03_bad.ipynb"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="03_bad.ipynb"):
        grade(bad)

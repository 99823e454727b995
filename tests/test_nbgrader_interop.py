"""nbgrader interop: a classroom that runs nbgrader takes a master notebook as its source/ unchanged, and
nbgrader's own pipeline (generate_assignment, then autograde) scores a solved and an unsolved copy
exactly as our grader does. Notebook 02 (one exercise, no training run, nothing written outside the
assignment's folder) is the fastest master with an exercise under nbgrader, which executes it whole.

nbgrader runs from build/nbgrader-venv, built on first use (tests/nbgrader_venv.py: why it cannot live
in .venv). The notebooks it executes run on that venv's python: its kernelspec "python3" (argv
"python", which jupyter_client replaces by the interpreter running nbgrader) comes first on JUPYTER_PATH.

How the scores map onto each other. nbgrader scores each autograded test cell -- our check cell, grade_id
`check_<name>` -- with all its points when the cell runs without an error, else 0 (no partial credit
within a cell). The check cell raises exactly when our grader's rule fails (`grade_<name>` in its hidden
tests raises unless the visible and the hidden cases pass), so nbgrader's score of `check_<name>` is our
score of exercise `<name>`. The Investigate answer (a markdown answer cell with points) is graded by hand
in both: nbgrader marks a written answer "needs manual grade" and scores an unchanged "YOUR ANSWER HERE"
0 by itself; our grader lists it under "manual" without a score.
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

from mgca_lite.assignments.course import EXERCISES, MASTERS, nbgrader, read_notebook, source
from mgca_lite.assignments.grade import grade
from nbgrader_venv import nbgrader_python, run

MASTER = MASTERS / "02_encoders.ipynb"
ASSIGNMENT = MASTER.stem
CONFIG = '''c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db!r}
c.Execute.timeout = 600  # seconds per cell; nbgrader's 30 is short on a busy 2-core machine
'''
# Per grade cell of one student's notebook: [score, max_score, needs_manual_grade, cell_type].
READ_GRADEBOOK = '''import json, sys
from nbgrader.api import Gradebook
db, assignment, notebook, *students = sys.argv[1:]
with Gradebook(db) as gb:
    print(json.dumps({s: {g.name: [g.score, g.max_score, g.needs_manual_grade, g.cell_type]
                          for g in gb.find_submission_notebook(notebook, assignment, s).grades}
                      for s in students}))
'''


@pytest.fixture(scope="session")
def nbgrader_py():
    return nbgrader_python()


def nbgrader_env(tmp_path, python):
    """As in an activated nbgrader venv (its bin first on PATH: nbgrader runs its database migrations
    with the `alembic` command), smoke mode, one thread; jupyter's config and runtime in tmp_path (a
    teacher's own ~/.jupyter/nbgrader_config.py changes nothing), kernelspecs from the venv first."""
    venv = python.parents[1]
    return dict(os.environ, PATH=os.pathsep.join([str(python.parent), os.environ.get("PATH", "")]),
                MGCA_SMOKE="1", OMP_NUM_THREADS="1", JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter_config"),
                JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_PATH=str(venv / "share" / "jupyter"))


def nbgrader_cells(nb: dict) -> list[tuple[str, str, str]]:
    """(grade_id, cell type, source) of every nbgrader cell, in order."""
    return [(nbgrader(c)["grade_id"], c["cell_type"], source(c).strip()) for c in nb["cells"] if nbgrader(c)]


def test_nbgrader_autograde_scores_as_our_grader(tmp_path, nbgrader_py):
    course = tmp_path / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(MASTER, course / "source" / ASSIGNMENT)
    db = f"sqlite:///{(course / 'gradebook.db').as_posix()}"
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course), db=db), encoding="utf-8")
    env = nbgrader_env(tmp_path, nbgrader_py)

    def nbgrader_app(*args):
        done = run([nbgrader_py, "-m", "nbgrader", *args], cwd=course, env=env, timeout=1800)
        assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stderr[-3000:]}"

    nbgrader_app("generate_assignment", ASSIGNMENT)
    released = course / "release" / ASSIGNMENT / MASTER.name
    # nbgrader's student version and ours (`python -m mgca_lite.assignments build`) agree cell for cell.
    assert nbgrader_cells(read_notebook(released)) == nbgrader_cells(read_notebook(EXERCISES / MASTER.name))

    submissions = {"solved": MASTER, "unsolved": released}
    for student, notebook in submissions.items():
        (course / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        shutil.copy(notebook, course / "submitted" / student / ASSIGNMENT / MASTER.name)
    nbgrader_app("autograde", ASSIGNMENT)
    read = run([nbgrader_py, "-c", READ_GRADEBOOK, db, ASSIGNMENT, MASTER.stem, *submissions], env=env)
    assert read.returncode == 0, read.stderr[-3000:]
    theirs = json.loads(read.stdout)

    for student in submissions:
        ours = grade(course / "submitted" / student / ASSIGNMENT / MASTER.name)
        auto = {gid: cell for gid, cell in theirs[student].items() if cell[3] == "code"}
        assert sorted(auto) == sorted(f"check_{e['name']}" for e in ours["exercises"])
        for e in ours["exercises"]:
            score, max_score, manual, _ = auto[f"check_{e['name']}"]
            assert (score, max_score, manual) == (e["score"], e["points"], False), (student, e)
            assert score == (e["points"] if student == "solved" else 0), (student, e)
        hand = {gid: cell for gid, cell in theirs[student].items() if cell[3] == "markdown"}
        assert {gid: cell[1] for gid, cell in hand.items()} == {m["grade_id"]: m["points"] for m in ours["manual"]}
        for gid, (score, _, manual, _) in hand.items():
            # a written answer waits for the teacher; the untouched stub scores 0 by itself
            assert manual == (student == "solved") and (manual or score == 0), (student, gid)

"""Where the assignments live and how their cells are marked (nbgrader's conventions).

A master notebook's exercise is three cells, each with `metadata.nbgrader`:
- the answer cell (`solution: true, grade: false`, grade_id = the exercise name, e.g. "ita"): code
  between `### BEGIN SOLUTION` and `### END SOLUTION` is what the student writes;
- the check cell (`grade: true, points`, grade_id "check_<name>"): the visible check, plus the
  hidden tests between `### BEGIN HIDDEN TESTS` and `### END HIDDEN TESTS` (removed in the student
  version, put back by nbgrader's autograde);
- per notebook, one open "investigate" answer in markdown (`solution: true, grade: true`,
  grade_id "investigate_NN"), graded by hand.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MASTERS = ROOT / "notebooks"
EXERCISES = MASTERS / "exercises"

# exercise name -> the function the student writes (the name the check cell passes)
FUNCTIONS = {
    "merge_words": "merge_words", "ita": "my_ita", "word_attention": "my_word_attention", "cta": "my_cta",
    "pointing_game": "my_pointing_game", "sinkhorn": "sinkhorn_steps", "cpa": "my_cpa",
    "linear_probe": "my_probe",
}
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's default stub
TEXT_STUB = "YOUR ANSWER HERE"


def read_notebook(path: Path) -> dict:
    """The notebook's JSON; ValueError naming the file when it is not a notebook."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable notebook ({error})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path}: not a notebook (no 'cells' list)")
    return nb


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def nbgrader(cell: dict) -> dict:
    meta = cell.get("metadata", {})
    return meta.get("nbgrader", {}) if isinstance(meta, dict) and isinstance(meta.get("nbgrader"), dict) else {}


def masters_with_exercises() -> list[Path]:
    """The master notebooks that hold at least one exercise, in course order."""
    return [p for p in sorted(MASTERS.glob("[0-9][0-9]_*.ipynb"))
            if any(nbgrader(c) for c in read_notebook(p)["cells"])]


def exercises_of(nb: dict) -> list[tuple[str, int]]:
    """[(exercise name, points)] from a (trusted) master's check cells, in notebook order."""
    found = []
    for cell in nb["cells"]:
        meta = nbgrader(cell)
        gid = str(meta.get("grade_id", ""))
        if meta.get("grade") and not meta.get("solution") and gid.startswith("check_"):
            found.append((gid[len("check_"):], int(meta.get("points", 0))))
    return found


def manual_answers_of(nb: dict) -> list[tuple[str, int]]:
    """[(grade_id, points)] of the hand-graded (markdown) answers."""
    return [(str(nbgrader(c)["grade_id"]), int(nbgrader(c).get("points", 0))) for c in nb["cells"]
            if nbgrader(c).get("grade") and nbgrader(c).get("solution")]


def master_for(submission: Path) -> Path:
    """The master notebook a submission belongs to, by its two-digit prefix (05_... -> notebooks/05_*)."""
    match = re.match(r"(\d\d)_", Path(submission).name)
    masters = [p for p in masters_with_exercises() if match and p.name.startswith(match.group(1) + "_")]
    if not masters:
        names = ", ".join(p.name for p in masters_with_exercises())
        raise ValueError(f"{submission}: cannot tell which assignment this is; name it after one of {names}"
                         " (or pass --notebook NN)")
    return masters[0]

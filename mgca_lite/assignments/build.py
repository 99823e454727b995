"""Student versions of the master notebooks: solutions replaced by nbgrader's stub, hidden tests
removed, the outputs that depend on an exercise cleared."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .course import (BEGIN_HIDDEN, BEGIN_SOLUTION, CODE_STUB, END_HIDDEN, END_SOLUTION, EXERCISES,
                     FUNCTIONS, TEXT_STUB, masters_with_exercises, nbgrader, read_notebook, source)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from clean_notebooks import clean_notebook, dumps  # noqa: E402  (the course's one serialisation)

HEADER = ("> **Exercise version** of `notebooks/{name}`, written by `python -m mgca_lite.assignments build`"
          " (do not edit it by hand: edit the master and rebuild). Fill in the cells that raise"
          " `NotImplementedError`, run the check cell after each (PASS, or FAIL with a hint); until an"
          " exercise passes, the cells after it use the library's version. The *Investigate* question at"
          " the end is answered in words. Grade your copy with `python -m mgca_lite.assignments grade YOUR_COPY.ipynb`.")

# The student notebooks live one folder below the masters, whose paths (../runs, ../results) are
# relative to notebooks/: start from there.
CHDIR = """import os
if os.path.basename(os.getcwd()) == "exercises":  # notebooks/exercises -> notebooks, as the masters expect
    os.chdir("..")"""


def strip_region(text: str, begin: str, end: str, stub: tuple[str, ...] = ()) -> str:
    """Remove every begin..end region (marker lines included), leaving `stub` at the begin line's indent."""
    out, inside = [], False
    for line in text.split("\n"):
        if line.strip() == begin:
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
        elif line.strip() == end and inside:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{begin!r} without {end!r}")
    return "\n".join(out)


def student_version(nb: dict, name: str) -> dict:
    """The exercise notebook of a master (dict in, dict out; the master is not changed)."""
    nb = clean_notebook(nb)
    cells, unsolved = [], set()
    for cell in nb["cells"]:
        meta, text = nbgrader(cell), source(cell)
        if meta.get("solution") and cell["cell_type"] == "markdown":
            text = TEXT_STUB
        elif meta.get("solution"):
            text = strip_region(text, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
            unsolved.add(FUNCTIONS.get(str(meta.get("grade_id")), ""))
        text = strip_region(text, BEGIN_HIDDEN, END_HIDDEN)
        if cell["cell_type"] == "code" and (meta or any(re.search(rf"\b{re.escape(f)}\b", text)
                                                        for f in unsolved if f)):
            cell["outputs"] = []                    # depends on an exercise: its output would give it away
        cell["source"] = text.splitlines(keepends=True)
        cells.append(cell)
    cells[1:1] = [{"cell_type": "markdown", "metadata": {},
                   "source": HEADER.format(name=name).splitlines(keepends=True)},
                  {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                   "source": CHDIR.splitlines(keepends=True)}]
    nb["cells"] = cells
    return clean_notebook(nb)


def build(out_dir: Path = EXERCISES) -> list[Path]:
    """Write the student version of every master with exercises into out_dir; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for master in masters_with_exercises():
        path = out_dir / master.name
        path.write_text(dumps(student_version(read_notebook(master), master.name)), encoding="utf-8")
        written.append(path)
    return written

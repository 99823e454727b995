"""Classroom assignments cut from the course notebooks (TEACHING.md).

The master notebooks (`notebooks/NN_*.ipynb`) are worked solutions whose exercise cells carry
nbgrader's markers and cell metadata; from them

    python -m mgca_lite.assignments build                     # -> notebooks/exercises/NN_*.ipynb
    python -m mgca_lite.assignments grade SUBMISSION.ipynb [--json OUT]

writes the student versions and grades a submission in a sandboxed subprocess (`grade.py`).
"""

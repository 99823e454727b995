"""Grade a submission: run it in a sandboxed child process, judge its outputs here.

Never trusts the submission:
- the child (`sandbox.py`) is a separate process in a temporary directory (its cwd, holding its own
  copy of the notebook), with a time limit per answer cell and per exercise (`cell_timeout`) and one
  for the whole run (`notebook_timeout`, after which it is killed), the network refused and proxies
  unset; nothing in the course folder is written;
- it executes only the answer cells (so deleted or edited check cells change nothing) and hands back
  tensors only; the checks and hidden tests run here, from this process's clean import of
  `mgca_lite.checks`, so a submission that monkey-patches the checks patches only its own copy;
- the exercises and their points come from the master notebook, not from the submission.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..checks import EXERCISES
from ..checks.core import Attempt, judge
from .course import ROOT, exercises_of, manual_answers_of, master_for, read_notebook

SITECUSTOMIZE = '''"""Installed by mgca_lite.assignments.grade: no network while a submission runs."""
import socket

def _refuse(*args, **kwargs):
    raise OSError("network access is disabled while grading")

socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = _refuse
'''
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy")


@dataclass
class ExerciseScore:
    name: str
    points: int
    score: int
    passed: bool
    max_diff: float | None  # None: no comparable output (error, not done)
    hint: str
    failed_case: str


def sandbox_env(workdir: Path) -> dict:
    """The child's environment: proxies removed, the network guard first on the path, smoke mode,
    one thread (graders run many submissions side by side)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env.update({"no_proxy": "*", "NO_PROXY": "*", "MGCA_SMOKE": "1", "OMP_NUM_THREADS": "1",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]), "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def run_sandbox(submission: Path, names: list[str], workdir: Path, cell_timeout: float,
                notebook_timeout: float) -> tuple[Path, str]:
    """Run the child on a copy of the submission in workdir; returns (its output dir, its log)."""
    (workdir / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    copy = workdir / "submission.ipynb"
    copy.write_bytes(Path(submission).read_bytes())
    out = workdir / "out"
    command = [sys.executable, "-m", "mgca_lite.assignments.sandbox", str(copy), str(out), ",".join(names),
               "--cell-timeout", str(cell_timeout)]
    try:
        done = subprocess.run(command, cwd=workdir, env=sandbox_env(workdir), capture_output=True, text=True,
                              timeout=notebook_timeout, stdin=subprocess.DEVNULL)
        log = done.stderr[-2000:] if done.returncode else ""
    except subprocess.TimeoutExpired:
        log = f"the submission ran past the notebook's time limit ({notebook_timeout:g} s) and was stopped"
    if (out / "log.txt").is_file():
        log = "\n".join(filter(None, [(out / "log.txt").read_text(encoding="utf-8"), log]))
    return out, log


def load_attempts(path: Path) -> list[Attempt]:
    """The child's results for one exercise (data only: weights_only=True); [] when it left none."""
    if not path.is_file():
        return []
    try:
        rows = torch.load(path, weights_only=True)
        return [Attempt(str(r["status"]), tuple(r["outputs"]), str(r["error"])) for r in rows]
    except Exception as error:
        return [Attempt("error", error=f"unreadable result ({type(error).__name__})")]


def grade(submission: Path, master: Path | None = None, cell_timeout: float = 60.0,
          notebook_timeout: float = 300.0) -> dict:
    """Score a submission against its master's exercises; returns the JSON-able report."""
    submission = Path(submission)
    read_notebook(submission)                               # a clear error before any work
    master = Path(master) if master else master_for(submission)
    master_nb = read_notebook(master)
    exercises = exercises_of(master_nb)
    with tempfile.TemporaryDirectory(prefix="mgca_grade_") as tmp:
        out, log = run_sandbox(submission, [n for n, _ in exercises], Path(tmp), cell_timeout, notebook_timeout)
        scores = []
        for name, points in exercises:
            exercise = EXERCISES[name]
            attempts = load_attempts(out / f"{name}.pt")
            cases = exercise.visible() + exercise.hidden()
            if not attempts:
                attempts = [Attempt("error", error="no result: the submission was stopped before this exercise")]
            result = judge(exercise, cases[:len(attempts)] if attempts[-1].status != "ok" else cases, attempts)
            diff = None if math.isinf(result.max_diff) else result.max_diff   # JSON has no inf
            scores.append(ExerciseScore(name, points, points if result.passed else 0, result.passed,
                                        diff, result.hint, result.failed_case))
    return {"submission": submission.name, "master": master.name,
            "score": sum(s.score for s in scores), "max_score": sum(s.points for s in scores),
            "exercises": [asdict(s) for s in scores],
            "manual": [{"grade_id": gid, "points": pts} for gid, pts in manual_answers_of(master_nb)],
            "log": log}


def format_report(report: dict) -> str:
    """The score table a teacher reads."""
    lines = [f"{report['submission']} (assignment {report['master']})",
             f"{'exercise':<16}{'score':>7}  result"]
    for s in report["exercises"]:
        result = "PASS" if s["passed"] else f"FAIL on {s['failed_case']}: {s['hint']}"
        lines.append(f"{s['name']:<16}{s['score']:>3} / {s['points']:<2} {result}")
    for m in report["manual"]:
        lines.append(f"{m['grade_id']:<16}  ? / {m['points']:<2} graded by hand (an answer in words)")
    lines.append(f"{'total':<16}{report['score']:>3} / {report['max_score']:<2} (automatic part)")
    if report["log"]:
        lines.append("notes: " + report["log"].replace("\n", "\n       "))
    return "\n".join(lines)

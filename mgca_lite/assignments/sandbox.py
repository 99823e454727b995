"""The grader's child process: runs a submission's answer cells, never anything else, and writes
the student's functions' outputs on the checks' cases to files; the parent judges them.

    python -m mgca_lite.assignments.sandbox SUBMISSION.ipynb OUT_DIR NAMES --cell-timeout S

Only *data* leaves this process (tensors in OUT_DIR/<exercise>.pt, loaded with weights_only=True),
so whatever the submission does here — monkey-patching mgca_lite.checks, rewriting the library's
functions — cannot reach the comparison, which the parent does with its own clean import.
The network is refused (`sitecustomize.py`, installed by the parent in front of sys.path), and
each answer cell and each exercise's cases get `--cell-timeout` seconds (SIGALRM).
"""
from __future__ import annotations

import argparse
import signal
import traceback
from pathlib import Path

import torch

from ..checks import EXERCISES
from ..checks.core import Attempt, attempt
from .course import FUNCTIONS, nbgrader, read_notebook, source

# Names the answer cells may use without importing them: the notebooks' own imports.
PREAMBLE = """
import copy, math
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from mgca_lite.evaluation.linear_probe import score
def unit(x):
    return F.normalize(x, dim=-1)
"""


class CellTimeout(BaseException):  # not an Exception: a student's `except Exception` cannot swallow it
    """Raised in the student's code when its time is up."""


def _alarm(signum, frame):
    raise CellTimeout()


def answer_cells(nb: dict) -> list[str]:
    """The code of the answer cells, in notebook order (cells marked by nbgrader's metadata)."""
    return [source(c) for c in nb["cells"] if c.get("cell_type") == "code" and nbgrader(c).get("solution")]


def run_with_limit(seconds: float, fn, *args):
    """fn(*args) with a wall-clock limit; CellTimeout when it is exceeded."""
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("submission", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("names", help="comma-separated exercise names to run")
    parser.add_argument("--cell-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    args.out.mkdir(parents=True, exist_ok=True)
    cases = {name: EXERCISES[name].visible() + EXERCISES[name].hidden() for name in args.names.split(",")}

    namespace: dict = {"__name__": "__submission__"}
    exec(PREAMBLE, namespace)
    log = []
    for k, code in enumerate(answer_cells(read_notebook(args.submission))):
        try:
            run_with_limit(args.cell_timeout, exec, compile(code, f"<answer cell {k + 1}>", "exec"), namespace)
        except CellTimeout:
            log.append(f"answer cell {k + 1}: stopped after {args.cell_timeout:g} s")
        except BaseException:  # SystemExit and KeyboardInterrupt from a submission too
            log.append(f"answer cell {k + 1}: " + traceback.format_exc(limit=2).strip().splitlines()[-1])

    for name, name_cases in cases.items():
        function = namespace.get(FUNCTIONS[name])
        if not callable(function):
            results = [Attempt("error", error=f"no function {FUNCTIONS[name]!r} in the answer cells")]
        else:
            results = []
            for case in name_cases:
                try:
                    results.append(run_with_limit(args.cell_timeout, attempt, EXERCISES[name], function, case))
                except CellTimeout:
                    results.append(Attempt("error", error=f"CellTimeout: stopped after {args.cell_timeout:g} s"))
                except BaseException as error:
                    results.append(Attempt("error", error=f"{type(error).__name__}: {error}"))
                if results[-1].status != "ok":
                    break
        torch.save([{"status": r.status, "error": r.error, "outputs": [t.detach().cpu().clone() for t in r.outputs]}
                    for r in results], args.out / f"{name}.pt")
    (args.out / "log.txt").write_text("\n".join(log), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

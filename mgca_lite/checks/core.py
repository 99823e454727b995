"""What every exercise check shares: run the student's function on seeded cases, compare it with
the library, and name the usual mistake when it differs.

An exercise is an `Exercise`: the library function the student re-writes (same signature), a
`run` that calls either one on a case and returns the tensors to compare (a value and its
gradients, a pair of outputs...), the visible cases (what the notebook's check cell shows) and the
hidden ones (other seeds, other shapes, padding, B = 1: what the grader adds), and the *mistakes*:
wrong versions of the function, each with the hint to print when the student's output matches it.

Differences are measured relative to the library's value, |a - b| / (1 + |b|), so one tolerance
serves losses, gradients and probabilities; a pass prints only the bound (`< 1e-4`), never the
float noise itself, so a check cell's output is the same on every CPU (docs/notebooks.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

TOLERANCE = 1e-4          # largest relative difference that still passes
TOLERANCE_TEXT = "1e-4"   # how a pass prints it: a bound, the same on every machine
MISTAKE_TOLERANCE = 1e-3  # how close the student's output must be to a wrong version to blame it
NARROW = (torch.float16, torch.bfloat16)


@dataclass
class Case:
    """One input: positional arguments for the function, and what to call it in a hint."""

    label: str
    args: tuple


@dataclass
class Mistake:
    """A wrong version of the function (same signature) and the hint for a student who wrote it."""

    function: Callable
    hint: str


@dataclass
class Exercise:
    """Everything a check needs to know about one exercise (see the module docstring)."""

    name: str                                   # "sinkhorn": check_sinkhorn, hidden_sinkhorn, grade_sinkhorn
    title: str                                  # printed: "Sinkhorn-Knopp codes"
    library: Callable                           # the library's function, with the student's signature
    run: Callable[[Callable, Case], tuple]      # (function, case) -> tensors to compare
    visible: Callable[[], list[Case]]
    hidden: Callable[[], list[Case]]
    mistakes: list[Mistake] = field(default_factory=list)
    generic_hint: str = "compare your function with the formula in the markdown cell above, line by line"


@dataclass
class CheckResult:
    """What a check found. `function` is what the notebook's later cells should use: the student's
    function once it passes, the library's until then (so an unsolved notebook still runs)."""

    exercise: str
    passed: bool
    max_diff: float        # largest relative difference to the library (inf: error, wrong shape)
    hint: str              # "" when passed
    function: Callable
    solved: bool = True    # False while the function still raises NotImplementedError
    failed_case: str = ""  # label of the first case that differed

    def summary(self, title: str) -> str:
        """The lines a check cell prints: stable on every machine (a bound, not raw float noise)."""
        if self.passed:
            return f"PASS {title}: same as the library (largest difference < {TOLERANCE_TEXT})"
        if not self.solved:
            return (f"NOT DONE {title}: the function still raises NotImplementedError\n"
                    f"  the cells below use the library's version until yours passes")
        where = f" on {self.failed_case}" if self.failed_case else ""
        diff = "inf" if math.isinf(self.max_diff) else f"{self.max_diff:.2g}"
        return (f"FAIL {title}{where}: largest difference {diff}\n  hint: {self.hint}\n"
                f"  the cells below use the library's version until yours passes")


def _tensors(outputs: Any) -> list[torch.Tensor]:
    """Flatten nested tuples/lists of outputs into tensors (numbers become 0-dim tensors)."""
    if isinstance(outputs, (tuple, list)):
        return [t for o in outputs for t in _tensors(o)]
    return [torch.as_tensor(outputs)]


def difference(student: Any, library: Any) -> float:
    """Largest |a - b| / (1 + |b|) over all outputs; inf when the structure or a shape differs.
    NaN at the same place in both counts as equal (a wrong version may produce NaN too)."""
    a_list, b_list = _tensors(student), _tensors(library)
    if len(a_list) != len(b_list):
        return math.inf
    worst = 0.0
    for a, b in zip(a_list, b_list):
        if a.shape != b.shape:
            return math.inf
        a, b = a.detach().double(), b.detach().double()
        both_nan = a.isnan() & b.isnan()
        diff = ((a - b).abs() / (1 + b.abs())).masked_fill(both_nan, 0.0)
        if diff.numel():
            d = float(diff.max())
            worst = max(worst, math.inf if math.isnan(d) else d)
    return worst


def _narrow(student: Any, library: Any) -> bool:
    """True when the student returns fp16/bf16 where the library returns float32 or wider."""
    return any(a.dtype in NARROW and b.dtype not in NARROW
               for a, b in zip(_tensors(student), _tensors(library)))


@dataclass
class Attempt:
    """The student's function on one case: its outputs, or why there are none."""

    status: str                      # "ok" | "not_implemented" | "error"
    outputs: tuple = ()
    error: str = ""


def attempt(exercise: Exercise, function: Callable, case: Case) -> Attempt:
    """Run the student's function on one case, catching whatever it raises."""
    try:
        return Attempt("ok", tuple(_tensors(exercise.run(function, case))))
    except NotImplementedError:
        return Attempt("not_implemented")
    except Exception as error:  # a student's bug is reported, never raised at the check cell
        return Attempt("error", error=f"{type(error).__name__}: {error}")


def judge(exercise: Exercise, cases: list[Case], attempts: list[Attempt], function: Callable | None = None,
          ) -> CheckResult:
    """Compare the attempts with the library, case by case; the first that differs decides the hint.
    Needs only the attempts' tensors, so the grader can judge, in a clean process, outputs that the
    student's code produced in another one. `function` is what a pass hands back to the notebook."""
    worst = 0.0
    for case, tried in zip(cases, attempts):
        if tried.status == "not_implemented":
            return CheckResult(exercise.name, False, math.inf, "replace `raise NotImplementedError()`"
                               " with your code", exercise.library, solved=False, failed_case=case.label)
        if tried.status != "ok":
            return CheckResult(exercise.name, False, math.inf, f"it raised {tried.error}",
                               exercise.library, failed_case=case.label)
        expected = tuple(_tensors(exercise.run(exercise.library, case)))
        diff = difference(tried.outputs, expected)
        if diff > TOLERANCE:
            return CheckResult(exercise.name, False, diff, _hint(exercise, case, tried.outputs, expected),
                               exercise.library, failed_case=case.label)
        worst = max(worst, diff)
    if len(attempts) < len(cases):
        return CheckResult(exercise.name, False, math.inf, "no result for every case (time limit?)",
                           exercise.library, failed_case=cases[len(attempts)].label)
    return CheckResult(exercise.name, True, worst, "", function or exercise.library)


def evaluate(exercise: Exercise, function: Callable, cases: list[Case]) -> CheckResult:
    """Run `function` on every case (stopping at the first that fails to run) and judge it."""
    attempts = []
    for case in cases:
        attempts.append(attempt(exercise, function, case))
        if attempts[-1].status != "ok":
            break
    return judge(exercise, cases[:len(attempts)], attempts, function)


def _hint(exercise: Exercise, case: Case, got: Any, expected: Any) -> str:
    """The hint of the first wrong version the student's output matches, else a generic one."""
    if _narrow(got, expected):
        return ("your result is float16/bfloat16: compute in float32 (or wider), as the library does;"
                " half precision loses digits and overflows exp()")
    for mistake in exercise.mistakes:
        try:
            wrong = tuple(_tensors(exercise.run(mistake.function, case)))
        except Exception:  # a wrong version may not apply to every case (e.g. B = 1)
            continue
        if difference(got, wrong) <= MISTAKE_TOLERANCE:
            return mistake.hint
    return exercise.generic_hint


def check(exercise: Exercise, function: Callable, quiet: bool = False) -> CheckResult:
    """The visible check: the seeded cases of the notebook's check cell; prints its verdict."""
    result = evaluate(exercise, function, exercise.visible())
    if not quiet:
        print(result.summary(exercise.title))
    return result


def hidden(exercise: Exercise, function: Callable) -> CheckResult:
    """The grader's extra cases (other seeds and shapes, padding, B = 1); prints nothing."""
    return evaluate(exercise, function, exercise.hidden())


def grade(exercise: Exercise, function: Callable) -> CheckResult:
    """Visible and hidden cases together; AssertionError (with the hint) unless all pass.
    This is what an nbgrader test cell runs, and what our grader scores."""
    result = evaluate(exercise, function, exercise.visible() + exercise.hidden())
    if not result.passed:
        raise AssertionError(result.summary(exercise.title))
    return result


def value_and_grads(loss_fn: Callable, tensors: tuple, *rest) -> tuple:
    """(loss, d loss / d tensor for each of `tensors`) for fresh leaf copies; `rest` passed as is."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    loss = loss_fn(*leaves, *rest)
    loss.backward()
    return (loss.detach(), *[leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                             for leaf in leaves])


def unit(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise the last dim."""
    return torch.nn.functional.normalize(x, dim=-1)

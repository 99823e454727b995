"""Checks for the course's exercises: the student's function against the library's, on seeded
inputs, with a hint that names the usual mistake.

In a notebook, after an exercise cell:

    from mgca_lite.checks import check_sinkhorn
    sinkhorn_steps = check_sinkhorn(sinkhorn_steps).function  # yours once it passes, the library's until then

prints `PASS ...`, `FAIL ... hint: ...` or `NOT DONE ...` and never raises. `hidden_<name>` runs
the grader's extra cases (other seeds and shapes, padding, B = 1) and `grade_<name>` both sets,
raising AssertionError unless everything passes (what nbgrader's test cells and
`python -m mgca_lite.assignments grade` score). Each returns a `CheckResult` (passed, max_diff, hint).
"""
from __future__ import annotations

from functools import partial

from . import cpa, cta, grounding, ita, probe, words
from .core import CheckResult, Exercise, check, grade, hidden

# name -> exercise, in course order (notebook 02, 03, 04, 05, 07)
EXERCISES: dict[str, Exercise] = {e.name: e for e in (
    words.EXERCISE, ita.EXERCISE, cta.ATTENTION, cta.CTA, grounding.EXERCISE,
    cpa.SINKHORN, cpa.CPA, probe.EXERCISE)}

check_merge_words = partial(check, words.EXERCISE)
check_ita = partial(check, ita.EXERCISE)
check_word_attention = partial(check, cta.ATTENTION)
check_cta = partial(check, cta.CTA)
check_pointing_game = partial(check, grounding.EXERCISE)
check_sinkhorn = partial(check, cpa.SINKHORN)
check_cpa = partial(check, cpa.CPA)
check_linear_probe = partial(check, probe.EXERCISE)

hidden_merge_words = partial(hidden, words.EXERCISE)
hidden_ita = partial(hidden, ita.EXERCISE)
hidden_word_attention = partial(hidden, cta.ATTENTION)
hidden_cta = partial(hidden, cta.CTA)
hidden_pointing_game = partial(hidden, grounding.EXERCISE)
hidden_sinkhorn = partial(hidden, cpa.SINKHORN)
hidden_cpa = partial(hidden, cpa.CPA)
hidden_linear_probe = partial(hidden, probe.EXERCISE)

grade_merge_words = partial(grade, words.EXERCISE)
grade_ita = partial(grade, ita.EXERCISE)
grade_word_attention = partial(grade, cta.ATTENTION)
grade_cta = partial(grade, cta.CTA)
grade_pointing_game = partial(grade, grounding.EXERCISE)
grade_sinkhorn = partial(grade, cpa.SINKHORN)
grade_cpa = partial(grade, cpa.CPA)
grade_linear_probe = partial(grade, probe.EXERCISE)

__all__ = ["CheckResult", "EXERCISES", *(f"{kind}_{name}" for kind in ("check", "hidden", "grade")
                                         for name in EXERCISES)]

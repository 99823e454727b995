"""mgca_lite.checks: the library's own function passes every check, and each planted mistake fails
with its own hint (the checks name the usual mistake by matching the student's output against
wrong versions of the function)."""
from __future__ import annotations

import math

import pytest
import torch

from mgca_lite import checks
from mgca_lite.checks import EXERCISES, core

NAMES = list(EXERCISES)


@pytest.mark.parametrize("name", NAMES)
def test_library_passes_visible_and_hidden(name, capsys):
    exercise = EXERCISES[name]
    result = getattr(checks, f"check_{name}")(exercise.library)
    assert result.passed and result.hint == "" and result.max_diff < core.TOLERANCE
    assert capsys.readouterr().out == f"PASS {exercise.title}: same as the library (largest difference < 1e-4)\n"
    assert getattr(checks, f"hidden_{name}")(exercise.library).passed
    assert getattr(checks, f"grade_{name}")(exercise.library).passed


@pytest.mark.parametrize("name, k", [(n, k) for n in NAMES for k in range(len(EXERCISES[n].mistakes))])
def test_each_planted_mistake_fails_with_its_hint(name, k):
    exercise = EXERCISES[name]
    mistake = exercise.mistakes[k]
    result = core.evaluate(exercise, mistake.function, exercise.visible() + exercise.hidden())
    assert not result.passed and result.max_diff > core.TOLERANCE
    assert result.hint == mistake.hint
    assert result.function is exercise.library           # later cells fall back to the library
    with pytest.raises(AssertionError, match="FAIL"):
        core.grade(exercise, mistake.function)


def test_unsolved_stub_is_reported_not_raised(capsys):
    def stub(*args):
        # YOUR CODE HERE
        raise NotImplementedError()

    result = checks.check_sinkhorn(stub)
    assert not result.passed and not result.solved and math.isinf(result.max_diff)
    out = capsys.readouterr().out
    assert out.startswith("NOT DONE Sinkhorn-Knopp codes") and "library's version" in out
    assert result.function is EXERCISES["sinkhorn"].library


def test_a_crashing_function_is_reported_with_its_error():
    result = checks.check_ita(lambda image, report, tau=0.07: image @ report)  # (B, D) @ (B, D): shape error
    assert not result.passed and result.solved and "RuntimeError" in result.hint


def test_fp16_result_gets_the_fp16_hint():
    def sinkhorn_in_input_dtype(scores, eps=0.05, iterations=3):  # no upcast: float16 in, float16 out
        Q = torch.exp((scores - scores.max()) / eps)
        Q = Q / Q.sum()
        for _ in range(iterations):
            Q = Q / Q.sum(dim=0, keepdim=True) / Q.shape[1]
            Q = Q / Q.sum(dim=1, keepdim=True) / Q.shape[0]
        return Q / Q.sum(dim=1, keepdim=True)

    assert checks.check_sinkhorn(sinkhorn_in_input_dtype, quiet=True).passed   # float32 inputs: fine
    result = checks.hidden_sinkhorn(sinkhorn_in_input_dtype)
    assert not result.passed and result.failed_case.startswith("float16") and "float16" in result.hint


def test_hidden_cases_catch_what_the_visible_ones_do_not():
    # A loss hard-wired to tau = 0.07 passes the visible check but not "tau passed explicitly".
    def fixed_tau(image, report, tau=0.07):
        logits = image @ report.T / 0.07
        return 0.5 * (-logits.log_softmax(1).diagonal().mean() - logits.log_softmax(0).diagonal().mean())

    assert checks.check_ita(fixed_tau, quiet=True).passed
    result = checks.hidden_ita(fixed_tau)
    assert not result.passed and "tau" in result.failed_case


def test_difference_is_relative_and_structural():
    one = torch.tensor([1.0, 100.0])
    assert core.difference(one, one) == 0.0
    assert core.difference(torch.tensor([1.0, 101.0]), one) == pytest.approx(1 / 101)
    assert math.isinf(core.difference(torch.ones(3), torch.ones(2)))
    assert math.isinf(core.difference((one,), (one, one)))
    nan = torch.tensor([math.nan])
    assert core.difference(nan, nan) == 0.0 and math.isinf(core.difference(nan, torch.zeros(1)))

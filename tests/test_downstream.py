"""Shared downstream pieces: early stopping that keeps the best state."""
from __future__ import annotations

import math

from torch import nn

from mgca_lite.evaluation.downstream import KeepBest, fraction_key


def test_keep_best_restores_the_best_state_and_stops_after_patience():
    layer, keep = nn.Linear(1, 1), KeepBest(patience=2)
    stops = []
    for value, score in ((1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (4.0, 0.9), (5.0, 0.1)):
        nn.init.constant_(layer.weight, value)
        stops.append(keep.check(score, layer))
    assert stops == [False, False, False, True, True]  # a tie is no improvement
    assert keep.restore(layer).weight.item() == 2.0 and keep.best == 0.9 and not layer.training


def test_keep_best_keeps_the_first_check_when_scores_are_nan():
    layer, keep = nn.Linear(1, 1), KeepBest(patience=5)
    nn.init.constant_(layer.weight, 7.0)
    keep.check(math.nan, layer)
    nn.init.constant_(layer.weight, 8.0)
    keep.check(math.nan, layer)
    assert keep.restore(layer).weight.item() == 7.0


def test_fraction_keys():
    assert [fraction_key(f) for f in (0.01, 0.1, 1.0)] == ["1", "10", "100"]

"""mgca_lite.figures.prototypes: what each figure draws, checked on hand-made inputs."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mgca_lite.figures.prototypes import plot_prototype_table, plot_usage_curves  # noqa: E402


def _result():
    # the shape of an evaluate_prototypes result, two findings, three used prototypes
    return {
        "n_studies": 10, "usage": {"used": 3},
        "base_rate": {"edema": 0.2, "pleural_effusion": 0.5},
        "table": [{"prototype": 7, "size": 5, "share": {"edema": 0.0, "pleural_effusion": 1.0}},
                  {"prototype": 2, "size": 3, "share": {"edema": 0.333, "pleural_effusion": 0.0}},
                  {"prototype": 4, "size": 2, "share": {"edema": 0.5, "pleural_effusion": 0.0}}],
    }


def test_prototype_table_writes_base_rate_then_each_prototype():
    fig = plot_prototype_table(_result(), top=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["all 10 studies", "prototype 7 (5)", "prototype 2 (3)"]
    assert [t.get_text() for t in ax.texts] == ["0.20", "0.50", "0.00", "1.00", "0.33", "0.00"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["edema", "pleural effusion"]
    colours = ax.images[0].get_array()
    np.testing.assert_allclose(colours[0], [0.0, 0.0])            # the base-rate row is the colour scale's centre
    np.testing.assert_allclose(colours[1], [-0.2, 0.5])           # share minus base rate
    assert ax.images[0].get_clim() == (-0.5, 0.5)                  # symmetric around 0
    assert "2 largest of 3 used prototypes (8 of 10 studies)" in ax.get_xlabel()
    plt.close(fig)


def test_usage_curves_one_line_per_run_and_the_limits():
    used = {"softmax": [16, 4, 1], "sinkhorn": [16, 16, 16]}
    entropy = {"softmax": [2.7, 1.0, 0.0], "sinkhorn": [2.7, 2.7, 2.75]}
    fig = plot_usage_curves(used, entropy, k=16)
    left, right = fig.axes
    assert [list(line.get_ydata()) for line in left.lines[:2]] == [[16, 4, 1], [16, 16, 16]]
    assert left.lines[2].get_ydata()[0] == 16                       # the "all K" line
    assert right.lines[2].get_ydata()[0] == pytest.approx(math.log(16))
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_usage_curves({"a": [1]}, {"b": [0.0]}, k=4)

"""Figures 3 / 4 and the bar charts: what they draw is what they were given."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from mgca_lite.figures.alignment import (finding_names, plot_fraction_bars, plot_maps_side_by_side, plot_tsne,
                                         tsne_2d)


def test_tsne_is_seeded_and_keeps_separated_clusters_apart():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (40, 16)), rng.normal(8, 1, (40, 16))])
    a, b = tsne_2d(x, seed=3), tsne_2d(x, seed=3)
    assert a.shape == (80, 2) and np.array_equal(a, b)
    centre = a[:40].mean(0), a[40:].mean(0)
    own = np.linalg.norm(a[:40] - centre[0], axis=1).mean()
    assert np.linalg.norm(centre[0] - centre[1]) > 3 * own  # two blobs stay two blobs


def test_finding_names_single_none_several():
    labels = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, -1, 1]])
    assert finding_names(labels, ["a", "b", "c"]) == ["a", "no finding", "several", "c"]


def test_bars_have_the_means_and_error_bars_of_the_results():
    results = {"random": {"1": {"mean": 0.5, "std": 0.01}, "100": {"mean": 0.6, "std": 0.0}},
               "mgca": {"1": {"mean": 0.7, "std": 0.02}, "100": {"mean": 0.8, "std": 0.0}}}
    fig = plot_fraction_bars(results, "AUROC")
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == [0.5, 0.6, 0.7, 0.8]


def test_side_by_side_maps_one_row_per_model_and_tsne_panels():
    films = np.zeros((3, 16, 16))
    masks = np.zeros((3, 16, 16), bool)
    masks[:, 4:8, 4:8] = True
    maps = {"trained": np.random.default_rng(0).random((3, 4, 4)), "untrained": np.full((3, 4, 4), 1 / 16)}
    fig = plot_maps_side_by_side(films, maps, masks, ["a", "b", "c"])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 3 * 3
    with pytest.raises(ValueError):
        plot_maps_side_by_side(films, {"x": np.zeros((2, 4, 4))}, masks, ["a", "b", "c"])
    fig = plot_tsne(np.random.default_rng(0).random((20, 2)), ["a"] * 10 + ["no finding"] * 10, np.arange(20) % 3)
    assert len(fig.axes) == 2

"""mgca_lite.figures.attention: what each figure draws, checked on hand-made inputs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from mgca_lite.figures.attention import annotated_heatmap, peak_cells, plot_phrase_maps  # noqa: E402


def _rectangles(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_annotated_heatmap_writes_every_value_and_boxes_the_diagonal():
    values = np.arange(6, dtype=float).reshape(2, 3) / 10
    fig, ax = plt.subplots()
    annotated_heatmap(ax, values, ["a", "b"], ["x", "y", "z"], "t", diagonal=True)
    assert sorted(t.get_text() for t in ax.texts) == [f"{v:.2f}" for v in sorted(values.ravel())]
    assert [(r.get_x(), r.get_y()) for r in _rectangles(ax)] == [(-0.5, -0.5), (0.5, 0.5)]  # min(2, 3) cells
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    plt.close(fig)


def test_annotated_heatmap_vmax_puts_two_heatmaps_on_one_colour_scale():
    fig, (left, right) = plt.subplots(1, 2)
    own = annotated_heatmap(left, np.array([[0.1, 0.2]]), ["r"], ["x", "y"], "own scale")
    shared = annotated_heatmap(right, np.array([[0.1, 0.2]]), ["r"], ["x", "y"], "shared", vmax=0.4)
    assert own.get_clim() == (0.1, 0.2)       # without vmax: the matrix's own min and max
    assert shared.get_clim() == (0.0, 0.4)    # with vmax: from 0 to vmax
    assert [t.get_color() for t in right.texts] == ["white", "white"]  # both below the scale's middle
    plt.close(fig)


def test_annotated_heatmap_rejects_labels_of_the_wrong_length():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError):
        annotated_heatmap(ax, np.zeros((2, 2)), ["a"], ["x", "y"], "t")
    plt.close(fig)


def test_peak_cells_lists_every_tie():
    assert peak_cells(np.array([[0.1, 0.4], [0.4, 0.1]])) == [(0, 1), (1, 0)]
    assert peak_cells(np.full((2, 2), 0.25)) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_phrase_maps_box_the_peak_cell_on_the_film():
    films = np.zeros((2, 64, 64), dtype=np.uint8)
    masks = np.zeros((2, 64, 64), dtype=bool)
    masks[:, 20:30, 40:50] = True
    maps = np.full((2, 4, 4), 0.01)
    maps[0, 0, 3] = 0.9                     # a corner cell: film rows 0..15, columns 48..63
    maps[1, 2, 1] = maps[1, 3, 3] = 0.5     # a tie: both cells boxed
    fig = plot_phrase_maps(films, maps, masks, ["one", "two"], hits=[True, False])
    axes = fig.axes[:4]                     # 2 rows x 2 columns, then the colour bar
    top, bottom = axes[:2], axes[2:]
    assert [(r.get_x(), r.get_y(), r.get_width()) for r in _rectangles(bottom[0])] == [(47.5, -0.5, 16.0)]
    assert [(r.get_x(), r.get_y()) for r in _rectangles(bottom[1])] == [(15.5, 31.5), (47.5, 47.5)]
    assert [ax.get_title() for ax in bottom] == ["peak cell: hit", "peak cell: miss"]
    assert [ax.get_title() for ax in top] == ["one", "two"]
    for ax in axes:                         # the ground-truth outline on every panel
        assert ax.collections, "no contour drawn"
    image = bottom[0].images[1]             # the map: drawn as it is (not 1 - attention), cell by cell
    np.testing.assert_array_equal(image.get_array(), maps[0])
    assert image.get_interpolation() == "nearest"
    assert image.get_extent() == [-0.5, 63.5, 63.5, -0.5]
    plt.close(fig)


def test_phrase_maps_reject_mismatched_inputs():
    with pytest.raises(ValueError):
        plot_phrase_maps(np.zeros((2, 8, 8)), np.zeros((1, 2, 2)), np.zeros((2, 8, 8), bool), ["a", "b"])

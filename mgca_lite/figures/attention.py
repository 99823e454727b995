"""Figures of token-wise attention (notebook 04): small annotated matrices, and phrase maps on films.

    annotated_heatmap(ax, S, words, words, "S_w", diagonal=True)   # a toy CTA matrix, diagonal boxed
    fig = plot_phrase_maps(films, maps, masks, titles)             # attention vs ground-truth outline

Maps are drawn as what they are, one value per patch cell (nearest, not smoothed), so the cell the
pointing game scores is the cell one sees; the attention itself is drawn, never 1 - attention
(MGCA issue #24's trap).
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

OUTLINE = "lime"  # ground-truth mask outline
PEAK = "white"    # the map's maximal cell(s)


def annotated_heatmap(ax, values, row_labels, col_labels, title: str, fmt: str = "{:.2f}",
                      diagonal: bool = False, cmap: str = "viridis", fontsize: int = 10,
                      vmax: float | None = None):
    """Draw a small matrix (R, C) on `ax` with its value written in every cell; `diagonal` boxes
    cells (i, i); `vmax` fixes the top of the colour scale (0 is its bottom then), so that heatmaps
    side by side share one scale. Returns the AxesImage (for a colorbar)."""
    values = np.asarray(values, dtype=float)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"values {values.shape} vs {len(row_labels)} row and {len(col_labels)} column labels")
    low, high = (np.nanmin(values), np.nanmax(values)) if vmax is None else (0.0, vmax)
    image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high)
    middle = (low + high) / 2
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                color="black" if v > middle else "white")
    if diagonal:
        for i in range(min(values.shape)):
            ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=35, ha="right", fontsize=fontsize)
    ax.set_yticks(range(len(row_labels)), row_labels, fontsize=fontsize)
    ax.set_title(title, fontsize=fontsize + 1)
    return image


def peak_cells(grid_map) -> list[tuple[int, int]]:
    """(row, col) of every maximal cell of an (h, w) map (ties: all of them)."""
    grid_map = np.asarray(grid_map)
    return [tuple(int(k) for k in rc) for rc in np.argwhere(grid_map == grid_map.max())]


def draw_cell_map(ax, film, grid_map, vmax: float, linewidth: float = 2.0):
    """Draw a film (H, W) with an (h, w) map over it, one flat colour per patch cell, and box the
    maximal cell(s). Returns the map's AxesImage (for a colour bar)."""
    H, W = np.shape(film)
    h, w = np.shape(grid_map)
    ax.imshow(film, cmap="gray")
    # extent: cell (r, c) covers film rows [r H/h, (r+1) H/h), as the grounding metrics count it
    image = ax.imshow(grid_map, cmap="magma", alpha=0.6, vmin=0.0, vmax=vmax, interpolation="nearest",
                      extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    for r, c in peak_cells(grid_map):
        ax.add_patch(Rectangle((c * W / w - 0.5, r * H / h - 0.5), W / w, H / h, fill=False,
                               edgecolor=PEAK, linewidth=linewidth, linestyle="--"))
    return image


def plot_phrase_maps(films, maps, masks, titles, hits=None, width: float = 11.0):
    """Two rows, one column per phrase: the film with the finding's outline; below it the phrase's
    attention per patch cell over the film, the outline again, and the maximal cell(s) boxed.

    films (N, H, W) grey values, maps (N, h, w) attention on the patch grid, masks (N, H, W) bool,
    titles (N,) strings; hits (N,) optional booleans, shown as "hit" / "miss" in the lower titles.
    All maps share one colour scale (from 0 to the largest value), shown in a colour bar.
    """
    films, maps, masks = np.asarray(films), np.asarray(maps, dtype=float), np.asarray(masks, dtype=bool)
    n = len(films)
    if not (len(maps) == len(masks) == len(titles) == n) or films.shape != masks.shape:
        raise ValueError(f"films {films.shape}, maps {maps.shape}, masks {masks.shape}, {len(titles)} titles")
    fig, axes = plt.subplots(2, n, figsize=(width, width / n * 2.3), squeeze=False, layout="constrained")
    vmax = float(maps.max())
    for k in range(n):
        top, bottom = axes[0, k], axes[1, k]
        top.imshow(films[k], cmap="gray")
        top.set_title("\n".join(textwrap.wrap(titles[k], 26)), fontsize=10)
        image = draw_cell_map(bottom, films[k], maps[k], vmax)
        if hits is not None:
            bottom.set_title("peak cell: " + ("hit" if hits[k] else "miss"), fontsize=10)
        for ax in (top, bottom):
            ax.contour(masks[k], levels=[0.5], colors=OUTLINE, linewidths=1.5)
            ax.set_xticks([])
            ax.set_yticks([])
    bar = fig.colorbar(image, ax=axes[1].tolist(), fraction=0.025, pad=0.01)
    bar.set_label("attention per cell", fontsize=9)
    return fig

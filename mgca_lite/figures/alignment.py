"""The paper's Figures 3 and 4 on SynthCXR: word -> patch maps of two models side by side, and a
t-SNE of test-image embeddings coloured by finding and by prototype.

    phrases = {name: phrase_maps(model, ...) for name, model in models.items()}   # same studies
    fig = plot_maps_side_by_side(films, {name: p.maps[:n] for ...}, masks, titles)
    xy = tsne_2d(img_emb)                                # scikit-learn's TSNE, seeded
    fig = plot_tsne(xy, finding_names, prototype_ids)

Maps are drawn cell by cell (nearest), as the pointing game scores them; one colour scale per
model row, because an untrained model's attention is flatter and would vanish on a shared scale.
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from mgca_lite.figures.attention import OUTLINE, draw_cell_map


def plot_maps_side_by_side(films, maps_by_model: dict, masks, titles, width: float = 11.0):
    """One column per phrase: the film with the finding's outline on top, then one row per model
    with its map over the film, the outline and the maximal cell(s) boxed.

    films (N, H, W) grey values; maps_by_model {name: (N, h, w) attention on the patch grid};
    masks (N, H, W) bool; titles (N,) phrase texts.
    """
    films, masks = np.asarray(films), np.asarray(masks, dtype=bool)
    n = len(films)
    shapes = {name: np.shape(m) for name, m in maps_by_model.items()}
    if films.shape != masks.shape or len(titles) != n or any(len(s) != 3 or s[0] != n for s in shapes.values()):
        raise ValueError(f"films {films.shape}, masks {masks.shape}, {len(titles)} titles, maps {shapes}")
    rows = 1 + len(maps_by_model)
    fig, axes = plt.subplots(rows, n, figsize=(width, width / n * 1.15 * rows), squeeze=False, layout="constrained")
    for k in range(n):
        axes[0, k].imshow(films[k], cmap="gray")
        axes[0, k].set_title("\n".join(textwrap.wrap(titles[k], 24)), fontsize=9)
    for r, (name, maps) in enumerate(maps_by_model.items(), start=1):
        maps = np.asarray(maps, dtype=float)
        for k in range(n):
            image = draw_cell_map(axes[r, k], films[k], maps[k], float(maps.max()), linewidth=1.5)
        axes[r, 0].set_ylabel(name, fontsize=10)
        fig.colorbar(image, ax=axes[r].tolist(), fraction=0.025, pad=0.01).set_label("attention", fontsize=8)
    for k in range(n):
        for r in range(rows):
            axes[r, k].contour(masks[k], levels=[0.5], colors=OUTLINE, linewidths=1.2)
            axes[r, k].set_xticks([])
            axes[r, k].set_yticks([])
    return fig


def tsne_2d(embeddings, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """scikit-learn's t-SNE of (N, D) embeddings -> (N, 2); PCA initialisation and a fixed seed,
    so the same embeddings give the same picture."""
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, dtype=np.float64)
    perplexity = min(perplexity, (len(x) - 1) / 3)  # sklearn requires perplexity < N
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def finding_names(labels, findings) -> list[str]:
    """A display class per study from (N, F) labels (1 = positive): its single positive finding,
    "no finding", or "several"."""
    out = []
    for row in np.asarray(labels):
        pos = [f for f, v in zip(findings, row) if v == 1]
        out.append(pos[0] if len(pos) == 1 else ("no finding" if not pos else "several"))
    return out


def plot_tsne(xy, classes: list[str], prototypes=None, width: float = 11.0):
    """t-SNE points coloured by `classes` (N,) strings, and, when given, by `prototypes` (N,) ints
    (the largest 9 prototypes in colour, the rest grey)."""
    xy = np.asarray(xy)
    panels = 1 if prototypes is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(width, width / panels * 0.85), squeeze=False, layout="constrained")
    ax = axes[0, 0]
    for name in sorted(set(classes), key=lambda c: (c in ("no finding", "several"), c)):
        sel = np.array([c == name for c in classes])
        ax.scatter(*xy[sel].T, s=6, label=f"{name} ({sel.sum()})",
                   color="lightgrey" if name == "no finding" else None)
    ax.legend(fontsize=8, markerscale=2)
    ax.set_title("test images, by finding")
    if prototypes is not None:
        prototypes = np.asarray(prototypes)
        ids, counts = np.unique(prototypes, return_counts=True)
        top = ids[np.argsort(-counts)][:9]
        ax = axes[0, 1]
        rest = ~np.isin(prototypes, top)
        ax.scatter(*xy[rest].T, s=6, color="lightgrey", label="other prototypes")
        for p in top:
            sel = prototypes == p
            ax.scatter(*xy[sel].T, s=6, label=f"prototype {p} ({sel.sum()})")
        ax.legend(fontsize=8, markerscale=2)
        ax.set_title("the same points, by nearest prototype")
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_fraction_bars(results: dict, metric: str, title: str = "", width: float = 7.0):
    """Grouped bars with error bars: results {method: {"1"|"10"|"100": {"mean", "std"}}} (the
    shape every eval task writes) -> one group per label fraction, one bar per method."""
    methods = list(results)
    keys = list(results[methods[0]])
    fig, ax = plt.subplots(figsize=(width, width * 0.55), layout="constrained")
    step = 0.8 / len(methods)
    for m, method in enumerate(methods):
        means = [results[method][k]["mean"] for k in keys]
        stds = [results[method][k]["std"] for k in keys]
        ax.bar(np.arange(len(keys)) + (m - (len(methods) - 1) / 2) * step, means, step, yerr=stds,
               capsize=3, label=method)
    ax.set_xticks(range(len(keys)), [f"{k} % labels" for k in keys])
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig

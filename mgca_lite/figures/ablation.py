"""Figures of the seeded ablation (notebook 11): every pretraining seed shown, not only the mean."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_seed_strips(results: dict, metric: str, names: dict | None = None, baseline: float | None = None,
                     baseline_label: str = "", width: float = 11.0):
    """One panel per label fraction; in each, one column per method with a dot per pretraining seed
    and a bar at their mean. `results`: {method: {"1"|"10"|"100": {"mean", "std", "seeds": [...]}}}
    (one dataset of the ablation JSON); `names`: display names per method; `baseline`: a dashed
    horizontal line (a chance level) with `baseline_label`. The y-axis spans the data, not 0..1, so
    that differences of a few hundredths stay visible: read the tick labels."""
    methods = list(results)
    fractions = list(results[methods[0]])
    values = [v for m in methods for f in fractions for v in results[m][f]["seeds"]]
    pad = 0.1 * (max(values) - min(values) + 1e-3)
    low, high = min(values + ([baseline] if baseline is not None else [])) - pad, max(values) + pad
    fig, axes = plt.subplots(1, len(fractions), figsize=(width, width * 0.36), sharey=True, layout="constrained")
    axes = np.atleast_1d(axes)  # one fraction: a single Axes
    for ax, fraction in zip(axes, fractions):
        for x, method in enumerate(methods):
            seeds = results[method][fraction]["seeds"]
            jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(1)
            ax.scatter(x + jitter, seeds, s=28, color=f"C{x}", zorder=3)
            ax.hlines(results[method][fraction]["mean"], x - 0.3, x + 0.3, color=f"C{x}", lw=2.5)
        if baseline is not None:
            ax.axhline(baseline, color="grey", ls="--", lw=1, label=baseline_label or None)
        ax.set_xticks(range(len(methods)), [(names or {}).get(m, m) for m in methods], rotation=30, ha="right",
                      fontsize=9)
        ax.set_title(f"{fraction} % labels")
        ax.set_ylim(low, high)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(metric)
    if baseline is not None and baseline_label:
        axes[0].legend(fontsize=8, loc="upper left")
    return fig

"""Figures of CPA prototypes (notebook 05): how many are in use, and what the trained ones hold.

    fig = plot_usage_curves({"softmax targets": used_a, "Sinkhorn codes": used_b},
                            {"softmax targets": entropy_a, "Sinkhorn codes": entropy_b}, k=16)
    fig = plot_prototype_table(evaluate_prototypes(checkpoint), top=16)

The table is drawn as numbers, not only colours: every cell says the share of the prototype's
studies that have the finding; the colour says how far that share is from the share among all
studies (the first row), so a prototype that gathers one finding stands out in red.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def plot_usage_curves(used: dict[str, list[int]], entropy: dict[str, list[float]], k: int,
                      width: float = 11.0):
    """Two panels over training steps, one line per run: prototypes in use (of k) and the entropy of
    the assignment histogram (nats; log k = every prototype equally used). used and entropy map a
    run's name to one value per step (step 0 = before the first update)."""
    if set(used) != set(entropy):
        raise ValueError(f"runs differ: used {sorted(used)} vs entropy {sorted(entropy)}")
    fig, axes = plt.subplots(1, 2, figsize=(width, 3.4), layout="constrained")
    for name in used:
        axes[0].plot(np.arange(len(used[name])), used[name], label=name)
        axes[1].plot(np.arange(len(entropy[name])), entropy[name], label=name)
    axes[0].axhline(k, color="gray", ls=":", lw=1, label=f"all K = {k}")
    axes[1].axhline(math.log(k), color="gray", ls=":", lw=1, label=f"log K = {math.log(k):.2f} (all equally used)")
    axes[0].set(xlabel="training step", ylabel="prototypes in use", ylim=(0, k + 1),
                title="prototypes that are some image's nearest")
    axes[1].set(xlabel="training step", ylabel="entropy of the assignments (nats)", ylim=(-0.05, math.log(k) + 0.2),
                title="how evenly the images spread")
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.legend(fontsize=9, frameon=False)
    return fig


def plot_prototype_table(result: dict, top: int = 16, width: float = 9.0):
    """An `evaluate_prototypes` result as a heatmap: the first row is all studies (the base rate of
    each finding), then the `top` largest prototypes, labelled "prototype id (size)"; every cell is
    written as the share of positive studies and coloured by that share minus the base rate."""
    findings = list(result["base_rate"])
    rows = result["table"][:top]
    base = np.array([result["base_rate"][f] for f in findings])                        # (F,)
    values = np.vstack([base, [[row["share"][f] for f in findings] for row in rows]])  # (1 + R, F)
    excess = values - base
    limit = max(float(np.abs(excess).max()), 1e-9)
    labels = [f"all {result['n_studies']} studies"] + [f"prototype {r['prototype']} ({r['size']})" for r in rows]
    fig, ax = plt.subplots(figsize=(width, 0.34 * len(labels) + 1.5), layout="constrained")
    image = ax.imshow(excess, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9,
                color="white" if abs(excess[i, j]) > 0.6 * limit else "black")
    ax.axhline(0.5, color="black", lw=1.5)                                               # base rate | prototypes
    ax.set_xticks(range(len(findings)), [f.replace("_", " ") for f in findings], fontsize=10)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    shown = sum(r["size"] for r in rows)
    ax.set_xlabel(f"{len(rows)} largest of {result['usage']['used']} used prototypes "
                  f"({shown} of {result['n_studies']} studies); cell = share of the prototype's studies "
                  "with the finding", fontsize=9)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("share minus the share among all studies", fontsize=9)
    return fig

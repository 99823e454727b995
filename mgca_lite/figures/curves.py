"""Figures of a pretraining run (from metrics.csv) and of a linear-probe comparison."""
from __future__ import annotations

import matplotlib.pyplot as plt


def plot_training_curves(rows: list[dict]):
    """Two panels: each loss term vs step (train solid, val dots), and retrieval top-1 / top-5."""
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for key, colour in (("loss", "black"), ("ita", "tab:blue"), ("cta", "tab:orange"), ("cpa", "tab:green")):
        if any(r[key] for r in train):
            ax_loss.plot([r["step"] for r in train], [r[key] for r in train], color=colour, label=key.upper())
            ax_loss.plot([r["step"] for r in val], [r[key] for r in val], "o", color=colour, ms=4)
    ax_loss.set(xlabel="optimizer step", ylabel="loss", title="MGCA loss terms (dots: validation)")
    ax_loss.legend(frameon=False)
    for key, colour in (("top1", "tab:purple"), ("top5", "tab:red")):
        ax_acc.plot([r["step"] for r in train], [r[key] for r in train], color=colour, label=f"{key} (train batch)")
        ax_acc.plot([r["step"] for r in val], [r[key] for r in val], "o", color=colour, ms=4)
    ax_acc.set(xlabel="optimizer step", ylabel="image -> report accuracy", ylim=(0, 1),
               title="in-batch retrieval (dots: validation)")
    ax_acc.legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_probe_summary(summary: dict, metric: str = "macro AUROC"):
    """Grouped bars: one group per label fraction, one bar per encoder, error bars = std over seeds."""
    encoders = list(summary)
    fractions = sorted({f for by_f in summary.values() for f in by_f})
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(encoders)
    for k, enc in enumerate(encoders):
        xs = [i + (k - (len(encoders) - 1) / 2) * width for i in range(len(fractions))]
        means = [summary[enc][f][0] for f in fractions]
        stds = [summary[enc][f][1] for f in fractions]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=enc)
    ax.set_xticks(range(len(fractions)), [f"{f:.0%}" for f in fractions])
    lows = [summary[e][f][0] for e in encoders for f in fractions]
    ax.set(xlabel="training labels", ylabel=metric, ylim=(max(0.0, min(lows) - 0.1), 1.0),
           title="linear probe on frozen features")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig

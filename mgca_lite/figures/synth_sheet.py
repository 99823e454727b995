"""Sample sheets of SynthCXR: films with their finding outlines, and reports with the finding
mentions coloured — the picture of what "which words belong to which region" means.

    fig = plot_sample_sheet([make_sample(i) for i in range(8)])
    save_sample_sheet("synth_sheet.png", n=8)

In the report text, a finding's colour is the colour of its outline; bold = positive mention,
italic = hedged (label -1), faint = negated ("no pneumothorax").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mgca_lite.data.synth import FINDINGS, SynthSample, make_sample

COLORS: dict[str, str] = dict(zip(FINDINGS, (
    "#e6194b", "#f58231", "#ffe119", "#3cb44b", "#42d4f4", "#4363d8", "#f032e6", "#bfef45",
    "#fabed4")))


def _report_lines(report: str, width: int) -> list[tuple[int, int]]:
    """Greedy word wrap keeping character offsets: [(start, end)] per line (end exclusive)."""
    lines, start = [], 0
    for para in report.split("\n"):
        end_of_para = start + len(para)
        while start < end_of_para:
            end = min(start + width, end_of_para)
            if end < end_of_para:
                cut = report.rfind(" ", start, end + 1)
                end = cut if cut > start else end
            lines.append((start, end))
            start = end + 1 if end < end_of_para and report[end] == " " else end
        start = end_of_para + 1
    return lines


def _draw_report(ax, s: SynthSample, fontsize: float) -> None:
    """Write the report into `ax` with every finding span coloured (monospace layout)."""
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_facecolor("#1c1c1c")                        # dark panel: every finding colour reads
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    fig = ax.figure
    probe = ax.text(0, 0, "M" * 40, fontsize=fontsize, family="monospace")
    box = probe.get_window_extent(renderer=fig.canvas.get_renderer())  # measured, not assumed
    probe.remove()
    ax_box = ax.get_window_extent()
    char_w = box.width / 40 / ax_box.width
    line_h = 1.35 * box.height / ax_box.height
    owner = [None] * len(s.report)                     # finding owning each character
    for a, b, f in s.spans:
        owner[a:b] = [f] * (b - a)
    pad = 0.5 * char_w
    for row, (a, b) in enumerate(_report_lines(s.report, max(10, int((1 - 2 * pad) / char_w)))):
        y = 1 - (row + 1.2) * line_h
        if y < 0:
            ax.text(pad, y + line_h, "...", fontsize=fontsize, family="monospace", color="white")
            break
        k = a
        while k < b:  # one text object per run of characters with the same owner
            e = k
            while e < b and owner[e] == owner[k]:
                e += 1
            f = owner[k]
            style = {"color": "#d0d0d0"}
            if f is not None:
                label = s.labels[f]
                style = {"color": COLORS[f], "fontweight": "bold" if label == 1 else "normal",
                         "fontstyle": "italic" if label == -1 else "normal",
                         "alpha": 0.6 if label == 0 else 1.0}
            ax.text(pad + (k - a) * char_w, y, s.report[k:e], fontsize=fontsize,
                    family="monospace", va="bottom", **style)
            k = e


def plot_sample_sheet(samples: list[SynthSample], ncols: int = 4, show_masks: bool = True,
                      show_reports: bool = True, fontsize: float = 5.0) -> Figure:
    """A grid of samples: image (mask contours in finding colours, dashed boxes) over its report."""
    nrows = int(np.ceil(len(samples) / ncols))
    img_h, rep_h = 3.0, (1.5 if show_reports else 0.0)
    fig = Figure(figsize=(3.0 * ncols, nrows * (img_h + rep_h) + 0.4), layout=None)
    FigureCanvasAgg(fig)  # a renderer to measure text with, without pyplot
    ratios = [img_h, rep_h] * nrows if show_reports else [img_h] * nrows
    gs = fig.add_gridspec(len(ratios), ncols, height_ratios=ratios, hspace=0.08, wspace=0.04,
                          left=0.01, right=0.99, top=0.97, bottom=0.04)
    for k, s in enumerate(samples):
        r, c = divmod(k, ncols)
        ax = fig.add_subplot(gs[r * (2 if show_reports else 1), c])
        ax.imshow(s.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        pos = [f for f in FINDINGS if s.labels[f] == 1]
        ax.set_title(f"#{s.index} {s.view}: " + (", ".join(pos) or "no positive label"),
                     fontsize=6)
        if show_masks:
            for f, m in s.masks.items():
                ax.contour(m.astype(float), levels=[0.5], colors=[COLORS[f]], linewidths=0.8)
            for f, x1, y1, x2, y2 in s.boxes:
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                                       ec=COLORS[f], lw=0.6, ls="--"))
        if show_reports:
            _draw_report(fig.add_subplot(gs[r * 2 + 1, c]), s, fontsize)
    handles = [Rectangle((0, 0), 1, 1, color=COLORS[f]) for f in FINDINGS]
    fig.legend(handles, FINDINGS, loc="lower center", ncol=len(FINDINGS), fontsize=6, frameon=False)
    return fig


def save_sample_sheet(path: str | Path, n: int = 8, seed: int = 0, image_size: int = 128,
                      ncols: int = 4, dpi: int = 150) -> Path:
    """Render samples 0 .. n-1 and save their sheet as an image (PNG by extension)."""
    fig = plot_sample_sheet([make_sample(i, seed, image_size) for i in range(n)], ncols=ncols)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return Path(path)

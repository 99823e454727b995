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
    lines = _report_lines(s.report, max(10, int((1 - 2 * pad) / char_w)))
    fits = max(1, int(1 / line_h - 1.2) + 1)           # rows whose baseline stays inside the panel
    if len(lines) > fits:                              # too long: the last row that fits says so
        lines = lines[:fits - 1]
        ax.text(pad, 1 - (fits + 0.2) * line_h, "...", fontsize=fontsize, family="monospace",
                va="bottom", color="white")
    for row, (a, b) in enumerate(lines):
        y = 1 - (row + 1.2) * line_h
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


def plot_sample_sheet(samples: list[SynthSample], ncols: int = 2, show_masks: bool = True,
                      show_reports: bool = True, fontsize: float = 8.0) -> Figure:
    """A grid of samples, `ncols` per row: each film (mask contours in finding colours, dashed
    boxes) with its report beside it.

    Sized to be read at a notebook's width (about 1,000 px, the figure's 100 dpi): with the
    defaults, two studies per row and the report at 8 pt, i.e. about 11 px per line.
    """
    nrows = int(np.ceil(len(samples) / ncols))
    img_w, rep_w = 2.6, (3.1 if show_reports else 0.0)  # inches
    # Each row is as tall as its film or its longest report, whichever is taller. The report's
    # lines are estimated here (a monospace character is 0.6 em wide, a line 1.35 x 1.17 em
    # high) and laid out exactly, by measuring the font, in _draw_report.
    chars = max(10, int(rep_w * 72 / (0.602 * fontsize)) - 2)
    line_in = 1.35 * 1.17 * fontsize / 72
    heights = []
    for r in range(nrows):
        longest = max((len(_report_lines(s.report, chars)) for s in samples[r * ncols:(r + 1) * ncols]
                       if show_reports), default=0)
        heights.append(max(img_w + 0.1, (longest + 1.4) * line_in))
    hspace = 0.35                                       # inches between rows: room for a title
    fig = Figure(figsize=(ncols * (img_w + rep_w) + 0.2, sum(heights) + hspace * nrows + 0.45),
                 layout=None)
    FigureCanvasAgg(fig)  # a renderer to measure text with, without pyplot
    ratios = [img_w, rep_w] * ncols if show_reports else [img_w] * ncols
    H = fig.get_figheight()
    gs = fig.add_gridspec(nrows, len(ratios), width_ratios=ratios, height_ratios=heights,
                          hspace=hspace / np.mean(heights), wspace=0.03, left=0.01, right=0.99,
                          top=1 - hspace / H, bottom=0.45 / H)
    per = 2 if show_reports else 1
    for k, s in enumerate(samples):
        r, c = divmod(k, ncols)
        ax = fig.add_subplot(gs[r, c * per])
        ax.imshow(s.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_anchor("N")                                  # film and report share their top edge
        ax.set_xticks([]), ax.set_yticks([])
        pos = [f for f in FINDINGS if s.labels[f] == 1]
        ax.set_title(f"#{s.index} {s.view}: " + (", ".join(pos) or "no positive label"),
                     fontsize=fontsize, loc="left")
        if show_masks:
            for f, m in s.masks.items():
                ax.contour(m.astype(float), levels=[0.5], colors=[COLORS[f]], linewidths=1.2)
            for f, x1, y1, x2, y2 in s.boxes:
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                                       ec=COLORS[f], lw=0.9, ls="--"))
        if show_reports:
            _draw_report(fig.add_subplot(gs[r, c * per + 1]), s, fontsize)
    handles = [Rectangle((0, 0), 1, 1, color=COLORS[f]) for f in FINDINGS]
    fig.legend(handles, FINDINGS, loc="lower center", ncol=len(FINDINGS) if ncols > 2 else 5,
               fontsize=fontsize, frameon=False)
    return fig


def save_sample_sheet(path: str | Path, n: int = 8, seed: int = 0, image_size: int = 128,
                      ncols: int = 2, dpi: int = 150) -> Path:
    """Render samples 0 .. n-1 and save their sheet as an image (PNG by extension)."""
    fig = plot_sample_sheet([make_sample(i, seed, image_size) for i in range(n)], ncols=ncols)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return Path(path)

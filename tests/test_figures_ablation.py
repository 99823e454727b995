"""plot_seed_strips: every pretraining seed drawn, the mean as a bar, the axis spanning the data."""
import matplotlib

matplotlib.use("Agg")

import numpy as np

from mgca_lite.figures.ablation import plot_seed_strips


def test_every_seed_is_a_dot_and_every_mean_a_bar():
    results = {m: {f: {"mean": float(np.mean(v)), "std": float(np.std(v)), "seeds": v}
                   for f, v in (("1", [0.50 + d, 0.52 + d, 0.54 + d]), ("10", [0.60 + d, 0.61 + d, 0.62 + d]))}
               for m, d in (("ita", 0.0), ("mgca", 0.1))}
    fig = plot_seed_strips(results, "AUROC", {"ita": "ITA", "mgca": "MGCA"}, baseline=0.45, baseline_label="chance")
    assert len(fig.axes) == 2
    first = fig.axes[0]
    dots = np.concatenate([c.get_offsets()[:, 1] for c in first.collections if c.get_offsets().shape[1] == 2
                           and len(c.get_offsets()) == 3])
    np.testing.assert_allclose(sorted(dots), sorted(results["ita"]["1"]["seeds"] + results["mgca"]["1"]["seeds"]))
    bars = sorted(seg[0][1] for c in first.collections if hasattr(c, "get_segments") for seg in c.get_segments())
    np.testing.assert_allclose(bars, [0.52, 0.62])
    low, high = first.get_ylim()
    assert low < 0.45 < 0.50 and 0.72 < high < 0.8  # spans the data and the baseline, not 0..1
    assert [t.get_text() for t in first.get_xticklabels()] == ["ITA", "MGCA"]

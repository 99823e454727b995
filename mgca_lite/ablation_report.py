"""results/README.md of an ablation: tables shaped like the paper's Tables 1-4, with the paper's
numbers (spec §5; real chest X-rays, ResNet-50 unless marked) beside ours on SynthCXR.

Ours and the paper's are different data and encoders: read the paper's column for the ordering of
methods, never as a target for our absolute values.
"""
from __future__ import annotations

from pathlib import Path

# The paper's numbers (%, MGCA NeurIPS 2022), keyed like our results: section -> dataset -> method -> cells.
PAPER = {
    "linear_probe": {
        "chexpert5": {"mgca": {"1": 87.6, "10": 88.0, "100": 88.2}, "random": {"1": 56.1, "10": 62.6, "100": 65.7}},
        "rsna": {"mgca": {"1": 88.6, "10": 89.1, "100": 89.9}},
        "covidx": {"mgca": {"1": 72.0, "10": 83.5, "100": 90.5}},
    },
    "segmentation": {"siim": {"mgca": {"1": 49.7, "10": 59.3, "100": 64.2}},
                     "rsna": {"mgca": {"1": 63.0, "10": 68.3, "100": 69.8}}},
    "detection": {"rsna": {"mgca": {"1": 12.9, "10": 16.8, "100": 24.9}}},
}
# Table 4 of the paper (ViT-B/16, CheXpert linear probe at 1 % labels, AUROC %).
PAPER_ABLATION = {"ita": 87.6, "ita_cta": 88.3, "ita_cpa": 88.5, "mgca": 88.8}
METHOD_NAMES = {"random": "random init", "ita": "ITA (ConVIRT-like)", "ita_cta": "ITA + CTA",
                "ita_cpa": "ITA + CPA", "mgca": "ITA + CTA + CPA (MGCA)"}
TITLES = {"linear_probe": "Table 1 — linear probe", "finetune": "Full fine-tuning",
          "segmentation": "Table 3 — segmentation (Dice)", "detection": "Table 3 — detection (mAP@[0.40:0.75])",
          "zero_shot": "Zero-shot classification", "retrieval": "Retrieval over the whole test split",
          "grounding": "Grounding (CTA word -> patch maps)", "prototypes": "Prototypes"}


def _cell(block: dict) -> str:
    return f"{block['mean']:.3f} ± {block['std']:.3f}"


def section_table(section: str, by_dataset: dict, seeds: str) -> list[str]:
    """Markdown lines: one row per method, one column per dataset x (fraction or metric); the
    paper's value beside ours where it has one. `seeds` says what the cells are over ("3 of 3")."""
    lines = [f"### {TITLES.get(section, section)}", "", f"Over {seeds} pretraining seeds.", ""]
    for dataset, by_method in by_dataset.items():
        keys = list(next(iter(by_method.values())))
        paper = PAPER.get(section, {}).get(dataset, {})
        head = [f"{k} %" if k.isdigit() else k for k in keys]
        lines += [f"**{dataset}**", "", "| method | " + " | ".join(head) + (" | paper (" + ", ".join(head) + ")" if paper else "") + " |",
                  "|---" * (len(keys) + 1 + bool(paper)) + "|"]
        for method, cells in by_method.items():
            row = [METHOD_NAMES.get(method, method)] + [_cell(cells[k]) for k in keys]
            if paper:
                row.append(" / ".join(f"{paper[method][k]:.1f}" for k in keys) if method in paper else "—")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return lines


def ablation_table(results: dict) -> list[str]:
    """Table 4: CheXpert-like linear probe at 1 % labels per variant, beside the paper's ablation."""
    probe = results.get("linear_probe", {}).get("chexpert5")
    if not probe:
        return []
    lines = ["### Table 4 — ablation (CheXpert-like linear probe, 1 % labels, macro AUROC)", "",
             f"Over {_seeds_of(results, 'linear_probe')} pretraining seeds.", "",
             "| method | ours | paper (ViT-B/16, %) |", "|---|---|---|"]
    for method, cells in probe.items():
        paper = PAPER_ABLATION.get(method)
        lines.append(f"| {METHOD_NAMES.get(method, method)} | {_cell(cells['1'])} | {paper if paper else '—'} |")
    return lines + [""]


def _seeds_of(report: dict, section: str) -> str:
    """'k of N': the pretraining seeds a section's cells are over."""
    meta = report["meta"]
    return f"{meta['seeds_per_section'][section]} of {meta['seeds_requested']}"


def write_readme(path: str | Path, report: dict) -> None:
    """Write the ablation's markdown report (`report` = the synth_C.json content)."""
    meta = report["meta"]
    lines = ["# Ablation results on SynthCXR", "",
             f"Made by `{meta['command']}` (last invocation {meta['wall_s_last_invocation']} s"
             f"{'; smoke mode: sizes too small to read anything into' if meta['smoke'] else ''}).",
             "Every cell is mean ± std over pretraining seeds (label subset 0 of each fraction); each table says "
             "over how many, since an ablation that is still running reports every finished seed of each task. "
             "The paper's numbers are on real chest X-rays with ResNet-50 (Table 4: ViT-B/16): compare "
             "orderings, not values.", ""]
    lines += ablation_table(report)
    for section, by_dataset in report.items():
        if section != "meta" and by_dataset:
            lines += section_table(section, by_dataset, _seeds_of(report, section))
    Path(path).write_text("\n".join(lines) + "\n")

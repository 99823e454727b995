"""SynthCXR: the built-in procedural dataset of paired chest radiographs and reports.

    sample = make_sample(index=7, seed=0, image_size=128)
    sample.image   # uint8 (128, 128) frontal chest film
    sample.report  # "FINDINGS: ... IMPRESSION: ..."
    sample.labels  # {"atelectasis": 0, "cardiomegaly": 1, ...}  1 / 0 / -1 (uncertain)

Everything is a pure function of (index, seed): three independent random streams are derived from
them — the *case* (findings, sides, severities), the *report* wording and the *rendering* (pose,
exposure, noise) — so the labels and report of a sample never depend on `image_size`, and the same
case renders at any size. No global random state is touched.

Module map: `synth_case` (what the patient has), `synth_report` (what the radiologist wrote),
`synth_anatomy` (the normal chest, cached per size), `synth_findings` (one renderer per finding),
`synth_render` (pose, exposure, noise, masks and boxes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .synth_case import CHEXPERT5, FINDINGS, Case, SynthConfig, draw_case
from .synth_render import render_case
from .synth_report import SYNONYM_WORDS, write_report

__all__ = ["FINDINGS", "CHEXPERT5", "SYNONYM_WORDS", "SynthConfig", "SynthSample", "make_sample",
           "make_case", "sample_labels", "sample_report", "report_corpus"]

DEFAULT_CONFIG = SynthConfig()
_CASE, _REPORT = 0, 1  # stream ids: rng = default_rng([seed, index, stream]); 2 = rendering


@dataclass
class SynthSample:
    """One SynthCXR study.

    image:  uint8 (H, W), H = W = image_size.
    report: the report text.
    labels: finding -> 1 / 0 / -1 for every finding in FINDINGS (-1 = the report hedges).
    masks:  finding -> bool (H, W) for every finding drawn in the image (all labels-1 findings
            and the -1 findings that are really present; see `present`). Devices: the device
            pixels; pneumothorax: the lucent pleural space.
    boxes:  [(finding, x1, y1, x2, y2)] half-open pixel boxes: mask[y1:y2, x1:x2] holds one
            rendered part (e.g. one side of a bilateral effusion, one device) exactly.
    spans:  [(start, end, finding)] character spans of report mentions (positive, hedged or
            negated); report[start:end] contains one of SYNONYM_WORDS[finding].
    present: finding -> bool, the image truth (a -1 label may be either).
    view:   "PA" or "AP".
    details: finding -> {"side", "zone", "severity"} for present findings.
    """

    image: np.ndarray
    report: str
    labels: dict[str, int]
    masks: dict[str, np.ndarray]
    boxes: list[tuple[str, int, int, int, int]]
    spans: list[tuple[int, int, str]]
    present: dict[str, bool] = field(default_factory=dict)
    view: str = "PA"
    details: dict[str, dict] = field(default_factory=dict)
    index: int = -1


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), stream])


def make_case(index: int, seed: int = 0, config: SynthConfig | None = None,
              force: dict[str, bool] | None = None) -> Case:
    """Draw the case of sample (index, seed). `force` sets findings present (True) or absent
    (False) with a definite label (1 / 0), e.g. to show one finding in a notebook or a test."""
    cfg = config or DEFAULT_CONFIG
    case = draw_case(_rng(seed, index, _CASE), cfg)
    for f, on in (force or {}).items():
        if f not in FINDINGS:
            raise KeyError(f"unknown finding {f!r}; expected one of {FINDINGS}")
        fc = case.findings[f]
        fc.present, fc.label = bool(on), int(bool(on))
        if on and fc.severity < 0.3:
            fc.severity = 0.3 + fc.severity  # a forced finding should be clearly visible
    return case


def make_sample(index: int, seed: int = 0, image_size: int = 128,
                config: SynthConfig | None = None,
                force: dict[str, bool] | None = None) -> SynthSample:
    """Render sample (index, seed) at `image_size` px: image uint8 (image_size, image_size).

    Deterministic in (index, seed, image_size, config, force). See `make_case` for `force`.
    """
    cfg = config or DEFAULT_CONFIG
    case = make_case(index, seed, cfg, force)
    report, spans = write_report(case, _rng(seed, index, _REPORT), cfg)
    image, masks, boxes = render_case(case, image_size, cfg, seed, index)
    details = {f: {"side": fc.side, "zone": fc.zone, "severity": round(fc.severity, 3)}
               for f, fc in case.findings.items() if fc.present}
    return SynthSample(image=image, report=report, labels=case.labels, masks=masks, boxes=boxes,
                       spans=spans, present=case.present, view=case.view, details=details,
                       index=int(index))


def sample_labels(index: int, seed: int = 0, config: SynthConfig | None = None) -> dict[str, int]:
    """The labels of sample (index, seed) without rendering or writing anything (fast)."""
    return make_case(index, seed, config).labels


def sample_report(index: int, seed: int = 0,
                  config: SynthConfig | None = None) -> tuple[str, list[tuple[int, int, str]]]:
    """The report and spans of sample (index, seed) without rendering (== make_sample's)."""
    cfg = config or DEFAULT_CONFIG
    return write_report(make_case(index, seed, cfg), _rng(seed, index, _REPORT), cfg)


def report_corpus(n: int, seed: int = 0, start: int = 0,
                  config: SynthConfig | None = None) -> list[str]:
    """The reports of samples start .. start+n-1 without rendering images (fast: ~10k/s).

    Used to train the WordPiece tokenizer; report_corpus(n)[i] == make_sample(i).report.
    """
    return [sample_report(i, seed, config)[0] for i in range(start, start + n)]

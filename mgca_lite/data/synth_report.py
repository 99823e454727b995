"""SynthCXR reports: a small grammar that writes a radiology report for a `Case`.

Reports read like MIMIC-CXR: a FINDINGS section and an IMPRESSION section, synonyms, location and
severity words, pertinent negatives ("No pleural effusion or pneumothorax."), hedges ("possible",
"cannot exclude", "may represent") for uncertain labels, comparisons with a prior, device
positions, boilerplate normal statements and sentences about things not in the image.

The text is deliberately *noisier than the labels*: a present finding is written up only with
probability `SynthConfig.p_mention` (radiologists omit things), so some positives have no span.
Labels are the truth of the image; the report is evidence about it.

Every finding mention — positive, hedged or negated — records a character span
`(start, end, finding)`; `report[start:end]` always contains one of `SYNONYM_WORDS[finding]`.
These spans are what makes word-to-region alignment measurable on SynthCXR (pointing game).
"""

from __future__ import annotations

import numpy as np

from .synth_case import FINDINGS, Case, FindingCase, SynthConfig, nodule_mm

# Words (lowercase substrings) that name each finding; every span contains at least one.
SYNONYM_WORDS: dict[str, tuple[str, ...]] = {
    "atelectasis": ("atelecta", "collapse"),
    "cardiomegaly": ("cardiomegaly", "cardiac", "heart", "cardiomediastinal"),
    "consolidation": ("consolidat",),
    "edema": ("edema", "congestion"),
    "pleural_effusion": ("effusion", "pleural fluid"),
    "pneumonia": ("pneumonia", "infect"),
    "pneumothorax": ("pneumothora",),
    "nodule": ("nodul", "mass"),
    "support_devices": ("tube", "catheter", "line", "pacemaker", "wires", "clips", "device"),
}

_LOBES = {("right", "upper"): "right upper lobe", ("right", "middle"): "right middle lobe",
          ("right", "lower"): "right lower lobe", ("left", "upper"): "left upper lobe",
          ("left", "middle"): "lingula", ("left", "lower"): "left lower lobe"}
_ZONE_WORDS = {"upper": ("upper zone", "apex", "upper lung"),
               "middle": ("mid lung", "midlung zone", "perihilar region"),
               "lower": ("base", "lung base", "lower zone")}
_SEVERITY = {"size": ("small", "moderate", "large"), "degree": ("mild", "moderate", "severe")}
_CHANGE = {"new": ("new", "interval development of"), "unchanged": ("unchanged", "stable"),
           "increased": ("increased", "interval increase in"),
           "decreased": ("decreased", "improving")}
_DEVICE_SENTENCES = {
    "ett": [("The ", None), ("endotracheal tube", "support_devices"),
            (" terminates {cm} cm above the carina.", None)],
    "ng": [("An ", None), ("enteric tube", "support_devices"),
           (" courses below the diaphragm with the tip in the stomach.", None)],
    "cvc": [("Right internal jugular ", None), ("central venous catheter", "support_devices"),
            (" terminates in the lower SVC.", None)],
    "picc": [("A left-sided ", None), ("PICC line", "support_devices"),
             (" ends in the mid SVC.", None)],
    "pacemaker": [("Left chest wall ", None), ("pacemaker", "support_devices"),
                  (" with leads in the right atrium and right ventricle.", None)],
    "sternal_wires": [("Median ", None), ("sternotomy wires", "support_devices"),
                      (" are intact.", None)],
    "clips": [("Surgical ", None), ("clips", "support_devices"),
              (" project over the right upper quadrant.", None)],
}
_DISTRACTORS = (
    "Degenerative changes are noted in the thoracic spine.",
    "The osseous structures are unremarkable.",
    "No acute osseous abnormality is seen.",
    "The visualized upper abdomen is unremarkable.",
    "Healed fracture of a left posterior rib is noted.",
    "Clinical correlation is recommended.",
    "Findings were discussed with the referring physician by telephone.",
    "Recommend follow-up radiograph after treatment.",
    "Mild degenerative changes of both shoulders.",
    "Old granulomatous disease cannot be assessed on this single view.",
    "Please note that this study was obtained with the patient in bed.",
    "Evaluation of the lateral view is limited by motion.",
)

Segment = tuple[str, "str | None"]  # (text, finding the text names or None)


class _Writer:
    """Accumulates sentences and the character spans of the finding mentions in them."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: list[tuple[int, int, str]] = []

    def raw(self, s: str) -> None:
        self.text += s

    def sentence(self, segs: list[Segment]) -> None:
        """Append one sentence (capitalised, space-separated from the previous one)."""
        if self.text and not self.text.endswith((" ", "\n")):
            self.text += " "
        first = True
        for s, finding in segs:
            if first and s:
                s, first = s[0].upper() + s[1:], False
            if finding is not None:
                self.spans.append((len(self.text), len(self.text) + len(s), finding))
            self.text += s


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _severity(fc: FindingCase, kind: str, rng: np.random.Generator) -> str:
    """'small ' / 'moderate ' / ... (with trailing space) or '' (severity not always stated)."""
    if rng.random() < 0.3:
        return ""
    return _SEVERITY[kind][min(2, int(fc.severity * 3))] + " "


def _location(fc: FindingCase, rng: np.random.Generator, adjective: bool = False) -> str:
    """A lobe ('right lower lobe') or a zone ('left base') for a one-sided finding."""
    if rng.random() < 0.6:
        lobe = _LOBES[(fc.side, fc.zone)]
        return "lingular" if adjective and lobe == "lingula" else lobe
    return f"{fc.side} {_pick(rng, _ZONE_WORDS[fc.zone])}"


def _side_word(fc: FindingCase) -> str:
    return "bilateral" if fc.side == "bilateral" else fc.side


def _noun_phrase(f: str, fc: FindingCase, rng: np.random.Generator, hedged: bool = False) -> str:
    """A noun phrase describing a present (or hedged) finding, e.g. 'small right pleural effusion'."""
    if f == "pleural_effusion":
        plural = "s" if fc.side == "bilateral" else ""
        return _pick(rng, [f"{_severity(fc, 'size', rng)}{_side_word(fc)} pleural effusion{plural}",
                           f"{_severity(fc, 'size', rng)}{_side_word(fc)} effusion{plural}",
                           f"{_side_word(fc)} layering pleural fluid"])
    if f == "cardiomegaly":
        return _pick(rng, [f"{_severity(fc, 'degree', rng)}cardiomegaly",
                           "enlargement of the cardiac silhouette", "enlarged heart size"])
    if f == "edema":
        if fc.severity < 0.25 and rng.random() < 0.5:
            return "mild pulmonary vascular congestion"
        return _pick(rng, [f"{_severity(fc, 'degree', rng)}pulmonary edema",
                           f"{_severity(fc, 'degree', rng)}interstitial edema",
                           "perihilar haziness consistent with pulmonary edema"])
    if f == "consolidation":
        loc, adj = _location(fc, rng), _location(fc, rng, adjective=True)
        return _pick(rng, [f"{adj} consolidation", f"focal consolidation in the {loc}",
                           f"{adj} airspace consolidation with air bronchograms"])
    if f == "pneumonia":
        adj = _location(fc, rng, adjective=True)
        if hedged:
            return _pick(rng, [f"{adj} pneumonia", f"early {adj} pneumonia"])
        return _pick(rng, [f"{adj} pneumonia", f"{adj} opacity concerning for pneumonia",
                           f"findings compatible with {adj} pneumonia",
                           f"{adj} infectious process"])
    if f == "atelectasis":
        if fc.side == "bilateral":
            return _pick(rng, ["bibasilar atelectasis", "bibasilar plate-like atelectasis"])
        if fc.severity > 0.75 and fc.zone == "lower" and rng.random() < 0.5:
            return f"{fc.side} lower lobe collapse"
        return _pick(rng, [f"{fc.side} basilar atelectasis", f"plate-like atelectasis at the "
                           f"{fc.side} base", f"subsegmental atelectasis in the {_location(fc, rng)}"])
    if f == "pneumothorax":
        return _pick(rng, [f"{_severity(fc, 'size', rng)}{fc.side} pneumothorax",
                           f"{_severity(fc, 'size', rng)}{fc.side} apical pneumothorax"])
    if f == "nodule":
        mm = nodule_mm(fc.severity)  # the renderer draws the same size
        if fc.count > 1:
            return _pick(rng, [f"multiple pulmonary nodules, the largest measuring {mm} mm in the "
                               f"{_location(fc, rng)}", "multiple bilateral pulmonary nodules"])
        if mm >= 30:
            return f"{mm} mm mass in the {_location(fc, rng)}"
        return _pick(rng, [f"{mm} mm nodule in the {_location(fc, rng)}",
                           f"{_location(fc, rng, True)} nodular opacity measuring {mm} mm",
                           f"{_location(fc, rng, True)} pulmonary nodule"])
    raise ValueError(f"no noun phrase for {f}")


def _positive(f: str, fc: FindingCase, rng: np.random.Generator) -> list[Segment]:
    """A sentence asserting a present finding (with its change versus the prior)."""
    np_ = _noun_phrase(f, fc, rng)
    if fc.change:
        change = _pick(rng, _CHANGE[fc.change])
        return [(f"{change} ", None), (np_, f), (".", None)]
    verb = " are seen." if np_.startswith("multiple") or np_.endswith("effusions") else " is seen."
    return _pick(rng, [[("There is ", None), (np_, f), (".", None)],
                       [(np_, f), (verb, None)],
                       [(np_, f), (".", None)]])


def positive_sentence(f: str, fc: FindingCase, rng: np.random.Generator) -> str:
    """The text of one sentence asserting `f` as `write_report` writes it (e.g. "There is small
    right pleural effusion."); zero-shot prompts are built from these (evaluation/zeroshot.py)."""
    writer = _Writer()
    writer.sentence(_positive(f, fc, rng))
    return writer.text


def _hedged(f: str, fc: FindingCase, rng: np.random.Generator) -> list[Segment]:
    """A sentence for an uncertain (-1) label: the finding is hedged, never asserted."""
    np_ = _noun_phrase(f, fc, rng, hedged=True)
    options = [[("possible ", None), (np_, f), (".", None)],
               [("cannot exclude ", None), (np_, f), (".", None)],
               [("questionable ", None), (np_, f), (".", None)]]
    if f in ("consolidation", "pneumonia", "atelectasis", "edema", "nodule"):
        options.append([("subtle opacity may represent ", None), (np_, f), (".", None)])
    if not np_.endswith("s"):
        options.append([(np_, f), (" is not excluded.", None)])
    return _pick(rng, options)


_NEGATED_NAMES = {"atelectasis": "atelectasis", "consolidation": "focal consolidation",
                  "edema": "pulmonary edema", "pleural_effusion": "pleural effusion",
                  "pneumonia": "pneumonia", "pneumothorax": "pneumothorax",
                  "nodule": "suspicious pulmonary nodule"}


def _negations(fs: list[str], rng: np.random.Generator) -> list[Segment]:
    """'No pleural effusion, pneumothorax, or focal consolidation.' — one span per finding."""
    segs: list[Segment] = [(_pick(rng, ["no ", "no evidence of "]), None)]
    for i, f in enumerate(fs):
        if i:
            segs.append((" or " if i == len(fs) - 1 and len(fs) == 2 else
                         (", or " if i == len(fs) - 1 else ", "), None))
        segs.append((_NEGATED_NAMES[f], f))
    segs.append((".", None))
    return segs


def write_report(case: Case, rng: np.random.Generator, cfg: SynthConfig) -> tuple[str, list]:
    """Write the report of `case`. Returns (text, spans) with spans [(start, end, finding)]."""
    w = _Writer()
    fs = case.findings
    mentioned = [f for f in FINDINGS if fs[f].label == 1 and rng.random() < cfg.p_mention[f]]
    hedged = [f for f in FINDINGS if fs[f].label == -1]
    negatable = [f for f in _NEGATED_NAMES if fs[f].label == 0
                 and rng.random() < cfg.p_pertinent_negative]

    w.raw("FINDINGS: ")
    w.sentence([("PA and lateral views of the chest." if case.view == "PA" else
                 _pick(rng, ["Portable AP view of the chest.", "Single portable AP chest radiograph."]),
                 None)])
    if case.has_prior:
        w.sentence([(_pick(rng, ["Comparison is made with the prior study.",
                                 "Compared with the previous radiograph."]), None)])
        for f in FINDINGS:  # a previously reported finding that has since resolved
            if fs[f].label == 0 and f in _NEGATED_NAMES and rng.random() < 0.04:
                w.sentence([("previously seen ", None), (_NEGATED_NAMES[f], f),
                             (" has resolved.", None)])
    if "support_devices" in mentioned:
        for dev in fs["support_devices"].devices:
            segs = [(s.format(cm=int(rng.integers(3, 6))), f) for s, f in _DEVICE_SENTENCES[dev]]
            w.sentence(segs)
    lung = ["consolidation", "pneumonia", "atelectasis", "edema", "nodule"]
    for f in lung + ["pleural_effusion", "pneumothorax"]:
        if f in mentioned:
            w.sentence(_positive(f, fs[f], rng))
        elif f in hedged:
            w.sentence(_hedged(f, fs[f], rng))
    if not any(fs[f].present or fs[f].label != 0 for f in lung):
        w.sentence([(_pick(rng, ["The lungs are clear.", "Lungs are well expanded and clear."]),
                     None)])
    card = fs["cardiomegaly"]
    if "cardiomegaly" in mentioned:
        w.sentence(_positive("cardiomegaly", card, rng))
    elif card.label == -1:
        w.sentence([("borderline ", None), ("enlarged heart size", "cardiomegaly"),
                    (" is unchanged." if case.has_prior else ".", None)])
    elif card.label == 0:
        w.sentence(_pick(rng, [[("heart size is normal", "cardiomegaly"), (".", None)],
                               [("the ", None), ("cardiomediastinal silhouette", "cardiomegaly"),
                                (" is within normal limits.", None)]]))
    if negatable:
        order = rng.permutation(len(negatable))
        w.sentence(_negations([negatable[i] for i in order[:3]], rng))
        if len(negatable) > 3:
            w.sentence(_negations([negatable[i] for i in order[3:]], rng))
    lo, hi = cfg.n_distractor_sentences
    for i in rng.permutation(len(_DISTRACTORS))[: int(rng.integers(lo, hi + 1))]:
        w.sentence([(_DISTRACTORS[i], None)])

    w.raw("\n\nIMPRESSION: ")
    items = [f for f in mentioned if f != "support_devices" and rng.random() < 0.85]
    items += [f for f in hedged if rng.random() < 0.6]
    if not items:
        w.sentence([(_pick(rng, ["No acute cardiopulmonary process.",
                                 "No acute intrathoracic abnormality."]), None)])
    numbered = rng.random() < cfg.p_numbered_impression and len(items) > 1
    for i, f in enumerate(items):
        if numbered:
            w.raw(f"{' ' if i else ''}{i + 1}. ")
        segs = _hedged(f, fs[f], rng) if fs[f].label == -1 else [(_noun_phrase(f, fs[f], rng), f),
                                                                  (".", None)]
        w.sentence(segs)
    if "support_devices" in mentioned:
        w.sentence([(_pick(rng, ["lines and tubes", "support devices"]), "support_devices"),
                    (" in standard position.", None)])
    return w.text, w.spans

"""SynthCXR generator: determinism, findings, masks / boxes, report spans, label statistics."""

import re

import numpy as np
import pytest

from mgca_lite.data.synth import (CHEXPERT5, FINDINGS, SYNONYM_WORDS, SynthConfig, make_case,
                                  make_sample, report_corpus, sample_labels, sample_report)

SIZE = 64  # small renders keep the suite fast; geometry is resolution independent
HEDGES = ("possible", "cannot exclude", "questionable", "may represent", "not excluded",
          "borderline")
NEGATIONS = ("no ", "normal", "resolved")


def test_finding_names_are_the_contract():
    assert FINDINGS == ("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion",
                        "pneumonia", "pneumothorax", "nodule", "support_devices")
    assert CHEXPERT5 == FINDINGS[:5]


def test_deterministic_in_index_and_seed():
    a, b = make_sample(3, seed=1, image_size=SIZE), make_sample(3, seed=1, image_size=SIZE)
    assert a.image.dtype == np.uint8 and a.image.shape == (SIZE, SIZE)
    assert a.image.tobytes() == b.image.tobytes()
    assert (a.report, a.labels, a.spans, a.boxes) == (b.report, b.labels, b.spans, b.boxes)
    assert make_sample(4, seed=1, image_size=SIZE).image.tobytes() != a.image.tobytes()
    assert make_sample(3, seed=2, image_size=SIZE).image.tobytes() != a.image.tobytes()


def test_case_and_report_do_not_depend_on_image_size():
    for i in range(5):
        small, big = make_sample(i, image_size=48), make_sample(i, image_size=96)
        assert (small.report, small.labels, small.spans, small.present) == \
            (big.report, big.labels, big.spans, big.present)
        assert big.image.shape == (96, 96)


def test_report_corpus_matches_samples():
    corpus = report_corpus(6, seed=0)
    assert corpus == [make_sample(i, image_size=32).report for i in range(6)]
    assert all("FINDINGS:" in r and "IMPRESSION:" in r for r in corpus)


def _bbox(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


@pytest.mark.parametrize("finding", FINDINGS)
def test_each_finding_renders_with_matching_mask_and_boxes(finding):
    off = {f: False for f in FINDINGS}
    for index in (11, 12):
        with_f = make_sample(index, image_size=96, force={**off, finding: True})
        without = make_sample(index, image_size=96, force=off)
        assert with_f.labels[finding] == 1 and without.labels[finding] == 0
        assert set(with_f.masks) == {finding} and not without.masks
        mask = with_f.masks[finding]
        assert mask.dtype == bool and mask.shape == (96, 96) and mask.any()
        boxes = [b[1:] for b in with_f.boxes if b[0] == finding]
        assert boxes, "a positive finding with a region has at least one box"
        covered = np.zeros_like(mask)
        for x1, y1, x2, y2 in boxes:
            part = mask[y1:y2, x1:x2]  # the box is a part's bounding box: all four edges touched
            assert part[0].any() and part[-1].any() and part[:, 0].any() and part[:, -1].any()
            covered[y1:y2, x1:x2] = True
        assert not (mask & ~covered).any(), "every mask pixel lies in some box"
        if len(boxes) == 1:
            assert tuple(boxes[0]) == _bbox(mask)
        diff = np.abs(with_f.image.astype(int) - without.image.astype(int))
        assert diff[mask].mean() > 2.0 and diff[mask].mean() > 3 * diff[~mask].mean(), finding


def test_spans_name_their_finding_and_polarity_matches_labels():
    assert sample_report(7) == (make_sample(7, image_size=32).report, make_sample(7, image_size=32).spans)
    for i in range(400):
        case = make_case(i)
        report, spans = sample_report(i)
        for start, end, f in spans:
            text = report[start:end].lower()
            assert any(w in text for w in SYNONYM_WORDS[f]), (text, f)
            sentence = report[report.rfind(".", 0, start) + 1: report.find(".", end) + 1].lower()
            label = case.labels[f]
            if label == 0:
                assert any(n in sentence for n in NEGATIONS), sentence
            elif label == -1:
                assert any(h in sentence for h in HEDGES), sentence
            else:
                assert not re.search(r"\bno\b", sentence) and not any(h in sentence for h in HEDGES)


def test_negated_findings_have_no_mask():
    for i in range(40):
        s = make_sample(i, image_size=32)
        for f, label in s.labels.items():
            if label == 0:
                assert f not in s.masks and not s.present[f]
        assert set(s.masks) <= {f for f in FINDINGS if s.present[f]}
        assert {b[0] for b in s.boxes} == set(s.masks)


def test_label_frequencies_match_configured_prevalence():
    cfg = SynthConfig()
    n = 4000
    present = np.array([[c.findings[f].present for f in FINDINGS]
                        for c in (make_case(i, seed=5) for i in range(n))])
    for k, f in enumerate(FINDINGS):
        p = cfg.prevalence[f]
        assert abs(present[:, k].mean() - p) < 4 * np.sqrt(p * (1 - p) / n) + 0.01, f
    labels = np.array([[sample_labels(i, 5)[f] for f in FINDINGS] for i in range(1000)])
    assert set(np.unique(labels)) == {-1, 0, 1}
    assert 0.05 < (labels == 1).mean() < 0.35  # moderate prevalence overall


def test_findings_are_correlated_like_radiology():
    cases = [make_case(i) for i in range(4000)]

    def p(f, given=None):
        sel = [c for c in cases if given is None or c.findings[given].present]
        return np.mean([c.findings[f].present for c in sel])

    assert p("edema", "cardiomegaly") > 1.5 * p("edema")
    assert p("consolidation", "pneumonia") > 2 * p("consolidation")
    assert p("pleural_effusion", "edema") > 1.5 * p("pleural_effusion")


def test_uncertain_labels_follow_chexpert_policies():
    cases = [make_case(i) for i in range(6000)]
    for f, mostly_present in (("atelectasis", True), ("edema", True), ("cardiomegaly", False)):
        hedged = [c.findings[f].present for c in cases if c.findings[f].label == -1]
        assert len(hedged) > 20
        assert (np.mean(hedged) > 0.5) == mostly_present, f


def test_force_rejects_unknown_findings():
    with pytest.raises(KeyError, match="unknown finding"):
        make_sample(0, image_size=32, force={"fracture": True})


def test_side_marker_sits_on_the_patients_side():
    # A film is viewed facing the patient: the patient's right is on the image's left, so an "R"
    # marker must be in the top-left corner and an "L" marker in the top-right one. The marker is
    # the only difference between a render with p_marker=1 and one with p_marker=0.
    from dataclasses import replace

    from mgca_lite.data.synth_render import marker_glyph

    always, never = replace(SynthConfig(), p_marker=1.0), replace(SynthConfig(), p_marker=0.0)
    seen = set()
    for index in range(40):
        marked = make_sample(index, image_size=SIZE, config=always).image
        plain = make_sample(index, image_size=SIZE, config=never).image
        changed = marked != plain
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        assert len(rows), f"sample {index}: no marker burned"
        burned = marked[rows[0]:, cols[0]:] == 245
        letter = [name for name in ("R", "L") if (g := marker_glyph(name, SIZE)).shape <= burned.shape
                  and np.array_equal(burned[:g.shape[0], :g.shape[1]] | ~g, np.ones_like(g))
                  and np.array_equal(changed[rows[0]:, cols[0]:][:g.shape[0], :g.shape[1]] & ~g,
                                     np.zeros_like(g))]
        assert len(letter) == 1, f"sample {index}: the burned pixels are not one marker glyph"
        assert rows[-1] < SIZE // 4, f"sample {index}: marker not at the top"
        if letter[0] == "R":
            assert cols[-1] < SIZE // 2, f"sample {index}: 'R' marker not on the image's left"
        else:
            assert cols[0] >= SIZE // 2, f"sample {index}: 'L' marker not on the image's right"
        seen.add(letter[0])
    assert seen == {"R", "L"}

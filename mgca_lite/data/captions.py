"""Caption cleaning (spec §3): the one function that turns a report into the text the model reads.

    clean_report("FINDINGS: Small left effusion. IMPRESSION: 1. Effusion, left.")
    -> CleanReport(text="effusion left small left effusion",
                   words=["effusion", "left", "small", "left", "effusion"], spans=[], word_spans=[])

Rules, in order:
- sections: the IMPRESSION section(s) first, then FINDINGS. Truncating the pieces at
  max_length then cuts the end of the findings, never the impression. Other text before the
  first header (MIMIC's INDICATION, COMPARISON, ...) is dropped, as are the headers themselves;
  a text with neither header is one section, kept whole.
- non-ASCII characters are stripped (non-ASCII whitespace counts as a space, so "left\\xa0lung"
  stays two words), then everything is lowercased;
- sentences end at ".", "!" or "?" (not at a decimal point, "2.5 cm");
- words are the runs of [a-z0-9]: all punctuation, underscore included, is a separator;
- sentences of one word are dropped (e.g. the "1", "2" of a numbered impression).
The words are joined by single spaces. BERT's pre-tokeniser splits on whitespace and punctuation,
so on this text it yields exactly these words, and word i of `CleanReport.words` is word i of
`TextEncoder`'s merged words. (A report truncated at max_length pieces keeps a prefix of its words,
the last of which may be cut between two of its pieces.) Studies with fewer than
`MIN_REPORT_WORDS` cleaned words are dropped by the data preparation (`has_enough_words`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

MIN_SENTENCE_WORDS = 2  # sentences of one token are dropped (spec §3)
MIN_REPORT_WORDS = 3    # studies with fewer cleaned words are dropped (spec §3; applied by data_prep)

# Headers are matched after lowercasing; the colon keeps prose ("findings were discussed") out.
_HEADER = re.compile(r"\b(impression|findings)\s*:")
_SENTENCE_END = re.compile(r"(?<!\d)[.!?]|[.!?](?!\d)")  # any end mark except one between two digits
_WORD = re.compile(r"[a-z0-9]+")

Span = tuple[int, int, str]


@dataclass
class CleanReport:
    """A cleaned report: its text, its words, and the input spans carried into both."""

    text: str                    # the cleaned report: words joined by single spaces
    words: list[str]             # its words, in order
    spans: list[Span] = field(default_factory=list)       # input spans re-mapped to character ranges of `text`
    word_spans: list[Span] = field(default_factory=list)  # the same spans as half-open ranges [i, j) of `words`


def clean_report(text: str, spans: list[Span] | None = None) -> CleanReport:
    """Clean one report (rules in the module docstring) and carry its character spans along.

    spans: (start, end, label) character ranges of `text`, e.g. SynthCXR's finding mentions.
    A span maps to the cleaned words its characters overlap; a span none of whose characters
    survive (punctuation only, a dropped sentence or section) is left out, so spans[k] and
    word_spans[k] of the result describe the same mention but not necessarily input span k.
    Raises ValueError for a span whose surviving words are not consecutive in the cleaned text
    (it crosses from one section into another, which the reordering separates).
    """
    ascii_text, origin = _strip_non_ascii(text)
    lower = ascii_text.lower()  # ASCII only: lowercasing keeps every character at its index

    kept: list[re.Match] = []  # the words, as matches in `lower`, in cleaned order
    for start, end in _sections(lower):
        for sent_start, sent_end in _sentences(lower, start, end):
            found = list(_WORD.finditer(lower, sent_start, sent_end))
            if len(found) >= MIN_SENTENCE_WORDS:
                kept += found
    words = [m.group() for m in kept]
    report = CleanReport(text=" ".join(words), words=words)
    if not spans:  # the collator's case: skip the offset bookkeeping
        return report

    extents = [(origin(m.start()), origin(m.end() - 1) + 1) for m in kept]  # each word's [start, end) in `text`
    starts, offset = [], 0  # each word's start in the cleaned text: one space between words
    for w in words:
        starts.append(offset)
        offset += len(w) + 1
    for span_start, span_end, label in spans:
        hit = [k for k, (a, b) in enumerate(extents) if a < span_end and b > span_start]
        if not hit:
            continue
        i, j = hit[0], hit[-1] + 1
        if hit != list(range(i, j)):
            raise ValueError(f"span ({span_start}, {span_end}, {label!r}) covers words of different sections: "
                             f"{text[span_start:span_end]!r}")
        report.word_spans.append((i, j, label))
        report.spans.append((starts[i], starts[j - 1] + len(words[j - 1]), label))
    return report


def has_enough_words(report: CleanReport, min_words: int = MIN_REPORT_WORDS) -> bool:
    """True if a cleaned report keeps its study: at least `min_words` words (spec §3: < 3 are dropped)."""
    return len(report.words) >= min_words


def _strip_non_ascii(text: str) -> tuple[str, Callable[[int], int]]:
    """text -> (its ASCII characters, origin) where origin(k) is the index in `text` of character k.

    Non-ASCII whitespace becomes a space (it separates words); other non-ASCII characters go.
    """
    if text.isascii():  # the common case: nothing moves
        return text, lambda k: k
    kept = [(i, " " if ch.isspace() else ch) for i, ch in enumerate(text) if ch.isascii() or ch.isspace()]
    index = [i for i, _ in kept]
    return "".join(ch for _, ch in kept), index.__getitem__


def _sections(lower: str) -> list[tuple[int, int]]:
    """[start, end) character ranges of the sections to keep, impression before findings."""
    headers = list(_HEADER.finditer(lower))
    if not headers:
        return [(0, len(lower))]
    bodies = {"impression": [], "findings": []}
    for k, m in enumerate(headers):
        end = headers[k + 1].start() if k + 1 < len(headers) else len(lower)
        bodies[m.group(1)].append((m.end(), end))
    return bodies["impression"] + bodies["findings"]


def _sentences(lower: str, start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) ranges of the sentences of lower[start:end] (end marks excluded)."""
    bounds = [m.start() for m in _SENTENCE_END.finditer(lower, start, end)]
    edges = [start] + [b + 1 for b in bounds]
    return list(zip(edges, bounds + [end]))

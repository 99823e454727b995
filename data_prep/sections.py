"""The FINDINGS and IMPRESSION sections of a free-text radiology report (MIMIC-CXR style).

    extract_sections(text)
    -> Sections(findings="No focal consolidation. Heart size is normal.",
                impression="No acute cardiopulmonary process.")
    report_text(extract_sections(text))
    -> "FINDINGS: No focal consolidation. Heart size is normal.\\nIMPRESSION: No acute cardiopulmonary process."

A MIMIC report is a "FINAL REPORT" line, then sections that each start with a header such as
"EXAMINATION:", "INDICATION:", "COMPARISON:", "FINDINGS:", "IMPRESSION:". Only the sections
named in HEADERS count as headers (any case, extra spaces allowed, the header at the start of a
line with its text after it or on the next lines; FINDINGS / IMPRESSION / CONCLUSION also in the
middle of a line when written in capitals, "... normal. IMPRESSION: ..."). A colon-less header
counts only alone on its line ("IMPRESSION" then the text). Other words before a colon
("Lines and tubes: ...") are text of the section they are in, so an unusual subheading never cuts
a findings section short.

- FINDINGS: the text of every "FINDINGS:" section;
- IMPRESSION: the text of every "IMPRESSION:", "CONCLUSION:" and "FINDINGS AND IMPRESSION:"
  section (the combined section holds the radiologist's conclusion, so it is read first);
- everything else (the preamble, EXAMINATION, INDICATION, HISTORY, TECHNIQUE, COMPARISON,
  NOTIFICATION, ...) is dropped;
- a report with neither section falls back to its last paragraph (blank-line separated) with text
  outside the dropped sections: MIMIC's header-less reports end with the radiologist's reading.

Whitespace inside a section is collapsed to single spaces (reports are hard-wrapped at ~80
characters); the words themselves are left as written: cleaning is `captions.clean_report`'s job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Header name (lowercase, single spaces) -> the section it starts; None = dropped.
HEADERS: dict[str, str | None] = {
    "findings": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "findings and impression": "impression",
    "impression and findings": "impression",
    "findings/impression": "impression",
    **{name: None for name in (
        "examination", "exam", "indication", "indications", "history", "clinical history",
        "clinical information", "reason for exam", "reason for examination", "technique",
        "comparison", "comparisons", "procedure", "wet read", "notification", "recommendation",
        "recommendations", "recommendation(s)", "addendum", "provider", "type of examination",
        "clinical indication")},
}
# recognised mid-line too, when written in capitals
_KEPT_INLINE = ("findings", "impression", "conclusion", "findings and impression")


def _name_pattern(names) -> str:
    # longest first, so "findings and impression" wins over "findings"; any run of spaces between words
    return "|".join(r"[ \t]+".join(re.escape(w) for w in n.split()) for n in sorted(names, key=len, reverse=True))


_AT_LINE_START = re.compile(rf"^[ \t]*({_name_pattern(HEADERS)})[ \t]*(?::|$)", re.IGNORECASE | re.MULTILINE)
_INLINE = re.compile(rf"(?<=\s)({_name_pattern(n.upper() for n in _KEPT_INLINE)})[ \t]*:")  # capitals only
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass
class Sections:
    """The kept text of one report ("" when the report has no such section); `fallback`: the last
    paragraph of a report with neither section (then the other two are "")."""

    findings: str = ""
    impression: str = ""
    fallback: str = ""


def _headers(text: str) -> list[tuple[int, int, str | None]]:
    """(header start, body start, section or None) of every header in `text`, in order."""
    found = {}
    for m in _AT_LINE_START.finditer(text):
        found[m.start(1)] = (m.start(1), m.end(), HEADERS[" ".join(m.group(1).lower().split())])
    for m in _INLINE.finditer(text):
        if not any(a <= m.start(1) < b for a, b, _ in found.values()):
            found[m.start(1)] = (m.start(1), m.end(), HEADERS[" ".join(m.group(1).lower().split())])
    return [found[k] for k in sorted(found)]


def _collapse(text: str) -> str:
    return " ".join(text.split())


def extract_sections(text: str) -> Sections:
    """FINDINGS and IMPRESSION of a report, or its fallback paragraph (rules in the module docstring)."""
    headers = _headers(text)
    bodies: dict[str, list[str]] = {"findings": [], "impression": []}
    for k, (_, body_start, section) in enumerate(headers):
        end = headers[k + 1][0] if k + 1 < len(headers) else len(text)
        if section is not None and _collapse(text[body_start:end]):
            bodies[section].append(_collapse(text[body_start:end]))
    if not any(section for _, _, section in headers):
        return Sections(fallback=_last_paragraph(text))
    return Sections(findings=" ".join(bodies["findings"]), impression=" ".join(bodies["impression"]))


def _last_paragraph(text: str) -> str:
    """The last blank-line separated paragraph with text before any (dropped) header in it, once
    the preamble lines ("FINAL REPORT", a row of underscores) are taken out."""
    for paragraph in reversed(_PARAGRAPH_BREAK.split(text)):
        lines = [ln for ln in paragraph.splitlines() if _collapse(ln).upper() != "FINAL REPORT" and ln.strip("_ \t")]
        paragraph = "\n".join(lines)
        header = _AT_LINE_START.search(paragraph)
        body = _collapse(paragraph[:header.start()] if header else paragraph)
        if body:
            return body
    return ""


def report_text(sections: Sections) -> str:
    """The report as the manifest stores it: "FINDINGS: ...\\nIMPRESSION: ..." (a missing section
    left out), so that `clean_report` reads the impression first; a fallback paragraph is stored
    without a header (clean_report keeps a header-less text whole); "" when there is nothing."""
    if sections.fallback:
        return sections.fallback
    parts = [f"FINDINGS: {sections.findings}"] if sections.findings else []
    if sections.impression:
        parts.append(f"IMPRESSION: {sections.impression}")
    return "\n".join(parts)

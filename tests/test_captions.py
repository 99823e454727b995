"""Caption cleaning (mgca_lite/data/captions.py, spec §3) and its use by the collator and tokenizer."""
from __future__ import annotations

import pytest
import torch

from mgca_lite.data.captions import MIN_REPORT_WORDS, CleanReport, clean_report, has_enough_words
from mgca_lite.data.collate import PairCollator
from mgca_lite.data.synth import SYNONYM_WORDS, report_corpus, sample_report
from mgca_lite.models.tokenizer import build_wordpiece_tokenizer
from mgca_lite.models.words import merge_pieces, vocab_tables, word_strings

REPORT = ("FINDINGS: Heart size is normal. Small left pleural effusion, unchanged.\n\n"
          "IMPRESSION: 1. Small left effusion. 2. No pneumothorax.")


def test_impression_first_headers_and_one_word_sentences_dropped():
    c = clean_report(REPORT)
    # "1" and "2" are one-word sentences; the headers and all punctuation go.
    assert c.words == ["small", "left", "effusion", "no", "pneumothorax",
                       "heart", "size", "is", "normal", "small", "left", "pleural", "effusion", "unchanged"]
    assert c.text == " ".join(c.words)
    assert clean_report("Cardiomegaly. Lungs are clear.").words == ["lungs", "are", "clear"]


def test_text_without_headers_is_one_section_and_other_sections_are_dropped():
    assert clean_report("Lungs are clear. No effusion.").words == ["lungs", "are", "clear", "no", "effusion"]
    with_preamble = "INDICATION: Cough, fever. COMPARISON: None. FINDINGS: Lungs are clear. IMPRESSION: Normal chest."
    assert clean_report(with_preamble).words == ["normal", "chest", "lungs", "are", "clear"]
    assert clean_report("Findings were discussed with Dr. Smith.").words[:2] == ["findings", "were"]  # no colon: prose


def test_characters_lowercase_ascii_and_punctuation_including_underscore():
    c = clean_report("Na\u00efve\u00a0LEFT lung_base seen by ___, tip 2.5 cm (stable).")
    assert c.words == ["nave", "left", "lung", "base", "seen", "by", "tip", "2", "5", "cm", "stable"]
    assert clean_report("Size 2.5.").words == ["size", "2", "5"]  # a decimal point ends no sentence
    assert clean_report("").words == [] and clean_report("...").text == ""


def test_spans_follow_their_words():
    text = "FINDINGS: Small left pneumothorax. IMPRESSION: Left pneumothorax, small."
    spans = [(10, 33, "pneumothorax"), (47, 64, "pneumothorax"), (33, 34, "dot"), (0, 9, "header")]
    c = clean_report(text, spans)
    assert c.words == ["left", "pneumothorax", "small", "small", "left", "pneumothorax"]
    # Input order is kept; punctuation- or header-only spans have no words and are left out.
    assert c.word_spans == [(3, 6, "pneumothorax"), (0, 2, "pneumothorax")]
    assert [c.text[a:b] for a, b, _ in c.spans] == ["small left pneumothorax", "left pneumothorax"]
    # A span covering part of a word maps to the whole word.
    assert clean_report("Large pneumothorax.", [(8, 12, "p")]).word_spans == [(1, 2, "p")]
    with pytest.raises(ValueError, match="different sections"):
        clean_report(text, [(20, 60, "across")])


def test_synth_spans_survive_with_their_finding_words():
    lost = 0
    for index in range(300):
        report, spans = sample_report(index, 0)[:2]
        c = clean_report(report, spans)
        lost += len(spans) - len(c.spans)
        assert clean_report(c.text).words == c.words  # idempotent: cleaned text may be cleaned again
        for (a, b, finding), (i, j, same) in zip(c.spans, c.word_spans):
            assert same == finding and c.text[a:b] == " ".join(c.words[i:j])
            assert any(s in c.text[a:b] for s in SYNONYM_WORDS[finding])
    assert lost <= 10  # only mentions that are a whole one-word sentence ("Cardiomegaly.") go


def test_cleaned_words_are_the_models_words():
    corpus = [clean_report(r).text for r in report_corpus(300)]
    tok = build_wordpiece_tokenizer(corpus, vocab_size=150)  # small: many words span several pieces
    is_cont, is_special = vocab_tables(tok)
    pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
    cleaned = [clean_report(r) for r in report_corpus(6)]
    for max_length in (512, 40):  # whole reports, and truncated ones: the model sees a prefix
        enc = tok([c.text for c in cleaned], padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        assert (ids != tok.unk_token_id).all()
        _, _, word_mask, index = merge_pieces(torch.zeros(*ids.shape, 1), torch.rand(ids.shape), ids, mask,
                                              is_cont, is_special)
        for c, words, n in zip(cleaned, word_strings(ids, index, pieces, is_cont), word_mask.sum(1).tolist()):
            assert words[:-1] == c.words[:n - 1]
            if max_length == 512:
                assert words[-1] == c.words[-1] and n == len(c.words)
            else:  # truncation may cut the last word between two of its pieces
                assert c.words[n - 1].startswith(words[-1]) and n < len(c.words)


def test_min_report_words():
    assert MIN_REPORT_WORDS == 3
    assert has_enough_words(clean_report("No acute findings."))
    assert not has_enough_words(clean_report("FINDINGS: Normal. IMPRESSION: No change."))
    assert not has_enough_words(CleanReport(text="", words=[]))


@pytest.mark.parametrize("clean", [True, False])
def test_collator_tokenises_the_cleaned_reports(clean):
    tok = build_wordpiece_tokenizer(report_corpus(100), vocab_size=300)
    reports = report_corpus(3, start=50)
    items = [{"image": torch.zeros(1, 4, 4), "report": r, "labels": torch.zeros(2), "index": k}
             for k, r in enumerate(reports)]
    batch = PairCollator(tok, max_length=112, clean=clean)(items)
    texts = [clean_report(r).text for r in reports] if clean else reports
    want = tok(texts, padding="longest", truncation=True, max_length=112, return_tensors="pt")
    assert torch.equal(batch["input_ids"], want["input_ids"])
    assert batch["reports"] == reports  # the raw reports, for display
    if clean:
        assert torch.equal(PairCollator(tok, max_length=112)(items)["input_ids"], batch["input_ids"])  # the default

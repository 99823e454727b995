"""WordPiece tokenizer: BERT layout, determinism, the disk cache, words that span several pieces."""
from __future__ import annotations

import pytest
import torch

from mgca_lite.data.captions import clean_report
from mgca_lite.models import tokenizer as tok_mod
from mgca_lite.models.config import TextEncoderConfig
from mgca_lite.models.tokenizer import SPECIAL_TOKENS, build_wordpiece_tokenizer, load_tokenizer, synth_tokenizer
from mgca_lite.models.words import merge_pieces, vocab_tables, word_strings
from radiology_text import SENTENCES

CORPUS = SENTENCES * 3


def test_bert_layout_and_round_trip():
    tok = build_wordpiece_tokenizer(CORPUS, vocab_size=400)
    assert tok.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)  # [PAD] = 0
    assert tok.pad_token_id == 0 and tok.unk_token_id == 1
    enc = tok(["No pneumothorax.", "Mild cardiomegaly, left pleural effusion."], padding=True,
              truncation=True, max_length=16, return_tensors="pt")
    first = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert first[:5] == ["[CLS]", "no", "pneumothorax", ".", "[SEP]"] and set(first[5:]) == {"[PAD]"}
    assert enc["attention_mask"][0].tolist() == [1] * 5 + [0] * (len(first) - 5)
    assert tok.tokenize("PNEUMOTHORAX") == ["pneumothorax"]  # lowercased


def test_same_corpus_gives_the_same_vocabulary():
    # The raw `tokenizers` trainer breaks merge ties by hash-map order; with a vocabulary this small
    # there are many ties, so unequal runs would show up here.
    vocabs = [build_wordpiece_tokenizer(CORPUS, vocab_size=90).get_vocab() for _ in range(3)]
    assert vocabs[0] == vocabs[1] == vocabs[2]
    assert len(vocabs[0]) == 90


def test_pneumothorax_stays_one_word_when_split_into_pieces():
    tok = build_wordpiece_tokenizer(CORPUS, vocab_size=60)  # too small to hold the whole word
    pieces = tok.tokenize("pneumothorax")
    assert len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    enc = tok(["Small pneumothorax.", "No pneumothorax or effusion."], padding=True, return_tensors="pt")
    is_cont, is_special = vocab_tables(tok)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    feat = torch.randn(*ids.shape, 4)
    _, _, word_mask, word_index = merge_pieces(feat, torch.rand(ids.shape), ids, mask, is_cont, is_special)
    pieces_of_id = tok.convert_ids_to_tokens(list(range(len(tok))))
    assert word_strings(ids, word_index, pieces_of_id, is_cont) == [
        ["small", "pneumothorax", "."], ["no", "pneumothorax", "or", "effusion", "."]]
    assert word_mask.sum(1).tolist() == [3, 5]


def test_synth_tokenizer_is_cached_on_disk(tmp_path, monkeypatch):
    pytest.importorskip("mgca_lite.data.synth")
    monkeypatch.setenv("MGCA_LITE_CACHE", str(tmp_path))
    first = synth_tokenizer(vocab_size=500, corpus_size=200)
    assert len(list(tmp_path.glob("tokenizer/*/vocab.txt"))) == 1

    # A second process (simulated: empty in-memory memo) must read the file, not retrain.
    tok_mod._synth_vocab.cache_clear()
    monkeypatch.setattr(tok_mod, "build_wordpiece_tokenizer", lambda *a, **k: pytest.fail("retrained"))
    again = synth_tokenizer(vocab_size=500, corpus_size=200)
    assert again.get_vocab() == first.get_vocab()
    report = clean_report("FINDINGS: Small left pneumothorax. IMPRESSION: No effusion.").text
    assert again(report)["input_ids"] == first(report)["input_ids"]


def test_synth_tokenizer_trains_on_the_text_the_model_reads(tmp_path, monkeypatch):
    pytest.importorskip("mgca_lite.data.synth")
    from mgca_lite.data.synth import report_corpus

    monkeypatch.setenv("MGCA_LITE_CACHE", str(tmp_path))
    cleaned = synth_tokenizer(vocab_size=500, corpus_size=200).get_vocab()  # clean=True is the default
    raw = synth_tokenizer(vocab_size=500, corpus_size=200, clean=False).get_vocab()
    assert len(list(tmp_path.glob("tokenizer/*/vocab.txt"))) == 2  # the corpus hash tells them apart
    corpus = [clean_report(r).text for r in report_corpus(200)]
    assert cleaned == build_wordpiece_tokenizer(corpus, vocab_size=500).get_vocab()
    assert {".", ",", ":"} <= raw.keys() and not {".", ",", ":"} & cleaned.keys()  # no pieces spent on punctuation


def test_load_tokenizer_tiny_uses_the_synth_vocabulary(tmp_path, monkeypatch):
    monkeypatch.setenv("MGCA_LITE_CACHE", str(tmp_path))
    asked = []

    def fake_synth_tokenizer(vocab_size, clean):
        asked.append(clean)
        return build_wordpiece_tokenizer(CORPUS, vocab_size)

    monkeypatch.setattr(tok_mod, "synth_tokenizer", fake_synth_tokenizer)
    tok = load_tokenizer(TextEncoderConfig(vocab_size=300, max_length=32))
    assert tok.model_max_length == 32 and "pneumothorax" in tok.get_vocab()
    load_tokenizer(TextEncoderConfig(clean_reports=False))
    assert asked == [True, False]  # the vocabulary follows the cleaning switch

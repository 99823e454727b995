"""Phrase maps of a model: CTA's word -> patch attention over the words of each finding mention.

For a positive (label 1) finding of a SynthCXR study with a report span and a drawn mask, the
phrase map is softmax_p(W_i . P_p / tau_l) — the attention CTA itself computes, tau_l =
loss.cta_temperature, W and P the model's unit-norm word and patch embeddings — averaged over the
span's words and laid out on the patch grid (P = g x g patches, row-major, as the encoders
flatten them).

Word positions: the model reads either the cleaned report (`TextEncoderConfig.clean_reports`,
whose `CleanReport.word_spans` index its words directly) or the raw report, whose character spans
are mapped to words through the tokenizer's offsets, merging pieces into words exactly as the
model does (`merge_pieces`).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch

from mgca_lite.data.synth import make_sample
from mgca_lite.data.transforms import normalize
from mgca_lite.losses.cta import word_patch_attention
from mgca_lite.models.words import merge_pieces, vocab_tables


@dataclass
class PhraseSet:
    maps: torch.Tensor     # (N, g, g) attention of each phrase on the patch grid
    masks: torch.Tensor    # (N, H, W) bool, the finding's pixels; never empty
    findings: list[str]    # (N,) the finding each phrase names
    studies: list[int]     # (N,) the synthetic index of each phrase's study
    phrases: list[str]     # (N,) the phrase text, for display
    skipped: Counter = field(default_factory=Counter)  # reason -> phrases not scored


def raw_word_spans(tokenizer, text: str, spans: list[tuple[int, int, str]], tables=None) -> list[list[int]]:
    """Word indices (in the model's merged-word numbering, before any truncation) of each character
    span (start, end, finding) of `text`: the words whose characters overlap the span.
    tables: `vocab_tables(tokenizer)`, computed here when not given."""
    enc = tokenizer(text, return_offsets_mapping=True, return_tensors="pt", verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"][0]               # (1, L), (L, 2)
    is_cont, is_special = tables or vocab_tables(tokenizer)
    L = ids.shape[1]
    *_, word_index = merge_pieces(torch.zeros(1, L, 1), torch.zeros(1, L), ids,
                                  enc["attention_mask"], is_cont, is_special)
    word_index = word_index[0]                                               # (L,) -1 = no word
    n_words = int(word_index.max()) + 1 if L else 0
    starts = [int(offsets[word_index == w, 0].min()) for w in range(n_words)]
    ends = [int(offsets[word_index == w, 1].max()) for w in range(n_words)]
    return [[w for w in range(n_words) if starts[w] < b and ends[w] > a] for a, b, _ in spans]


def report_phrases(tokenizer, report: str, spans, clean: bool,
                   tables=None) -> tuple[str, list[tuple[str, list[int], str]]]:
    """The text the model reads and each span's (finding, word indices, phrase text)."""
    if clean:
        from mgca_lite.data.captions import clean_report

        cleaned = clean_report(report, spans)
        return cleaned.text, [(f, list(range(i, j)), cleaned.text[a:b])
                              for (a, b, f), (i, j, *_) in zip(cleaned.spans, cleaned.word_spans)]
    words = raw_word_spans(tokenizer, report, spans, tables)
    return report, [(f, idx, report[a:b]) for (a, b, f), idx in zip(spans, words)]


@torch.no_grad()
def phrase_maps(model, tokenizer, cfg, indices, synth_seed: int, clean: bool,
                batch_size: int = 32) -> PhraseSet:
    """Phrase maps of `model` (eval mode) for the studies make_sample(i, synth_seed, size), i in
    `indices`, size = the model's input size (cfg.data.crop_size or cfg.data.image_size).

    cfg: the run's PretrainConfig; clean: the model reads cleaned reports (see
    `loading.reads_clean_reports`). Skipped phrases (counted in `skipped`): "empty_mask" (the
    finding left no pixel at this size), "full_mask" (no pixel outside, CNR undefined),
    "truncated" (a word of the span lies past max_length).
    """
    size = cfg.data.crop_size or cfg.data.image_size
    tau = cfg.loss.cta_temperature
    tables = vocab_tables(tokenizer)
    out = PhraseSet(torch.empty(0), torch.empty(0, dtype=torch.bool), [], [], [])
    maps, masks = [], []
    for start in range(0, len(indices), batch_size):
        samples = [make_sample(int(i), synth_seed, size) for i in indices[start:start + batch_size]]
        texts, phrases = zip(*(report_phrases(tokenizer, s.report, s.spans, clean, tables) for s in samples))
        enc = tokenizer(list(texts), padding="longest", truncation=True,
                        max_length=cfg.model.text.max_length, return_tensors="pt")  # as PairCollator
        emb = model(torch.stack([normalize(s.image) for s in samples]), enc["input_ids"], enc["attention_mask"])
        attn, _ = word_patch_attention(emb.word_emb, emb.patch_emb, emb.word_mask, tau)  # (b, T, P)
        grid = math.isqrt(attn.shape[2])
        if grid * grid != attn.shape[2]:
            raise ValueError(f"{attn.shape[2]} patches do not form a square grid")
        n_words = emb.word_mask.sum(dim=1).tolist()                                  # (b,)
        for b, (sample, found) in enumerate(zip(samples, phrases)):
            for finding, words, text in found:
                if sample.labels[finding] != 1:
                    continue  # negated or hedged mentions name no drawn finding
                mask = sample.masks.get(finding)
                reason = _skip_reason(mask, words, n_words[b])
                if reason:
                    out.skipped[reason] += 1
                    continue
                maps.append(attn[b, words].mean(dim=0).view(grid, grid))            # (g, g)
                masks.append(torch.from_numpy(mask))
                out.findings.append(finding)
                out.studies.append(sample.index)
                out.phrases.append(text)
    if maps:
        out.maps, out.masks = torch.stack(maps), torch.stack(masks)
    return out


def _skip_reason(mask, words: list[int], n_words: int) -> str | None:
    """Why a positive phrase cannot be scored, or None: its mask (H, W) | None, its word indices,
    and the number of words the model kept after truncation."""
    if mask is None or not mask.any():
        return "empty_mask"
    if mask.all():
        return "full_mask"
    if not words:
        return "no_words"
    return "truncated" if max(words) >= n_words else None

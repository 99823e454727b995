"""WordPiece tokenizer: trained on the SynthCXR report corpus, cached on disk, returned as
`transformers.BertTokenizerFast`.

It is trained on the text the model will read: with `TextEncoderConfig.clean_reports` (the
default) the corpus goes through `mgca_lite.data.captions.clean_report` first, as every report
does in `PairCollator`, so no vocabulary entries are spent on punctuation or section headers.

The tiny text encoder learns from scratch, so it gets a vocabulary fitted to our reports (a few
hundred words) instead of BERT's 30k general-English pieces. The pipeline is BERT's own:
lowercasing normaliser, whitespace+punctuation pre-tokeniser, WordPiece pieces ("##" marks a piece
that continues a word), and `[CLS] ... [SEP]` around every report.

Determinism. The `tokenizers` WordPiece trainer breaks ties between equally frequent merges by the
ids of the "##x" symbols, and it numbers those in the order of a Rust hash map, which is seeded
differently in every process: the same corpus gave different vocabularies run to run. We pass all
"##x" symbols of the corpus, sorted, as pre-registered tokens, which fixes their ids and with them
every tie-break. (They are only pre-registered during training: the returned tokenizer is rebuilt
from the plain vocabulary, so they are ordinary vocabulary entries, not special tokens.)
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import tokenizers
from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers
from tokenizers.models import WordPiece
from transformers import AutoTokenizer, BertTokenizerFast
from transformers.utils import logging as hf_logging

from .config import TextEncoderConfig

# [PAD] must be id 0 (BERT's padding_idx); the order of the others is BERT's convention.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CORPUS_SIZE = 5_000  # SynthCXR reports the tiny vocabulary is trained on (2k already cover every word)
CORPUS_SEED = 0       # which synthetic "hospital" writes them
_FORMAT = 1           # bump when the cached files or the training recipe change


def build_wordpiece_tokenizer(corpus: Iterable[str], vocab_size: int) -> BertTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on `corpus` (reports as strings); deterministic.

    vocab_size is an upper bound: training stops early when every corpus word is one piece.
    """
    corpus = list(corpus)
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # Every character that occurs inside a word (not first) becomes a "##x" symbol; registering
    # them up front, sorted, gives them fixed ids (see the module docstring). One normalise +
    # pre-tokenise call on the joined text is enough: the newline is just whitespace.
    words = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str("\n".join(corpus)))
    continuations = {char for word, _span in words for char in word[1:]}
    fixed = list(SPECIAL_TOKENS) + ["##" + c for c in sorted(continuations)]

    backend = Tokenizer(WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=fixed, show_progress=False)
    backend.train_from_iterator(corpus, trainer=trainer)
    return _bert_tokenizer(backend.get_vocab(with_added_tokens=False))


def _bert_tokenizer(vocab: dict[str, int]) -> BertTokenizerFast:
    """Wrap a piece -> id vocabulary as a BertTokenizerFast.

    In transformers 5 `BertTokenizerFast` is an alias of `BertTokenizer`, which builds the whole
    `tokenizers` pipeline (BertNormalizer(lowercase), BertPreTokenizer, WordPiece, [CLS]/[SEP]
    template) from a vocabulary dict -- the same pipeline we train with, so the vocabulary is all we
    keep.
    """
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS))), "special ids moved"
    return BertTokenizerFast(vocab=vocab)


def tokenizer_from_pieces(pieces: list[str] | tuple[str, ...]) -> BertTokenizerFast:
    """Rebuild a BERT-style tokenizer from its pieces in id order (as stored in our checkpoints).

    Checkpoints carry their vocabulary because the tiny one is retrained from the report grammar:
    a later grammar change must not silently renumber the token ids a trained model expects.
    """
    return BertTokenizerFast(vocab={piece: i for i, piece in enumerate(pieces)})


def tokenizer_pieces(tokenizer) -> list[str]:
    """The tokenizer's pieces in id order (the inverse of `tokenizer_from_pieces`)."""
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


def cache_root() -> Path:
    """Directory for cached tokenizers: $MGCA_LITE_CACHE/tokenizer, else ~/.cache/mgca_lite/tokenizer."""
    base = os.environ.get("MGCA_LITE_CACHE") or Path.home() / ".cache" / "mgca_lite"
    return Path(base) / "tokenizer"


def synth_tokenizer(vocab_size: int, corpus_size: int = CORPUS_SIZE, seed: int = CORPUS_SEED,
                    clean: bool = True) -> BertTokenizerFast:
    """The tiny encoder's tokenizer: WordPiece on `corpus_size` SynthCXR reports, cached on disk.

    clean=True trains on the cleaned reports (`clean_report(r).text`), False on the raw text.
    """
    pieces = _synth_vocab(vocab_size, corpus_size, seed, clean, str(cache_root()))
    return _bert_tokenizer({piece: i for i, piece in enumerate(pieces)})


@functools.lru_cache(maxsize=None)
def _synth_vocab(vocab_size: int, corpus_size: int, seed: int, clean: bool, root: str) -> tuple[str, ...]:
    """Pieces in id order, from the disk cache under `root` or freshly trained (memoised per process).

    The cache key hashes the corpus text itself, not only its parameters, so a change to the report
    grammar or to the caption cleaning can never reuse a stale vocabulary (writing and cleaning 5k
    reports takes about a second).
    """
    # lazy: keeps the models importable on their own
    from mgca_lite.data.captions import clean_report
    from mgca_lite.data.synth import report_corpus

    corpus = report_corpus(corpus_size, seed=seed)
    if clean:
        corpus = [clean_report(report).text for report in corpus]
    key = {
        "corpus_sha256": hashlib.sha256("\n".join(corpus).encode()).hexdigest(),
        "corpus_size": corpus_size,
        "seed": seed,
        "vocab_size": vocab_size,
        "tokenizers": tokenizers.__version__,
        "format": _FORMAT,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(root) / digest / "vocab.txt"
    if path.is_file():
        return tuple(path.read_text(encoding="utf-8").split("\n"))

    vocab = build_wordpiece_tokenizer(corpus, vocab_size).get_vocab()
    pieces = tuple(sorted(vocab, key=vocab.__getitem__))
    # Write-then-rename: concurrent processes (DDP ranks, parallel tests) never read half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "key.json").write_text(json.dumps(key, indent=2))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text("\n".join(pieces), encoding="utf-8")
    os.replace(tmp, path)
    return pieces


@contextlib.contextmanager
def quiet_transformers():
    """Within the block, transformers logs errors only and shows no progress bar (checkpoint loading
    prints a per-key report and a bar, on stderr, that would fill every notebook cell)."""
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def require_pretrained(cfg: TextEncoderConfig) -> str:
    """cfg.pretrained, or a clear error: kind 'clinical' cannot be built without a checkpoint."""
    if not cfg.pretrained:
        raise ValueError("text kind 'clinical' needs model.text.pretrained: a local BERT directory (or a hub id)")
    return cfg.pretrained


def load_tokenizer(cfg: TextEncoderConfig) -> BertTokenizerFast:
    """The tokenizer for a text encoder config: tiny -> cached SynthCXR WordPiece, trained on cleaned
    reports if cfg.clean_reports; clinical -> the tokenizer stored with the checkpoint
    (`AutoTokenizer.from_pretrained(cfg.pretrained)`)."""
    if cfg.kind == "tiny":
        tokenizer = synth_tokenizer(cfg.vocab_size, clean=cfg.clean_reports)
    else:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(require_pretrained(cfg))
    tokenizer.model_max_length = cfg.max_length
    return tokenizer

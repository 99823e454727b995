"""Text encoder: a transformers `BertModel` whose last layer is read at three granularities --
the report ([CLS]), the words (pieces summed, see words.py) and the words' importance weights
(last-layer [CLS] -> piece attention)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertConfig, BertModel

from .config import TextEncoderConfig
from .tokenizer import require_pretrained
from .words import cls_piece_attention, merge_pieces, vocab_tables, word_strings

CLINICAL_LAYERS = 6  # the reference keeps only the first 6 of Bio_ClinicalBERT's 12 layers


@dataclass
class TextFeatures:
    report_feat: torch.Tensor   # (B, C) last hidden state of [CLS]
    word_feat: torch.Tensor     # (B, T, C) word vectors (sum of their pieces), zeros after the last word
    word_mask: torch.Tensor     # (B, T) bool, True = real word
    word_weights: torch.Tensor  # (B, T) [CLS] -> word attention, sums to 1 over real words, 0 elsewhere
    words: list[list[str]]      # B lists of the words as strings (for display)


def build_bert(cfg: TextEncoderConfig, vocab_size: int, pad_token_id: int) -> BertModel:
    """BertModel for a config: tiny = random init; clinical = first 6 layers of `cfg.pretrained`.

    Attention is always "eager": transformers 5 defaults to SDPA, which cannot return attention
    probabilities (output_attentions=True then yields none), and we need them for word weights.
    No pooler: MGCA uses the raw [CLS] state, and unused parameters would upset DDP.
    """
    if cfg.kind == "tiny":
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_length,
            pad_token_id=pad_token_id,
            attn_implementation="eager",
        )
        return BertModel(config, add_pooling_layer=False)
    path = require_pretrained(cfg)
    config = BertConfig.from_pretrained(path)
    # Layers beyond the 6th are simply not loaded (reported as unused checkpoint weights).
    config.num_hidden_layers = min(CLINICAL_LAYERS, config.num_hidden_layers)
    bert = BertModel.from_pretrained(path, config=config, add_pooling_layer=False,
                                     attn_implementation="eager")
    if vocab_size > bert.config.vocab_size:
        raise ValueError(f"tokenizer has {vocab_size} ids, the checkpoint's embeddings only {bert.config.vocab_size}")
    return bert.train()  # from_pretrained returns eval mode; keep nn.Module's default (train) like tiny


class TextEncoder(nn.Module):
    """BERT + word merging. forward(input_ids (B, L), attention_mask (B, L)) -> TextFeatures.

    Inputs are right-padded (the tokenizer's default), so [CLS] is at position 0.
    """

    def __init__(self, cfg: TextEncoderConfig, tokenizer):
        super().__init__()
        self.cfg = cfg
        self.bert = build_bert(cfg, len(tokenizer), tokenizer.pad_token_id)
        self.hidden_size = self.bert.config.hidden_size  # C
        self.max_length = self.bert.config.max_position_embeddings
        is_continuation, is_special = vocab_tables(tokenizer)
        # Derived from the tokenizer, so not saved in checkpoints (persistent=False); buffers move with .to().
        self.register_buffer("is_continuation", is_continuation, persistent=False)  # (V,)
        self.register_buffer("is_special", is_special, persistent=False)            # (V,)
        self.pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))  # id -> piece string

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """input_ids (B, L) int64, attention_mask (B, L) 0/1 -> TextFeatures (C = hidden size, T = words)."""
        if input_ids.shape[1] > self.max_length:
            raise ValueError(f"{input_ids.shape[1]} pieces > max_length {self.max_length}: "
                             "tokenize with truncation=True, max_length=cfg.max_length")
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        hidden = out.last_hidden_state  # (B, L, C)
        # Last layer's attention probabilities (B, H, L, L). In training mode they are taken after
        # BERT's attention dropout (as in the reference); normalising per sample removes the 1/(1-p) scale.
        piece_attn = cls_piece_attention(out.attentions[-1], shift=self.cfg.shift_word_weights)  # (B, L)
        word_feat, word_weights, word_mask, word_index = merge_pieces(
            hidden, piece_attn, input_ids, attention_mask, self.is_continuation, self.is_special
        )
        words = word_strings(input_ids, word_index, self.pieces, self.is_continuation)
        return TextFeatures(
            report_feat=hidden[:, 0],  # (B, C) [CLS]
            word_feat=word_feat,
            word_mask=word_mask,
            word_weights=word_weights,
            words=words,
        )

"""Text encoder: a transformers `BertModel` whose last layer is read at three granularities --
the report ([CLS]), the words (pieces summed, see words.py) and the words' importance weights
(last-layer [CLS] -> piece attention probabilities, taken before attention dropout)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertConfig, BertModel

from .config import TextEncoderConfig
from .tokenizer import quiet_transformers, require_pretrained
from .words import cls_piece_attention, merge_pieces, vocab_tables, word_strings

CLINICAL_LAYERS = 6  # the reference keeps only the first 6 of Bio_ClinicalBERT's 12 layers


@dataclass
class TextFeatures:
    report_feat: torch.Tensor   # (B, C) last hidden state of [CLS] (or the mean over pieces: cfg.report_pooling)
    word_feat: torch.Tensor     # (B, T, C) word vectors (sum of their pieces), zeros after the last word
    word_mask: torch.Tensor     # (B, T) bool, True = real word
    word_weights: torch.Tensor  # (B, T) [CLS] -> word attention, sums to 1 over real words, 0 elsewhere (no grad)
    words: list[list[str]] | None  # B lists of the words as strings (display only); None unless return_words


def build_bert(cfg: TextEncoderConfig, vocab_size: int, pad_token_id: int) -> BertModel:
    """BertModel for a config: tiny = random init; clinical = first 6 layers of `cfg.pretrained`.

    Attention is always "eager": `cls_attention_probs` recomputes the last layer's [CLS] row with
    eager attention's arithmetic, so the probabilities it returns are the ones the model used.
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
    # Layers beyond the 6th are simply not loaded.
    config.num_hidden_layers = min(CLINICAL_LAYERS, config.num_hidden_layers)
    with quiet_transformers():  # its per-key load report and progress bar would bury the one problem that matters
        bert, info = BertModel.from_pretrained(path, config=config, add_pooling_layer=False,
                                               attn_implementation="eager", output_loading_info=True)
    if info["missing_keys"]:  # unexpected keys (the pooler, layers past the 6th) are dropped on purpose
        raise ValueError(f"{path}: not a BERT checkpoint for this encoder: missing {len(info['missing_keys'])} "
                         f"weight(s), e.g. {sorted(info['missing_keys'])[:3]}")
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                return_words: bool = False) -> TextFeatures:
        """input_ids (B, L) int64, attention_mask (B, L) 0/1 -> TextFeatures (C = hidden size, T = words).

        return_words=True also builds the words as strings (a Python loop over the batch: for
        display, not for training steps); otherwise TextFeatures.words is None.
        """
        if input_ids.shape[1] > self.max_length:
            raise ValueError(f"{input_ids.shape[1]} pieces > max_length {self.max_length}: "
                             "tokenize with truncation=True, max_length=cfg.max_length")
        # hidden_states[-2] is the last layer's input. Collecting the hidden states only keeps
        # references to tensors the forward makes anyway; output_attentions would keep (B, H, L, L)
        # post-dropout probabilities of every layer, which we do not want.
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = out.last_hidden_state  # (B, L, C)
        last_attention = self.bert.encoder.layer[-1].attention.self
        probs = cls_attention_probs(last_attention, out.hidden_states[-2], attention_mask)  # (B, H, 1, L)
        piece_attn = cls_piece_attention(probs, shift=self.cfg.shift_word_weights)        # (B, L)
        word_feat, word_weights, word_mask, word_index = merge_pieces(
            hidden, piece_attn, input_ids, attention_mask, self.is_continuation, self.is_special
        )
        words = word_strings(input_ids, word_index, self.pieces, self.is_continuation) if return_words else None
        if self.cfg.report_pooling == "mean":
            keep = attention_mask.unsqueeze(-1).to(hidden.dtype)                      # (B, L, 1)
            report_feat = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1)   # (B, C)
        else:
            report_feat = hidden[:, 0]                                                # (B, C) [CLS]
        return TextFeatures(
            report_feat=report_feat,
            word_feat=word_feat,
            word_mask=word_mask,
            word_weights=word_weights,
            words=words,
        )


@torch.no_grad()  # importance weights are loss inputs, not trained through (spec §2)
def cls_attention_probs(self_attention: nn.Module, hidden_states: torch.Tensor,
                        attention_mask: torch.Tensor) -> torch.Tensor:
    """The [CLS] query's attention probabilities in one BERT self-attention layer, BEFORE dropout.

    self_attention: the layer's `BertSelfAttention`; hidden_states (B, L, C): that layer's input;
    attention_mask (B, L) 0/1. Returns (B, H, 1, L) float32: softmax(q_cls k^T / sqrt(d) + mask), rows
    sum to 1, exactly 0 on padding.

    Why recompute: eager attention hands back its probabilities after attention dropout, so in
    training ~p of them are 0 and the rest are scaled by 1/(1-p) -- noise that would then be
    read as word importance. This repeats eager attention's arithmetic (transformers 5
    `eager_attention_forward`: matmul, scale, additive mask, softmax) for the [CLS] row only, so
    with dropout off it gives the probabilities `output_attentions=True` returns. Queries are
    projected for every position and then sliced: projecting the [CLS] row alone would save one
    small matmul but rounds differently from the layer's own projection.
    """
    B, L, _ = hidden_states.shape
    d = self_attention.attention_head_size
    query = self_attention.query(hidden_states)[:, :1].view(B, 1, -1, d).transpose(1, 2)  # (B, H, 1, d)
    key = self_attention.key(hidden_states).view(B, L, -1, d).transpose(1, 2)            # (B, H, L, d)
    scores = torch.matmul(query, key.transpose(2, 3)) * self_attention.scaling          # (B, H, 1, L)
    # float32, as eager attention gets under bf16/fp16 autocast (CUDA autocast runs softmax in float32;
    # on CPU a padded batch's float32 additive mask promotes the scores): importance weights stay
    # float32. The dtype's min, not -inf, like that mask: a row with no valid key stays finite.
    scores = scores.float()
    padding = ~attention_mask.bool()[:, None, None, :]                                   # (B, 1, 1, L)
    scores = scores.masked_fill(padding, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1)

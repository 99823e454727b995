"""The MGCA model: image encoder + text encoder + four projection heads -> MGCAOutput.

Global heads project the whole image and the whole report; local heads project every patch and
every word. All four embeddings are L2-normalised here, so the losses compare them by dot product.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertTokenizerFast

from .config import MGCAModelConfig
from .heads import GlobalHead, LocalHead
from .image_encoder import build_image_encoder
from .text_encoder import TextEncoder
from .tokenizer import load_tokenizer


@dataclass
class MGCAOutput:
    img_emb: torch.Tensor                # (B, D) image embedding, unit norm
    rep_emb: torch.Tensor                # (B, D) report embedding, unit norm
    patch_emb: torch.Tensor              # (B, P, D) patch embeddings, unit norm
    word_emb: torch.Tensor               # (B, T, D) word embeddings, unit norm; rows past the last word are 0
    word_mask: torch.Tensor              # (B, T) bool, True = real word
    word_weights: torch.Tensor           # (B, T) [CLS] -> word attention, sums to 1 over real words (no grad)
    patch_weights: torch.Tensor | None   # (B, P) ViT [CLS] -> patch attention, sums to 1 (no grad); ResNet None
    img_feat: torch.Tensor               # (B, Cg) global image feature before projection (linear probes)
    words: list[list[str]] | None        # B lists of words, for display; None unless return_words


class MGCAModel(nn.Module):
    """forward(images (B, 1|3, H, W), input_ids (B, L), attention_mask (B, L)) -> MGCAOutput."""

    def __init__(self, cfg: MGCAModelConfig, tokenizer):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = build_image_encoder(cfg.image)
        self.text_encoder = TextEncoder(cfg.text, tokenizer)
        c_txt, hidden, dim = self.text_encoder.hidden_size, cfg.head_hidden, cfg.embed_dim
        self.image_global_head = GlobalHead(self.image_encoder.global_dim, hidden, dim)
        self.text_global_head = GlobalHead(c_txt, hidden, dim)
        self.image_local_head = LocalHead(self.image_encoder.local_dim, hidden, dim)
        self.text_local_head = LocalHead(c_txt, hidden, dim)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                return_words: bool = False) -> MGCAOutput:
        """images (B, 1|3, H, W), input_ids (B, L), attention_mask (B, L) -> MGCAOutput.

        return_words=True also fills MGCAOutput.words (display strings, built by a Python loop);
        training steps leave it off.
        """
        img = self.image_encoder(images)
        txt = self.text_encoder(input_ids, attention_mask, return_words=return_words)
        patch_weights = None
        if img.attention is not None:
            # Importance weights are inputs to the loss, not trained through (ref: computed under no_grad).
            att = img.attention.detach()                          # (B, P)
            patch_weights = att / att.sum(dim=1, keepdim=True)    # (B, P), sums to 1 like word_weights
        return MGCAOutput(
            img_emb=F.normalize(self.image_global_head(img.global_feat), dim=-1),                 # (B, D)
            rep_emb=F.normalize(self.text_global_head(txt.report_feat), dim=-1),                  # (B, D)
            patch_emb=F.normalize(self.image_local_head(img.local_feat), dim=-1),                 # (B, P, D)
            word_emb=F.normalize(self.text_local_head(txt.word_feat, txt.word_mask), dim=-1),     # (B, T, D); 0 rows stay 0
            word_mask=txt.word_mask,
            word_weights=txt.word_weights.detach(),
            patch_weights=patch_weights,
            img_feat=img.global_feat,
            words=txt.words,
        )


def build_model(cfg: MGCAModelConfig, tokenizer=None) -> tuple[MGCAModel, object]:
    """Tokenizer for cfg.text (unless one is given, e.g. from a checkpoint), then the model sized
    to it -> (model, tokenizer)."""
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.text)
    return MGCAModel(cfg, tokenizer), tokenizer

"""Encoders, projection heads and the MGCA model (see docs/architecture.md for the contracts)."""
from .config import ImageEncoderConfig, MGCAModelConfig, TextEncoderConfig
from .heads import GlobalHead, LocalHead
from .image_encoder import ImageFeatures, ResNetEncoder, ViTEncoder, build_image_encoder
from .mgca import MGCAModel, MGCAOutput, build_model
from .text_encoder import TextEncoder, TextFeatures
from .tokenizer import build_wordpiece_tokenizer, load_tokenizer, tokenizer_from_pieces, tokenizer_pieces
from .words import merge_pieces

__all__ = [
    "ImageEncoderConfig", "TextEncoderConfig", "MGCAModelConfig",
    "GlobalHead", "LocalHead",
    "ImageFeatures", "ResNetEncoder", "ViTEncoder", "build_image_encoder",
    "MGCAModel", "MGCAOutput", "build_model",
    "TextEncoder", "TextFeatures",
    "build_wordpiece_tokenizer", "load_tokenizer", "tokenizer_from_pieces", "tokenizer_pieces",
    "merge_pieces",
]

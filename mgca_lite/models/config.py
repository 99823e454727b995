"""Model configuration: three dataclasses, JSON-able so checkpoints can store them.

`MGCAModelConfig.to_dict()` gives a nested dict of plain values; `MGCAModelConfig.from_dict(d)`
rebuilds it (missing keys keep their defaults, unknown keys are errors, so a typo in a saved or
hand-written config fails loudly instead of being ignored).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mgca_lite.configtools import from_dict

IMAGE_ARCHS = ("resnet_tiny", "resnet18", "resnet50", "vit_tiny", "vit_b16")
TEXT_KINDS = ("tiny", "clinical")
PADDING_MODES = ("zeros", "reflect", "replicate")  # torch.nn.Conv2d padding modes we allow


@dataclass
class ImageEncoderConfig:
    arch: str = "resnet_tiny"      # one of IMAGE_ARCHS; resnet_* give 3rd/4th-stage features, vit_* patch tokens
    weights: str | None = None     # None = random init; a local state_dict file (tensors only; torchvision ResNet
                                   # keys, transformers ViTModel keys; every key must fit, else an error naming the
                                   # file), or for ViT also a local Hugging Face ViTModel directory. Never downloaded.
    image_size: int = 128          # input side in pixels (sets the ViT position-embedding grid)
    width: int = 16                # resnet_tiny only: channels of stage 1; stages use w, 2w, 4w, 8w
    patch_size: int | None = None  # ViT only: patch side; None = the arch default (vit_tiny 8, vit_b16 16)
    local_stride: int = 16         # ResNet only: stride of the local (stage-3) map. 16 = ResNet as built (ref);
                                   # 8 = stage 3 keeps stage 2's resolution (its first block does not stride), so
                                   # a 64 px film gives 8x8 local tokens instead of 4x4 and stage 4 runs at /16
    local_stage: int = 3           # ResNet only: the stage whose map gives the local tokens. 3 = ref; 2 = stage 2
                                   # (stride 8 whatever local_stride is), 1 = stage 1 (stride 4), whose units see
                                   # less of the film (resnet_tiny: 51 px at stage 2 and 27 px at stage 1, against
                                   # 83 / 99 px for stage 3 at stride 8 / 16)
    padding_mode: str = "zeros"    # ResNet only: how every padded convolution pads ("zeros" = ResNet as built, ref;
                                   # "reflect" / "replicate" do not mark the border, so a border cell's feature is
                                   # not distinct whatever the film shows; docs/experiments.md, "Grounding")

    def __post_init__(self):
        if self.arch not in IMAGE_ARCHS:
            raise ValueError(f"image arch {self.arch!r} is not one of {IMAGE_ARCHS}")
        if self.local_stride not in (8, 16):
            raise ValueError(f"image local_stride must be 8 or 16, not {self.local_stride}")
        if self.local_stage not in (1, 2, 3):
            raise ValueError(f"image local_stage must be 1, 2 or 3, not {self.local_stage}")
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"image padding_mode must be one of {PADDING_MODES}, not {self.padding_mode!r}")
        if self.arch.startswith("vit") and (self.local_stage, self.padding_mode) != (3, "zeros"):
            raise ValueError(f"image local_stage and padding_mode are ResNet switches; {self.arch} has patch "
                             "tokens and no padded convolutions: leave them at 3 and 'zeros'")


@dataclass
class TextEncoderConfig:
    kind: str = "tiny"               # "tiny": BERT trained from scratch on our WordPiece vocabulary;
                                     # "clinical": the first 6 layers of a BERT checkpoint (ref: Bio_ClinicalBERT)
    pretrained: str | None = None    # clinical only (required when the model is built; config files may leave it
                                     # null): local directory, or a hub id, holding the BERT weights and tokenizer
    num_layers: int = 2              # tiny only: transformer layers
    hidden_size: int = 128           # tiny only: width C of piece / word / report features
    num_heads: int = 4               # tiny only: attention heads (hidden_size must divide evenly)
    intermediate_size: int = 512     # tiny only: feed-forward width
    max_length: int = 112            # max pieces per report incl. [CLS]/[SEP] (ref 112); tiny: also the position table
    vocab_size: int = 3000           # tiny only: target size of the trained WordPiece vocabulary (an upper bound:
                                     # a small corpus can run out of merges first)
    shift_word_weights: bool = False  # True reproduces the reference's off-by-one: attention column i+1 paired
                                      # with piece i. Kept only so notebook 02 can show the difference.
    clean_reports: bool = True       # spec §3 caption cleaning (data/captions.py) of the reports the model reads
                                     # and, for tiny, of the tokenizer's corpus; False = the raw report text, kept
                                     # for the ablation in docs/experiments.md
    report_pooling: str = "cls"      # the report feature: "cls" = [CLS]'s last hidden state (the paper); "mean" =
                                     # the mean over real pieces ([CLS] and [SEP] included), for BERTs trained
                                     # from scratch, whose [CLS] hardly varies between reports at first
                                     # (synth_tiny uses it; docs/experiments.md)

    def __post_init__(self):
        if self.kind not in TEXT_KINDS:
            raise ValueError(f"text kind {self.kind!r} is not one of {TEXT_KINDS}")
        if self.report_pooling not in ("cls", "mean"):
            raise ValueError(f"report_pooling must be 'cls' or 'mean', not {self.report_pooling!r}")


@dataclass
class MGCAModelConfig:
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)  # image encoder
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)     # text encoder + tokenizer
    embed_dim: int = 128     # D: size of every L2-normalised embedding (global and local)
    head_hidden: int = 2048  # hidden width of the projection heads (ref 2048; tiny configs use less)

    def to_dict(self) -> dict:
        """Nested dict of plain values (json.dumps-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MGCAModelConfig":
        """Inverse of `to_dict`; also accepts partial dicts (missing fields keep their defaults)."""
        return from_dict(cls, data, "model")

"""Image encoders: a global feature for the whole image and local features for patches.

ResNet: local = the 3rd stage's feature map as tokens (ref: ResNet-50 layer3, 19x19 at 299 px),
global = the 4th stage average-pooled. ViT: local = patch tokens after the final LayerNorm,
global = [CLS], plus the last block's [CLS] -> patch attention (the patch importance weights).

Chest X-rays are grayscale: a 1-channel input is repeated to 3 channels inside forward, so
3-channel (ImageNet-style) weights stay loadable unchanged.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1
from transformers import ViTConfig, ViTModel

from .config import ImageEncoderConfig

# Stage 1-4 channels of the torchvision ResNets (resnet_tiny: w, 2w, 4w, 8w); stages 3 / 4 are the
# local / global features.
RESNET_STAGE_DIMS = {"resnet18": (64, 128, 256, 512), "resnet50": (256, 512, 1024, 2048)}
# ViT presets: (layers, hidden, heads, default patch). MLP width is 4 x hidden, as in ViT/DeiT.
VIT_PRESETS = {"vit_tiny": (4, 192, 3, 8), "vit_b16": (12, 768, 12, 16)}


@dataclass
class ImageFeatures:
    global_feat: torch.Tensor             # (B, Cg) whole-image feature (pre-projection; linear probes use it)
    local_feat: torch.Tensor              # (B, P, Cl) one feature per patch / feature-map cell
    attention: torch.Tensor | None = None  # (B, P) ViT [CLS] -> patch attention (mean over heads); ResNet None


def _to_rgb(images: torch.Tensor) -> torch.Tensor:
    """(B, 1|3, H, W) -> (B, 3, H, W); grayscale is repeated (a view, no copy)."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def load_weights(module: nn.Module, path: str, ignore_prefix: str, arch: str) -> None:
    """Load the local state_dict file `path` into `module` (all keys must fit), keys starting with
    `ignore_prefix` (a classifier or pooler we do not build) dropped.

    The file is loaded safely (tensors only). Anything that does not fit raises one ValueError
    naming the file and what is wrong -- not a torch state_dict, keys the model needs but the file
    lacks, keys the model does not have, or tensors of another shape -- instead of torch's
    traceback; a missing file is a FileNotFoundError.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file (model.image.weights)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors of every kind; re-raised with the file name
        raise ValueError(f"{path}: not a torch state_dict file (torch.load raised {type(err).__name__})") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict (parameter name -> tensor), got a {type(state).__name__}")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:  # e.g. a training checkpoint {"model": ..., "optimizer": ...}
        raise ValueError(f"{path}: expected a state_dict (parameter name -> tensor), but {_first(not_tensors)} "
                         "hold no tensor; save the network's state_dict() alone")
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefix)}
    own = module.state_dict()
    problems = []
    for what, keys in (("missing", [k for k in own if k not in state]),
                       ("unexpected", [k for k in state if k not in own])):
        if keys:
            problems.append(f"{len(keys)} {what} key(s) {_first(keys)}")
    shapes = [f"{k}: file {_shape(state[k])} vs model {_shape(v)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_first(shapes)}")
    if problems:
        raise ValueError(f"{path}: these weights do not fit image arch {arch}: " + "; ".join(problems))
    module.load_state_dict(state)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def _first(items: list[str], n: int = 3) -> str:
    """The first n items for an error message, e.g. "[a, b, c, ...]"."""
    return "[" + ", ".join(items[:n]) + (", ..." if len(items) > n else "") + "]"


class TinyResNet(nn.Module):
    """torchvision-style ResNet with one BasicBlock per stage and narrow stages (w, 2w, 4w, 8w).

    Same stem and strides as ResNet-18 (/4, /4, /8, /16, /32), so the local/global split matches
    the real encoders; about 0.3M parameters at w = 16, so a CPU trains it quickly.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(width, width, stride=1)
        self.layer2 = self._stage(width, 2 * width, stride=2)
        self.layer3 = self._stage(2 * width, 4 * width, stride=2)
        self.layer4 = self._stage(4 * width, 8 * width, stride=2)

    @staticmethod
    def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
        """One BasicBlock; a 1x1 conv + BN shortcut when the shape changes (as torchvision does)."""
        downsample = None
        if stride != 1 or c_in != c_out:
            downsample = nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
        return nn.Sequential(BasicBlock(c_in, c_out, stride=stride, downsample=downsample))


def _drop_stride(stage: nn.Sequential) -> None:
    """Make a ResNet stage keep its input resolution: its first block's stride-2 convolutions
    (the 3x3 in BasicBlock / Bottleneck and the 1x1 shortcut) become stride 1. Weight shapes do
    not change, so pretrained weights still load."""
    for module in stage[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)


def _set_padding_mode(trunk: nn.Module, mode: str) -> None:
    """Pad every padded convolution of `trunk` with `mode` ("zeros", "reflect", "replicate").

    Zero padding makes the cells along the map's border unlike the interior whatever the film shows
    (a constant film gives a non-constant map); reflect / replicate padding of a constant film is
    constant, so position is no longer written into the features. Weight shapes do not change.
    Max pooling pads with -inf and is left as it is (a max ignores its padding)."""
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d) and any(p > 0 for p in module.padding):
            module.padding_mode = mode


class ResNetEncoder(nn.Module):
    """ResNet trunk (resnet_tiny / resnet18 / resnet50) -> ImageFeatures with attention None."""

    def __init__(self, cfg: ImageEncoderConfig):
        super().__init__()
        if cfg.arch == "resnet_tiny":
            trunk = TinyResNet(cfg.width)
        else:
            trunk = getattr(torchvision.models, cfg.arch)(weights=None)
            trunk.fc = nn.Identity()  # classifier unused: no parameters left idle (DDP)
        if cfg.weights:
            # torchvision-format keys (torchvision.models.resnet50().state_dict()); a classifier
            # ("fc.*") in the file is ignored.
            load_weights(trunk, cfg.weights, "fc.", cfg.arch)
        if cfg.local_stride == 8:
            _drop_stride(trunk.layer3)
        _set_padding_mode(trunk, cfg.padding_mode)
        self.trunk = trunk
        self.local_stride = cfg.local_stride
        self.local_stage = cfg.local_stage
        w = cfg.width
        self.stage_dims = RESNET_STAGE_DIMS.get(cfg.arch, (w, 2 * w, 4 * w, 8 * w))  # what feature_maps returns
        self.local_dim, self.global_dim = self.stage_dims[cfg.local_stage - 1], self.stage_dims[3]

    def num_patches(self, image_size: int) -> int:
        """Tokens of the local map: stage 3 at s = local_stride, stage 2 at s = 8 or stage 1 at s = 4
        (each stride-2 layer rounds up)."""
        stride = {1: 4, 2: 8, 3: self.local_stride}[self.local_stage]
        return math.ceil(image_size / stride) ** 2

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (B, 1|3, H, W) -> the four stage outputs [x1 (H/4), x2 (H/8), x3 (H/s), x4 (H/2s)],
        s = local_stride: what dense heads (the segmentation U-Net, the detection FPN) read."""
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(_to_rgb(images)))))  # (B, C0, H/4, W/4)
        x1 = t.layer1(x)                                         # (B, C1, H/4, W/4)
        x2 = t.layer2(x1)                                        # (B, C2, H/8, W/8)
        x3 = t.layer3(x2)                                        # (B, Cl, H/s, W/s)
        return [x1, x2, x3, t.layer4(x3)]                        # x4: (B, Cg, H/2s, W/2s)

    def forward(self, images: torch.Tensor) -> ImageFeatures:
        """images (B, 1|3, H, W) -> global (B, Cg), local (B, H/s * W/s, Cl): the map of stage
        local_stage (3: s = local_stride; 2: s = 8; 1: s = 4)."""
        maps = self.feature_maps(images)
        local, x4 = maps[self.local_stage - 1], maps[3]
        return ImageFeatures(
            global_feat=x4.mean(dim=(2, 3)),              # (B, Cg) average pool
            local_feat=local.flatten(2).transpose(1, 2),  # (B, P, Cl), P = H/s * W/s, row-major
        )


def _check_vit_preset(config: ViTConfig, cfg: ImageEncoderConfig) -> None:
    """A Hugging Face ViT directory brings its own config: it must be the arch that cfg names
    (layers, width, heads, patch), else the run would silently train another model."""
    layers, hidden, heads, patch = VIT_PRESETS[cfg.arch]
    want = {"num_hidden_layers": layers, "hidden_size": hidden, "num_attention_heads": heads,
            "patch_size": cfg.patch_size or patch}
    wrong = [f"{k} {getattr(config, k)} (not {v})" for k, v in want.items() if getattr(config, k) != v]
    if wrong:
        raise ValueError(f"{cfg.weights}: this ViT directory is not image arch {cfg.arch}: {', '.join(wrong)}")


class ViTEncoder(nn.Module):
    """transformers ViTModel (vit_tiny / vit_b16) -> ImageFeatures with [CLS] -> patch attention."""

    def __init__(self, cfg: ImageEncoderConfig):
        super().__init__()
        if cfg.weights and os.path.isdir(cfg.weights):
            vit = ViTModel.from_pretrained(cfg.weights, add_pooling_layer=False, attn_implementation="eager")
            vit.train()  # from_pretrained returns eval mode
            _check_vit_preset(vit.config, cfg)
        else:
            layers, hidden, heads, patch = VIT_PRESETS[cfg.arch]
            config = ViTConfig(
                image_size=cfg.image_size,
                patch_size=cfg.patch_size or patch,
                num_channels=3,
                hidden_size=hidden,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                intermediate_size=4 * hidden,
                # SDPA (the transformers 5 default) cannot return attention probabilities.
                attn_implementation="eager",
            )
            vit = ViTModel(config, add_pooling_layer=False)
            if cfg.weights:
                # A transformers ViTModel state_dict (ViTModel(...).state_dict()); a pooler in the
                # file is ignored (we have none).
                load_weights(vit, cfg.weights, "pooler.", cfg.arch)
        self.vit = vit
        self.patch_size = vit.config.patch_size
        self.local_dim = self.global_dim = vit.config.hidden_size

    def num_patches(self, image_size: int) -> int:
        """Patch tokens for a square image: (image_size // patch)^2."""
        return (image_size // self.patch_size) ** 2

    def forward(self, images: torch.Tensor) -> ImageFeatures:
        """images (B, 1|3, H, W) -> global (B, C), local (B, P, C), attention (B, P)."""
        size = self.vit.config.image_size
        # Position embeddings were made for cfg.image_size; other sizes interpolate them.
        resize = tuple(images.shape[-2:]) != (size, size)
        out = self.vit(pixel_values=_to_rgb(images), output_attentions=True, interpolate_pos_encoding=resize)
        tokens = out.last_hidden_state                  # (B, 1 + P, C), after the final LayerNorm
        attn = out.attentions[-1][:, :, 0, 1:].mean(1)  # (B, P): [CLS] row, patch columns, mean over heads
        return ImageFeatures(global_feat=tokens[:, 0], local_feat=tokens[:, 1:], attention=attn)


def build_image_encoder(cfg: ImageEncoderConfig) -> nn.Module:
    """ResNetEncoder or ViTEncoder for `cfg.arch`; forward(images) -> ImageFeatures.

    Attributes: global_dim (Cg), local_dim (Cl), num_patches(image_size) -> P.
    """
    return ViTEncoder(cfg) if cfg.arch.startswith("vit") else ResNetEncoder(cfg)

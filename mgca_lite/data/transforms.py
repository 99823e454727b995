"""Image transforms: uint8 film -> normalised float tensor (1, H, W), with matching masks / boxes.

Following the MGCA recipe (resize the longest side, pad to a square, random crop for training,
centre crop for evaluation), scaled to our sizes: at full scale resize 256 / crop 224; on SynthCXR
at 128 px a crop of 112 or no crop at all (`crop=None`). Normalisation: (x / 255 - 0.5) / 0.5,
so pixels lie in [-1, 1].

The same geometry is applied to masks and boxes, so a segmentation or detection target stays
aligned with its image. Randomness comes from torch's generator, so `torch.manual_seed` and
DataLoader worker seeding make it reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

MEAN, STD = 0.5, 0.5


@dataclass
class TransformConfig:
    resize: int = 128        # longest image side after resizing (then padded to a square)
    crop: int | None = None  # random (train) / centre (eval) square crop; None = keep `resize`


def letterbox_geometry(h: int, w: int, size: int) -> tuple[float, int, int, int, int]:
    """How (h, w) maps into a size x size square: (scale, new_h, new_w, pad_top, pad_left)."""
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return scale, nh, nw, (size - nh) // 2, (size - nw) // 2


def letterbox(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize the longest side to `size` and zero-pad to (size, size); uint8 or bool (H, W)."""
    h, w = image.shape
    if (h, w) == (size, size):
        return image
    _, nh, nw, top, left = letterbox_geometry(h, w, size)
    is_bool = image.dtype == bool
    pil = Image.fromarray(image.astype(np.uint8) * (255 if is_bool else 1))
    resized = np.asarray(pil.resize((nw, nh), Image.NEAREST if nearest or is_bool else Image.BILINEAR))
    out = np.zeros((size, size), np.uint8)
    out[top:top + nh, left:left + nw] = resized
    return out > 127 if is_bool else out


def normalize(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) -> float32 (1, H, W), (x / 255 - 0.5) / 0.5."""
    x = torch.from_numpy(image.astype(np.float32)).div_(255.0)  # astype copies: always writable
    return x.sub_(MEAN).div_(STD).unsqueeze(0)


class ImageTransform:
    """Letterbox to `resize`, crop to `crop` (random when `train`), normalise.

    __call__(image uint8 (H, W), mask bool (H, W) | None, boxes float (N, 4) x1 y1 x2 y2 | None)
    -> (image float32 (1, C, C), mask bool tensor (C, C) | None, boxes float32 (N, 4) | None),
    C = crop or resize. Boxes are moved with the image and clipped to the crop.
    """

    def __init__(self, cfg: TransformConfig | None = None, train: bool = False):
        self.cfg = cfg or TransformConfig()
        self.train = train
        if self.cfg.crop is not None and self.cfg.crop > self.cfg.resize:
            raise ValueError(f"crop {self.cfg.crop} is larger than resize {self.cfg.resize}")

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None,
                 boxes: np.ndarray | None = None):
        size = self.cfg.resize
        h, w = image.shape
        scale, _, _, top, left = letterbox_geometry(h, w, size)
        image = letterbox(image, size)
        if mask is not None:
            mask = letterbox(mask.astype(bool), size, nearest=True)
        if boxes is not None:
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * scale + [left, top, left, top]
        crop = self.cfg.crop or size
        if self.train:
            y0, x0 = (int(torch.randint(0, size - crop + 1, (1,))) for _ in range(2))
        else:
            y0 = x0 = (size - crop) // 2
        image = image[y0:y0 + crop, x0:x0 + crop]
        if mask is not None:
            mask = torch.from_numpy(np.ascontiguousarray(mask[y0:y0 + crop, x0:x0 + crop]))
        if boxes is not None:
            boxes = np.clip(boxes - [x0, y0, x0, y0], 0, crop)
            boxes = torch.from_numpy(boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])])
        return normalize(image), mask, boxes

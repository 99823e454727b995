"""The local-feature grid switch: `ImageEncoderConfig.local_stride` 16 (ResNet as built) or 8."""
import pytest
import torch

from mgca_lite.models.config import ImageEncoderConfig
from mgca_lite.models.image_encoder import build_image_encoder


@pytest.mark.parametrize("arch", ["resnet_tiny", "resnet18"])
def test_stride_8_doubles_the_local_grid(arch):
    torch.manual_seed(0)
    coarse = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=64))
    fine = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=64, local_stride=8))
    x = torch.randn(2, 1, 64, 64)
    a, b = coarse(x), fine(x)
    assert a.local_feat.shape[1] == coarse.num_patches(64) == 16   # 4 x 4
    assert b.local_feat.shape[1] == fine.num_patches(64) == 64     # 8 x 8
    assert a.global_feat.shape == b.global_feat.shape
    # Same parameters (names and shapes): weights trained at one stride load into the other.
    fine.load_state_dict(coarse.state_dict())
    assert fine.num_patches(72) == 81  # 72 / 8 = 9 per side; odd sizes round up like the strides


def test_local_stride_is_checked():
    with pytest.raises(ValueError, match="local_stride"):
        ImageEncoderConfig(local_stride=4)

"""The local-feature grid switches: `ImageEncoderConfig.local_stride` 16 (ResNet as built) or 8, and `local_stage` 3, 2 or 1."""
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


@pytest.mark.parametrize("arch", ["resnet_tiny", "resnet18"])
@pytest.mark.parametrize("stage, side", [(2, 8), (1, 16)])
def test_an_earlier_local_stage_gives_its_tokens_and_keeps_the_global_feature(arch, stage, side):
    torch.manual_seed(0)
    stage3 = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=64)).eval()
    early = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=64, local_stage=stage)).eval()
    early.load_state_dict(stage3.state_dict())  # same parameters: only which map is read changes
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        a, b = stage3(x), early(x)
        fmap = early.feature_maps(x)[stage - 1]                 # (B, C_stage, side, side)
    assert early.num_patches(64) == side * side
    assert b.local_feat.shape == (2, side * side, early.local_dim) == (2, side * side, early.stage_dims[stage - 1])
    torch.testing.assert_close(b.local_feat, fmap.flatten(2).transpose(1, 2))
    torch.testing.assert_close(a.global_feat, b.global_feat)


def test_local_stage_is_checked():
    with pytest.raises(ValueError, match="local_stage"):
        ImageEncoderConfig(local_stage=4)

"""The padding switch: `ImageEncoderConfig.padding_mode` "zeros" (ResNet as built) or reflect / replicate."""
import pytest
import torch

from mgca_lite.models.config import ImageEncoderConfig
from mgca_lite.models.image_encoder import build_image_encoder


def _spread_over_cells(mode: str, film: torch.Tensor) -> float:
    """Largest deviation of any cell's local feature from the mean over cells, for one padding mode."""
    torch.manual_seed(0)
    enc = build_image_encoder(ImageEncoderConfig(image_size=64, width=8, local_stride=8, padding_mode=mode)).eval()
    with torch.no_grad():
        local = enc(film).local_feat[0]  # (P, Cl)
    return (local - local.mean(0)).abs().max().item()


def test_zero_padding_marks_the_border_and_reflect_or_replicate_do_not():
    film = torch.full((1, 1, 64, 64), 0.7)  # no content anywhere: any spatial variation is position
    spread = {mode: _spread_over_cells(mode, film) for mode in ("zeros", "reflect", "replicate")}
    assert spread["zeros"] > 1e-2                  # border cells differ from interior ones
    assert spread["reflect"] < 1e-5 and spread["replicate"] < 1e-5  # every cell alike


def test_padding_mode_keeps_the_parameters_and_changes_the_border_most():
    torch.manual_seed(0)
    zeros = build_image_encoder(ImageEncoderConfig(image_size=64, width=8, local_stride=8)).eval()
    reflect = build_image_encoder(ImageEncoderConfig(image_size=64, width=8, local_stride=8,
                                                     padding_mode="reflect")).eval()
    reflect.load_state_dict(zeros.state_dict())  # same names and shapes
    film = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a = zeros(film).local_feat[0].reshape(8, 8, -1)
        b = reflect(film).local_feat[0].reshape(8, 8, -1)
    assert not torch.allclose(a, b)
    # The trunk's receptive field reaches the border from everywhere at 64 px, so every cell may
    # change, but the ring (where padding enters first) changes most.
    diff = (a - b).norm(dim=-1)
    ring = torch.ones(8, 8, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    assert diff[ring].mean() > diff[~ring].mean()


def test_padding_mode_is_checked():
    with pytest.raises(ValueError, match="padding_mode"):
        ImageEncoderConfig(padding_mode="circularish")


@pytest.mark.parametrize("switch", [{"padding_mode": "reflect"}, {"local_stage": 2}])
def test_resnet_switches_are_refused_for_a_vit(switch):
    with pytest.raises(ValueError, match="ResNet switches"):
        ImageEncoderConfig(arch="vit_tiny", **switch)

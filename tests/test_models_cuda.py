"""CUDA checks of the models (skipped without a GPU): bf16 autocast + channels_last training step,
and the GPU word merge agreeing with the CPU one."""
from __future__ import annotations

import pytest
import torch

from mgca_lite.models import ImageEncoderConfig, MGCAModel, MGCAModelConfig, TextEncoderConfig, build_wordpiece_tokenizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

CORPUS = ["There is a small left apical pneumothorax.", "No pleural effusion or pneumothorax.",
          "Mild cardiomegaly. The lungs are clear.", "Right lower lobe consolidation, concerning for pneumonia."] * 3


def _cfg(arch: str) -> MGCAModelConfig:
    return MGCAModelConfig(image=ImageEncoderConfig(arch=arch, image_size=64),
                           text=TextEncoderConfig(max_length=32), embed_dim=32, head_hidden=128)


@pytest.mark.parametrize("arch", ["resnet_tiny", "vit_tiny"])
def test_bf16_channels_last_step_matches_cpu_words(arch):
    tok = build_wordpiece_tokenizer(CORPUS, vocab_size=80)
    enc = tok(["No pneumothorax.", "Mild cardiomegaly, small left pleural effusion.", "The lungs are clear."],
              padding=True, truncation=True, max_length=32, return_tensors="pt")
    images = torch.randn(3, 1, 64, 64)
    torch.manual_seed(0)
    model = MGCAModel(_cfg(arch), tok).eval()
    with torch.no_grad():
        cpu = model(images, enc["input_ids"], enc["attention_mask"], return_words=True)

    model = model.cuda().to(memory_format=torch.channels_last)
    args = (images.cuda().contiguous(memory_format=torch.channels_last),
            enc["input_ids"].cuda(), enc["attention_mask"].cuda())
    with torch.no_grad():
        gpu = model(*args, return_words=True)
    assert gpu.words == cpu.words
    torch.testing.assert_close(gpu.word_weights.cpu(), cpu.word_weights, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(gpu.img_emb.cpu(), cpu.img_emb, rtol=1e-2, atol=1e-3)

    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(*args)
        loss = out.img_emb.sum() + out.rep_emb.sum() + out.patch_emb.sum() + out.word_emb[out.word_mask].sum()
    loss.float().backward()
    assert torch.isfinite(loss.float())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

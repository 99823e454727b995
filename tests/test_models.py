"""Encoders, heads and the MGCA model: shapes, masks, weights, determinism, loading local weights."""
from __future__ import annotations

import copy
import json
import time

import pytest
import torch
from transformers import BertConfig, BertModel

from mgca_lite.data.captions import clean_report
from mgca_lite.models import (
    GlobalHead, ImageEncoderConfig, LocalHead, MGCAModel, MGCAModelConfig, TextEncoder, TextEncoderConfig,
    build_image_encoder, build_wordpiece_tokenizer, load_tokenizer, merge_pieces,
)
from mgca_lite.models import text_encoder as text_encoder_module
from mgca_lite.models.image_encoder import RESNET_STAGE_DIMS
from radiology_text import SENTENCES

# The text the model reads: cleaned reports (spec §3), as PairCollator and the tokenizer see them.
CORPUS = [clean_report(s).text for s in SENTENCES[:6]] * 3
REPORTS = [clean_report(r).text for r in ("No pneumothorax.", "Mild cardiomegaly, small left pleural effusion.",
                                          "Right lower lobe consolidation.", "The lungs are clear.")]
SIZE = 64


@pytest.fixture(scope="module")
def tokenizer():
    return build_wordpiece_tokenizer(CORPUS, vocab_size=120)  # small: some words span several pieces


def _batch(tokenizer, n=4):
    enc = tokenizer(REPORTS[:n], padding=True, truncation=True, max_length=32, return_tensors="pt")
    return torch.randn(n, 1, SIZE, SIZE), enc["input_ids"], enc["attention_mask"]


def _tiny_cfg(arch="resnet_tiny", **text) -> MGCAModelConfig:
    return MGCAModelConfig(image=ImageEncoderConfig(arch=arch, image_size=SIZE),
                           text=TextEncoderConfig(hidden_size=32, num_heads=2, intermediate_size=64,
                                                  max_length=32, **text),
                           embed_dim=16, head_hidden=64)


# ----------------------------------------------------------------------------------------- config
def test_config_json_round_trip_and_errors():
    cfg = _tiny_cfg("vit_tiny", shift_word_weights=True)
    assert MGCAModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert MGCAModelConfig.from_dict({"image": {"arch": "resnet18"}}).image.arch == "resnet18"  # partial
    with pytest.raises(ValueError, match="unknown"):
        MGCAModelConfig.from_dict({"text": {"layers": 3}})
    with pytest.raises(ValueError):
        ImageEncoderConfig(arch="resnet34")
    with pytest.raises(ValueError, match="pretrained"):
        load_tokenizer(TextEncoderConfig(kind="clinical"))  # config files may say null; building may not


# --------------------------------------------------------------------------------- image encoders
@pytest.mark.parametrize("arch", ["resnet_tiny", "resnet18", "vit_tiny"])
def test_image_encoder_shapes(arch):
    torch.manual_seed(0)
    enc = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=SIZE))
    feats = enc(torch.randn(2, 1, SIZE, SIZE))
    P = enc.num_patches(SIZE)
    assert feats.global_feat.shape == (2, enc.global_dim)
    assert feats.local_feat.shape == (2, P, enc.local_dim)
    if arch.startswith("vit"):
        assert P == (SIZE // 8) ** 2 and feats.attention.shape == (2, P)
        assert ((feats.attention > 0) & (feats.attention.sum(1, keepdim=True) < 1)).all()  # [CLS] column excluded
    else:
        assert feats.attention is None and P == (SIZE // 16) ** 2
    assert enc(torch.randn(1, 1, 80, 80)).local_feat.shape[1] == enc.num_patches(80)  # other sizes too


@pytest.mark.parametrize("arch", ["resnet50", "vit_b16"])
def test_large_encoders_build_with_reference_dims(arch):
    enc = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=32)).eval()  # BN: batch of 1
    if arch == "resnet50":
        assert (enc.local_dim, enc.global_dim) == RESNET_STAGE_DIMS["resnet50"][2:] == (1024, 2048)
    else:
        assert enc.local_dim == enc.global_dim == 768 and enc.num_patches(224) == 196
    start = time.perf_counter()
    with torch.no_grad():
        feats = enc(torch.randn(1, 1, 32, 32))
    assert feats.global_feat.shape == (1, enc.global_dim)
    assert time.perf_counter() - start < 5


def test_grayscale_is_repeated_and_channels_last_is_harmless():
    torch.manual_seed(0)
    enc = build_image_encoder(ImageEncoderConfig(image_size=SIZE)).eval()
    x = torch.randn(2, 1, SIZE, SIZE)
    ref = enc(x.repeat(1, 3, 1, 1))
    torch.testing.assert_close(enc(x).global_feat, ref.global_feat)
    enc = enc.to(memory_format=torch.channels_last)
    out = enc(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out.local_feat, ref.local_feat, rtol=1e-4, atol=1e-5)


def test_image_weights_load_from_local_files(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 1, SIZE, SIZE)
    for arch in ("resnet_tiny", "vit_tiny"):
        src = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=SIZE)).eval()
        inner = src.trunk if arch.startswith("resnet") else src.vit
        path = tmp_path / f"{arch}.pt"
        torch.save(inner.state_dict(), path)
        loaded = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=SIZE, weights=str(path))).eval()
        torch.testing.assert_close(loaded(x).global_feat, src(x).global_feat)
    src.vit.save_pretrained(tmp_path / "vit_dir")  # a Hugging Face directory works for ViT
    loaded = build_image_encoder(ImageEncoderConfig(arch="vit_tiny", image_size=SIZE, weights=str(tmp_path / "vit_dir")))
    assert loaded.training
    torch.testing.assert_close(loaded.eval()(x).attention, src(x).attention)


# ------------------------------------------------------------------------------------------ heads
def test_global_head_shape_and_output_batchnorm():
    head = GlobalHead(24, hidden=32, out=8)
    y = head(torch.randn(16, 24))
    assert y.shape == (16, 8)
    torch.testing.assert_close(y.mean(0), torch.zeros(8), atol=1e-5, rtol=0)  # BN(affine=False), train mode


def test_local_head_batchnorm_ignores_padded_rows():
    torch.manual_seed(0)
    head = LocalHead(12, hidden=32, out=8)
    x = torch.randn(3, 5, 12)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    y = head(x, mask)
    garbage = x.clone()
    garbage[~mask] = 1e3 * torch.randn(int((~mask).sum()), 12)
    torch.testing.assert_close(head(garbage, mask), y)          # padded rows change nothing
    assert (y[~mask] == 0).all()
    torch.testing.assert_close(y[mask], head.net(x[mask]))      # = the MLP on the valid rows only
    assert head(x).shape == (3, 5, 8)                           # no mask: every token (patches)


# ----------------------------------------------------------------------------------- text encoder
def _reference_words(enc: TextEncoder, input_ids, attention_mask, shift: bool):
    """Word weights by a plain loop over pieces, from BERT's own attention output."""
    with torch.no_grad():
        out = enc.bert(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    cls_attn = out.attentions[-1][:, :, 0, :].mean(1)  # (B, L): column j is piece j
    pieces = [enc.pieces[i] for i in range(len(enc.pieces))]
    weights = []
    for b in range(input_ids.shape[0]):
        words = []
        for j, (piece_id, m) in enumerate(zip(input_ids[b].tolist(), attention_mask[b].tolist())):
            piece = pieces[piece_id]
            if not m or piece in ("[CLS]", "[SEP]", "[PAD]"):
                continue
            a = float(cls_attn[b, j + 1]) if shift else float(cls_attn[b, j])  # shift: the reference quirk
            if piece.startswith("##") and words:
                words[-1] += a
            else:
                words.append(a)
        weights.append(torch.tensor(words) / sum(words))
    return weights


@pytest.mark.parametrize("shift", [False, True])
def test_text_encoder_words_and_weights(tokenizer, shift):
    torch.manual_seed(0)
    enc = TextEncoder(_tiny_cfg(shift_word_weights=shift).text, tokenizer).eval()  # eval: no attention dropout
    _, ids, mask = _batch(tokenizer)
    feats = enc(ids, mask, return_words=True)
    n_words = [len(w) for w in feats.words]
    assert feats.words[0] == ["no", "pneumothorax"]
    assert feats.report_feat.shape == (4, 32) and feats.word_feat.shape == (4, max(n_words), 32)
    assert feats.word_mask.sum(1).tolist() == n_words
    ref = _reference_words(enc, ids, mask, shift)
    for b in range(4):
        torch.testing.assert_close(feats.word_weights[b, : n_words[b]], ref[b])
        assert (feats.word_weights[b, n_words[b]:] == 0).all()
    torch.testing.assert_close(feats.word_weights.sum(1), torch.ones(4))
    assert enc(ids, mask).words is None  # display strings only when asked


def _piece_attention(enc: TextEncoder, input_ids, attention_mask, monkeypatch) -> torch.Tensor:
    """The (B, L) [CLS] -> piece attention that TextEncoder.forward hands to merge_pieces."""
    seen = []

    def spy(piece_feat, piece_attn, *rest):
        seen.append(piece_attn)
        return merge_pieces(piece_feat, piece_attn, *rest)

    with monkeypatch.context() as m:
        m.setattr(text_encoder_module, "merge_pieces", spy)
        enc(input_ids, attention_mask)
    return seen[0]


def _long_batch(tokenizer):
    """8 reports of 3 sentences each (about 20 words): enough pieces that dropout would zero some."""
    reports = [clean_report(" ".join(SENTENCES[i:i + 3])).text for i in range(8)]
    enc = tokenizer(reports, padding=True, truncation=True, max_length=32, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_cls_piece_attention_is_taken_before_dropout(tokenizer, monkeypatch):
    torch.manual_seed(0)
    enc = TextEncoder(_tiny_cfg().text, tokenizer)
    assert enc.bert.config.attention_probs_dropout_prob == 0.1 and enc.training
    ids, mask = _long_batch(tokenizer)
    valid = mask.bool()
    piece_attn = _piece_attention(enc, ids, mask, monkeypatch)  # train mode: attention dropout is active
    # Post-dropout rows would sum to ~1.05 and have ~10 % exact zeros.
    torch.testing.assert_close(piece_attn.sum(1), torch.ones(len(ids)))
    assert (piece_attn[valid] > 0).all() and (piece_attn[~valid] == 0).all()

    enc.eval()  # dropout off: exactly BERT's own attention probabilities
    piece_attn = _piece_attention(enc, ids, mask, monkeypatch)
    with torch.no_grad():
        ref = enc.bert(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[-1]
    torch.testing.assert_close(piece_attn, ref[:, :, 0].mean(1), rtol=1e-6, atol=1e-8)


def test_cls_attention_matches_eager_attention_under_bf16_autocast(tokenizer, monkeypatch):
    torch.manual_seed(0)
    enc = TextEncoder(_tiny_cfg().text, tokenizer).eval()
    _, ids, mask = _batch(tokenizer)  # padded: eager attention's float32 mask makes its softmax float32
    assert not mask.all()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        piece_attn = _piece_attention(enc, ids, mask, monkeypatch)
        ref = enc.bert(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[-1]
        feats = enc(ids, mask)
    assert ref.dtype == piece_attn.dtype == feats.word_weights.dtype == torch.float32
    torch.testing.assert_close(piece_attn, ref[:, :, 0].mean(1), rtol=1e-6, atol=1e-8)


def test_word_weights_do_not_depend_on_attention_dropout(tokenizer):
    torch.manual_seed(0)
    enc = TextEncoder(_tiny_cfg().text, tokenizer)
    no_drop = copy.deepcopy(enc)
    # The weights are read from the last layer; earlier layers keep their dropout in both copies
    # (and draw the same masks from the same seed), so both last layers get the same input.
    no_drop.bert.encoder.layer[-1].attention.self.dropout.p = 0.0
    ids, mask = _long_batch(tokenizer)
    torch.manual_seed(1)
    with_drop = enc(ids, mask)
    torch.manual_seed(1)
    without = no_drop(ids, mask)
    assert enc.training and no_drop.training
    torch.testing.assert_close(with_drop.word_weights, without.word_weights, rtol=0, atol=0)
    assert (with_drop.word_weights[with_drop.word_mask] > 0).all()  # no word lost to a dropped piece
    assert not with_drop.word_weights.requires_grad  # importance weights carry no gradient


def test_report_feature_is_cls_or_the_mean_over_real_pieces(tokenizer):
    _, ids, mask = _batch(tokenizer)
    torch.manual_seed(0)
    cls = TextEncoder(_tiny_cfg().text, tokenizer).eval()
    mean = TextEncoder(_tiny_cfg(report_pooling="mean").text, tokenizer).eval()
    mean.load_state_dict(cls.state_dict())                      # the same BERT, pooled two ways
    hidden = cls.bert(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, C)
    torch.testing.assert_close(cls(ids, mask).report_feat, hidden[:, 0])
    by_hand = torch.stack([hidden[b, mask[b].bool()].mean(0) for b in range(len(ids))])  # padding left out
    torch.testing.assert_close(mean(ids, mask).report_feat, by_hand)
    with pytest.raises(ValueError, match="report_pooling"):
        TextEncoderConfig(report_pooling="max")


def test_text_encoder_rejects_too_long_inputs(tokenizer):
    enc = TextEncoder(_tiny_cfg().text, tokenizer)
    with pytest.raises(ValueError, match="max_length"):
        enc(torch.full((1, 40), 5), torch.ones(1, 40, dtype=torch.long))


def test_clinical_keeps_first_six_layers_of_a_local_checkpoint(tmp_path, tokenizer):
    torch.manual_seed(0)
    big = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=8,
                               num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    big.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cfg = TextEncoderConfig(kind="clinical", pretrained=str(tmp_path), max_length=32)
    tok = load_tokenizer(cfg)
    assert tok.get_vocab() == tokenizer.get_vocab() and tok.model_max_length == 32
    enc = TextEncoder(cfg, tok)
    assert len(enc.bert.encoder.layer) == 6 and enc.bert.config._attn_implementation == "eager"
    assert enc.training and enc.bert.pooler is None
    torch.testing.assert_close(enc.bert.encoder.layer[5].output.dense.weight, big.encoder.layer[5].output.dense.weight)
    _, ids, mask = _batch(tok, 2)
    feats = enc(ids, mask)
    assert feats.report_feat.shape == (2, 32)


# ------------------------------------------------------------------------------------ full model
@pytest.mark.parametrize("arch", ["resnet_tiny", "vit_tiny"])
def test_mgca_output_contract_and_every_parameter_learns(tokenizer, arch):
    torch.manual_seed(0)
    model = MGCAModel(_tiny_cfg(arch), tokenizer)
    images, ids, mask = _batch(tokenizer)
    out = model(images, ids, mask, return_words=True)
    B, P, T = 4, model.image_encoder.num_patches(SIZE), out.word_mask.shape[1]
    assert out.img_emb.shape == out.rep_emb.shape == (B, 16)
    assert out.patch_emb.shape == (B, P, 16) and out.word_emb.shape == (B, T, 16)
    assert out.word_weights.shape == (B, T) and out.img_feat.shape == (B, model.image_encoder.global_dim)
    for emb in (out.img_emb, out.rep_emb, out.patch_emb, out.word_emb[out.word_mask]):
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(emb.shape[:-1]))
    assert (out.word_emb[~out.word_mask] == 0).all()
    torch.testing.assert_close(out.word_weights.sum(1), torch.ones(B))
    if arch == "vit_tiny":
        assert out.patch_weights.shape == (B, P)
        torch.testing.assert_close(out.patch_weights.sum(1), torch.ones(B))
    else:
        assert out.patch_weights is None
    assert len(out.words) == B and out.words[0] == ["no", "pneumothorax"]

    # Every parameter gets a gradient (DDP needs no unused parameters), weights carry none.
    loss = sum(e.sum() * w for e, w in zip((out.img_emb, out.rep_emb, out.patch_emb, out.word_emb), (1, 2, 3, 4)))
    (loss + out.img_feat.sum()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert not out.word_weights.requires_grad


def test_same_seed_same_model_and_outputs(tokenizer):
    images, ids, mask = _batch(tokenizer)
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MGCAModel(_tiny_cfg("vit_tiny"), tokenizer)
        outs.append(model(images, ids, mask))  # train mode: dropout draws from the same seeded stream
    for name in ("img_emb", "rep_emb", "patch_emb", "word_emb", "word_weights", "patch_weights"):
        torch.testing.assert_close(getattr(outs[0], name), getattr(outs[1], name), rtol=0, atol=0)


@pytest.mark.parametrize("arch,stride", [("resnet_tiny", 16), ("resnet_tiny", 8), ("resnet18", 16)])
def test_feature_maps_are_the_four_stages_with_their_channels(arch, stride):
    enc = build_image_encoder(ImageEncoderConfig(arch=arch, image_size=64, width=8, local_stride=stride)).eval()
    with torch.no_grad():
        maps = enc.feature_maps(torch.randn(2, 1, 64, 64))
        feats = enc(torch.randn(2, 1, 64, 64))
    sides = [64 // 4, 64 // 8, 64 // stride, 64 // (2 * stride)]
    assert [tuple(m.shape) for m in maps] == [(2, c, s, s) for c, s in zip(enc.stage_dims, sides)]
    assert feats.local_feat.shape == (2, sides[2] ** 2, enc.stage_dims[2])  # forward reads the same stages

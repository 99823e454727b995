"""Loading a Hugging Face BERT folder (model.text.pretrained): quiet, and strict about missing weights."""
import pytest
from transformers import BertConfig, BertModel

from mgca_lite.models.config import TextEncoderConfig
from mgca_lite.models.text_encoder import build_bert


def _save_bert(path, drop: str | None = None):
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BertModel(config, add_pooling_layer=True)
    state = model.state_dict()
    if drop:
        state = {k: v for k, v in state.items() if not k.startswith(drop)}
    model.save_pretrained(path, state_dict=state)
    return model


def test_checkpoint_loads_quietly_without_its_pooler(tmp_path, capfd):
    saved = _save_bert(tmp_path / "bert")
    bert = build_bert(TextEncoderConfig(kind="clinical", pretrained=str(tmp_path / "bert")), 40, 0)
    assert bert.training and bert.pooler is None and len(bert.encoder.layer) == 2
    assert (bert.embeddings.word_embeddings.weight == saved.embeddings.word_embeddings.weight).all()
    err = capfd.readouterr().err
    assert "pooler" not in err and "Loading weights" not in err  # no per-key report, no progress bar


def test_checkpoint_missing_weights_is_a_clear_error(tmp_path):
    _save_bert(tmp_path / "bert", drop="encoder.layer.1.")
    with pytest.raises(ValueError, match=r"bert: not a BERT checkpoint.*missing \d+ weight"):
        build_bert(TextEncoderConfig(kind="clinical", pretrained=str(tmp_path / "bert")), 40, 0)

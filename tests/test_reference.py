"""The committed course reference checkpoint loads safely and reproduces its recorded validation loss."""
from __future__ import annotations

import json

from mgca_lite.training.checkpoint import load_checkpoint, load_pretrained
from mgca_lite.training.reference import REFERENCE_FORMAT, REFERENCE_PATH, validation_loss


def test_reference_checkpoint_is_small_loads_and_reproduces_its_validation_loss():
    assert REFERENCE_PATH.is_file(), f"{REFERENCE_PATH} is part of the course and must be committed"
    assert REFERENCE_PATH.stat().st_size <= 5 * 2**20
    packed = load_checkpoint(REFERENCE_PATH)  # torch.load(weights_only=True)
    assert packed["format"] == REFERENCE_FORMAT and packed["command"]
    cfg = json.loads(packed["config"])
    assert cfg["data"]["source"] == "synth"
    # Re-rendered validation films, float32 arithmetic: the same loss up to summation order.
    assert abs(validation_loss(packed) - packed["val_loss"]) < 1e-3 * packed["val_loss"]
    model, tokenizer, loaded = load_pretrained(REFERENCE_PATH)
    # Every recorded setting comes back; settings added to the library since take their defaults.
    assert _recorded_part(json.loads(loaded.to_json()), cfg) == cfg and len(tokenizer) == len(packed["vocab"])


def _recorded_part(loaded: dict, recorded: dict) -> dict:
    """`loaded` restricted to the keys of `recorded`, recursively."""
    return {k: _recorded_part(loaded[k], v) if isinstance(v, dict) else loaded[k] for k, v in recorded.items()}

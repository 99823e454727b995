"""Models for evaluation: a trained checkpoint, or the same architecture at random init ("random").

Every evaluation that takes a checkpoint also takes the word "random" (the untrained baseline of
the same architecture, built from a named config), so a score can be read against what training
added.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

RANDOM = "random"


def _as_bad_input(checkpoint, load):
    """Run `load()`; a missing file or one that is not an mgca_lite checkpoint becomes one line
    naming the file (FileNotFoundError / ValueError), which the CLI prints as `error: ...`.
    MGCA_DEBUG=1 shows the whole chain."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (a best.pt / last.pt written by pretrain)")
    try:
        return load()
    except RuntimeError as err:
        # With a cause: load_checkpoint's torch.load failed, whose message is a paragraph (or a bare
        # opcode number), so only its type is kept. Without: load_state_dict's multi-line mismatch.
        why = f"torch.load raised {type(err.__cause__).__name__}" if err.__cause__ else "weights do not fit its config"
        raise ValueError(f"{path}: not a readable mgca_lite checkpoint ({why})") from err
    except (KeyError, TypeError) as err:  # a torch file, but not one pretrain wrote
        raise ValueError(f"{path}: not an mgca_lite checkpoint (missing {err})") from err


def load_model(checkpoint: str | Path, config: str = "synth_tiny"):
    """(model in eval mode, tokenizer, PretrainConfig) of a checkpoint, or for "random" of
    `config` (a name in configs/ or a YAML path) at random init, seeded by its train.seed + 1
    (a different draw from a pretrained model's init, as `compare_encoders` uses)."""
    if str(checkpoint) != RANDOM:
        from mgca_lite.training.checkpoint import load_pretrained
        return _as_bad_input(checkpoint, lambda: load_pretrained(checkpoint))
    from mgca_lite.models.mgca import build_model
    from mgca_lite.training.config import load_config

    cfg = load_config(config)
    torch.manual_seed(cfg.train.seed + 1)
    model, tokenizer = build_model(cfg.model)
    return model.eval(), tokenizer, cfg


def load_prototypes(checkpoint: str | Path, cfg) -> torch.Tensor:
    """The CPA prototypes C (K, D), rows L2-normalised, from a checkpoint's "model" state
    (the `PretrainModule` key "criterion.prototypes"); for "random", K rows drawn as `MGCALoss`
    initialises them (seeded by cfg.train.seed + 2)."""
    if str(checkpoint) == RANDOM:
        gen = torch.Generator().manual_seed(cfg.train.seed + 2)
        protos = torch.randn(cfg.loss.num_prototypes, cfg.loss.embed_dim, generator=gen)
    else:
        from mgca_lite.training.checkpoint import load_checkpoint
        state = _as_bad_input(checkpoint, lambda: load_checkpoint(checkpoint)["model"])
        if "criterion.prototypes" not in state:
            raise ValueError(f"{checkpoint}: no criterion.prototypes in the checkpoint's model state")
        protos = state["criterion.prototypes"].float()
    return F.normalize(protos, dim=1)


def reads_clean_reports(checkpoint: str | Path, cfg) -> bool:
    """Whether the model reads cleaned reports (`TextEncoderConfig.clean_reports`). Read from the
    checkpoint's saved config: one written before the field existed was trained on raw reports,
    although its loaded config shows the field's default. "random": cfg's value."""
    if str(checkpoint) == RANDOM:
        return bool(getattr(cfg.model.text, "clean_reports", False))
    from mgca_lite.training.checkpoint import load_checkpoint

    saved = _as_bad_input(checkpoint, lambda: json.loads(load_checkpoint(checkpoint)["config"]))
    return bool(saved.get("model", {}).get("text", {}).get("clean_reports", False))

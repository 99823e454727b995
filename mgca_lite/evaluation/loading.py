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
    """Run `load()`; a file that is not an mgca_lite checkpoint (unreadable: RuntimeError from
    `load_checkpoint`; another torch file: KeyError) becomes one ValueError line naming the file,
    which the CLI prints as `error: ...`."""
    try:
        return load()
    except (RuntimeError, KeyError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if first.startswith(str(checkpoint)):
            raise ValueError(first) from err
        raise ValueError(f"{checkpoint}: not an mgca_lite pretraining checkpoint ({first})") from err


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

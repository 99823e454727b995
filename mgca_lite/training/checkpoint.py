"""Checkpoints that load with `weights_only=True` and survive a crash mid-save.

A checkpoint holds everything exact resume needs: model + prototypes, optimizer, scheduler, every
RNG state, the step and the position inside the epoch, early-stopping state, and the config as JSON.
"""
from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import torch


def rng_state() -> dict:
    """Python, numpy, torch CPU and CUDA RNG states as tensors/ints (safe for weights_only)."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of `rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(("MT19937", nps["keys"].numpy().astype(np.uint32), nps["pos"],
                         nps["has_gauss"], nps["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: dict, path: str | Path) -> None:
    """Write to `path.tmp`, flush to disk, then rename: a crash never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint written by `save_atomic`, with a clear error when it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here (train first, or drop --resume)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise RuntimeError(f"{path}: not a readable mgca_lite checkpoint ({err})") from err


def run_is_finished(run_dir: str | Path) -> bool:
    """True when `run_dir/last.pt` belongs to a run that reached its step/epoch budget or stopped
    early, so load-or-train code can skip building the trainer (and rendering its data)."""
    last = Path(run_dir) / "last.pt"
    return last.is_file() and bool(load_checkpoint(last).get("finished", False))


def model_fingerprint(path: str | Path) -> str:
    """The first 16 hex digits of a sha256 over a checkpoint's model tensors (names, dtypes, shapes and
    values, in name order): which weights an evaluation was made from. A config and seed do not name
    the weights: two trainings of one config can differ (float sums depend on the thread count)."""
    digest = hashlib.sha256()
    model = load_checkpoint(path)["model"]
    for name in sorted(model):
        tensor = model[name].detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def load_pretrained(path: str | Path, map_location="cpu"):
    """A trained MGCA model from `best.pt` / `last.pt` -> (model in eval mode, tokenizer, PretrainConfig).

    Used by downstream evaluation and by notebooks that skip training (load-or-train).
    """
    from mgca_lite.models.mgca import build_model
    from mgca_lite.models.tokenizer import tokenizer_from_pieces
    from mgca_lite.training.config import config_from_json

    ckpt = load_checkpoint(path, map_location)
    cfg = config_from_json(ckpt["config"])
    model, tokenizer = build_model(cfg.model, tokenizer_from_pieces(ckpt["vocab"]))
    state = {k[len("model."):]: v for k, v in ckpt["model"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval(), tokenizer, cfg

"""The course's reference checkpoint: a finished run packed small enough to commit.

`checkpoints/reference.pt` holds what evaluation and the notebooks need and nothing for resuming:
the model and prototype weights in float16, the config as JSON, the tokenizer's vocabulary, and
the validation loss that these float16 weights give (recomputed after rounding, so a test can
check that the file reproduces it). It loads with `weights_only=True` through the same
`load_pretrained` / `load_checkpoint` as any run's `best.pt`.

    python -m mgca_lite.training.reference runs/reference/best.pt checkpoints/reference.pt \
        --command "python -m mgca_lite pretrain --config synth_reference --output-dir runs/reference"
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mgca_lite.data.collate import PairCollator
from mgca_lite.losses.mgca_loss import MGCALoss
from mgca_lite.models.mgca import build_model
from mgca_lite.models.tokenizer import tokenizer_from_pieces
from mgca_lite.training.checkpoint import load_checkpoint, save_atomic
from mgca_lite.training.config import config_from_json
from mgca_lite.training.data import synth_pretrain_split
from mgca_lite.training.module import PretrainModule

REFERENCE_FORMAT = "mgca-lite-reference-1"
REFERENCE_PATH = Path(__file__).resolve().parents[2] / "checkpoints" / "reference.pt"


@torch.no_grad()
def validation_loss(ckpt: dict, progress: bool = False) -> float:
    """Mean total loss (as the trainer's `validate`) of a checkpoint dict's weights over its
    config's SynthCXR validation split, in float32 on the CPU, batches of train.batch_size."""
    cfg = config_from_json(ckpt["config"])
    if cfg.data.source != "synth":
        raise ValueError("validation_loss re-renders SynthCXR; this run was trained on a manifest")
    torch.manual_seed(cfg.train.seed)  # prototypes' initial draw; overwritten by the state below
    model, tokenizer = build_model(cfg.model, tokenizer_from_pieces(ckpt["vocab"]))
    module = PretrainModule(model, MGCALoss(cfg.loss))
    module.load_state_dict(ckpt["model"])  # float16 values are cast to the float32 parameters
    module.eval()
    data = synth_pretrain_split(cfg.data, "val", progress)
    collate = PairCollator(tokenizer, cfg.model.text.max_length, clean=cfg.model.text.clean_reports)
    total, count = 0.0, 0
    for batch in DataLoader(data, batch_size=cfg.train.batch_size, collate_fn=collate):
        out = module(batch["images"], batch["input_ids"], batch["attention_mask"])
        total += float(out["loss"]) * len(batch["images"])
        count += len(batch["images"])
    return total / count


def export_reference(checkpoint: str | Path, out: str | Path, command: str) -> dict:
    """Pack a finished run's checkpoint into the reference format at `out`; returns what was saved
    (less the weights). `command` is the command line that trained it, recorded in the file."""
    ckpt = load_checkpoint(checkpoint)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in ckpt["model"].items()}
    packed = {"format": REFERENCE_FORMAT, "model": state, "config": ckpt["config"], "vocab": ckpt["vocab"],
              "step": ckpt["step"], "epoch": ckpt["epoch"], "finished": True, "command": command,
              "best_val_fp32": float(ckpt["best_val"])}
    packed["val_loss"] = validation_loss(packed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_atomic(packed, out)
    return {k: v for k, v in packed.items() if k not in ("model", "vocab")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pack a finished run into checkpoints/reference.pt")
    parser.add_argument("checkpoint", help="the run's best.pt")
    parser.add_argument("out", nargs="?", default=str(REFERENCE_PATH))
    parser.add_argument("--command", required=True, help="the command line that trained the run")
    args = parser.parse_args(argv)
    info = export_reference(args.checkpoint, args.out, args.command)
    size_mb = Path(args.out).stat().st_size / 2**20
    print(f"wrote {args.out} ({size_mb:.2f} MiB): step {info['step']}, validation loss {info['val_loss']:.4f} "
          f"(float32 weights: {info['best_val_fp32']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

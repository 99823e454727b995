"""Load-or-train: the one helper that `make demo` and every notebook use to get a pretrained model.

- `pretrain_or_resume(cfg, run_dir)`: read a finished run, resume an interrupted one, or train.
- `course_checkpoint(run_dir)`: the checkpoint a lesson should read — a finished run of its own in
  `run_dir` when there is one, otherwise the committed course reference `checkpoints/reference.pt`
  (so a learner can open notebook 04 without having trained anything).
"""
from __future__ import annotations

from pathlib import Path

from mgca_lite.training.checkpoint import load_checkpoint, run_is_finished
from mgca_lite.training.config import require_same_run_config
from mgca_lite.training.reference import REFERENCE_PATH


def pretrain_or_resume(cfg, run_dir: str | Path, progress: bool = True, quiet: bool = False) -> dict:
    """Train `cfg` into `run_dir`, resuming from `last.pt` when an earlier run left one; a finished
    run is only read back (its datasets are never rendered). A run in `run_dir` trained with another
    config raises ValueError naming the differing fields (never read back as if it were this one).

    Returns {"step", "epoch", "best_val", "stopped_early", "action"}, action one of "loaded",
    "resumed", "trained".
    """
    from mgca_lite.training.trainer import Trainer  # lazy: importing the trainer pulls in the data stack

    run_dir = Path(run_dir)
    require_same_run_config(run_dir, cfg)
    if run_is_finished(run_dir):
        ckpt = load_checkpoint(run_dir / "last.pt")
        if not quiet:
            print(f"{run_dir.as_posix()} holds a finished run: loading it (delete the folder to retrain)")
        return {"step": ckpt["step"], "epoch": ckpt["epoch"], "best_val": ckpt["best_val"],
                "stopped_early": ckpt["stopped_early"], "action": "loaded"}
    resume = (run_dir / "last.pt").exists()
    summary = Trainer(cfg, run_dir, resume=resume, progress=progress).fit()
    return {**summary, "action": "resumed" if resume else "trained"}


def course_checkpoint(run_dir: str | Path | None = None, reference: str | Path = REFERENCE_PATH) -> Path:
    """`run_dir/best.pt` when `run_dir` holds a finished run, else the course reference checkpoint.

    Raises FileNotFoundError naming both places when neither exists.
    """
    if run_dir is not None and run_is_finished(run_dir):
        return Path(run_dir) / "best.pt"
    reference = Path(reference)
    if not reference.is_file():
        where = f"{Path(run_dir).as_posix()} has no finished run and " if run_dir is not None else ""
        raise FileNotFoundError(f"{where}{reference} is missing (it is committed with the course; "
                                "restore it with git checkout, or train a run first)")
    return reference

"""Per-step metrics to CSV (always) and TensorBoard (when installed and enabled), rank 0 only."""
from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = ("step", "epoch", "split", "loss", "ita", "cta", "cpa", "local", "top1", "top5", "lr", "images_per_s")


class MetricsLogger:
    """Append rows to `DIR/metrics.csv`; on resume, rows after the resumed step are dropped."""

    def __init__(self, output_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True):
        self.path = Path(output_dir) / "metrics.csv"
        rows = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(Path(output_dir) / "tb"))
            except ImportError:  # tensorboard is optional at run time
                self.writer = None

    def log(self, step: int, epoch: int, split: str, values: dict) -> None:
        """Write one row; `values` may hold any subset of COLUMNS."""
        row = {"step": step, "epoch": epoch, "split": split}
        row.update({k: (f"{float(v):.6g}" if v is not None else "") for k, v in values.items() if k in COLUMNS})
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=COLUMNS).writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                if value is not None:
                    self.writer.add_scalar(f"{split}/{key}", float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(output_dir: str | Path) -> list[dict]:
    """Rows of `DIR/metrics.csv` with numbers parsed (empty cells -> None)."""
    with open(Path(output_dir) / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    parsed = []
    for row in rows:
        parsed.append({k: (row[k] if k == "split" else (float(row[k]) if row[k] != "" else None)) for k in row})
    return parsed

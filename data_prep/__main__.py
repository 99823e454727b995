"""`python -m data_prep NAME --root RAW_DIR --out OUT_DIR [--image-size 256]`.

NAME is one of CONVERTERS. Each converter module provides `check_root(root)` (raises DataPrepError
when RAW_DIR holds nothing it recognises), `LABEL_COLUMNS` and `studies(root, log)` -> (iterator of
Study, total or None); common.write_manifest writes the result.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .common import DataPrepError, SkipLog, claim_out_dir, print_summary, write_manifest

CONVERTERS = ("mimic_cxr", "chexpert", "rsna", "covidx", "siim", "object_cxr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_prep",
                                description="Convert a real chest X-ray dataset, as its publisher ships "
                                            "it, into the mgca_lite manifest format (see DATA.md).")
    p.add_argument("name", choices=CONVERTERS, help="the dataset")
    p.add_argument("--root", required=True, type=Path, help="the unpacked download")
    p.add_argument("--out", required=True, type=Path, help="a new or empty directory (or one data_prep "
                                                            "wrote for the same dataset)")
    p.add_argument("--image-size", type=int, default=256, help="longer side of the stored images and "
                                                               "size of the training cache (default 256)")
    return p


def run(name: str, root: Path, out: Path, image_size: int = 256) -> dict:
    """Convert dataset `name` from `root` into `out`; returns the summary (see common.write_manifest)."""
    module = importlib.import_module(f"data_prep.{name}")
    module.check_root(root)          # bad input fails here, before anything is written
    claim_out_dir(out, name)
    log = SkipLog()
    studies, total = module.studies(root, log)
    summary = module.write(out, studies, log, image_size, total) if hasattr(module, "write") else \
        write_manifest(out, name, studies, log, module.LABEL_COLUMNS, image_size, total)
    print_summary(summary, out)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args.name, args.root, args.out, args.image_size)
    except (DataPrepError, FileExistsError) as e:
        print(f"data_prep {args.name}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

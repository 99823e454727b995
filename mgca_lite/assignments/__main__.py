"""python -m mgca_lite.assignments build | grade SUBMISSION.ipynb [--json OUT] (see TEACHING.md)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .build import build
from .course import EXERCISES, MASTERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mgca_lite.assignments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the student notebooks from the masters")
    b.add_argument("--out", type=Path, default=EXERCISES, help="default: notebooks/exercises")
    g = sub.add_parser("grade", help="grade a submission (sandboxed) and print the score table")
    g.add_argument("submission", type=Path)
    g.add_argument("--json", type=Path, help="also write the report as JSON here")
    g.add_argument("--notebook", help="the assignment's two-digit number, when the file name lacks it")
    g.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per answer cell and exercise")
    g.add_argument("--notebook-timeout", type=float, default=300.0, help="seconds for the whole submission")
    args = parser.parse_args(argv)
    if args.command == "build":
        for path in build(args.out):
            print(f"wrote {path}")
        return 0
    from .grade import format_report, grade  # torch is imported only for grading
    master = None
    if args.notebook:
        matches = sorted(MASTERS.glob(f"{args.notebook}_*.ipynb"))
        if not matches:
            parser.error(f"--notebook {args.notebook}: no notebooks/{args.notebook}_*.ipynb")
        master = matches[0]
    try:
        report = grade(args.submission, master, args.cell_timeout, args.notebook_timeout)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Strip notebooks to what the course commits: outputs stay, metadata goes, execution counts are 1..n.

Usage: python tools/clean_notebooks.py notebooks/*.ipynb      (rewrite in place)
       python tools/clean_notebooks.py --check notebooks/*.ipynb (exit 1 if any is not clean)

Kept: cell sources, outputs, cell tags (papermill's `parameters` and nbval's `nbval-ignore-output`
live there), nbgrader's cell metadata (which cells are exercises and tests: mgca_lite.assignments)
and the kernelspec. Execution counts are renumbered 1..n in cell order, as after a
clean top-to-bottom run (nbval rejects outputs on a cell whose count is None). Dropped: every
other notebook/cell/output metadata field (timings, papermill bookkeeping, widget state).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KEPT_NOTEBOOK_METADATA = ("kernelspec",)
KEPT_CELL_METADATA = ("nbgrader", "tags")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def clean_notebook(nb: dict) -> dict:
    """Return a cleaned copy of a notebook dict (nbformat 4 JSON)."""
    nb = json.loads(json.dumps(nb))
    nb["metadata"] = {"kernelspec": KERNELSPEC}
    count = 0
    for cell in nb["cells"]:
        meta = cell.get("metadata", {})
        cell["metadata"] = {key: meta[key] for key in KEPT_CELL_METADATA if meta.get(key)}
        cell.pop("id", None)
        if cell["cell_type"] == "code":
            # Renumbered 1..n in cell order, not removed: nbval treats a cell whose count is None
            # as never run and fails it ("Unrun reference cell has outputs").
            count += 1
            cell["execution_count"] = count
            for out in cell.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = count
                if "metadata" in out:
                    out["metadata"] = {}
    nb["nbformat"], nb["nbformat_minor"] = 4, 4
    return nb


def dumps(nb: dict) -> str:
    """Serialise the way Jupyter does (1-space indent, trailing newline) for stable diffs."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report unclean notebooks, change nothing")
    args = parser.parse_args(argv)
    unclean = []
    for path in args.paths:
        text = path.read_text(encoding="utf-8")
        cleaned = dumps(clean_notebook(json.loads(text)))
        if cleaned != text:
            unclean.append(path)
            if not args.check:
                path.write_text(cleaned, encoding="utf-8")
    for path in unclean:
        print(f"{'not clean' if args.check else 'cleaned'}: {path}")
    return 1 if (args.check and unclean) else 0


if __name__ == "__main__":
    sys.exit(main())

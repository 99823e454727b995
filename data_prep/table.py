"""Reading a publisher's CSV label file: check its header up front, then yield its rows with the
file:line each came from, so a converter can name the line of anything it skips.

Every field is stripped of surrounding spaces: SIIM's header reads "ImageId, EncodedPixels" and
its values may start with a space (" -1"), a trap the MGCA reference's users fell into.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from .common import DataPrepError


def read_header(path: Path, columns: tuple[str, ...], dataset: str) -> list[str]:
    """The stripped header of CSV `path`; DataPrepError naming the file unless every name in
    `columns` is there."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = [name.strip() for name in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError) as e:
        raise DataPrepError(f"{path}: cannot be read as the {dataset} label file ({e})") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataPrepError(f"{path}: not the {dataset} label file: missing column(s) {missing}, "
                            f"header is {header}")
    return header


def read_rows(path: Path, columns: tuple[str, ...], dataset: str
              ) -> Iterator[tuple[str, dict[str, str], str | None]]:
    """("file:line", {column: stripped value}, problem) for each row of CSV `path`. problem is None,
    or says that the row's number of fields differs from the header's (the dict then holds the
    fields there are, so a converter can still tell whose row it was). Blank lines are ignored."""
    header = read_header(path, columns, dataset)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader)
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            problem = None if len(fields) == len(header) else \
                f"{len(fields)} field(s), the header has {len(header)}"
            yield (f"{path}:{reader.line_num}", {name: value.strip() for name, value in zip(header, fields)},
                   problem)

"""SIIM-ACR's run-length code for pneumothorax masks: decode (the converter) and encode (the fixture).

Kaggle's SIIM-ACR code is *relative* and *column-major*:

- pixels are numbered down each column, then column after column (Fortran order): on an
  (h, w) image, pixel (row y, column x) has number x * h + y;
- the code is pairs "gap length gap length ...": the first gap is the number of the first mask
  pixel, every later gap counts the background pixels since the end of the previous run.

Example, a 3-row x 4-column mask (h=3, w=4):

    0 1 0 0         numbered column by column: 0 3 6 9      mask pixels 3, 4, 8, 10, 11
    0 1 0 1                                    1 4 7 10     runs (start, length): (3, 2) (8, 1) (10, 2)
    0 0 1 1                                    2 5 8 11     relative code: "3 2 3 1 1 2"

(an absolute code would read "3 2 8 1 10 2"; a row-major one "1 1 3 1 1 1 2 2"). "-1" stands for
an image without pneumothorax: it is not a code and is handled by the converter, not here.
"""
from __future__ import annotations

import numpy as np


def parse_rle(code: str) -> list[tuple[int, int]]:
    """A code string -> its (gap, length) pairs; ValueError naming what is wrong (not integers,
    an odd count, a negative gap, a length below 1)."""
    try:
        numbers = [int(v) for v in code.split()]
    except ValueError:
        raise ValueError(f"run-length code holds something that is not an integer: {code[:40]!r}") from None
    if not numbers or len(numbers) % 2:
        raise ValueError(f"run-length code needs (gap, length) pairs, got {len(numbers)} number(s)")
    pairs = list(zip(numbers[0::2], numbers[1::2]))
    for gap, length in pairs:
        if gap < 0 or length < 1:
            raise ValueError(f"run-length code has a negative gap or an empty run: ({gap}, {length})")
    return pairs


def rle_decode(code: str, shape: tuple[int, int]) -> np.ndarray:
    """A relative, column-major code -> bool mask (h, w); ValueError if it is malformed or runs
    past the h * w pixels."""
    h, w = shape
    flat = np.zeros(h * w, bool)
    position = 0
    for gap, length in parse_rle(code):
        start = position + gap
        position = start + length
        if position > flat.size:
            raise ValueError(f"run-length code ends at pixel {position}, past the {flat.size} pixels "
                             f"of a {h}x{w} image")
        flat[start:position] = True
    return flat.reshape((h, w), order="F")


def rle_encode(mask: np.ndarray) -> str:
    """bool mask (h, w) -> the relative, column-major code ("-1" for an empty mask, as SIIM writes)."""
    flat = np.asarray(mask, bool).flatten(order="F")
    # run boundaries: where the value changes, with a background pixel imagined on either end
    edges = np.flatnonzero(np.diff(np.concatenate([[False], flat, [False]]).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    if len(starts) == 0:
        return "-1"
    gaps = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{g} {n}" for g, n in zip(gaps, ends - starts))

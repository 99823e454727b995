"""Exercise of notebook 04: the pointing game scored per cell,
`my_pointing_game(maps (N, h, w), masks (N, H, W) bool)` -> (hits (N,), chance (N,)),
against `mgca_lite.evaluation.grounding.pointing_game`.
"""
from __future__ import annotations

import torch

from ..evaluation.grounding import cell_coverage, pointing_game, upsample
from .core import Case, Exercise, Mistake


def _maps_and_masks(seed: int, n: int, grid: int, film: int, flat: int = 0) -> tuple:
    """Seeded maps (N, g, g) with `flat` all-tied maps first, masks (N, H, W): one box each."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, grid, grid, generator=g).softmax(dim=-1)
    maps[:flat] = 1.0 / grid ** 2
    masks = torch.zeros(n, film, film, dtype=torch.bool)
    for i in range(n):
        y, x = torch.randint(0, film - 2, (2,), generator=g).tolist()
        h, w = torch.randint(1, max(2, film // 3), (2,), generator=g).tolist()
        masks[i, y:y + h, x:x + w] = True
    return maps, masks


def _run(function, case: Case) -> tuple:
    hits, chance = function(*case.args)[:2]
    return torch.as_tensor(hits).float(), torch.as_tensor(chance).float()


def _upsampled(maps, masks):  # the old scorer: pixel argmax of the bilinear upsample
    film = masks.shape[1:]
    flat = upsample(maps, film).flatten(1).argmax(dim=1)
    hits = masks[torch.arange(len(flat)), flat // film[1], flat % film[1]].float()
    return hits, pointing_game(maps, masks)[1]


def _first_peak(maps, masks):  # ties: only the first maximal cell counts
    touches = cell_coverage(masks, tuple(maps.shape[1:])) > 0
    hits = touches.flatten(1).gather(1, maps.flatten(1).argmax(1, keepdim=True))[:, 0].float()
    return hits, pointing_game(maps, masks)[1]


def _pixel_chance(maps, masks):  # chance as the share of mask PIXELS, not of touching cells
    return pointing_game(maps, masks)[0], masks.flatten(1).float().mean(1)


MISTAKES = [
    Mistake(_upsampled, "scored on an upsampled map: take the peak CELL on the grid and ask whether the"
                        " cell touches the mask (the upsample's argmax is pulled to the film's edge)"),
    Mistake(_first_peak, "ties: a hit when ANY of the tied maximal cells touches the mask, not only the first"),
    Mistake(_pixel_chance, "chance is the share of CELLS that touch the mask, not the share of mask pixels"),
]


def _visible() -> list[Case]:
    return [Case("12 seeded maps on a 4x4 grid, 16 px films (2 flat)", _maps_and_masks(0, 12, 4, 16, flat=2))]


def _hidden() -> list[Case]:
    return [Case("an 8x8 grid on 64 px films", _maps_and_masks(1, 20, 8, 64, flat=1)),
            Case("a 5x5 grid on 23 px films (cells of unequal size)", _maps_and_masks(2, 10, 5, 23)),
            Case("N = 1", _maps_and_masks(3, 1, 4, 16))]


EXERCISE = Exercise("pointing_game", "pointing game", pointing_game, _run, _visible, _hidden, MISTAKES,
                    "a cell (r, c) covers film rows [r*H/h, (r+1)*H/h); hit = a maximal cell touches the mask")

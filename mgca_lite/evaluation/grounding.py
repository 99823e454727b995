"""Grounding metrics: does a phrase's attention map land on the finding it names? (spec §4)

Inputs everywhere: `maps` float (N, h, w), one map per phrase on the patch grid (h x w = the
model's patches); `masks` bool (N, H, W), the finding's pixels on the film. Three scores, as the
field reports them, each beside the score of a map that knows nothing (its chance level):

- pointing game (Zhang et al. 2016; CheXlocalize): hit when the map's peak *cell* touches the mask.
  Scored on the grid, not on an upsampled map: a bilinear upsample with align_corners=False moves
  the peak of a border cell inwards (see `upsample`), so an upsampled argmax can never land in the
  outer half-cell of the film. Chance = the share of cells that touch the mask (where a peak drawn
  uniformly over cells would hit).
- CNR (BioViL / MS-CXR, Boecking et al. 2022): |mean_in - mean_out| / sqrt(var_in + var_out) of the
  map upsampled to the film, no threshold.
- mIoU: IoU of the upsampled, min-max normalised map binarised at THRESHOLDS with the mask, averaged
  over the thresholds.

CNR and mIoU chance: the same statistic for maps drawn i.i.d. uniform per cell (seeded), averaged
over several draws. It is not 0: against a small mask, noise alone gives a random map some contrast.

Two stricter references beside chance: the shuffled-mask control (the same maps against another
study's mask of the same finding) and the location prior (one fixed map per finding, where its
training masks lie). On SynthCXR findings sit where anatomy puts them, so the prior alone scores a
pointing game near 0.6: a map that grounds must beat both. `peak_cells` says where maps peak
instead (e.g. on the grid's border, which zero padding makes distinct).

A cell (r, c) covers film rows [r*H/h, (r+1)*H/h) and columns [c*W/w, (c+1)*W/w), so pixel y lies in
cell row floor(y*h/H). When H is not a multiple of h the cells differ by one pixel in size but
still tile the film exactly.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F

THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))  # mIoU binarisation levels 0.1 .. 0.9


def cell_of_pixel(size: int, cells: int) -> torch.Tensor:
    """Which of `cells` grid rows (or columns) each of `size` film rows lies in: int64 (size,)."""
    return torch.arange(size) * cells // size


def cell_coverage(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mask pixels inside each cell's footprint: masks bool (N, H, W) -> float (N, h, w)."""
    _, H, W = masks.shape
    h, w = grid
    rows = F.one_hot(cell_of_pixel(H, h), h).T.float()  # (h, H): 1 where film row y is in cell row r
    cols = F.one_hot(cell_of_pixel(W, w), w).float()    # (W, w)
    return rows @ masks.float() @ cols                   # (N, h, w)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps (N, h, w) -> (N, H, W), bilinear with align_corners=False (as figures draw them)."""
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-phrase hits and chance, each float (N,), from maps (N, h, w) and masks (N, H, W).

    Hit (1.0) when a maximal cell touches the mask. Ties: a hit if ANY tied maximal cell touches
    it (a flat map therefore always hits a non-empty mask; real attention maps do not tie).
    Chance = touching cells / all cells.
    """
    touches = cell_coverage(masks, tuple(maps.shape[1:])) > 0           # (N, h, w)
    peak = maps == maps.amax(dim=(1, 2), keepdim=True)                  # (N, h, w) every tied maximum
    hits = (peak & touches).flatten(1).any(dim=1).float()               # (N,)
    return hits, touches.flatten(1).float().mean(dim=1)


def peak_cells(maps: torch.Tensor, masks: torch.Tensor) -> dict:
    """Where the maps peak, to tell a map that reads the film from one that reads position.

    maps (N, h, w), masks (N, H, W) bool -> {"on_border": share of maps whose (first) maximal cell
    lies in the grid's outer ring, "border_cells": the ring's share of all cells, "on_border_if_on_mask":
    the same share if every map peaked on a cell its mask touches (uniformly among them),
    "top_cell": [row, col] of the most frequent peak cell, "top_cell_share": its share of the peaks,
    "entropy_bits": entropy of the peak cells (log2(h*w) when spread evenly, 0 when all on one cell),
    "max_entropy_bits": log2(h*w), "cell_share": (h, w) nested list, the share of the peaks on each cell
    (sums to 1; what notebook 04 draws)}. Zero padding makes border cells distinct whatever the film
    shows, so maps peaking there far more often than the masks reach them encode position.
    """
    n, h, w = maps.shape
    border = torch.ones(h, w, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    border = border.flatten()                                                    # (h*w,)
    peaks = maps.flatten(1).argmax(dim=1)                                        # (N,)
    counts = torch.bincount(peaks, minlength=h * w).double()                     # (h*w,)
    share = counts[counts > 0] / n
    touches = (cell_coverage(masks, (h, w)) > 0).flatten(1).double()             # (N, h*w)
    top = int(counts.argmax())
    return {"on_border": float(border[peaks].double().mean()),
            "border_cells": float(border.double().mean()),
            "on_border_if_on_mask": float(((touches * border).sum(1) / touches.sum(1)).mean()),
            "top_cell": [top // w, top % w], "top_cell_share": float(counts[top] / n),
            "entropy_bits": float(-(share * share.log2()).sum()), "max_entropy_bits": math.log2(h * w),
            "cell_share": (counts / n).view(h, w).tolist()}


def contrast_to_noise(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """CNR of film-sized values (N, H, W) against masks (N, H, W) -> float (N,).

    Population variances inside and outside the mask. With no variance at all, a map with equal
    means scores 0 and one with different means +inf (a perfect step; never met after upsampling).
    """
    m = masks.flatten(1)                                                 # (N, HW) bool
    v = values.flatten(1).double()                                       # (N, HW), double: sums of many pixels
    n_in = m.sum(1).double()
    n_out = m.shape[1] - n_in                                            # (N,)
    v_in = torch.where(m, v, 0.0)
    sum_in, sum_all = v_in.sum(1), v.sum(1)
    sq_in, sq_all = (v_in * v_in).sum(1), (v * v).sum(1)
    mean_in, mean_out = sum_in / n_in, (sum_all - sum_in) / n_out
    # E[x^2] - E[x]^2 in double: map values are O(1), so cancellation costs nothing measurable.
    var_in = (sq_in / n_in - mean_in ** 2).clamp_min(0)
    var_out = ((sq_all - sq_in) / n_out - mean_out ** 2).clamp_min(0)
    num, den = (mean_in - mean_out).abs(), (var_in + var_out).sqrt()
    cnr = torch.where(den > 0, num / den.clamp_min(1e-300), torch.where(num > 0, torch.inf, 0.0))
    return cnr.float()


def cnr(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """CNR of maps (N, h, w) upsampled to the film of masks (N, H, W) -> float (N,)."""
    return contrast_to_noise(upsample(maps, tuple(masks.shape[1:])), masks)


def miou(maps: torch.Tensor, masks: torch.Tensor, thresholds=THRESHOLDS) -> torch.Tensor:
    """Mean IoU over `thresholds` of maps (N, h, w), upsampled and min-max normalised per phrase,
    with masks (N, H, W) -> float (N,). A flat map normalises to 0 and so predicts nothing (IoU 0).
    """
    up = upsample(maps, tuple(masks.shape[1:])).flatten(1)               # (N, HW)
    low, high = up.amin(1, keepdim=True), up.amax(1, keepdim=True)
    norm = torch.where(high > low, (up - low) / (high - low).clamp_min(1e-30), torch.zeros_like(up))
    truth = masks.flatten(1)                                             # (N, HW)
    ious = []
    for t in thresholds:  # one threshold at a time: a (K, N, HW) stack would be large at 224 px
        pred = norm >= t
        ious.append((pred & truth).sum(1).float() / (pred | truth).sum(1).clamp_min(1).float())
    return torch.stack(ious).mean(0)


def random_map_chance(metric, masks: torch.Tensor, grid: tuple[int, int], draws: int = 10,
                      seed: int = 0) -> torch.Tensor:
    """Chance level of `metric` (cnr or miou): its mean over `draws` maps drawn i.i.d. uniform per
    cell (seeded) against the same masks (N, H, W) -> float (N,)."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(masks.shape[0])
    for _ in range(draws):
        total += metric(torch.rand(masks.shape[0], *grid, generator=gen), masks)
    return total / draws


def bootstrap_ci(values, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean of per-phrase values (N,) -> [lo, hi].

    Resamples phrases with replacement (scipy.stats.bootstrap, seeded); with fewer than two
    phrases, or all values equal, the interval collapses onto the mean.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.all(values == values[0]):
        mean = float(values.mean()) if len(values) else float("nan")
        return [mean, mean]
    res = scipy.stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=level,
                                method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


@dataclass
class ScoreConfig:
    n_resamples: int = 1000  # bootstrap resamples of the phrases
    chance_draws: int = 10   # uniform random maps averaged for the CNR / mIoU chance level
    seed: int = 0            # bootstrap, random maps and the shuffled-mask control


def phrase_scores(maps: torch.Tensor, masks: torch.Tensor, cfg: ScoreConfig, chance: dict | None = None) -> dict:
    """{metric: (values (N,), chance (N,))} for pointing_game, cnr, miou; maps (N, h, w), masks (N, H, W).

    chance: {metric: (N,)} to reuse. A chance level depends on the mask alone, so the control
    (the same masks lent to other phrases) reuses the real run's per-mask values.
    """
    grid = tuple(maps.shape[1:])
    hits, cells = pointing_game(maps, masks)
    chance = chance or {"pointing_game": cells,
                        "cnr": random_map_chance(cnr, masks, grid, cfg.chance_draws, cfg.seed),
                        "miou": random_map_chance(miou, masks, grid, cfg.chance_draws, cfg.seed)}
    values = {"pointing_game": hits, "cnr": cnr(maps, masks), "miou": miou(maps, masks)}
    return {name: (values[name], chance[name]) for name in values}


def summarize_scores(scores: dict, select, cfg: ScoreConfig) -> dict:
    """{"n_phrases", metric: {"value", "chance", "ci", "chance_ci"}} over the phrases `select`
    (an index or bool array into the (N,) score arrays)."""
    out: dict = {"n_phrases": len(next(iter(scores.values()))[0][select])}
    for name, (values, chance) in scores.items():
        v, c = values[select].numpy(), chance[select].numpy()
        out[name] = {"value": float(v.mean()) if len(v) else float("nan"),
                     "chance": float(c.mean()) if len(c) else float("nan"),
                     "ci": bootstrap_ci(v, cfg.n_resamples, cfg.seed),
                     "chance_ci": bootstrap_ci(c, cfg.n_resamples, cfg.seed)}
    return out


def shuffled_partners(findings: list[str], studies: list[int], seed: int = 0) -> np.ndarray:
    """For each phrase, a phrase of ANOTHER study naming the same finding: int64 (N,), -1 where no
    other study has that finding. Studies are permuted per finding (seeded) and each takes the
    next one's mask, so every study of a finding lends and borrows exactly one mask."""
    rng = np.random.default_rng(seed)
    partner = np.full(len(findings), -1, dtype=np.int64)
    for finding in sorted(set(findings)):
        first: dict[int, int] = {}  # study -> its first phrase of this finding (all share its mask)
        for i, (f, s) in enumerate(zip(findings, studies)):
            if f == finding:
                first.setdefault(s, i)
        if len(first) < 2:
            continue
        studies_f = list(first)
        order = [studies_f[k] for k in rng.permutation(len(studies_f))]
        lender = {s: first[order[(k + 1) % len(order)]] for k, s in enumerate(order)}
        for i, (f, s) in enumerate(zip(findings, studies)):
            if f == finding:
                partner[i] = lender[s]
    return partner


def score_phrases(maps: torch.Tensor, masks: torch.Tensor, findings: list[str], studies: list[int],
                  cfg: ScoreConfig | None = None) -> dict:
    """The grounding result for phrase maps (N, h, w) and their masks (N, H, W), every mask
    non-empty; findings and studies (N,) name each phrase's finding and study.

    {"n_phrases", "pointing_game" | "cnr" | "miou": {"value", "chance", "ci", "chance_ci"},
     "per_finding": {finding: the same without per_finding},
     "control": the same maps scored against another study's mask of the same finding}.
    The control tells whether a map follows the image or merely sits where findings usually are.
    """
    cfg = cfg or ScoreConfig()
    groups = {f: np.flatnonzero(np.asarray(findings) == f) for f in sorted(set(findings))}
    scores = phrase_scores(maps, masks, cfg)
    result = summarize_scores(scores, slice(None), cfg)
    result["per_finding"] = {f: summarize_scores(scores, idx, cfg) for f, idx in groups.items()}

    partner = shuffled_partners(findings, studies, cfg.seed)
    keep = np.flatnonzero(partner >= 0)
    lent = {name: chance[partner[keep]] for name, (_, chance) in scores.items()}  # the masks' own chance
    control = phrase_scores(maps[keep], masks[partner[keep]], cfg, lent)
    kept = np.asarray(findings)[keep]
    result["control"] = summarize_scores(control, slice(None), cfg)
    result["control"]["per_finding"] = {f: summarize_scores(control, np.flatnonzero(kept == f), cfg)
                                        for f in groups if (kept == f).any()}
    return result


def location_priors(masks: list[dict], grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The location prior of each finding: {finding: float (h, w)}, the share of the given studies'
    masks of that finding that touch each cell. masks: one {finding: mask (H, W) bool} per study,
    holding its positive findings only. The prior is the same map for every film: whatever it scores
    comes from where a finding usually lies, not from the film."""
    found: dict[str, list[torch.Tensor]] = {}
    for study in masks:
        for finding, mask in study.items():
            found.setdefault(finding, []).append(torch.as_tensor(mask, dtype=torch.bool))
    return {f: (cell_coverage(torch.stack(m), grid) > 0).float().mean(dim=0) for f, m in sorted(found.items())}


def prior_scores(priors: dict[str, torch.Tensor], masks: torch.Tensor, findings: list[str]) -> dict:
    """Pointing game, CNR and mIoU of the location prior as each phrase's map: masks (N, H, W),
    findings (N,) -> {"pointing_game" | "cnr" | "miou": {"value"}, "per_finding": {finding: the same}}.
    A finding without a prior (no training mask) falls back to a flat map, which ties everywhere."""
    h, w = next(iter(priors.values())).shape
    maps = torch.stack([priors.get(f, torch.full((h, w), 1.0 / (h * w))) for f in findings])  # (N, h, w)
    values = {"pointing_game": pointing_game(maps, masks)[0], "cnr": cnr(maps, masks), "miou": miou(maps, masks)}
    names = np.asarray(findings)
    out: dict = {k: {"value": float(v.mean())} for k, v in values.items()}
    out["per_finding"] = {f: {k: {"value": float(v[torch.from_numpy(names == f)].mean())} for k, v in values.items()}
                          for f in sorted(set(findings))}
    return out


def positive_masks(sample) -> dict:
    """{finding: mask (H, W) bool} of a SynthCXR sample's positive (label 1) findings whose mask is
    neither empty nor the whole film: the findings a phrase map can be scored on."""
    return {f: m for f, m in sample.masks.items()
            if sample.labels.get(f) == 1 and m is not None and m.any() and not m.all()}


@functools.lru_cache(maxsize=4)
def synth_location_priors(synth_seed: int, size: int, grid: tuple[int, int], n_studies: int) -> dict:
    """`location_priors` of the first n_studies pretraining-train studies of SynthCXR seed `synth_seed`
    rendered at `size` px. Cached: the prior depends on no model, so an evaluation of many checkpoints
    (the ablation) renders those studies once. Callers must not modify the returned tensors."""
    from mgca_lite.data.synth import make_sample
    from mgca_lite.data.tasks import task_split

    indices = task_split("pretrain", "train", sizes={"train": n_studies})
    return location_priors([positive_masks(make_sample(int(i), synth_seed, size)) for i in indices], grid)


@dataclass
class GroundingConfig:
    n_studies: int = 500     # pretraining-test studies; ~2.3 scorable finding phrases each (measured
                             # on SynthCXR at 64 px), so >= 1,000 phrases
    synth_seed: int = 1234   # SynthCXR seed of those studies: not a training seed
    n_prior_studies: int = 2000  # pretraining-train studies (same seed) whose masks give the location prior
    batch_size: int = 32     # studies per forward pass
    score: ScoreConfig = field(default_factory=ScoreConfig)


def evaluate_grounding(checkpoint, cfg: GroundingConfig | None = None, config: str = "synth_tiny") -> dict:
    """Grounding of a checkpoint's CTA attention (or "random": `config` at random init) on unseen
    SynthCXR studies: `score_phrases` plus "prior" (`prior_scores` of the location prior from
    `n_prior_studies` training studies of the same seed: a map that ignores the film), "peaks"
    (`peak_cells`), "skipped" (phrases not scored, by reason), "grid",
    "film", "n_studies", "checkpoint", "synth_seed", "clean_reports"."""
    from mgca_lite.data.tasks import task_split
    from mgca_lite.evaluation.loading import load_model, reads_clean_reports
    from mgca_lite.evaluation.phrase_maps import phrase_maps

    cfg = cfg or GroundingConfig()
    model, tokenizer, pcfg = load_model(checkpoint, config)
    clean = reads_clean_reports(checkpoint, pcfg)
    indices = task_split("pretrain", "test", sizes={"test": cfg.n_studies})
    phrases = phrase_maps(model, tokenizer, pcfg, indices, cfg.synth_seed, clean, cfg.batch_size)
    if not phrases.findings:
        raise ValueError(f"no scorable finding phrase in {cfg.n_studies} studies (skipped: {dict(phrases.skipped)})")
    result = score_phrases(phrases.maps, phrases.masks, phrases.findings, phrases.studies, cfg.score)
    grid = tuple(phrases.maps.shape[1:])
    priors = synth_location_priors(cfg.synth_seed, phrases.masks.shape[1], grid, cfg.n_prior_studies)
    result.update(prior=prior_scores(priors, phrases.masks, phrases.findings), n_prior_studies=cfg.n_prior_studies,
                  peaks=peak_cells(phrases.maps, phrases.masks),
                  skipped=dict(phrases.skipped), grid=list(grid),
                  film=list(phrases.masks.shape[1:]), n_studies=len(indices), checkpoint=str(checkpoint),
                  synth_seed=cfg.synth_seed, clean_reports=clean)
    return result

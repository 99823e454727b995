"""SynthCXR rendering: a case -> uint8 film, masks and boxes.

Pipeline for one sample (S = image_size), in the order it runs:
1. pick a cached anatomy variant (PA or AP) and start an empty `Canvas` (canonical frame);
2. draw the heart (its size is the cardiomegaly finding) and each present finding;
3. add distractors so that no finding can be read off a single pixel statistic: a patient-level
   lung haze, soft blobs (a window of a cached clutter field), sometimes a skin fold; breast and
   nipple shadows are part of some anatomy variants;
4. compose attenuation: base - air * (1 - opacity) + vessels + extra, plus lung texture;
5. pose: one affine warp (shift, rotation, scale) applied by a bilinear gather, and the same
   warp (nearest) applied to the finding masks, so boxes and masks match the pixels exactly;
6. detector: Gaussian blur (separable shifted adds), mottle noise, exposure / contrast /
   gamma (a 256-entry lookup table), an optional side marker: "R" in the image's top left,
   "L" in its top right, because a film is viewed facing the patient (`_burn_marker`).

Random streams: global rendering choices use default_rng([seed, index, 2]) with a fixed number
of draws; finding k uses default_rng([seed, index, 2, k + 1]). Switching one finding on or off
therefore changes only that finding's pixels (and, for cardiomegaly, the heart).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .synth_anatomy import (AIR_WEIGHT, N_AP, N_PA, VESSEL_WEIGHT, _grid, add_stroke, anatomy_bank,
                            noise_bank, side_sign)
from .synth_case import FINDINGS, Case, SynthConfig
from .synth_findings import RENDERERS, Canvas, draw_heart

_GLYPHS = {  # 5 x 7 bitmaps of the side markers burned into films
    "R": ["1110", "1001", "1001", "1110", "1010", "1001", "1001"],
    "L": ["1000", "1000", "1000", "1000", "1000", "1000", "1111"],
}


@lru_cache(maxsize=4)
def _air_weight(size: int) -> np.ndarray:
    """How much aerated lung darkens the film, float32 (2S, 2S): AIR_WEIGHT with a fine texture
    (the lung parenchyma), sliced at the same offset as the patient's lung haze."""
    return (AIR_WEIGHT - 0.06 * noise_bank(size)[0][3]).astype(np.float32)


@lru_cache(maxsize=64)
def _blur_kernel(size: int, sigma10: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian taps (2r+1,) for sigma = sigma10 / 10 px, and the per-position sum of the taps
    that fall inside the image (S,), used to renormalise the borders."""
    sigma = sigma10 / 10
    r = max(1, int(np.ceil(1.5 * sigma)))  # the taps beyond 1.5 sigma barely matter here
    w = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    w /= w.sum()
    inside = np.convolve(np.ones(size), w, mode="same")
    return w.astype(np.float32), inside.astype(np.float32)


def _blur(img: np.ndarray, sigma10: int) -> np.ndarray:
    """Separable Gaussian blur with shifted adds (faster than a dense matrix product here)."""
    w, inside = _blur_kernel(img.shape[0], sigma10)
    r = len(w) // 2
    for axis in (0, 1):
        out = img * w[r]
        for k in range(1, r + 1):
            if axis == 0:
                out[k:] += w[r + k] * img[:-k]
                out[:-k] += w[r + k] * img[k:]
            else:
                out[:, k:] += w[r + k] * img[:, :-k]
                out[:, :-k] += w[r + k] * img[:, k:]
        img = out / (inside[:, None] if axis == 0 else inside[None, :])
    return img


def _skin_fold(c: Canvas, rng: np.random.Generator) -> None:
    """A long faint line over one lung (a pneumothorax mimic), drawn into `extra`."""
    g, s = c.g, (1 if rng.random() < 0.5 else -1)
    x = s * (g.lat_u - 0.1 - 0.15 * rng.random())
    add_stroke(c.extra, [[(x + s * 0.05, g.apex_v + 0.1), (x, g.hilum_v), (x + s * 0.04, 0.3)]],
               0.015, 0.03)


def _heart_ctr(case: Case, u: float) -> float:
    """Cardiothoracic ratio: > 0.5 with cardiomegaly, borderline when the report hedges."""
    fc = case.findings["cardiomegaly"]
    if fc.present:
        return 0.50 + 0.11 * fc.severity
    if fc.label == -1:
        return 0.475 + 0.025 * u
    return 0.40 + 0.10 * u


def render_case(case: Case, image_size: int, cfg: SynthConfig, seed: int, index: int):
    """Render `case` at `image_size` px.

    Returns (image uint8 (S, S), masks {finding: bool (S, S)}, boxes [(finding, x1, y1, x2, y2)]).
    """
    S = int(image_size)
    rng = np.random.default_rng([int(seed), int(index), 2])
    (r_variant, r_ctr, r_scale, r_rot, r_tx, r_ty, r_blur, r_fold, r_contrast, r_exposure, r_gamma,
     r_marker, r_letter, r_corner, r_shift, r_noise, r_haze) = rng.random(17).tolist()
    # (python floats, not numpy scalars, keep every array float32 under NumPy's NEP 50 rules)
    ap = case.view == "AP"
    var = anatomy_bank(S)[N_PA + int(r_variant * N_AP) if ap else int(r_variant * N_PA)]
    smooth, white, clutter = noise_bank(S)
    U, V = _grid(S)
    oy, ox = rng.integers(0, S, 2)
    # Patient-level lung density (habitus, inspiration, soft tissue): a haze in every film, so
    # that "the lungs look a bit white" is not evidence of edema by itself.
    haze = np.clip(cfg.lung_haze * r_haze * (1 + smooth[1, oy:oy + S, ox:ox + S]), 0, 1)
    c = Canvas(size=S, var=var, U=U, V=V, opac=haze, extra=np.zeros((S, S), np.float32),
               smooth=smooth)

    ate = case.findings["atelectasis"]
    shift = 0.03 * (2 * r_shift - 1)                          # normal mediastinal position
    if ate.present and ate.side != "bilateral" and ate.severity > 0.5:
        shift += 0.03 * side_sign(ate.side)                   # volume loss pulls it over
    heart = draw_heart(c, _heart_ctr(case, r_ctr), shift, ap)
    parts = {"cardiomegaly": heart} if case.findings["cardiomegaly"].present else {}
    for k, f in enumerate(FINDINGS):
        if case.findings[f].present and f in RENDERERS:
            parts[f] = RENDERERS[f](c, case.findings[f], np.random.default_rng(
                [int(seed), int(index), 2, k + 1]))
    if r_fold < cfg.p_skin_fold:
        _skin_fold(c, rng)

    # Compose attenuation in the canonical frame.
    left = 1 - c.opac                                        # fraction of lung air left
    ves = var.vessels * left                                 # filled lung hides its vessels
    if c.vessel_gain is not None:
        ves *= c.vessel_gain
    cy, cx = rng.integers(0, S, 2)
    A = var.base + c.extra
    A += VESSEL_WEIGHT * ves
    A += cfg.clutter * clutter[cy:cy + S, cx:cx + S]          # overlying soft tissue, clothing
    left *= var.air
    left *= _air_weight(S)[oy:oy + S, ox:ox + S]              # air darkens, with fine texture
    A -= left

    # Pose: output pixel -> canonical pixel (inverse of shift . rotate . scale). The map is affine,
    # so px = (a * u)[None, :] + (b * v)[:, None] + c costs one broadcast add per axis.
    scale = cfg.pose_scale[0] + (cfg.pose_scale[1] - cfg.pose_scale[0]) * r_scale
    theta = np.radians(cfg.pose_rotation_deg) * (2 * r_rot - 1)
    tx, ty = (cfg.pose_shift * 2 * (2 * x - 1) for x in (r_tx, r_ty))
    cos, sin = float(np.cos(theta)) / scale * S / 2, float(np.sin(theta)) / scale * S / 2
    axis = U[0]                                              # (S,) normalised pixel centres
    px = (cos * (axis - tx))[None, :] + (sin * (axis - ty) + S / 2 - 0.5)[:, None]
    py = (-sin * (axis - tx))[None, :] + (cos * (axis - ty) + S / 2 - 0.5)[:, None]
    np.clip(px, 0, S - 1.001, out=px)                         # clamp to the border pixels
    np.clip(py, 0, S - 1.001, out=py)
    x0, y0 = px.astype(np.int32), py.astype(np.int32)
    fx = px - x0.astype(np.float32)                           # int32 - float32 would give float64
    fy = py - y0.astype(np.float32)
    idx = y0 * S + x0
    top = np.take(A, idx)                                    # np.take: 3x faster than A.flat[idx]
    top += (np.take(A, idx + 1) - top) * fx
    bottom = np.take(A, idx + S)
    bottom += (np.take(A, idx + S + 1) - bottom) * fx
    img = top + (bottom - top) * fy

    # Detector: blur, noise, exposure / contrast / gamma.
    sigma = cfg.blur_sigma[0] + (cfg.blur_sigma[1] - cfg.blur_sigma[0]) * r_blur
    img = _blur(img, max(1, int(round(10 * sigma * S / 128))))
    ny, nx = rng.integers(0, 2 * S, 2)
    std = (cfg.noise_std[0] + (cfg.noise_std[1] - cfg.noise_std[0]) * r_noise) * (1.5 if ap else 1)
    img += std * white[ny:ny + S, nx:nx + S]
    img += 0.04 * smooth[0, oy:oy + S, ox:ox + S]            # exposure inhomogeneity
    lo, hi = cfg.contrast_range
    contrast = (lo + (hi - lo) * r_contrast) * (0.85 if ap else 1.0)
    exposure = cfg.exposure_jitter * (2 * r_exposure - 1)
    img *= 255 * contrast                      # display value 255 * (c (x - 0.45) + 0.45 + e)
    img += 255 * (0.45 * (1 - contrast) + exposure) + 0.5
    gamma = cfg.gamma_range[0] + (cfg.gamma_range[1] - cfg.gamma_range[0]) * r_gamma
    lut = np.round(255 * (np.arange(256) / 255) ** gamma).astype(np.uint8)
    image = lut[np.clip(img, 0, 255).astype(np.uint8)]
    if r_marker < cfg.p_marker:
        _burn_marker(image, "R" if r_letter < 0.8 else "L", r_corner)

    # Masks and boxes through the same pose (nearest neighbour).
    masks, boxes = {}, []
    if any(parts.values()):
        nearest = np.rint(py).astype(np.int32) * S + np.rint(px).astype(np.int32)  # clamped above
        for f in FINDINGS:
            for part in parts.get(f, []):
                m = np.take(part, nearest)
                if not m.any():
                    continue
                rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
                boxes.append((f, int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
                masks[f] = masks[f] | m if f in masks else m
    return image, masks, boxes


def marker_glyph(letter: str, image_size: int) -> np.ndarray:
    """The side marker `letter` ("R" or "L") as burned into an `image_size` film: bool (7k, 4k),
    k = max(1, image_size // 64) pixels per bitmap cell."""
    k = max(1, image_size // 64)
    return np.kron(np.array([[c == "1" for c in row] for row in _GLYPHS[letter]]), np.ones((k, k), bool))


def _burn_marker(image: np.ndarray, letter: str, where: float) -> None:
    """Burn a bright side marker into a top corner (in place). The letter names the patient's
    side, so it decides the corner: the patient's right is on the image's left, hence "R" top
    left and "L" top right. `where` in [0, 1) only sets the offset from that corner."""
    S = image.shape[0]
    glyph = marker_glyph(letter, S)
    h, w = glyph.shape
    jitter = (2 * where) % 1.0
    y, x = int(S * (0.03 + 0.05 * jitter)), int(S * (0.04 + 0.06 * jitter))
    x = x if letter == "R" else S - w - x  # image left for the patient's right
    image[y:y + h, x:x + w][glyph] = 245

"""SynthCXR anatomy: the normal chest, pre-rendered once per image size and cached.

Speed comes from caching: everything that does not depend on the case — body, bones, lung fields,
vessel trees — is drawn once per image size into a bank of `N_PA + N_AP` anatomy *variants*
(different lung volumes, rib spacing, clavicle height, vessel trees). A sample picks one variant
and only draws its heart, findings and distractors on top, in small windows.

Coordinates: every shape is defined in normalised image coordinates u (left -> right) and
v (top -> bottom), both in [-1, 1], so a variant looks the same at any size. Display convention:
the patient's right is on the image's LEFT (u < 0). `side_sign("right") == -1`.

Intensities are "attenuation" (bright = dense) before the exposure / gamma mapping:
background ~0.05, soft tissue ~0.7, lungs ~0.2 (air subtracts `AIR_WEIGHT * air`), bone +0.1..0.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

N_PA, N_AP = 16, 8           # anatomy variants per size (PA, then AP)
AIR_WEIGHT = 0.44            # how much fully aerated lung darkens the film
VESSEL_WEIGHT = 0.12         # brightness of vessels at the hila
_ANATOMY_SEED = 20220601     # variants are a fixed population, independent of the dataset seed


def side_sign(side: str) -> int:
    """Image direction of a patient side: right lung is on the image left (-1)."""
    return -1 if side == "right" else 1


@dataclass(frozen=True)
class Geometry:
    """Where things are in one anatomy variant (normalised coordinates)."""

    apex_v: float     # top of the lung apices
    dome_v: tuple     # (right, left) top of each hemidiaphragm dome; right is higher
    dome_k: float     # curvature: how far the dome falls towards the costophrenic angle
    lat_u: float      # lateral lung border |u|
    med_u: float      # medial lung border |u| (mediastinum half-width)
    hilum_v: float
    carina_v: float
    ap: bool          # AP (portable) variant: clavicles high, scapulae over the lungs

    def dome(self, u: np.ndarray, sign) -> np.ndarray:
        """Height v of the hemidiaphragm under column u on the side `sign` (-1 right, +1 left;
        an array of signs is allowed)."""
        top = np.where(np.asarray(sign) < 0, self.dome_v[0], self.dome_v[1]).astype(np.float32)
        return top + self.dome_k * (np.abs(u) - 0.40) ** 2

    def cp_v(self, sign: int) -> float:
        """Height of the costophrenic angle (lowest lateral point of the lung)."""
        return float(self.dome(np.array(self.lat_u), sign))

    def zone_v(self, zone: str, sign: int) -> tuple[float, float]:
        """Vertical extent (v0, v1) of an upper / middle / lower lung zone."""
        bottom = self.cp_v(sign) - 0.05
        third = (bottom - self.apex_v) / 3
        i = ("upper", "middle", "lower").index(zone)
        return self.apex_v + i * third, self.apex_v + (i + 1) * third


def lung_depth(u: np.ndarray, v: np.ndarray, g: Geometry, sign: int,
               shrink: np.ndarray | float = 0.0) -> np.ndarray:
    """Signed depth inside one lung field (>0 inside, in normalised units); (h, w) like u.

    `shrink` moves the apical and lateral borders inwards (a collapsing lung: pneumothorax).
    """
    au = sign * u                                    # distance from the midline towards this side
    t = np.clip((v - g.apex_v - shrink) / (g.cp_v(sign) - g.apex_v), 0.0, 1.0)
    half = (g.lat_u - g.med_u) / 2
    centre = g.med_u + half + 0.03
    hw = half * 1.25 * np.sqrt(1.0 - (1.0 - t) ** 3)  # rounded apex, full width lower down
    bow = 0.08 * ((v - g.hilum_v - 0.15) / (g.cp_v(sign) - g.apex_v)) ** 2  # convex chest wall
    lateral = np.minimum(centre + hw, g.lat_u - bow) - shrink
    medial = np.maximum(centre - hw, g.med_u)
    horiz = np.minimum(au - medial, lateral - au)
    vert_top = v - g.apex_v - shrink
    vert_bottom = g.dome(u, sign) - v
    return np.minimum(np.minimum(horiz, vert_top), vert_bottom)


def smoothstep(x: np.ndarray, e0: float, e1: float) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def stroke(polylines, size: int, width: float) -> tuple:
    """Rasterise polylines (each (N, 2) normalised (u, v) points) with line width `width`.

    Returns (rows, cols, img): slices of the full image and a float32 intensity in [0, 1]
    covering them. Points are resampled every 0.4 px and splatted bilinearly (np.bincount),
    which is much faster than distance fields for thin lines.
    """
    dense = []
    for line in polylines:
        px = (np.asarray(line, float) + 1.0) * (size / 2) - 0.5   # (N, 2) pixel coordinates
        seg = np.diff(px, axis=0)
        n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / 0.4).astype(int))
        t = np.concatenate([np.arange(k) / k for k in n])
        idx = np.repeat(np.arange(len(seg)), n)
        dense += [px[idx] + seg[idx] * t[:, None], px[-1:]]
    pts = np.concatenate(dense)                                   # (M, 2) dense samples
    r = max(1, int(np.ceil(width * size / 4)))                    # half-width in px (+1 margin)
    x0, y0 = np.floor(pts.min(0)).astype(int) - r - 1
    x1, y1 = np.ceil(pts.max(0)).astype(int) + r + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), np.float32)
    h, w = y1 - y0, x1 - x0
    fx, fy = pts[:, 0] - x0, pts[:, 1] - y0
    keep = (fx >= 0) & (fx < w - 1) & (fy >= 0) & (fy < h - 1)  # off-image points draw nothing
    fx, fy = fx[keep], fy[keep]
    ix, iy = fx.astype(int), fy.astype(int)
    ax, ay = fx - ix, fy - iy
    flat = iy * w + ix                                            # 4 bilinear neighbours at once
    acc = np.bincount(np.concatenate([flat, flat + 1, flat + w, flat + w + 1]),
                      np.concatenate([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay]),
                      h * w)
    img = np.minimum(acc.reshape(h, w), 1.6)                      # overlapping lines saturate
    k = max(0, int(round(width * size / 4 - 0.5)))               # thicken: box filter radius k
    if k:
        c = np.cumsum(np.pad(img, ((k + 1, k), (0, 0))), 0)
        img = c[2 * k + 1:] - c[:-2 * k - 1]
        c = np.cumsum(np.pad(img, ((0, 0), (k + 1, k))), 1)
        img = (c[:, 2 * k + 1:] - c[:, :-2 * k - 1]) / (2 * k + 1)
    return slice(y0, y1), slice(x0, x1), np.clip(img / 1.6, 0.0, 1.0).astype(np.float32)


def add_stroke(target: np.ndarray, polylines, width: float, amount: float) -> None:
    """target += amount * stroke(polylines) in place."""
    rows, cols, img = stroke(polylines, target.shape[0], width)
    target[rows, cols] += amount * img


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    """A quadratic Bezier curve through control points, (n, 2)."""
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t ** 2 * np.asarray(p2)


@dataclass
class Variant:
    """One pre-rendered normal chest at one size: float32 (S, S) maps plus its geometry."""

    geom: Geometry
    base: np.ndarray     # body, mediastinum, bones, abdomen (everything but lung air / vessels)
    air: np.ndarray      # lung air thickness 0..1 (the heart and findings replace it)
    vessels: np.ndarray  # vascular markings ~0..1 (denser at the hila), confined to the lungs
    lung: np.ndarray     # int8: 0 outside, -1 right lung (image left), +1 left lung


def _draw_geometry(k: int) -> Geometry:
    r = np.random.default_rng([_ANATOMY_SEED, k]).random(8).tolist()
    ap = k >= N_PA
    dome_r = 0.36 + 0.12 * r[0] - (0.08 if ap else 0.0)  # AP / supine: lower lung volumes
    return Geometry(apex_v=-0.70 + 0.05 * r[1], dome_v=(dome_r, dome_r + 0.04 + 0.05 * r[2]),
                    dome_k=0.8 + 0.4 * r[3], lat_u=0.74 + 0.08 * r[4], med_u=0.09 + 0.02 * r[5],
                    hilum_v=-0.12 + 0.06 * r[6], carina_v=-0.34 + 0.05 * r[7], ap=ap)


def _vessel_tree(g: Geometry, size: int, rng: np.random.Generator) -> np.ndarray:
    """Branching vascular markings fanning out from both hila, tapering to the periphery."""
    out = np.zeros((size, size), np.float32)
    by_depth: list[list] = [[] for _ in range(4)]
    for sign in (-1, 1):
        hilum = np.array([sign * (g.med_u + 0.1), g.hilum_v])
        stack = [(hilum, a, 0.24, 0) for a in np.radians(np.linspace(-125, 105, 12))
                 + rng.normal(0, 0.12, 12)]
        while stack:
            p, ang, length, depth = stack.pop()
            q = p + np.array([sign * np.cos(ang), np.sin(ang)]) * length * (0.7 + 0.5 * rng.random())
            by_depth[depth].append([p, (p + q) / 2 + rng.normal(0, 0.015, 2), q])
            if depth < 3:
                for da in (-0.5, 0.35):
                    stack.append((q, ang + da + rng.normal(0, 0.2), length * 0.65, depth + 1))
    for depth, lines in enumerate(by_depth):
        add_stroke(out, lines, 0.02 * 0.72 ** depth, 0.9 - 0.2 * depth)
    U, V = _grid(size)
    for sign in (-1, 1):  # the hilar vessels themselves: a lobulated density at each hilum
        out += 0.6 * np.exp(-((U - sign * (g.med_u + 0.08)) ** 2 / 0.003
                              + (V - g.hilum_v) ** 2 / 0.01))
    return out


def _window(size: int, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
    """Pixel slices (rows, cols) covering the normalised box [u0, u1] x [v0, v1] (clipped)."""
    c0, c1 = int(np.floor((u0 + 1) * size / 2)), int(np.ceil((u1 + 1) * size / 2))
    r0, r1 = int(np.floor((v0 + 1) * size / 2)), int(np.ceil((v1 + 1) * size / 2))
    return slice(max(r0, 0), min(max(r1, 0), size)), slice(max(c0, 0), min(max(c1, 0), size))


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre coordinates U, V, each float32 (size, size)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1
    return np.meshgrid(c, c)


def _ribs(g: Geometry, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Posterior ribs (arching up, then curving down laterally) and fainter anterior ribs."""
    x = np.abs(U) - 0.05
    thorax = smoothstep(g.lat_u + 0.07 - np.abs(U), 0, 0.05) * (0.25 + 0.75 * smoothstep(x, 0.04, 0.16))
    vp = V - (-0.2 * x + 0.85 * x ** 2)              # posterior rib coordinate
    phase = (vp - g.apex_v + 0.12) / (0.13 + 0.04 * (vp - g.apex_v))
    post = smoothstep(np.cos(2 * np.pi * phase), 0.3, 0.7)
    post *= smoothstep(vp, g.apex_v - 0.14, g.apex_v - 0.08) * smoothstep(
        g.dome(U, np.sign(U)) + 0.12 - V, 0, 0.12)     # fade out over the upper abdomen
    va = V + 0.32 * x                                  # anterior rib coordinate
    ant = smoothstep(np.cos(2 * np.pi * (va - g.apex_v) / 0.2), 0.4, 0.8)
    ant *= smoothstep(x, 0.2, 0.32) * smoothstep(va, g.apex_v + 0.05, g.apex_v + 0.12) * \
        smoothstep(g.dome(U, np.sign(U)) - V, 0, 0.1)
    return (0.075 * post + 0.03 * ant) * thorax


@lru_cache(maxsize=4)
def anatomy_bank(size: int) -> tuple[Variant, ...]:
    """All anatomy variants at `size` px (built once per size; ~0.1 s at 128 px)."""
    U, V = _grid(size)
    out = []
    for k in range(N_PA + N_AP):
        g = _draw_geometry(k)
        rng = np.random.default_rng([_ANATOMY_SEED, k, 1])
        # Body: a soft-tissue cylinder widening from the neck to the shoulders.
        bw = 0.24 + 0.68 * smoothstep(V, -1.02, -0.6) ** 0.7 - 0.04 * smoothstep(V, 0.2, 1.0)
        body = np.clip(1 - (U / bw) ** 2, 0, 1) ** 0.3
        base = 0.05 + 0.68 * body
        # Lungs (air) and their labels.
        lung = np.zeros((size, size), np.int8)
        air = np.zeros((size, size), np.float32)
        for sign in (-1, 1):
            d = lung_depth(U, V, g, sign)
            lung[d > 0] = sign
            t = np.clip((V - g.apex_v) / (g.cp_v(sign) - g.apex_v), 0, 1)
            air += smoothstep(d, 0.0, 0.05) * (0.85 + 0.15 * smoothstep(d, 0.05, 0.25)) * (
                0.75 + 0.25 * np.sin(np.pi * t ** 0.8))  # thinner at the apex and the base
        knob = np.exp(-((U - g.med_u - 0.02) ** 2 / 0.004 + (V - g.carina_v + 0.05) ** 2 / 0.004))
        air *= 1 - knob                                      # aortic knob at the left border
        # Mediastinum / spine / trachea and bronchi.
        base += 0.04 * smoothstep(0.075 - np.abs(U), 0, 0.02) * (
            0.8 + 0.2 * np.cos(np.pi * V / 0.1) ** 2)      # vertebral bodies and discs
        trachea = smoothstep(0.032 - np.abs(U), 0, 0.01) * smoothstep(g.carina_v - V, 0, 0.03)
        base -= 0.16 * trachea
        for sign in (-1, 1):
            add_stroke(base, [[(0, g.carina_v), (sign * 0.08, g.carina_v + 0.08),
                               (sign * (g.med_u + 0.08), g.hilum_v)]], 0.03, -0.07)
        base += _ribs(g, U, V)
        # Clavicles (higher and flatter on AP views) and, on AP, the scapular borders.
        cv = -0.80 if g.ap else -0.70 + 0.03 * rng.random()
        for sign in (-1, 1):
            add_stroke(base, [_bezier((sign * 0.07, cv + 0.05), (sign * 0.35, cv + 0.02),
                                      (sign * 0.70, cv - (0.0 if g.ap else 0.06)))], 0.045, 0.14)
            if g.ap:
                add_stroke(base, [_bezier((sign * 0.60, -0.72), (sign * 0.62, -0.35),
                                          (sign * 0.74, -0.05))], 0.02, 0.05)
        # Breast and nipple shadows in 40 % of variants: basal soft-tissue densities with a curved
        # lower edge (effusion / edema mimics) and small round densities (nodule mimics).
        if k % 5 in (1, 3):
            level = 0.03 + 0.04 * rng.random()
            for sign in (-1, 1):
                r2 = ((U - sign * 0.45) / 0.36) ** 2 + ((V - g.dome_v[0] + 0.02) / 0.22) ** 2
                base += level * smoothstep(1 - r2, 0, 0.3)
                r2 = ((U - sign * (0.42 + 0.08 * rng.random())) ** 2 + (V - g.dome_v[0] + 0.06) ** 2)
                base += 0.05 * smoothstep(1 - r2 / 0.035 ** 2, 0, 1)
        # Gastric bubble under the left hemidiaphragm (usually visible).
        if rng.random() < 0.7:
            bub = ((U - 0.38) / 0.09) ** 2 + ((V - g.dome_v[1] - 0.09) / 0.05) ** 2
            base -= 0.2 * smoothstep(1 - bub, 0, 0.4)
        vessels = _vessel_tree(g, size, rng) * smoothstep(air, 0.0, 0.3)
        out.append(Variant(geom=g, base=base.astype(np.float32), air=air.astype(np.float32),
                           vessels=np.clip(vessels, 0, 1.2).astype(np.float32), lung=lung))
    return tuple(out)


@lru_cache(maxsize=4)
def noise_bank(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise sources sliced at random offsets per sample (so no noise is drawn per sample).

    Returns (smooth, white, clutter): smooth float32 (4, 2S, 2S) low-frequency fields in
    ~[-1, 1] (patchy opacities, lung texture, exposure inhomogeneity); white float32 (3S, 3S)
    unit Gaussian (quantum mottle); clutter float32 (2S, 2S) scattered soft blobs of
    +-0.05 (about three per S x S window).
    """
    rng = np.random.default_rng([_ANATOMY_SEED, size, 7])
    n = 2 * size
    fields = []
    for cycles in (3, 5, 8, 12):    # features per image side, independent of size
        spec = np.fft.rfft2(rng.standard_normal((n, n)))
        f = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None, :] ** 2
        field = np.fft.irfft2(spec * np.exp(-f * (n / (2 * cycles)) ** 2 * 4), s=(n, n))
        fields.append(field / (3 * field.std()))
    white = rng.standard_normal((3 * size, 3 * size))
    c = (np.arange(n) + 0.5) / size * 2 - 1                    # normalised coords over 2S
    cu, cv = np.meshgrid(c, c)
    clutter = np.zeros((n, n))
    for _ in range(12):
        x, y, rad = rng.uniform(-1, 3, 2).tolist() + [rng.uniform(0.04, 0.14)]
        clutter += rng.uniform(-0.05, 0.06) * smoothstep(1 - ((cu - x) ** 2 + (cv - y) ** 2) / rad ** 2,
                                                         0, 1)
    return (np.stack(fields).astype(np.float32), white.astype(np.float32),
            clutter.astype(np.float32))

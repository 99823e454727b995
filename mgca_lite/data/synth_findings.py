"""SynthCXR findings: the heart and one renderer per finding, each returning its pixel masks.

Every renderer draws into a `Canvas` in the canonical (un-posed) frame and works in a small window
around its finding, which keeps rendering fast. A renderer changes up to three maps:

- `opac`  (0..1): the fraction of lung air replaced by fluid or tissue at each pixel — effusion,
  consolidation, edema, atelectasis, nodules and the heart all *fill air*, which is why they look
  white on a film and why they hide borders they touch (the silhouette sign comes for free);
- `extra` (additive): things denser than soft tissue (devices, pleural lines) or lucencies (< 0);
- `vessel_gain` (multiplier of the vascular markings): 0 in a pneumothorax, > 1 in edema.

Each renderer returns a list of *parts*: full-size bool masks, one per separately drawn region
(one side of a bilateral effusion, one device); boxes are the parts' bounding boxes.
Sides are patient sides: the patient's right lung is on the image left (`side_sign`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synth_anatomy import (Geometry, Variant, _bezier, _window, lung_depth, side_sign, smoothstep,
                            stroke)
from .synth_case import FindingCase, nodule_mm

MM = 0.0052  # normalised units per millimetre (inner thorax ~ 300 mm ~ 1.56 units)


@dataclass
class Canvas:
    """Per-sample drawing state in the canonical frame; all maps float32 (S, S)."""

    size: int
    var: Variant
    U: np.ndarray
    V: np.ndarray
    opac: np.ndarray
    extra: np.ndarray
    smooth: np.ndarray                     # (4, 2S, 2S) noise bank (synth_anatomy.noise_bank)
    vessel_gain: np.ndarray | None = None  # allocated on first use

    @property
    def g(self) -> Geometry:
        return self.var.geom

    def window(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        return _window(self.size, u0, u1, v0, v1)

    def noise(self, rng: np.random.Generator, level: int, rows: slice, cols: slice) -> np.ndarray:
        """A slice of smooth noise field `level` (0 coarse .. 3 fine) at a random offset."""
        oy, ox = rng.integers(0, self.size, 2)
        return self.smooth[level, oy + rows.start: oy + rows.stop, ox + cols.start: ox + cols.stop]

    def fill(self, rows: slice, cols: slice, amount: np.ndarray) -> None:
        """Replace a fraction `amount` (0..1) of the air still left in a window: opacities
        combine like independent absorbers, opac = 1 - (1 - opac) (1 - amount)."""
        o = self.opac[rows, cols]
        o += amount * (1 - o)

    def gain(self) -> np.ndarray:
        if self.vessel_gain is None:
            self.vessel_gain = np.ones_like(self.opac)
        return self.vessel_gain

    def part(self, rows: slice, cols: slice, sub: np.ndarray) -> list[np.ndarray]:
        """A full-size bool mask from a window mask; [] when it is empty (sub-pixel finding)."""
        if not sub.any():
            return []
        m = np.zeros((self.size, self.size), bool)
        m[rows, cols] = sub
        return [m]

    def in_lung(self, rows: slice, cols: slice, sign: int) -> np.ndarray:
        return self.var.lung[rows, cols] == sign


def _place(rows: slice, cols: slice, srows: slice, scols: slice, img: np.ndarray) -> np.ndarray:
    """`img` (covering srows x scols) placed into a zero window covering rows x cols."""
    out = np.zeros((rows.stop - rows.start, cols.stop - cols.start), np.float32)
    r0, r1 = max(rows.start, srows.start), min(rows.stop, srows.stop)
    c0, c1 = max(cols.start, scols.start), min(cols.stop, scols.stop)
    if r1 > r0 and c1 > c0:
        out[r0 - rows.start: r1 - rows.start, c0 - cols.start: c1 - cols.start] = \
            img[r0 - srows.start: r1 - srows.start, c0 - scols.start: c1 - scols.start]
    return out


def _sides(fc: FindingCase) -> tuple[int, ...]:
    return (-1, 1) if fc.side == "bilateral" else (side_sign(fc.side),)


def draw_heart(c: Canvas, ctr: float, shift: float, ap: bool) -> list[np.ndarray]:
    """The cardiac silhouette with cardiothoracic ratio `ctr` (AP views magnify it by 8 %).

    Row by row the heart spans [right border, left border]: the right atrium bulges gently past
    the spine, the left ventricle swells to its widest just above the diaphragm.
    Returns [mask of the heart shadow] (used as the cardiomegaly mask).
    """
    g = c.g
    width = ctr * 2 * g.lat_u * (1.08 if ap else 1.0)       # widest heart diameter
    right, left = -0.34 * width + shift, 0.66 * width + shift
    bottom = g.dome_v[1] + 0.04
    top = g.hilum_v + 0.02 - 0.3 * (ctr - 0.45)
    rows, cols = c.window(right - 0.03, left + 0.03, top - 0.03, bottom + 0.08)
    u, v = c.U[0, cols][None, :], c.V[rows, 0][:, None]      # (1, w) and (h, 1): borders are 1-D
    t = np.clip((v - top) / (bottom - top), 0, 1.2)
    bulge = 1 - (1 - np.minimum(t / 0.8, 1)) ** 2.2          # convex left ventricle
    left_border = shift + g.med_u + (left - shift - g.med_u) * bulge - 0.05 * np.maximum(t - 0.9, 0)
    right_border = shift - g.med_u + (right - shift + g.med_u) * np.sin(
        np.pi / 2 * np.minimum(t / 0.8, 1)) ** 1.5
    heart = smoothstep(u - right_border, -0.01, 0.015) * smoothstep(left_border - u, -0.01, 0.015)
    heart *= smoothstep(v - top, -0.05, 0.03)                 # merges into the mediastinum
    c.fill(rows, cols, heart)
    c.extra[rows, cols] += 0.02 * heart
    return c.part(rows, cols, (heart > 0.5) & (v > top) & (v < g.dome(u, 1) + 0.02))


def effusion(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Basal opacity with a meniscus rising laterally; small ones only blunt the angle."""
    g, parts = c.g, []
    for s in _sides(fc):
        sev = np.clip(fc.severity * (0.8 + 0.4 * rng.random()), 0, 1)
        h = 0.03 + 0.30 * sev                                 # fluid height above the dome
        top = g.dome_v[0] if s < 0 else g.dome_v[1]
        cp = g.cp_v(s)
        u0, u1 = sorted((s * g.med_u, s * (g.lat_u + 0.02)))
        rows, cols = c.window(u0, u1, top - h - 0.04, cp + 0.04)
        u, v = c.U[0, cols][None, :], c.V[rows, 0][:, None]  # the meniscus is a 1-D curve
        lateral = np.clip((s * u - g.med_u) / (g.lat_u - g.med_u), 0, 1)
        meniscus = top + 0.02 - h * (0.4 + 0.6 * lateral ** 1.5)  # rises towards the chest wall
        fill = smoothstep(v - meniscus, -0.01, 0.05) * (0.55 + 0.4 * sev)
        c.fill(rows, cols, fill)
        parts += c.part(rows, cols, (fill > 0.3) & c.in_lung(rows, cols, s))
    return parts


def _zone_centre(c: Canvas, fc: FindingCase, rng: np.random.Generator,
                 s: int) -> tuple[float, float]:
    """A random point in the middle of zone `fc.zone` of the lung on side `s`."""
    g = c.g
    v0, v1 = g.zone_v(fc.zone, s)
    return s * (g.med_u + (g.lat_u - g.med_u) * (0.3 + 0.4 * rng.random())), v0 + (v1 - v0) * (
        0.3 + 0.4 * rng.random())


def consolidation(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Dense, fairly homogeneous lobar opacity with air bronchograms."""
    s, sev = side_sign(fc.side), fc.severity
    cu, cv = _zone_centre(c, fc, rng, s)
    ru, rv = 0.12 + 0.10 * sev, 0.10 + 0.08 * sev
    rows, cols = c.window(cu - ru, cu + ru, cv - rv, cv + rv)
    r2 = ((c.U[rows, cols] - cu) / ru) ** 2 + ((c.V[rows, cols] - cv) / rv) ** 2
    patch = np.clip(0.75 + 0.5 * c.noise(rng, 2, rows, cols), 0, 1)
    fill = smoothstep(1 - r2, 0, 0.5) * patch * (0.55 + 0.4 * sev)
    lines = _place(rows, cols, *stroke([[(cu - s * 0.08, cv - 0.02), (cu, cv),
                                         (cu + s * 0.06, cv + 0.04)],
                                        [(cu, cv), (cu + s * 0.05, cv - 0.05)]], c.size, 0.012))
    fill *= 1 - 0.5 * lines * smoothstep(fill, 0.3, 0.6)      # air bronchograms in dense parts
    c.fill(rows, cols, fill)
    return c.part(rows, cols, (fill > 0.25) & c.in_lung(rows, cols, s))


def pneumonia(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Patchy, ill-defined, multifocal airspace opacity in one zone."""
    s, sev = side_sign(fc.side), fc.severity
    cu, cv = _zone_centre(c, fc, rng, s)
    ru, rv = 0.18 + 0.10 * sev, 0.14 + 0.08 * sev
    rows, cols = c.window(cu - ru, cu + ru, cv - rv, cv + rv)
    U, V = c.U[rows, cols], c.V[rows, cols]
    fill = np.zeros(U.shape, np.float32)
    for _ in range(4):
        bu, bv = cu + ru * 0.45 * rng.uniform(-1, 1), cv + rv * 0.45 * rng.uniform(-1, 1)
        blob = np.exp(-(((U - bu) / (0.55 * ru)) ** 2 + ((V - bv) / (0.55 * rv)) ** 2))
        fill = np.maximum(fill, blob)
    patchy = 0.5 * c.noise(rng, 2, rows, cols) + 0.5 * c.noise(rng, 3, rows, cols)
    fill *= np.clip(0.85 + 0.9 * patchy, 0, 1) * (0.6 + 0.35 * sev)
    c.fill(rows, cols, fill)
    return c.part(rows, cols, (fill > 0.2) & c.in_lung(rows, cols, s))


def atelectasis(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Plate-like bands near a base; severe ones also raise the hemidiaphragm (volume loss)."""
    g, parts = c.g, []
    for s in _sides(fc):
        sev = fc.severity
        v0, v1 = g.zone_v(fc.zone, s)
        lines = []
        for _ in range(1 + int(sev > 0.5)):
            v = v0 + (v1 - v0) * rng.uniform(0.45, 0.85)
            u0 = s * (g.med_u + 0.1 + 0.1 * rng.random())
            u1 = s * (g.lat_u - 0.08 - 0.1 * rng.random())
            lines.append(_bezier((u0, v + rng.uniform(-0.04, 0.04)), ((u0 + u1) / 2, v - 0.02),
                                 (u1, v + rng.uniform(-0.08, 0.0)), 12))
        rows, cols, band = stroke(lines, c.size, 0.03 + 0.03 * sev)
        band = band * (0.6 + 0.35 * sev)
        c.fill(rows, cols, band)
        sub = (band > 0.3) & c.in_lung(rows, cols, s)
        if sev > 0.5:  # volume loss: the hemidiaphragm is pulled up
            lift = 0.10 * (sev - 0.5) / 0.5 + 0.02
            r2, c2 = c.window(*sorted((s * g.med_u, s * g.lat_u)), v1 - 0.1, g.cp_v(s) + 0.02)
            d = g.dome(c.U[r2, c2], s)
            c.fill(r2, c2, smoothstep(c.V[r2, c2] - (d - lift), -0.005, 0.01))
        parts += c.part(rows, cols, sub)
    return parts


def edema(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Bilateral perihilar haze (bat wing), upper-lobe vessel prominence, Kerley B lines."""
    g, sev, parts = c.g, fc.severity, []
    gain = c.gain()
    for s in (-1, 1):
        hu, hv = s * (g.med_u + 0.14), g.hilum_v + 0.05
        rows, cols = c.window(hu - 0.35, hu + 0.35, hv - 0.4, hv + 0.45)
        U, V = c.U[rows, cols], c.V[rows, cols]
        haze = np.exp(-(((U - hu) / (0.2 + 0.08 * sev)) ** 2 + ((V - hv) / 0.3) ** 2))
        peak = 0.15 + 0.3 * sev
        haze *= np.clip(0.8 + 0.6 * c.noise(rng, 3, rows, cols), 0, 1) * peak
        c.fill(rows, cols, haze)
        gain[rows, cols] *= 1 + (0.2 + 0.6 * sev) * (V < g.hilum_v)  # upper-lobe redistribution
        kerley = []
        for _ in range(2 + int(4 * sev)):
            v = g.cp_v(s) - rng.uniform(0.06, 0.22)
            u = s * (g.lat_u - 0.03 - 0.04 * rng.random())
            kerley.append([(u, v), (u - s * (0.04 + 0.03 * rng.random()), v)])
        kr, kc, lines = stroke(kerley, c.size, 0.008)
        c.extra[kr, kc] += 0.05 * lines * (c.var.lung[kr, kc] == s)
        parts += c.part(rows, cols, (haze > 0.35 * peak) & c.in_lung(rows, cols, s))
    return parts


def pneumothorax(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Apical lucency without lung markings, bounded by a thin bright visceral pleural line."""
    g, s, sev = c.g, side_sign(fc.side), fc.severity
    depth = 0.03 + 0.15 * sev                                  # at the apex
    extent = 0.45 + 0.6 * sev                                  # how far down the wall it reaches
    rows, cols = c.window(*sorted((s * g.med_u, s * (g.lat_u + 0.02))), g.apex_v - 0.02,
                          g.apex_v + extent + 0.02)
    U, V = c.U[rows, cols], c.V[rows, cols]
    shrink = depth * np.clip(1 - (V - g.apex_v) / extent, 0, 1) ** 0.6
    d_full, d_lung = lung_depth(U, V, g, s), lung_depth(U, V, g, s, shrink)
    lucent = (d_full > 0) & (d_lung <= 0)
    c.gain()[rows, cols] *= ~lucent
    c.extra[rows, cols] -= 0.12 * lucent * smoothstep(d_full, 0, 0.02)
    c.fill(rows, cols, 0.15 * smoothstep(d_lung, 0, 0.04))   # the collapsed lung is denser
    line = smoothstep(0.01 - np.abs(d_lung), 0, 0.008) * (d_full > 0.01)
    c.extra[rows, cols] += 0.16 * line
    return c.part(rows, cols, lucent)


def nodule(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Round opacities: a nodule below 30 mm, a mass from 30 mm; `count` > 1 adds smaller
    nodules anywhere in either lung (metastases). One part per nodule."""
    g, parts = c.g, []
    for k in range(fc.count):
        s = side_sign(fc.side) if k == 0 else (-1 if rng.random() < 0.5 else 1)
        zone = fc.zone if k == 0 else ("upper", "middle", "lower")[int(rng.integers(3))]
        radius = nodule_mm(fc.severity) / 2 * MM * (1.0 if k == 0 else rng.uniform(0.5, 0.9))
        cu, cv = _zone_centre(c, FindingCase(side=fc.side, zone=zone), rng, s)
        cv = min(cv, float(g.dome(np.array(cu), s)) - radius - 0.02)  # above the diaphragm
        rows, cols = c.window(cu - radius - 0.02, cu + radius + 0.02, cv - radius - 0.02,
                              cv + radius + 0.02)
        r = np.hypot(c.U[rows, cols] - cu, c.V[rows, cols] - cv) / radius
        disc = smoothstep(1.0 - r, -0.1, 0.25)
        c.fill(rows, cols, 0.9 * disc)
        c.extra[rows, cols] += 0.08 * disc                  # still faintly seen behind the heart
        parts += c.part(rows, cols, r < 1.0)
    return parts


def _device_lines(name: str, g: Geometry, rng: np.random.Generator) -> tuple[list, float, float]:
    """Polylines (normalised (u, v) points), line width and brightness of one support device."""
    def j(scale: float = 0.02) -> float:  # position jitter
        return rng.uniform(-scale, scale)

    dome_l = g.dome_v[1]
    if name == "ett":  # endotracheal tube down the trachea, tip 3-5 cm above the carina
        tip = g.carina_v - 0.08 - 0.06 * rng.random()
        return [[(j(), -1.0), (j(0.01), -0.6), (j(0.005), tip)]], 0.02, 0.30
    if name == "ng":  # nasogastric tube: down the oesophagus, below the diaphragm, into the stomach
        path = [(0.02, -1.0), (0.03 + j(), g.carina_v), (0.07 + j(), dome_l - 0.05),
                (0.30 + j(), dome_l + 0.12), (0.42 + j(), dome_l + 0.2), (0.28 + j(), dome_l + 0.26)]
        return [path], 0.015, 0.28
    if name == "cvc":  # right internal jugular central line, tip in the lower SVC
        tip = (-0.07 + j(0.01), g.carina_v + 0.12 + j(0.04))
        return [list(_bezier((-0.26 + j(), -1.0), (-0.12, -0.62), tip, 16))], 0.014, 0.28
    if name == "picc":  # from the left arm across the shoulder into the SVC
        path = [(0.98, -0.56 + j()), (0.62, -0.66 + j()), (0.26, -0.62 + j()), (0.08, -0.46),
                (0.05 + j(0.01), g.carina_v + 0.1 + j(0.04))]
        return [path], 0.01, 0.26
    if name == "pacemaker":  # left chest wall generator, leads to the right atrium and ventricle
        x, y = 0.55 + j(0.05), -0.58 + j(0.04)
        box = [[(x - 0.07, y + dy), (x + 0.07, y + dy)] for dy in np.linspace(-0.04, 0.04, 7)]
        leads = [list(_bezier((x - 0.06, y), (0.05, -0.4), (-0.05 + j(), -0.08), 16)),
                 list(_bezier((x - 0.06, y + 0.02), (0.0, -0.2), (0.16 + j(), dome_l - 0.02), 16))]
        return box + leads, 0.014, 0.35
    if name == "sternal_wires":  # a column of small wire loops over the sternum
        t = np.linspace(0, 2 * np.pi, 16)
        loops = [np.stack([0.025 * np.cos(t) + j(0.005), -0.45 + 0.12 * k + j(0.01)
                           + 0.012 * np.sin(t)], 1) for k in range(5)]
        return loops, 0.01, 0.40
    if name == "clips":  # cholecystectomy clips in the right upper quadrant
        x, y = -0.42 + j(0.06), g.dome_v[0] + 0.2 + j(0.05)
        return [[(x + 0.05 * k, y + 0.02 * k), (x + 0.05 * k + 0.03, y + 0.02 * k + 0.01)]
                for k in range(3)], 0.014, 0.45
    raise ValueError(f"unknown device {name!r}")


def support_devices(c: Canvas, fc: FindingCase, rng: np.random.Generator) -> list[np.ndarray]:
    """Bright lines, tubes, leads and clips; one part (mask, box) per device."""
    parts = []
    for name in fc.devices:
        lines, width, brightness = _device_lines(name, c.g, rng)
        rows, cols, img = stroke(lines, c.size, width)
        c.extra[rows, cols] += brightness * img
        parts += c.part(rows, cols, img > 0.3)
    return parts


RENDERERS = {
    "pleural_effusion": effusion, "consolidation": consolidation, "pneumonia": pneumonia,
    "atelectasis": atelectasis, "edema": edema, "pneumothorax": pneumothorax, "nodule": nodule,
    "support_devices": support_devices,
}  # cardiomegaly is the heart itself (draw_heart)

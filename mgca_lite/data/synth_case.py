"""SynthCXR cases: which findings a synthetic patient has, where, and how severe.

A *case* is everything about a study that is decided before any pixel is drawn: the view, the
findings present in the image, their side / zone / severity, the devices, and the label that a
report-based labeller would assign. It is drawn from its own random stream, so the same
(seed, index) gives the same case — and therefore the same labels and report — at every image
size. `synth_anatomy` / `synth_findings` render a case; `synth_report` writes its report.

Two truths, on purpose (as in CheXpert / MIMIC-CXR):
- `present[f]`: what is really in the image (this is what masks and boxes show);
- `labels[f]`:  1 / 0 / -1 — positive, negative, uncertain. Positive and negative follow the image;
  -1 means the report hedges ("possible", "cannot exclude"). A hedge can be about a real but subtle
  finding or about nothing at all; how often each happens is set per finding below, chosen so that
  CheXpert's uncertainty policies make sense here too (U-ones for atelectasis / edema / effusion,
  whose hedges are mostly real; U-zeros for cardiomegaly / consolidation, whose hedges are mostly
  not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FINDINGS: tuple[str, ...] = (
    "atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion",
    "pneumonia", "pneumothorax", "nodule", "support_devices",
)
CHEXPERT5: tuple[str, ...] = FINDINGS[:5]  # the CheXpert competition classes

DEVICES: tuple[str, ...] = ("ett", "ng", "cvc", "picc", "pacemaker", "sternal_wires", "clips")
ZONES: tuple[str, ...] = ("upper", "middle", "lower")


def _f(**kw: float) -> dict[str, float]:
    """A per-finding table; findings not named get 0."""
    return {f: float(kw.get(f, 0.0)) for f in FINDINGS}


@dataclass
class SynthConfig:
    """Every knob of SynthCXR. Defaults are the tuned 'course' setting (see the data notebook)."""

    # --- which findings (the case) ---
    # Marginal probability that each finding is present in the image. Correlations below move
    # probability between patients but keep these marginals.
    prevalence: dict[str, float] = field(default_factory=lambda: _f(
        atelectasis=0.18, cardiomegaly=0.20, consolidation=0.16, edema=0.14,
        pleural_effusion=0.20, pneumonia=0.14, pneumothorax=0.10, nodule=0.12,
        support_devices=0.22))
    p_heart_failure: float = 0.15   # latent "congestive heart failure": drives the next three
    heart_failure_lift: dict[str, float] = field(default_factory=lambda: _f(
        cardiomegaly=3.0, edema=4.0, pleural_effusion=2.5))  # P(f | HF) = lift * prevalence
    p_icu: float = 0.20             # latent "ICU patient": devices, AP view, pneumothorax
    icu_lift: dict[str, float] = field(default_factory=lambda: _f(
        support_devices=3.5, pneumothorax=1.8, edema=1.3))
    consolidation_lift_given_pneumonia: float = 4.0  # pneumonia usually shows consolidation
    atelectasis_lift_given_effusion: float = 2.0     # effusions compress the adjacent lung
    # Uncertain labels (-1): P(report hedges | present) and P(report hedges | absent).
    hedge_if_present: dict[str, float] = field(default_factory=lambda: _f(
        atelectasis=0.20, cardiomegaly=0.04, consolidation=0.08, edema=0.18,
        pleural_effusion=0.15, pneumonia=0.20, pneumothorax=0.05, nodule=0.08))
    hedge_if_absent: dict[str, float] = field(default_factory=lambda: _f(
        atelectasis=0.01, cardiomegaly=0.05, consolidation=0.05, edema=0.01,
        pleural_effusion=0.01, pneumonia=0.04, pneumothorax=0.005, nodule=0.01))
    hedged_severity_scale: float = 0.6   # a real finding that the report hedges is a subtle one
    severity_range: tuple[float, float] = (0.0, 1.0)  # severity ~ U(range); 0 = faint/small
    p_ap_view: float = 0.12          # AP (portable) views outside the ICU; ICU patients: 0.8
    # Devices of a support_devices positive are drawn in draw_case (ICU patients: tubes).

    # --- the report (how noisy the text is relative to the image) ---
    p_mention: dict[str, float] = field(default_factory=lambda: _f(
        atelectasis=0.75, cardiomegaly=0.85, consolidation=0.85, edema=0.85,
        pleural_effusion=0.9, pneumonia=0.85, pneumothorax=0.95, nodule=0.8,
        support_devices=0.9))        # a present finding is written up with this probability
    p_pertinent_negative: float = 0.5  # an absent finding is negated ("no pneumothorax")
    p_comparison: float = 0.4        # the report compares with a prior study
    n_distractor_sentences: tuple[int, int] = (0, 3)  # about nothing visible; inclusive range
    p_numbered_impression: float = 0.5

    # --- the image (see synth_anatomy / synth_findings for their use) ---
    pose_shift: float = 0.06         # max translation, fraction of the image side
    pose_rotation_deg: float = 5.0   # max in-plane rotation
    pose_scale: tuple[float, float] = (0.86, 1.08)  # patient size relative to the film
    exposure_jitter: float = 0.12    # brightness offset range (+-)
    contrast_range: tuple[float, float] = (0.75, 1.25)  # display contrast; AP views get 0.85x
    gamma_range: tuple[float, float] = (0.75, 1.35)     # display gamma (film / processing curve)
    noise_std: tuple[float, float] = (0.015, 0.05)  # quantum mottle; AP views get 1.5x
    blur_sigma: tuple[float, float] = (0.3, 1.2)    # in pixels at 128 px, scaled with size
    clutter: float = 1.0             # strength of soft distractor blobs (overlying tissue)
    p_skin_fold: float = 0.15        # a skin fold line over a lung (pneumothorax mimic)
    lung_haze: float = 0.25          # max patient-level lung density (an edema mimic)
    p_marker: float = 0.6            # an "R"/"L" marker burned into a corner


@dataclass
class FindingCase:
    """One finding's state in a case (all fields meaningful only when `present`)."""

    present: bool = False
    label: int = 0                 # 1 / 0 / -1 (CheXpert encoding)
    severity: float = 0.0          # 0 (faint / small) .. 1 (severe / large)
    side: str = "right"            # patient side: "right" | "left" | "bilateral"
    zone: str = "lower"            # "upper" | "middle" | "lower"
    devices: tuple[str, ...] = ()  # support devices only
    count: int = 1                 # nodules only: 2-6 = "multiple pulmonary nodules"
    change: str = ""               # vs prior: "", "new", "unchanged", "increased", "decreased"


@dataclass
class Case:
    """A drawn study: view plus one FindingCase per finding in FINDINGS order."""

    view: str
    findings: dict[str, FindingCase]
    has_prior: bool
    heart_failure: bool
    icu: bool

    @property
    def labels(self) -> dict[str, int]:
        return {f: self.findings[f].label for f in FINDINGS}

    @property
    def present(self) -> dict[str, bool]:
        return {f: self.findings[f].present for f in FINDINGS}


def nodule_mm(severity: float) -> int:
    """Nodule / mass diameter in mm (the renderer draws it, the report quotes it)."""
    return int(round(14 + 36 * severity))


def _conditional(marginal: float, p_driver: float, lift: float, driver: bool) -> float:
    """P(f | driver) with P(f | driver) = lift * marginal and the marginal kept exact."""
    p_hi = min(0.95, marginal * lift)
    if driver:
        return p_hi
    return float(np.clip((marginal - p_driver * p_hi) / max(1e-9, 1.0 - p_driver), 0.0, 1.0))


def draw_case(rng: np.random.Generator, cfg: SynthConfig) -> Case:
    """Draw one case. Uses only `rng` (never the global RNG); the number of draws is fixed."""
    u = rng.random(80).tolist()  # a fixed budget of uniforms keeps the stream layout stable
    k = iter(range(80))
    hf = u[next(k)] < cfg.p_heart_failure
    icu = u[next(k)] < cfg.p_icu
    view = "AP" if u[next(k)] < (0.8 if icu else cfg.p_ap_view) else "PA"
    has_prior = u[next(k)] < cfg.p_comparison
    prev = cfg.prevalence

    def p_of(f: str) -> float:
        """Probability of f given the latent drivers that apply to it."""
        p = prev[f]
        if cfg.heart_failure_lift[f] > 0:
            p = _conditional(p, cfg.p_heart_failure, cfg.heart_failure_lift[f], hf)
        if cfg.icu_lift[f] > 0:
            p = _conditional(p, cfg.p_icu, cfg.icu_lift[f], icu)
        return p

    present: dict[str, bool] = {}
    for f in ("cardiomegaly", "edema", "pleural_effusion", "pneumonia", "pneumothorax",
              "nodule", "support_devices"):
        present[f] = bool(u[next(k)] < p_of(f))
    present["consolidation"] = bool(u[next(k)] < _conditional(
        prev["consolidation"], prev["pneumonia"], cfg.consolidation_lift_given_pneumonia,
        present["pneumonia"]))
    present["atelectasis"] = bool(u[next(k)] < _conditional(
        prev["atelectasis"], prev["pleural_effusion"], cfg.atelectasis_lift_given_effusion,
        present["pleural_effusion"]))

    lo, hi = cfg.severity_range
    findings: dict[str, FindingCase] = {}
    for f in FINDINGS:
        fc = FindingCase(present=present[f])
        hedge = u[next(k)] < (cfg.hedge_if_present[f] if fc.present else cfg.hedge_if_absent[f])
        fc.label = -1 if hedge else int(fc.present)
        fc.severity = lo + (hi - lo) * u[next(k)]
        if fc.present and fc.label == -1:
            fc.severity *= cfg.hedged_severity_scale
        r_side, r_zone, r_change = u[next(k)], u[next(k)], u[next(k)]
        fc.side = "right" if r_side < 0.5 else "left"
        fc.zone = ZONES[min(2, int(r_zone * 3))]
        if has_prior and fc.present:
            fc.change = ("new", "unchanged", "unchanged", "increased", "decreased")[
                min(4, int(r_change * 5))]
        findings[f] = fc

    # Radiology-specific placement.
    r_bilat_eff, r_ate_zone, r_ate_bilat, r_ate_side, r_nod_zone, r_same_site, r_nod_n = (
        u[next(k)] for _ in range(7))
    eff = findings["pleural_effusion"]
    if present["edema"] or hf or r_bilat_eff < 0.2:
        eff.side = "bilateral"  # effusions of heart failure are usually bilateral
    eff.zone = "lower"
    ate = findings["atelectasis"]
    ate.zone = "lower" if r_ate_zone < 0.85 else "middle"  # plate-like bands sit at the bases
    if r_ate_bilat < 0.25:
        ate.side = "bilateral"
    if eff.present and eff.side != "bilateral" and r_ate_side < 0.7:
        ate.side = eff.side  # compressive atelectasis next to the effusion
    findings["edema"].side = "bilateral"
    findings["cardiomegaly"].side = "bilateral"
    findings["pneumothorax"].zone = "upper"  # apical on upright films
    nod = findings["nodule"]
    nod.zone = "upper" if r_nod_zone < 0.5 else ("middle" if r_nod_zone < 0.8 else "lower")
    nod.count = 1 if r_nod_n < 0.5 else 2 + int((r_nod_n - 0.5) / 0.5 * 5)  # metastases
    if present["pneumonia"] and present["consolidation"] and r_same_site < 0.8:
        findings["consolidation"].side = findings["pneumonia"].side  # the same infected lobe
        findings["consolidation"].zone = findings["pneumonia"].zone
    devs = []
    d = rng.random(len(DEVICES)).tolist()  # device choice: its own draws, after the budget
    weights = {"ett": 0.5 if icu else 0.1, "ng": 0.45 if icu else 0.1, "cvc": 0.45,
               "picc": 0.25, "pacemaker": 0.25 if hf else 0.12, "sternal_wires": 0.2,
               "clips": 0.12}
    for name, di in zip(DEVICES, d):
        if di < weights[name]:
            devs.append(name)
    if not devs:  # a positive always has at least one device
        devs.append(DEVICES[int(d[0] * len(DEVICES))])
    findings["support_devices"].devices = tuple(devs)
    return Case(view=view, findings=findings, has_prior=has_prior, heart_failure=bool(hf),
                icu=bool(icu))

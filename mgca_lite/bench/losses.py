"""Loss speed benchmark: our three losses vs a transcription of the reference arithmetic.

    python -m mgca_lite.bench.losses [--threads 2] [--repeats 7] [--groups N] [--device cuda]

Both sides get the same seeded inputs at ViT-B shapes (B=72, T=111, P=196, D=128, K=500) and
run forward + backward of ITA + CTA + CPA including the importance-weight clipping of the raw
word and patch attention. Runs alternate (ours, reference, ours, ...) so that load from other
processes hits both alike; the median of each is reported, and the ratio ours / reference
(goal <= 0.7). A benchmark, not a timed test: the numbers depend on the machine, and on a
shared machine on the load from other processes (many small multi-threaded ops stall when a
core is busy elsewhere). `--groups` overrides CTA's number of report-length groups (see
`losses/cta.py`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from mgca_lite.losses import cta as cta_module
from mgca_lite.losses.cpa import cpa_loss
from mgca_lite.losses.cta import cta_loss
from mgca_lite.losses.importance import token_importance
from mgca_lite.losses.ita import ita_loss

from .reference_transcription import reference_cpa, reference_cta, reference_ita

__all__ = ["benchmark_losses", "main"]

GOAL = 0.7


def _inputs(batch, words, patches, dim, prototypes, seed=0, device="cpu"):
    """Seeded inputs; report lengths uniform in [T/5, T] words (real reports vary a lot)."""
    g = torch.Generator().manual_seed(seed)
    unit = lambda *s: F.normalize(torch.randn(*s, generator=g), dim=-1)
    lengths = torch.randint(max(1, words // 5), words + 1, (batch,), generator=g)  # (B,)
    mask = torch.arange(words)[None, :] < lengths[:, None]                         # (B, T)
    data = dict(
        img=unit(batch, dim), rep=unit(batch, dim),
        words=unit(batch, words, dim), patches=unit(batch, patches, dim), mask=mask,
        word_att=torch.rand(batch, words, generator=g) * mask,   # 0 on [PAD] (as the ref needs)
        patch_att=torch.rand(batch, patches, generator=g) + 1e-3,
        protos=unit(prototypes, dim))
    return {k: v.to(device) for k, v in data.items()}


def _time(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def benchmark_losses(batch: int = 72, words: int = 111, patches: int = 196, dim: int = 128,
                     prototypes: int = 500, threads: int = 2, repeats: int = 7,
                     warmup: int = 2, groups: int | None = None, device: str = "cpu") -> dict:
    """Median seconds of forward + backward of all three losses, ours and the reference's.

    `groups` overrides CTA's report-length groups for this run (None = the library default).
    Returns {"ours_s", "reference_s", "ratio" (of the medians), "ours_min_s", "reference_min_s",
    "threads", "shape", "device", "ours_loss", "reference_loss"} (the two loss values differ by
    design: see reference_transcription.py).
    """
    dev = torch.device(device)
    data = _inputs(batch, words, patches, dim, prototypes, device=dev)
    leaves = {k: data[k].clone().requires_grad_() for k in ("img", "rep", "words", "patches")}
    protos_ours = data["protos"].clone().requires_grad_()
    protos_ref = data["protos"].clone().requires_grad_()
    last = {}

    def ours():
        word_w = token_importance(data["word_att"], data["mask"])                 # (B, T)
        patch_w = token_importance(data["patch_att"], None)                       # (B, P)
        loss = ita_loss(leaves["img"], leaves["rep"]) \
            + cta_loss(leaves["words"], leaves["patches"], data["mask"], word_w, patch_w) \
            + cpa_loss(leaves["img"], leaves["rep"], protos_ours)
        loss.backward()
        last["ours"] = loss.item()

    def reference():
        loss = reference_ita(leaves["img"], leaves["rep"]) \
            + reference_cta(leaves["words"], leaves["patches"], data["mask"],
                            data["word_att"], data["patch_att"]) \
            + reference_cpa(leaves["img"], leaves["rep"], protos_ref)
        loss.backward()
        last["reference"] = loss.item()

    def clear():
        for t in (*leaves.values(), protos_ours, protos_ref):
            t.grad = None

    old_threads = torch.get_num_threads()
    old_groups = dict(cta_module._BUCKETS)
    torch.set_num_threads(threads)
    if groups is not None:
        cta_module._BUCKETS[dev.type] = groups
    try:
        times = {"ours": [], "reference": []}
        for i in range(warmup + repeats):
            for name, fn in (("ours", ours), ("reference", reference)):
                clear()
                elapsed = _time(fn, dev)
                if i >= warmup:
                    times[name].append(elapsed)
    finally:
        torch.set_num_threads(old_threads)
        cta_module._BUCKETS.clear()
        cta_module._BUCKETS.update(old_groups)
    ours_s, ref_s = statistics.median(times["ours"]), statistics.median(times["reference"])
    return {"ours_s": ours_s, "reference_s": ref_s, "ratio": ours_s / ref_s, "threads": threads,
            "ours_min_s": min(times["ours"]), "reference_min_s": min(times["reference"]),
            "shape": dict(B=batch, T=words, P=patches, D=dim, K=prototypes), "device": device,
            "ours_loss": last["ours"], "reference_loss": last["reference"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=72)
    p.add_argument("--words", type=int, default=111)
    p.add_argument("--patches", type=int, default=196)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--prototypes", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--groups", type=int, default=None, help="CTA report-length groups")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    r = benchmark_losses(a.batch, a.words, a.patches, a.dim, a.prototypes, a.threads,
                         a.repeats, a.warmup, a.groups, a.device)
    shape = ", ".join(f"{k}={v}" for k, v in r["shape"].items())
    where = f"{r['threads']} threads" if a.device == "cpu" else a.device
    groups = a.groups if a.groups is not None else \
        cta_module._BUCKETS.get(torch.device(a.device).type, 1)
    print(f"MGCA losses, forward + backward, {shape}, {where}, CTA length groups {groups}, "
          f"median of {a.repeats}")
    print(f"  ours (vectorised)          {1e3 * r['ours_s']:8.1f} ms")
    print(f"  reference transcription    {1e3 * r['reference_s']:8.1f} ms")
    print(f"  ours / reference = {r['ratio']:.2f} (goal <= {GOAL}); "
          f"best runs: {r['ours_min_s'] / r['reference_min_s']:.2f}")
    busy = load + a.threads > (os.cpu_count() or 1) + 0.5
    if a.device == "cpu" and busy:
        print(f"  note: load average {load:.1f} on {os.cpu_count()} cores: other processes compete"
              " for the cores, which slows many-op code most; rerun on an idle machine (or with"
              " OMP_WAIT_POLICY=PASSIVE) for representative numbers")
    return r


if __name__ == "__main__":
    main()

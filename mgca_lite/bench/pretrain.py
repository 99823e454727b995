"""`python -m mgca_lite bench pretrain`: images/s of the full MGCA step against the encoders alone.

Three measurements on one fixed batch (so data loading is not measured), each the median of
`--steps` timed optimizer steps after warm-up:
- full:     model + MGCALoss forward, backward, AdamW step — what the trainer runs;
- encoders: image + text encoder forward/backward with a trivial loss — the floor any
            implementation pays; full / encoders is the overhead of heads and the three losses;
- reference (`--reference`): the same model in the reference code's settings — float32, global
            anomaly detection, and the reference loss arithmetic (per-sample quantile loops, the
            similarity computed twice; `bench/reference_transcription.py`).
"""
from __future__ import annotations

import statistics
import time

import torch

from mgca_lite.losses.mgca_loss import MGCALoss
from mgca_lite.bench.reference_transcription import reference_cpa, reference_cta, reference_ita
from mgca_lite.models.mgca import build_model
from mgca_lite.training.config import PretrainConfig, load_config
from mgca_lite.training.ddp import pick_device


def _batch(cfg: PretrainConfig, tokenizer, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A fixed training batch: random images (B, 1, H, W) and real SynthCXR reports tokenized."""
    from mgca_lite.data.captions import clean_report
    from mgca_lite.data.synth import report_corpus

    size, batch = cfg.data.crop_size or cfg.model.image.image_size, cfg.train.batch_size
    images = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))
    reports = report_corpus(batch, seed=1)
    if cfg.model.text.clean_reports:  # the text the trainer's collator gives the model
        reports = [clean_report(r).text for r in reports]
    enc = tokenizer(reports, padding="longest", truncation=True,
                    max_length=cfg.model.text.max_length, return_tensors="pt")
    return images.to(device), enc["input_ids"].to(device), enc["attention_mask"].to(device)


def _reference_loss(out, prototypes: torch.Tensor, cfg) -> torch.Tensor:
    """The reference arithmetic on our model's outputs, weighted like MGCALoss."""
    patch_att = out.patch_weights if out.patch_weights is not None else torch.ones_like(out.patch_emb[..., 0])
    return (cfg.lambda_ita * reference_ita(out.img_emb, out.rep_emb, cfg.ita_temperature)
            + cfg.lambda_cta * reference_cta(out.word_emb, out.patch_emb, out.word_mask, out.word_weights,
                                             patch_att, cfg.cta_temperature)
            + cfg.lambda_cpa * reference_cpa(out.img_emb, out.rep_emb, prototypes, cfg.sinkhorn_epsilon,
                                             cfg.cpa_temperature, cfg.sinkhorn_iterations))


def _timed(steps_by_name: dict, repeats: int, device: torch.device) -> dict:
    """Median seconds per call of each step function, after 3 warm-up calls each.

    The functions are timed in alternation (round-robin), so a load change on a shared machine
    hits all of them alike and the ratios stay meaningful.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for step in steps_by_name.values():
        for _ in range(3):
            step()
    times = {name: [] for name in steps_by_name}
    for _ in range(repeats):
        for name, step in steps_by_name.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def benchmark_pretrain(cfg: PretrainConfig, steps: int = 10, reference: bool = False,
                       device: torch.device | None = None) -> dict:
    """images/s for the full step, the encoders alone and (optionally) the reference settings; on CUDA
    also the peak memory torch allocated (peak_memory_gib)."""
    device = device or pick_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    model, tokenizer = build_model(cfg.model)
    criterion = MGCALoss(cfg.loss)
    model, criterion = model.to(device), criterion.to(device)
    images, ids, mask = _batch(cfg, tokenizer, device)
    bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and device.type == "cuda")
    if device.type == "cuda" and cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    params = list(model.parameters()) + list(criterion.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-6)

    def autocast(on: bool):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)

    def full_step():
        with autocast(bf16):
            loss = criterion(model(images, ids, mask))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def encoder_step():
        with autocast(bf16):
            img = model.image_encoder(images)
            txt = model.text_encoder(ids, mask)
            loss = (img.global_feat.float().mean() + img.local_feat.float().mean()
                    + txt.report_feat.float().mean() + txt.word_feat.float().mean())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def reference_step():
        with torch.autograd.set_detect_anomaly(True):
            loss = _reference_loss(model(images, ids, mask), criterion.prototypes, cfg.loss)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    steps_by_name = {"full": full_step, "encoders": encoder_step}
    if reference:
        steps_by_name["reference"] = reference_step
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = _timed(steps_by_name, steps, device)
    batch = images.shape[0]
    result = {"device": str(device), "precision": "bf16" if bf16 else "fp32", "batch": batch}
    if device.type == "cuda":  # the most any of the timed steps held at once (weights, grads, Adam state, activations)
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    result.update({f"{name}_img_s": batch / sec for name, sec in seconds.items()})
    result["full_over_encoders_time"] = seconds["full"] / seconds["encoders"]
    if reference:
        result["speedup_vs_reference"] = seconds["reference"] / seconds["full"]
    return result


def bench_pretrain_main(args) -> int:
    cfg = load_config(args.config, list(args.overrides or []))
    threads = torch.get_num_threads()
    res = benchmark_pretrain(cfg, steps=args.steps, reference=args.reference)
    print(f"bench pretrain [{cfg.name}] on {res['device']} ({res['precision']}, batch {res['batch']}, "
          f"{threads} CPU threads)")
    print(f"  full MGCA step    {res['full_img_s']:8.1f} images/s")
    print(f"  encoders alone    {res['encoders_img_s']:8.1f} images/s")
    print(f"  full / encoders time ratio = {res['full_over_encoders_time']:.2f} (goal <= 1.3 on CPU tiny)")
    if "peak_memory_gib" in res:
        print(f"  peak GPU memory   {res['peak_memory_gib']:8.1f} GiB (allocated by torch, any timed step)")
    if "reference_img_s" in res:
        print(f"  reference settings {res['reference_img_s']:7.1f} images/s (fp32, anomaly detection, loops)")
        print(f"  ours / reference speed = {res['speedup_vs_reference']:.2f}x (goal >= 3x on GPU)")
    return 0

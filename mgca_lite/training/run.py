"""`python -m mgca_lite pretrain`: turn CLI arguments into a config and run the trainer."""
from __future__ import annotations

from pathlib import Path

from mgca_lite.configtools import from_dict
from mgca_lite.training.config import PretrainConfig, apply_overrides, config_from_json, load_config
from mgca_lite.training.ddp import cleanup, ranks_agree


def config_from_args(args) -> tuple[PretrainConfig, Path]:
    """Config from --config (or the run's own config.json when only --resume is given) + switches."""
    overrides = list(args.overrides or [])
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    for term in ("ita", "cta", "cpa"):
        if getattr(args, f"no_{term}", False):
            overrides.append(f"loss.use_{term}=false")
    if args.config:
        cfg = load_config(args.config, overrides)
    elif args.resume and args.output_dir:
        saved = Path(args.output_dir) / "config.json"
        if not saved.is_file():
            raise FileNotFoundError(f"{saved}: no config to resume from; pass --config")
        cfg = from_dict(PretrainConfig, apply_overrides(config_from_json(saved.read_text()).to_dict(), overrides))
    else:
        raise SystemExit("pretrain needs --config (or --resume with --output-dir)")
    output_dir = Path(args.output_dir or Path("runs") / cfg.name)
    return cfg, output_dir


def pretrain_main(args) -> int:
    from mgca_lite.training.trainer import Trainer

    cfg, output_dir = config_from_args(args)
    trainer = Trainer(cfg, output_dir, resume=args.resume, progress=not args.no_progress)
    summary = trainer.fit()
    agree = ranks_agree(trainer.module)
    if trainer.dist.world_size > 1 and trainer.dist.is_main:
        print(f"{trainer.dist.world_size} processes, ranks agree: {agree}")
    if not agree:
        raise RuntimeError("DDP ranks ended with different weights")
    if trainer.dist.is_main:
        print(f"done: step {summary['step']}, epoch {summary['epoch']}, best val loss {summary['best_val']:.4f}"
              f"{' (stopped early)' if summary['stopped_early'] else ''}; wrote {output_dir}/last.pt, best.pt, "
              "metrics.csv, config.json")
    cleanup()
    return 0

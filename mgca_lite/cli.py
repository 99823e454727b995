"""Command line: `python -m mgca_lite {demo,pretrain,probe,eval,ablation,bench,export-synth} ...`.

Every subcommand imports its machinery lazily so `--help` is instant.
"""
from __future__ import annotations

import argparse
import os
import sys


def _pretrain(args) -> int:
    from mgca_lite.training.run import pretrain_main
    return pretrain_main(args)


def _demo(args) -> int:
    from mgca_lite.demo import demo_main
    return demo_main(args)


def _ablation(args) -> int:
    from mgca_lite.ablation import ablation_main
    return ablation_main(args)


def _probe(args) -> int:
    from mgca_lite.evaluation.compare import probe_main
    return probe_main(args)


def _eval(args) -> int:
    from mgca_lite.evaluation.eval_cli import eval_main
    return eval_main(args)


def _bench(args) -> int:
    if args.what == "synth":
        import os

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")  # one core, as the goal is stated; before numpy loads
        from mgca_lite.bench.synth import main
        main(["--image-size", str(args.image_size)])
        return 0
    if args.what == "losses":
        import os

        # Idle OpenMP threads sleep instead of spinning, so other processes on a shared machine
        # slow both sides of the ratio alike; set before torch loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from mgca_lite.bench.losses import main
        main([])
        return 0
    from mgca_lite.bench.pretrain import bench_pretrain_main
    return bench_pretrain_main(args)


def _export(args) -> int:
    from mgca_lite.data.manifest import export_synth
    export_synth(args.out_dir, task=args.task, image_size=args.image_size, seed=args.seed)
    print(f"wrote {args.task} manifest to {args.out_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mgca_lite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="MGCA pretraining (single process, or under torchrun for DDP)")
    p.add_argument("--config", help="config name in configs/ (synth_tiny, synth_base, mimic_resnet50, "
                                    "mimic_vit_b16) or a YAML path; optional with --resume")
    p.add_argument("--max-steps", type=int, help="optimizer steps (sets train.max_steps)")
    p.add_argument("--output-dir", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last.pt")
    p.add_argument("--no-ita", action="store_true", help="switch the instance (ITA) term off")
    p.add_argument("--no-cta", action="store_true", help="switch the token (CTA) term off")
    p.add_argument("--no-cpa", action="store_true", help="switch the prototype (CPA) term off")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.batch_size=32 loss.num_prototypes=64")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("demo", help="the main job: pretrain synth_tiny, then linear probes vs random init")
    p.add_argument("--config", default="synth_tiny")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("--seeds", type=int, default=3, help="probe seeds (label subsets) to average")
    p.add_argument("--max-steps", type=int, help="shorter pretraining, e.g. for a smoke test")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_demo)

    p = sub.add_parser("probe", help="linear probe of a checkpoint's frozen image encoder on a SynthCXR task "
                                     "(or a manifest's)")
    p.add_argument("checkpoint", help="a best.pt / last.pt written by pretrain, or 'random' (with --config): "
                                      "the random-init encoder and raw pixels only")
    p.add_argument("--task", default="chexpert5")
    p.add_argument("--fractions", default="0.01,0.1,1.0")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--synth-seed", type=int, help="render the probe task from this SynthCXR seed (unseen data); "
                                                  "default: the checkpoint's data.seed")
    p.add_argument("--manifest", metavar="DIR", help="probe on this manifest directory's train/val/test splits "
                                                     "of --task instead of SynthCXR (not with --synth-seed)")
    p.add_argument("--json", metavar="OUT", help="also write the results to OUT as JSON")
    p.add_argument("--config", help="checkpoint 'random' only: the pretraining config whose encoder to build")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="probe settings, e.g. probe.standardize=false probe.min_steps=0 probe.early_stop_on=loss "
                        "train_size=500; with 'random' also pretraining-config keys (model.image.width=8)")
    p.set_defaults(func=_probe)

    p = sub.add_parser("bench", help="speed benchmarks that print ratios")
    p.add_argument("what", choices=["synth", "losses", "pretrain"])
    p.add_argument("--config", default="synth_tiny")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps (pretrain)")
    p.add_argument("--reference", action="store_true",
                   help="pretrain: also time the reference settings (fp32, anomaly detection, per-sample loops)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_bench)

    p = sub.add_parser("export-synth", help="write a SynthCXR task to disk in the manifest format")
    p.add_argument("out_dir")
    p.add_argument("--task", default="pretrain")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_export)

    p = sub.add_parser("ablation", help="the paper's Table 4 with seeds: ITA / +CTA / +CPA / MGCA and random init "
                                        "on every downstream task")
    p.add_argument("--config", default="synth_tiny", help="the pretraining config every variant starts from")
    p.add_argument("--seeds", type=int, default=3, help="pretraining seeds per variant")
    p.add_argument("--tasks", help="comma-separated eval tasks to run (default: all): probe,finetune,segment,"
                                   "detect,zeroshot,retrieval,grounding,prototypes")
    p.add_argument("--methods", help="comma-separated methods to run (default: all): random,ita,ita_cta,ita_cpa,mgca. "
                                     "Two invocations over disjoint methods share the cores of one --out; the "
                                     "report covers every method's kept results either way")
    p.add_argument("--smoke", action="store_true", help="4-step runs and the evaluations' smoke sizes (seconds)")
    p.add_argument("--out", default="results", help="where results, runs and per-run evaluations go")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_ablation)

    from mgca_lite.evaluation.eval_cli import EVAL_TASKS  # a constant only: no heavy import

    p = sub.add_parser("eval", help="a downstream evaluation of a checkpoint (grounding, prototypes, probe, ...)")
    p.add_argument("task", choices=EVAL_TASKS)
    p.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by pretrain, or 'random': "
                                                       "the --config architecture at random init")
    p.add_argument("--config", default="synth_tiny", help="checkpoint 'random' only: the architecture to build")
    p.add_argument("--fractions", default="1,10,100", help="label fractions in percent (probe, finetune, segment, detect)")
    p.add_argument("--seeds", type=int, default=3, help="label subsets (and head inits) per fraction below 100 %%")
    p.add_argument("--dataset", help="the SynthCXR downstream task (probe / finetune: chexpert5, rsna or "
                                     "covidx; segment: siim or rsna; detect: rsna or object_cxr); default "
                                     "per TASK: chexpert5, siim, rsna")
    p.add_argument("--synth-seed", type=int, help="SynthCXR seed of the evaluation studies "
                                                  "(grounding / prototypes default 1234, an unseen one)")
    p.add_argument("--manifest", metavar="DIR", help="probe / finetune / segment / detect: read the --dataset "
                                                     "task's train/val/test splits from this manifest directory "
                                                     "(mgca_lite/data/manifest.py) instead of SynthCXR")
    p.add_argument("--smoke", action="store_true", help="a few dozen studies and one short run (seconds), for tests")
    p.add_argument("--n", type=int, help="number of test studies (grounding default 500, prototypes 1000)")
    p.add_argument("--json", metavar="OUT", help="also write the result to OUT as JSON")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after the flags: argparse alone only takes them
    # before, so stray key=value words are collected here.
    args, extra = parser.parse_known_args(argv)
    stray = [w for w in extra if w.startswith("-") or "=" not in w or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    try:
        return args.func(args) or 0
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        # Bad input (a path, a config value, a manifest): one clear line, not a traceback.
        # MGCA_DEBUG=1 shows the traceback.
        if os.environ.get("MGCA_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

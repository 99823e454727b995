"""`python -m mgca_lite eval TASK --checkpoint CKPT`: one entry point for the downstream evaluations.

grounding and prototypes are scored here; probe forwards to the `probe` subcommand (the MGCA /
random init / raw pixels comparison of `evaluation.compare`); finetune, segment, detect, zeroshot
and retrieval each live in their own module (`TASK_MODULES`), whose `cli_result(args)` returns
(result dict, printed table).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

EVAL_TASKS = ("probe", "finetune", "segment", "detect", "zeroshot", "retrieval", "grounding", "prototypes")
SMOKE_STUDIES = 64  # --smoke: enough studies for every code path, scored in seconds


# The tasks with a module of their own: each has `cli_result(args) -> (result, table)`.
TASK_MODULES = {"finetune": "finetune", "segment": "segmentation", "detect": "detection",
                "zeroshot": "zeroshot", "retrieval": "retrieval"}


def eval_main(args) -> int:
    """Run `args.task`, print its table, and write its result to `args.json` when given."""
    if args.task == "probe":
        return _probe(args)
    result, table = evaluate_task(args)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def evaluate_task(args) -> tuple[dict, str]:
    """(result, printed table) of one task other than probe, with the CLI's flags in `args`
    (an argparse Namespace: checkpoint, config, fractions, seeds, dataset, synth_seed, manifest,
    smoke, n, progress); the flags and the checkpoint are checked before any work starts."""
    _check_manifest_flags(args)
    if args.checkpoint != "random" and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"{args.checkpoint}: no checkpoint here")
    if args.task in TASK_MODULES:
        module = importlib.import_module(f"mgca_lite.evaluation.{TASK_MODULES[args.task]}")
        return module.cli_result(args)
    if args.task in ("grounding", "prototypes"):
        return _grounding(args) if args.task == "grounding" else _prototypes(args)
    raise ValueError(f"eval {args.task}: unknown task (one of {', '.join(EVAL_TASKS)})")


def _check_manifest_flags(args) -> None:
    """--manifest applies to MANIFEST_TASKS only, and not together with --synth-seed."""
    from mgca_lite.evaluation.downstream import MANIFEST_TASKS

    if args.manifest and args.task not in MANIFEST_TASKS:
        raise ValueError(f"eval {args.task}: --manifest applies to {', '.join(MANIFEST_TASKS)} only")
    if args.manifest and args.synth_seed is not None:
        raise ValueError(f"eval {args.task}: --manifest {args.manifest} and --synth-seed {args.synth_seed}: "
                         "a manifest's images are not rendered, so give one or the other")


def _study_config(cfg, args):
    """An evaluation config (GroundingConfig / PrototypeEvalConfig) with the CLI's study count
    (--n, else --smoke's, else the default) and --synth-seed applied."""
    cfg.n_studies = args.n or (SMOKE_STUDIES if args.smoke else cfg.n_studies)
    if args.synth_seed is not None:
        cfg.synth_seed = args.synth_seed
    return cfg


def _grounding(args) -> tuple[dict, str]:
    from mgca_lite.evaluation.grounding import GroundingConfig, evaluate_grounding

    cfg = _study_config(GroundingConfig(), args)
    if args.smoke:
        cfg.n_prior_studies = 4 * cfg.n_studies  # seconds, like the rest of --smoke
    result = evaluate_grounding(args.checkpoint, cfg, args.config)
    return result, format_grounding(result)


def _prototypes(args) -> tuple[dict, str]:
    from mgca_lite.evaluation.prototypes import PrototypeEvalConfig, evaluate_prototypes

    result = evaluate_prototypes(args.checkpoint, _study_config(PrototypeEvalConfig(), args), args.config)
    return result, format_prototypes(result)


def _probe(args) -> int:
    """The `probe` subcommand with eval's flags: fractions in percent (1,10,100 -> 0.01,0.1,1)."""
    from mgca_lite.cli import main

    if args.n:
        raise ValueError("eval probe: --n does not apply (the probe uses its task's fixed splits; --smoke shrinks them)")
    fractions = ",".join(str(float(f) / 100) for f in args.fractions.split(","))
    argv = ["probe", args.checkpoint, "--task", args.dataset or "chexpert5", "--fractions", fractions, "--seeds", str(args.seeds)]
    if args.synth_seed is not None:
        argv += ["--synth-seed", str(args.synth_seed)]
    if args.manifest:
        argv += ["--manifest", args.manifest]
    if args.json:
        argv += ["--json", args.json]
    if args.checkpoint == "random":
        argv += ["--config", args.config]
    if args.smoke or not args.progress:
        argv += ["--no-progress"]
    if args.smoke:
        from mgca_lite.evaluation.downstream import SMOKE_SIZES
        argv += [f"{split}_size={n}" for split, n in SMOKE_SIZES.items()]
    return main(argv)


def _ci(block: dict) -> str:
    return f"[{block['ci'][0]:.3f}, {block['ci'][1]:.3f}]"


def format_grounding(result: dict) -> str:
    """A plain-text table of an `evaluate_grounding` result: metric, value, 95 % CI, chance, and the
    shuffled-mask control; then one row per finding."""
    metrics = (("pointing game", "pointing_game"), ("CNR", "cnr"), ("mIoU", "miou"))
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(result.get("skipped", {}).items())) or "none"
    grid, film = result["grid"], result["film"]
    lines = [f"grounding of {result['checkpoint']}: {result['n_phrases']} finding phrases from "
             f"{result['n_studies']} studies (synth seed {result['synth_seed']}, {grid[0]}x{grid[1]} grid, "
             f"{film[0]}x{film[1]} film); skipped: {skipped}",
             f"{'metric':<15}{'value':>7}  {'95% CI':<17}{'chance':>7}  {'95% CI':<17}{'control':>8}",
             "-" * 73]
    control = result["control"]
    for label, key in metrics:
        b, c = result[key], control[key]
        lines.append(f"{label:<15}{b['value']:>7.3f}  {_ci(b):<17}{b['chance']:>7.3f}  "
                     f"{'[{:.3f}, {:.3f}]'.format(*b['chance_ci']):<17}{c['value']:>8.3f}")
    lines.append("control: the same maps scored against another study's mask of the same finding "
                 f"({control['n_phrases']} phrases)")
    if "prior" in result:  # results written before the location prior existed lack it
        prior = result["prior"]
        lines.append(f"location prior (where {result['n_prior_studies']} training masks of each finding lie; the "
                     "same map for every film): " + ", ".join(f"{label} {prior[key]['value']:.3f}" for label, key in metrics))
    lines += ["",
              f"{'finding':<18}{'n':>5}" + "".join(f"{label + ' (chance)':>24}" for label, _ in metrics)]
    for finding, block in result["per_finding"].items():
        cells = "".join(f"{block[k]['value']:>16.3f} ({block[k]['chance']:.3f})" for _, k in metrics)
        lines.append(f"{finding:<18}{block['n_phrases']:>5}{cells}")
    if "peaks" in result:  # results written before peak_cells existed lack it
        p = result["peaks"]
        lines += ["", f"peaks on the grid's border {p['on_border']:.2f} (border cells {p['border_cells']:.2f}; if every "
                  f"map peaked on its mask {p['on_border_if_on_mask']:.2f}); most frequent peak cell "
                  f"{tuple(p['top_cell'])}: {p['top_cell_share']:.2f} of peaks; peak entropy "
                  f"{p['entropy_bits']:.2f} of {p['max_entropy_bits']:.2f} bits"]
    return "\n".join(lines)


def format_prototypes(result: dict, top: int = 10) -> str:
    """A plain-text summary of an `evaluate_prototypes` result: usage, purity and NMI beside their
    shuffled baselines, and the `top` largest prototypes with their finding shares."""
    u, k = result["usage"], result["n_prototypes"]
    lines = [f"prototypes of {result['checkpoint']}: {result['n_studies']} studies "
             f"(synth seed {result['synth_seed']}), K = {k}, {result['n_finding_sets']} distinct finding sets",
             f"usage: {u['used']} of {k} used, {u['dead']} dead (uniform assignment would leave "
             f"{u['dead_if_uniform']:.1f}); entropy {u['entropy']:.3f} nats = {u['entropy_normalized']:.3f} of log K",
             f"{'metric':<10}{'value':>8}{'shuffled':>10}{'excess':>8}", "-" * 36,
             f"{'purity':<10}{result['purity']['value']:>8.3f}{result['purity']['shuffled']:>10.3f}"
             f"{result['purity']['excess']:>8.3f}",
             f"{'NMI':<10}{result['nmi']['value']:>8.3f}{result['nmi']['shuffled']:>10.3f}", ""]
    findings = list(result["base_rate"])
    lines.append(f"{'prototype':<10}{'size':>6}" + "".join(f"{f:>18}" for f in findings))
    lines.append(f"{'all':<10}{result['n_studies']:>6}" + "".join(f"{result['base_rate'][f]:>18.2f}" for f in findings))
    for row in result["table"][:top]:
        lines.append(f"{row['prototype']:<10}{row['size']:>6}" + "".join(f"{row['share'][f]:>18.2f}" for f in findings))
    return "\n".join(lines)

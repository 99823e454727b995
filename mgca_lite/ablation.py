"""`python -m mgca_lite ablation --config C --seeds 3 [--smoke] --out results/`: the paper's Table 4
with pretraining seeds, evaluated on every downstream task.

Variants (the paper's rows): ITA alone (ConVIRT-like), ITA+CTA, ITA+CPA and ITA+CTA+CPA (MGCA),
each pretrained with `--seeds` seeds (train.seed = 0, 1, ...), plus the same architecture at random
init as a baseline. Every method x seed is evaluated on every task of `EVALUATIONS`; each result
is kept in `OUT/evals/METHOD_sSEED/SECTION_DATASET.json` beside the config it was made with
(`config.json`), and each run in `OUT/runs/`, so a killed ablation continues where it stopped, and a
kept result made with another config is refused, not mixed in. Each result of a pretrained run also
records `checkpoint_fingerprint` (`model_fingerprint` of the best.pt it was made from): when a run has
to be pretrained again (its checkpoint is gone and a result is missing), retraining need not give the
same weights, so every kept result of that run made from other weights, or of unknown weights, is
redone too, whatever `--tasks` says. One run's numbers therefore always come from one model.
After every run, the results over seeds go to `OUT/synth_C.json` (each section over the seeds that
every method has finished for it, `meta.seeds_per_section`) and `OUT/README.md`:

    {SECTION: {DATASET: {METHOD: {"1"|"10"|"100" (per-fraction tasks) or a metric name:
                                  {"mean", "std", "seeds": [one value per pretraining seed]}}}}}

SECTION is linear_probe, finetune, segmentation, detection, zero_shot, retrieval, grounding,
prototypes; METHOD is random, ita, ita_cta, ita_cpa, mgca. Each evaluation uses label subset 0 of
each fraction, so the spread is the spread over pretraining seeds.

`--methods ita,mgca` runs only those methods: two invocations over disjoint methods can share one
--out (one per core), since runs and results are kept per method x seed and each report is made from
every result on disk. The report's command is the whole ablation's, without --methods.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import yaml

VARIANTS = {"ita": ["loss.use_cta=false", "loss.use_cpa=false"], "ita_cta": ["loss.use_cpa=false"],
            "ita_cpa": ["loss.use_cta=false"], "mgca": []}
METHODS = ("random", *VARIANTS)
# (JSON section, eval task, datasets, the numbers kept from a result that has no per-fraction table)
EVALUATIONS = (
    ("linear_probe", "probe", ("chexpert5", "rsna", "covidx"), None),
    ("finetune", "finetune", ("chexpert5",), None),
    ("segmentation", "segment", ("siim", "rsna"), None),
    ("detection", "detect", ("rsna", "object_cxr"), None),
    ("zero_shot", "zeroshot", ("chexpert5x200",), {"accuracy": ("accuracy", "value"), "macro_f1": ("macro_f1", "value")}),
    ("retrieval", "retrieval", ("pretrain_test",), {f"{d}_R@{k}": (d, f"R@{k}") for d in ("image_to_report", "report_to_image")
                                                    for k in (1, 5, 10)}),
    ("grounding", "grounding", ("pretrain_test",), {m: (m, "value") for m in ("pointing_game", "cnr", "miou")}),
    ("prototypes", "prototypes", ("pretrain_test",), {"purity": ("purity", "value"), "nmi": ("nmi", "value")}),
)
# --smoke: every code path in seconds (4 steps on 128 pairs; the evaluations' own smoke sizes)
SMOKE_PRETRAIN = ["train.max_steps=4", "data.train_size=128", "data.val_size=32", "train.batch_size=16",
                  "train.tensorboard=false"]


def pretrain_config(config: str, method: str, seed: int, smoke: bool):
    """The PretrainConfig of one ablation run: `config` with the variant's switches and train.seed."""
    from mgca_lite.training.config import load_config

    return load_config(config, [*VARIANTS.get(method, []), f"train.seed={seed}", *(SMOKE_PRETRAIN if smoke else [])])


def method_checkpoint(out: Path, config: str, method: str, seed: int, cfg, progress: bool) -> tuple[str, str]:
    """(checkpoint, config) to evaluate: a pretrained run's best.pt (trained or resumed here, with `cfg`
    from `pretrain_config`), or for "random" the word "random" with a config file holding this seed
    (so each seed is another draw)."""
    from mgca_lite.training.load_or_train import pretrain_or_resume

    run_dir = out / "runs" / f"{method}_s{seed}"
    if method == "random":
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "config.yaml"
        path.write_text(yaml.safe_dump(json.loads(cfg.to_json())))  # via JSON: tuples become lists
        return "random", str(path)
    pretrain_or_resume(cfg, run_dir, progress=progress)
    return str(run_dir / "best.pt"), config


def evaluate(section: str, task: str, dataset: str, checkpoint: str, config: str, smoke: bool,
             progress: bool) -> dict:
    """One evaluation's result dict (the shape `python -m mgca_lite eval TASK --json` writes), made from
    the flags that command would be given, so its defaults apply here too."""
    from mgca_lite.cli import build_parser
    from mgca_lite.evaluation.downstream import SMOKE_SIZES
    from mgca_lite.evaluation.eval_cli import evaluate_task
    from mgca_lite.evaluation.probe import probe_checkpoint

    if task == "probe":
        return probe_checkpoint(checkpoint, config, dataset, seeds=1, sizes=SMOKE_SIZES if smoke else None,
                                progress=progress)
    dataset_flag = [] if dataset in ("chexpert5x200", "pretrain_test") else ["--dataset", dataset]
    args = build_parser().parse_args(["eval", task, "--checkpoint", checkpoint, "--config", config, "--seeds", "1",
                                      *dataset_flag, *(["--smoke"] if smoke else []), *([] if progress else ["--no-progress"])])
    return evaluate_task(args)[0]


def summarize(per_seed: list[dict], keep: dict | None) -> dict:
    """Mean / std / seeds over pretraining seeds of one method's results on one task."""
    if keep is None:  # per-fraction tasks: the mean over label subsets of each seed
        values = {f: [r["results"][f]["mean"] for r in per_seed] for f in per_seed[0]["results"]}
    else:
        values = {name: [r[a][b] for r in per_seed] for name, (a, b) in keep.items()}
    return {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "seeds": [float(x) for x in v]}
            for k, v in values.items()}


def ablation_main(args) -> int:
    """Pretrain every variant x seed, evaluate every method x seed on every task; after each run,
    write the JSON and README.md over the results kept so far (`write_report`)."""
    from tqdm.auto import tqdm

    from mgca_lite.training.checkpoint import model_fingerprint

    start = time.perf_counter()
    methods = chosen("--methods", args.methods, METHODS)
    tasks = chosen("--tasks", args.tasks, tuple(task for _, task, _, _ in EVALUATIONS))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = [e for e in EVALUATIONS if e[1] in tasks]
    progress = not args.no_progress
    # seed-major: a long ablation that is stopped early still has every method at the first seeds
    jobs = [(m, s) for s in range(args.seeds) for m in methods]
    configs = {job: pretrain_config(args.config, *job, args.smoke) for job in jobs}
    for (method, seed), cfg in configs.items():  # every kept result checked before the first run starts
        require_kept_evals_match(eval_dir(out, method, seed), cfg)
    for method, seed in tqdm(jobs, desc="ablation runs", disable=not progress):
        cfg = configs[(method, seed)]
        todo = [(section, task, dataset) for section, task, datasets, _ in sections for dataset in datasets
                if not eval_path(out, method, seed, section, dataset).is_file()]  # the missing results asked for
        made_from = {} if method == "random" else kept_fingerprints(out, method, seed)  # random: its seed names its weights
        mixed = len(set(made_from.values())) > 1 or None in made_from.values()
        if todo or mixed:  # a run whose results are all kept and come from one model (e.g. committed) is not pretrained again
            checkpoint, config = method_checkpoint(out, args.config, method, seed, cfg, progress)
            fingerprint = None if method == "random" else model_fingerprint(checkpoint)
            todo += [job for job, made in made_from.items() if made != fingerprint]
            eval_dir(out, method, seed).mkdir(parents=True, exist_ok=True)
            (eval_dir(out, method, seed) / "config.json").write_text(cfg.to_json())
        for section, task, dataset in todo:
            result = evaluate(section, task, dataset, checkpoint, config, args.smoke, progress)
            if fingerprint is not None:
                result["checkpoint_fingerprint"] = fingerprint
            eval_path(out, method, seed, section, dataset).write_text(json.dumps(result, indent=2))
        write_report(out, args, wall=time.perf_counter() - start)  # after every run: a stopped ablation loses no result
    return 0


def chosen(flag: str, value: str | None, known: tuple[str, ...]) -> tuple[str, ...]:
    """The names of a comma-separated flag (`--methods ita,mgca`), in `known`'s order; all of `known`
    when the flag is not given. Raises ValueError naming the flag and any unknown name, before any work."""
    if not value:
        return known
    asked = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in asked if name not in known]
    if unknown or not asked:
        raise ValueError(f"{flag} {value!r}: " + (f"unknown {', '.join(unknown)}" if unknown else "names nothing")
                         + f"; choose from {','.join(known)}")
    return tuple(name for name in known if name in asked)


def kept_fingerprints(out: Path, method: str, seed: int) -> dict:
    """{(section, task, dataset): checkpoint_fingerprint or None (unknown)} of every result kept for one
    method x seed, over all of EVALUATIONS (a report must not mix two models' results)."""
    return {(section, task, dataset): json.loads(path.read_text()).get("checkpoint_fingerprint")
            for section, task, datasets, _ in EVALUATIONS for dataset in datasets
            if (path := eval_path(out, method, seed, section, dataset)).is_file()}


def require_kept_evals_match(folder: Path, cfg) -> None:
    """Raise ValueError naming the file if `folder` (OUT/evals/METHOD_sSEED) holds results made with a
    config other than `cfg`, or results with no config.json beside them (which config made them is unknown)."""
    from mgca_lite.training.config import config_from_json, require_same_config

    stored = folder / "config.json"
    if stored.is_file():
        require_same_config(config_from_json(stored.read_text()), cfg, stored)
    elif folder.is_dir() and any(folder.glob("*.json")):
        raise ValueError(f"{folder}: holds evaluations but no config.json, so the config that made them is "
                         "unknown. Delete the folder to evaluate this config, or choose another --out.")


def eval_dir(out: Path, method: str, seed: int) -> Path:
    """Where one method x seed's results and their config.json are kept: OUT/evals/METHOD_sSEED."""
    return out / "evals" / f"{method}_s{seed}"


def eval_path(out: Path, method: str, seed: int, section: str, dataset: str) -> Path:
    """Where one method x seed's result on one task is kept: OUT/evals/METHOD_sSEED/SECTION_DATASET.json."""
    return eval_dir(out, method, seed) / f"{section}_{dataset}.json"


def seeds_kept(out: Path, section: str, datasets: tuple, seeds: int) -> int:
    """k: how many seeds 0 .. k-1 (at most `seeds`) have `section`'s results kept for every method and dataset."""
    k = 0
    while k < seeds and all(eval_path(out, m, k, section, d).is_file() for m in METHODS for d in datasets):
        k += 1
    return k


def write_report(out: Path, args, wall: float) -> Path | None:
    """OUT/synth_C.json and OUT/README.md over the results kept so far; -> the JSON path (None: nothing yet).

    Each section covers its own seeds 0 .. k-1, those that every method has finished for it
    (`seeds_kept`; meta.seeds_per_section). While an ablation runs, or when an earlier invocation ran
    other `--tasks`, k differs between sections; a section that no seed has finished is left out."""
    from mgca_lite.ablation_report import write_readme

    seeds = {section: seeds_kept(out, section, datasets, args.seeds) for section, _, datasets, _ in EVALUATIONS}
    results = {section: {dataset: {method: summarize([json.loads(eval_path(out, method, s, section, dataset).read_text())
                                                      for s in range(seeds[section])], keep)
                                   for method in METHODS}
                         for dataset in datasets}
               for section, _, datasets, keep in EVALUATIONS if seeds[section]}
    if not results:
        return None
    report = {**results, "meta": {"config": args.config, "seeds": min(seeds[s] for s in results),
                                  "seeds_per_section": {s: seeds[s] for s in results}, "seeds_requested": args.seeds,
                                  "smoke": args.smoke, "wall_s_last_invocation": round(wall), "command": _command(args)}}
    json_path = out / f"synth_{Path(args.config).stem}.json"
    json_path.write_text(json.dumps(report, indent=2))
    write_readme(out / "README.md", report)
    print(f"wrote {json_path} and {out / 'README.md'}: seeds per section {report['meta']['seeds_per_section']} "
          f"of {args.seeds} ({wall:.0f} s)")
    return json_path


def _command(args) -> str:
    tasks = f" --tasks {args.tasks}" if args.tasks else ""
    smoke = " --smoke" if args.smoke else ""
    return f"python -m mgca_lite ablation --config {args.config} --seeds {args.seeds}{tasks}{smoke} --out {args.out}"

#!/usr/bin/env bash
# One row of docs/experiments.md: pretrain a config with overrides, then measure it on SynthCXR
# studies rendered from an unseen seed (probe, grounding, prototypes). Resumes an interrupted run.
#   bash tools/run_experiment.sh NAME CONFIG [key=value ...]
# Writes runs/exp/NAME/{best.pt,metrics.csv,probe.json,grounding.json,prototypes.json,row.json} and keeps
# the measurements (row.json, config.json, metrics.csv) in results/experiments/NAME, which is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; config=$2; shift 2
dir=runs/exp/$name
py=.venv/bin/python
seed=${SYNTH_SEED:-1234}
export OMP_WAIT_POLICY=PASSIVE  # other processes on the same 2 cores: sleep, don't spin
resume=(); [ -f "$dir/last.pt" ] && resume=(--resume)
start=$(date +%s)
$py -m mgca_lite pretrain --config "$config" --output-dir "$dir" --no-progress "${resume[@]}" "$@"
train_s=$(( $(date +%s) - start ))
[ -f "$dir/probe.json" ] || $py -m mgca_lite probe "$dir/best.pt" --synth-seed "$seed" --json "$dir/probe.json" --no-progress
[ -f "$dir/grounding.json" ] || $py -m mgca_lite eval grounding --checkpoint "$dir/best.pt" --synth-seed "$seed" --json "$dir/grounding.json"
[ -f "$dir/prototypes.json" ] || $py -m mgca_lite eval prototypes --checkpoint "$dir/best.pt" --synth-seed "$seed" --json "$dir/prototypes.json"
[ -f "$dir/cta_mismatch.json" ] || $py -m mgca_lite.evaluation.cta_mismatch "$dir/best.pt" --synth-seed "$seed" --json "$dir/cta_mismatch.json"
$py - "$dir" "$config" "$train_s" "$*" <<'PY'
import json, sys
from pathlib import Path
d, config, train_s, overrides = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
row = {"name": d.name, "config": config, "overrides": overrides, "wall_s_this_invocation": train_s}
for part in ("probe", "grounding", "prototypes", "cta_mismatch"):
    row[part] = json.loads((d / f"{part}.json").read_text())
(d / "row.json").write_text(json.dumps(row, indent=2) + "\n")
print(json.dumps({k: row[k] for k in ("name", "overrides", "wall_s_this_invocation")}))
PY
mkdir -p "results/experiments/$name"
cp "$dir/row.json" "$dir/config.json" "$dir/metrics.csv" "results/experiments/$name/"

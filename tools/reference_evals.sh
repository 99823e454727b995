#!/usr/bin/env bash
# The committed downstream results of the course reference (checkpoints/reference.pt) and of the same
# architecture at random init, on SynthCXR studies from the unseen seed 1234 (the eval default):
#   bash tools/reference_evals.sh [TASK ...]     # default: every task; a result already there is kept
# Writes results/reference/TASK_DATASET_{reference,random}.json, which notebooks 07-10 read.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE  # other processes on the same cores: sleep, don't spin
out=results/reference
mkdir -p "$out"
declare -A DATASETS=([probe]="chexpert5 rsna covidx" [finetune]="chexpert5" [segment]="siim rsna"
                     [detect]="rsna object_cxr" [zeroshot]="chexpert5x200" [retrieval]="pretrain_test"
                     [grounding]="pretrain_test" [prototypes]="pretrain_test")
# Detection trains a RetinaNet head per label subset (~6-8 min each on 2 shared cores): one subset per
# fraction here, so the spread over label subsets is not measured for it.
declare -A EXTRA=([detect]="--seeds 1")
tasks=("$@"); [ ${#tasks[@]} -gt 0 ] || tasks=(probe zeroshot retrieval grounding prototypes segment detect finetune)
for task in "${tasks[@]}"; do
  for dataset in ${DATASETS[$task]}; do
    flag=(--dataset "$dataset"); [[ $dataset == chexpert5x200 || $dataset == pretrain_test ]] && flag=()
    methods=(reference random); [ "$task" = probe ] && methods=(reference)  # probe: MGCA, random init and pixels in one file
    for method in "${methods[@]}"; do
      json=$out/${task}_${dataset}_${method}.json
      [ -f "$json" ] && continue
      if [ $method = reference ]; then ckpt=(--checkpoint checkpoints/reference.pt); else ckpt=(--checkpoint random --config synth_reference); fi
      extra=(${EXTRA[$task]:-})
      echo "+ python -m mgca_lite eval $task ${ckpt[*]} ${flag[*]} ${extra[*]} --synth-seed 1234 --json $json"
      .venv/bin/python -m mgca_lite eval "$task" "${ckpt[@]}" "${flag[@]}" "${extra[@]}" --synth-seed 1234 --json "$json" > "$json.log" 2>&1
      rm -f "$json.log"
    done
  done
done

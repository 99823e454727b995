#!/usr/bin/env bash
# The GPU checks of the pretraining issue, as one short script (run on a CUDA machine from the repo
# root; writes logs to $OUT or ./build/gpu_check). Not part of CI.
#   - images/s of the full MGCA step, bf16 + channels_last, for ResNet-50 and ViT-B/16 at 224 px,
#     batch 72, with a 6-layer 768-wide BERT, against the same code in the reference's settings
#     (float32, anomaly detection, per-sample quantile loops);
#   - the torchrun entry point training on CUDA; the CUDA unit tests (bf16, channels_last).
set -uo pipefail
OUT=${OUT:-build/gpu_check}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MGCA_LITE_CACHE=${MGCA_LITE_CACHE:-/tmp/mgca_cache}
nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/device.txt"
BERT6="model.text.kind=tiny model.text.num_layers=6 model.text.hidden_size=768 model.text.num_heads=12 model.text.intermediate_size=3072"
for cfg in mimic_resnet50 mimic_vit_b16; do
  python3 -m mgca_lite bench pretrain --config $cfg --steps 10 --reference $BERT6 2>&1 | grep -v Warning | tee "$OUT/bench_$cfg.txt"
done
torchrun --nproc_per_node 1 -m mgca_lite pretrain --config synth_tiny --max-steps 60 --no-progress \
  --output-dir /tmp/gpu_torchrun train.device=cuda 2>&1 | tail -3 | tee "$OUT/torchrun.txt"
tail -2 /tmp/gpu_torchrun/metrics.csv | tee -a "$OUT/torchrun.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_models_cuda.py tests/test_loss_cuda.py 2>&1 | tail -2 | tee "$OUT/cuda_tests.txt"

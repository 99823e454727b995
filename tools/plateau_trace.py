"""What is ITA's plateau at log B? Trains `synth_tiny` (with overrides) and, every 20 steps, measures
on a fixed batch of 256 validation pairs: the spread of the image encoder's global feature and of the
text encoder's report feature (between-sample variance / mean squared norm: 0 = every study the same
vector), ITA in train mode (as logged in training) and in eval mode (as validated), and the mean
image-image cosine of the eval-mode embeddings. One line per measurement, on stdout:

    python tools/plateau_trace.py NAME STEPS [key=value ...]
    python tools/plateau_trace.py ita_cpa_s2 400 loss.use_cta=false train.seed=2

The measurements run on a copy of the model, so the training run itself is untouched.
results/ablation/plateau_trace.log holds the runs that notebook 11 plots.
"""
import copy
import sys
import tempfile

import torch

from mgca_lite.data.collate import PairCollator
from mgca_lite.losses.ita import ita_loss
from mgca_lite.training.config import load_config
from mgca_lite.training.trainer import Trainer


name, steps, overrides = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cfg = load_config("synth_tiny", [*overrides, "train.tensorboard=false", "train.log_every=1000", "train.save_every=100000"])
tr = Trainer(cfg, tempfile.mkdtemp(), progress=False)
val_ds = tr.val_loader.dataset
batch = PairCollator(tr.tokenizer, cfg.model.text.max_length)([val_ds[i] for i in range(256)])
model = tr.module.model


def spread(x):
    # between-sample variance relative to the mean squared norm: 0 = every sample the same vector
    return (x.var(dim=0, unbiased=False).sum() / x.pow(2).sum(dim=1).mean()).item()


def measure():
    twin = copy.deepcopy(model)  # train-mode BatchNorm would update the real model's running stats
    with torch.no_grad():
        twin.train()
        img = twin.image_encoder(batch["images"]).global_feat
        txt = twin.text_encoder(batch["input_ids"], batch["attention_mask"]).report_feat
        ita_train = sum(ita_loss(o.img_emb, o.rep_emb, cfg.loss.ita_temperature).item() for o in
                        (twin(batch["images"][i:i + 64], batch["input_ids"][i:i + 64], batch["attention_mask"][i:i + 64])
                         for i in range(0, 256, 64))) / 4
        twin.eval()
        o = twin(batch["images"][:64], batch["input_ids"][:64], batch["attention_mask"][:64])
        row = (tr.step, spread(img), spread(txt), ita_train, ita_loss(o.img_emb, o.rep_emb, cfg.loss.ita_temperature).item(),
               (o.img_emb @ o.img_emb.T).mean().item())
    print(name, "step %4d  spread image %.4f  text %.4f  ITA train-mode %.3f  eval-mode %.3f  eval img-img cos %.3f" % row, flush=True)


orig = tr._optimizer_step


def step_and_measure():  # measure before each optimizer step, every 20 steps
    if tr.step % 20 == 0:
        measure()
    orig()


tr._optimizer_step = step_and_measure
tr.fit(stop_after_steps=steps)
measure()

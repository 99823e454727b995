"""Do a checkpoint's patch embeddings know where the findings are? A diagnostic for docs/experiments.md.

    .venv/bin/python tools/cell_probe.py CKPT [--train 2000] [--test 500] [--synth-seed 1234]

CTA's phrase maps may miss the findings for two reasons: the patch embeddings carry no location
(the encoder's fault), or they do and the word -> patch attention does not use it (the objective's).
This separates the two. Per finding, a logistic regression (scikit-learn) is trained on single
cells: input = one cell's patch embedding (the model's unit-norm 128-d `patch_emb`, frozen), target
= whether that finding's mask touches the cell (0 for every cell of a study without the finding).
Its predicted probabilities over a test study's grid form a supervised "phrase map", scored exactly
as `eval grounding` scores CTA's: pointing game per cell (chance = share of cells touching the mask)
and CNR, with the shuffled-mask control (another test study's mask of the same finding). Beside it,
the **location prior**: one fixed map per finding, the share of the training masks touching each cell,
the same for every film, so whatever it scores comes from where the finding usually is. Studies
are rendered from an unseen SynthCXR seed: `--train` from the pretrain task's train split, `--test`
from its test split (the grounding evaluation's studies).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from mgca_lite.data.synth import make_sample
from mgca_lite.data.tasks import task_split
from mgca_lite.data.transforms import normalize
from mgca_lite.evaluation.grounding import (cell_coverage, cnr, location_priors, pointing_game, positive_masks,
                                           shuffled_partners)
from mgca_lite.evaluation.loading import load_model


@torch.no_grad()
def cells_and_masks(model, indices, seed: int, size: int):
    """Patch embeddings (N, P, D) and each study's {finding: mask (H, W) bool} of positive findings."""
    embs, masks = [], []
    for start in range(0, len(indices), 64):
        samples = [make_sample(int(i), seed, size) for i in indices[start:start + 64]]
        img = model.image_encoder(torch.stack([normalize(s.image) for s in samples]))
        embs.append(F.normalize(model.image_local_head(img.local_feat), dim=-1))
        masks += [{f: torch.from_numpy(m) for f, m in positive_masks(s).items()} for s in samples]
    return torch.cat(embs), masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--synth-seed", type=int, default=1234)
    args = parser.parse_args()
    model, _, cfg = load_model(args.checkpoint)
    size = cfg.data.crop_size or cfg.data.image_size
    train_x, train_m = cells_and_masks(model, task_split("pretrain", "train", sizes={"train": args.train}),
                                       args.synth_seed, size)
    test_x, test_m = cells_and_masks(model, task_split("pretrain", "test", sizes={"test": args.test}),
                                     args.synth_seed, size)
    n, p, d = train_x.shape
    g = int(round(p ** 0.5))
    findings = sorted({f for m in test_m for f in m})
    prior_of = location_priors(train_m, (g, g))                                      # finding -> (g, g)
    maps, priors, masks, names, studies = [], [], [], [], []
    print(f"{args.checkpoint}: {g}x{g} grid, {n} training studies, {len(test_m)} test studies")
    for finding in findings:
        target = torch.zeros(n, p)
        for k, m in enumerate(train_m):
            if finding in m:
                target[k] = (cell_coverage(m[finding][None], (g, g)) > 0).flatten().float()
        if target.sum() == 0:
            continue
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(train_x.reshape(-1, d).numpy(), target.flatten().numpy())
        for k, m in enumerate(test_m):
            if finding in m:
                prob = clf.predict_proba(test_x[k].numpy())[:, 1]                      # (P,)
                maps.append(torch.from_numpy(prob).float().view(g, g))
                priors.append(prior_of[finding])
                masks.append(m[finding])
                names.append(finding)
                studies.append(k)
    maps, priors, masks = torch.stack(maps), torch.stack(priors), torch.stack(masks)
    partner = torch.from_numpy(shuffled_partners(names, studies, seed=0))
    other = masks[partner.clamp_min(0)]                      # another study's mask (own where none: -1)
    _, chance = pointing_game(maps, masks)
    print(f"{len(names)} positive findings (one per study and finding); pointing game (chance {chance.mean():.3f}) and CNR, own mask / shuffled-mask control")
    for label, m in (("supervised cell probe", maps), ("location prior", priors)):
        hits, control = pointing_game(m, masks)[0], pointing_game(m, other)[0]
        own_cnr, other_cnr = cnr(m, masks), cnr(m, other)
        print(f"{label:22s} pointing game {hits.mean():.3f} / {control[partner >= 0].mean():.3f};"
              f"  CNR {own_cnr.mean():.2f} / {other_cnr[partner >= 0].mean():.2f}")
        for finding in findings:
            sel = torch.tensor([f == finding for f in names])
            print(f"  {finding:18s}{int(sel.sum()):>5}  pointing game {hits[sel].mean():.2f} (chance {chance[sel].mean():.2f})"
                  f"  CNR {own_cnr[sel].mean():.2f}")


if __name__ == "__main__":
    main()

"""Does CTA use the image? Its loss on matched image-report pairs against mismatched ones.

CTA contrasts a word's attended image context with the other words' contexts *of the same
report* (spec §2). If the loss on a report paired with ANOTHER study's film is about as low as on
its own film, the word->patch attention is not reading the image's content: any set of diverse
patch embeddings satisfies the diagonal target. The same is measured for the cross-sample local
contrast (`losses/local_contrast.py`) when the checkpoint was trained with it.

    python -m mgca_lite.evaluation.cta_mismatch runs/demo/pretrain/best.pt --json OUT
"""
from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import DataLoader

from mgca_lite.data.collate import PairCollator
from mgca_lite.data.datasets import PairedDataset
from mgca_lite.data.transforms import ImageTransform, TransformConfig
from mgca_lite.evaluation.loading import load_model, reads_clean_reports
from mgca_lite.losses.cta import cta_loss
from mgca_lite.losses.importance import token_importance


@torch.no_grad()
def cta_matched_vs_mismatched(checkpoint: str, synth_seed: int = 1234, n: int = 512,
                              batch_size: int = 64, config: str = "synth_tiny") -> dict:
    """Mean CTA loss over `n` test pairs rendered from `synth_seed`, with each report's own film
    ("matched") and with the next study's film in the batch ("mismatched": patches rolled by one).

    Returns {"matched": x, "mismatched": y, "ratio": y / x, "n": n}.
    """
    model, tokenizer, cfg = load_model(checkpoint, config)
    size = cfg.data.crop_size or cfg.data.image_size
    data = PairedDataset.synth("test", image_size=size, seed=synth_seed, n=n,
                               transform=ImageTransform(TransformConfig(resize=size)))
    collate = PairCollator(tokenizer, cfg.model.text.max_length, clean=reads_clean_reports(checkpoint, cfg))
    loss_cfg, sums, count = cfg.loss, {"matched": 0.0, "mismatched": 0.0}, 0
    for batch in DataLoader(data, batch_size=batch_size, collate_fn=collate):
        out = model(batch["images"], batch["input_ids"], batch["attention_mask"])
        weights = token_importance(out.word_weights, out.word_mask, loss_cfg.importance_low,
                                   loss_cfg.importance_high)                  # (B, T)
        patch_w = None if out.patch_weights is None else token_importance(
            out.patch_weights, None, loss_cfg.importance_low, loss_cfg.importance_high)  # (B, P) ViT
        b = out.patch_emb.shape[0]
        for key, roll in (("matched", 0), ("mismatched", 1)):
            patches = out.patch_emb.roll(roll, dims=0)                       # (B, P, D)
            pw = None if patch_w is None else patch_w.roll(roll, dims=0)
            sums[key] += b * float(cta_loss(out.word_emb, patches, out.word_mask, weights, pw,
                                            loss_cfg.cta_temperature))
        count += b
    result = {k: v / count for k, v in sums.items()}
    result.update(ratio=result["mismatched"] / result["matched"], n=count)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--synth-seed", type=int, default=1234)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    result = cta_matched_vs_mismatched(args.checkpoint, args.synth_seed, args.n)
    print(f"CTA loss: matched {result['matched']:.4f}, mismatched {result['mismatched']:.4f} "
          f"(x{result['ratio']:.2f}) over {result['n']} test pairs")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

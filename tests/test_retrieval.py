"""Retrieval over a fixed pool (mgca_lite.evaluation.retrieval): recall@k on hand-made similarity
matrices in both directions, ties of identical reports, embeddings that do not depend on the batch
they were computed in, and `eval retrieval --smoke`."""
from __future__ import annotations

import json

import pytest
import torch

from mgca_lite.data.captions import clean_report
from mgca_lite.cli import main
from mgca_lite.evaluation.retrieval import (embed_pool, recall_at_k, report_to_image_recall, retrieval_pool,
                                            retrieval_recall)
from mgca_lite.models import (ImageEncoderConfig, MGCAModelConfig, TextEncoderConfig, build_model,
                              build_wordpiece_tokenizer)


def test_recall_at_k_on_a_hand_made_matrix():
    # Query i's match is candidate i. Its rank = candidates scoring strictly higher:
    #   query 0: match best                -> rank 0
    #   query 1: one candidate above       -> rank 1
    #   query 2: three candidates above    -> rank 3
    #   query 3: a tie with candidate 0    -> rank 0 (ties count for the match)
    sim = torch.tensor([[0.9, 0.1, 0.2, 0.0],
                        [0.8, 0.5, 0.1, 0.2],
                        [0.6, 0.7, 0.3, 0.4],
                        [0.5, 0.1, 0.2, 0.5]])
    assert recall_at_k(sim, ks=(1, 2, 3, 4)) == {"R@1": 0.5, "R@2": 0.75, "R@3": 0.75, "R@4": 1.0}


def test_recall_at_k_with_more_candidates_than_queries_and_errors():
    sim = torch.tensor([[0.2, 0.9, 0.1],      # 2 queries, 3 candidates: query 0 ranks its match 2nd
                        [0.0, 0.3, 0.4]])     # query 1: 2nd as well
    assert recall_at_k(sim, ks=(1, 2)) == {"R@1": 0.0, "R@2": 1.0}
    with pytest.raises(ValueError, match="candidate per query"):
        recall_at_k(sim.T)


def test_retrieval_recall_is_image_to_report_and_ignores_scale():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(50, 16, generator=g), dim=-1)
    assert retrieval_recall(img, img) == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0}   # perfect pairs
    shuffled = img[torch.randperm(50, generator=g)]
    assert retrieval_recall(img, shuffled)["R@1"] < 0.2                            # near chance 1/50
    rep = img.flip(0)  # report i belongs to image 49 - i: image->report, not report->image
    torch.testing.assert_close(torch.tensor(retrieval_recall(img, rep)["R@1"]),
                               torch.tensor(recall_at_k(img @ rep.T)["R@1"]))


def test_pool_embeddings_do_not_depend_on_the_batch_size():
    pool = retrieval_pool(n=6, image_size=64)
    assert len(pool) == 6
    texts = [clean_report(pool[i]["report"]).text for i in range(6)]
    tokenizer = build_wordpiece_tokenizer(texts * 3, vocab_size=200)
    cfg = MGCAModelConfig(image=ImageEncoderConfig(arch="resnet_tiny", image_size=64),
                          text=TextEncoderConfig(hidden_size=32, num_heads=2, intermediate_size=64,
                                                 max_length=64), embed_dim=16, head_hidden=32)
    torch.manual_seed(0)
    model, _ = build_model(cfg, tokenizer)
    model.train()
    img4, rep4 = embed_pool(model, tokenizer, pool, max_length=64, batch_size=4)
    img6, rep6 = embed_pool(model, tokenizer, pool, max_length=64, batch_size=6)
    assert model.training                                   # the caller's mode is restored
    assert img4.shape == (6, 16) and rep4.shape == (6, 16)
    torch.testing.assert_close(img4, img6)                  # eval mode: no batch statistics
    torch.testing.assert_close(rep4, rep6, atol=1e-5, rtol=1e-4)  # padding lengths differ
    torch.testing.assert_close(img4.norm(dim=-1), torch.ones(6))


def test_both_directions_on_a_hand_made_pool():
    # Images are the unit vectors, so image i . report j = report[j, i]: image -> report ranks the
    # columns of `rep`, report -> image its rows.
    img = torch.eye(3)
    rep = torch.tensor([[0.9, 0.1, 0.0],    # report 0: image 0 best                   -> rank 0
                        [0.8, 0.5, 0.0],    # report 1: image 0 above its image 1      -> rank 1
                        [0.0, 0.0, 0.7]])   # report 2: image 2 best                   -> rank 0
    assert report_to_image_recall(img, rep, ks=(1, 2)) == pytest.approx({"R@1": 2 / 3, "R@2": 1.0})
    # image 0: report 0 (0.9) above report 1 (0.8); image 1: report 1 (0.5) best; image 2: report 2
    assert retrieval_recall(img, rep, ks=(1, 2)) == {"R@1": 1.0, "R@2": 1.0}


def test_identical_reports_tie_for_the_image_but_not_for_the_report():
    # Reports 0 and 1 are the same text (the same embedding); the images differ.
    img = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    rep = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # image -> report: each image scores both copies equally, and the tie counts for the match
    assert retrieval_recall(img, rep, ks=(1,)) == {"R@1": 1.0}
    # report -> image: both copies prefer image 0, so report 1 ranks its image 1 second
    assert report_to_image_recall(img, rep, ks=(1,)) == {"R@1": 0.5}


def test_eval_retrieval_smoke_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / "retrieval.json"
    assert main(["eval", "retrieval", "--checkpoint", "random", "--smoke", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert (data["task"], data["checkpoint"], data["synth_seed"], data["n"]) == ("retrieval", "random", 1234, 64)
    assert data["chance"] == pytest.approx({"R@1": 1 / 64, "R@5": 5 / 64, "R@10": 10 / 64})
    for direction in ("image_to_report", "report_to_image"):
        assert list(data[direction]) == ["R@1", "R@5", "R@10"]
        r = list(data[direction].values())
        assert all(0 <= v <= 1 for v in r) and r == sorted(r)
    assert 1 <= data["distinct_reports"] <= 64
    assert "report -> image" in capsys.readouterr().out

"""Grounding metrics on hand-made maps and masks (pointing game per cell, CNR, mIoU, chance, bootstrap)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgca_lite.evaluation.grounding import (
    ScoreConfig, bootstrap_ci, cell_coverage, cnr, contrast_to_noise, location_priors, miou, peak_cells,
    pointing_game, positive_masks, prior_scores, random_map_chance, synth_location_priors, score_phrases, shuffled_partners, upsample,
)

GRID, FILM = 4, 64
CELL = FILM // GRID  # 16 px per cell


def peak_map(r: int, c: int, grid: int = GRID) -> torch.Tensor:
    """(1, grid, grid): 1 at cell (r, c), 0 elsewhere."""
    m = torch.zeros(1, grid, grid)
    m[0, r, c] = 1.0
    return m


def cell_mask(r: int, c: int, inset: int = 0) -> torch.Tensor:
    """(1, FILM, FILM) bool: exactly the footprint of cell (r, c), shrunk by `inset` px per side."""
    m = torch.zeros(1, FILM, FILM, dtype=torch.bool)
    m[0, r * CELL + inset:(r + 1) * CELL - inset, c * CELL + inset:(c + 1) * CELL - inset] = True
    return m


BORDER = [(r, c) for r in range(GRID) for c in range(GRID) if r in (0, GRID - 1) or c in (0, GRID - 1)]


@pytest.mark.parametrize("r,c", BORDER)
def test_a_peak_in_every_edge_and_corner_cell_hits_the_mask_under_it(r, c):
    hits, chance = pointing_game(peak_map(r, c), cell_mask(r, c))
    assert hits.item() == 1.0 and chance.item() == pytest.approx(1 / 16)
    # ...even when the mask stays clear of the film's outermost pixels, as findings do.
    assert pointing_game(peak_map(r, c), cell_mask(r, c, inset=2))[0].item() == 1.0


def test_upsampled_argmax_is_pulled_to_the_film_edge_which_is_why_we_score_cells():
    # The old scorer: argmax of a bilinear (align_corners=False) upsample. Everything left of / above
    # the first cell centre is clamped to that cell's value, so a top-left peak is a flat plateau
    # over rows/cols 0..7 and argmax returns its first pixel: (0, 0), the film's corner.
    up = upsample(peak_map(0, 0), (FILM, FILM))[0]
    row, col = divmod(int(up.argmax()), FILM)
    assert (row, col) == (0, 0)
    # For any top-row cell the peak lands on row 0, where a finding's mask never reaches.
    for c in range(GRID):
        assert int(upsample(peak_map(0, c), (FILM, FILM))[0].argmax()) // FILM == 0
    inset = cell_mask(0, 0, inset=2)[0]
    assert not inset[row, col]                                       # old scorer: a miss
    assert pointing_game(peak_map(0, 0), inset[None])[0].item() == 1.0  # cell scorer: a hit


def test_ties_hit_when_any_tied_maximum_touches_the_mask():
    m = torch.zeros(1, GRID, GRID)
    m[0, 0, 0] = m[0, 3, 3] = 1.0
    assert pointing_game(m, cell_mask(3, 3))[0].item() == 1.0
    assert pointing_game(m, cell_mask(1, 2))[0].item() == 0.0
    assert pointing_game(torch.ones(1, GRID, GRID), cell_mask(2, 1))[0].item() == 1.0  # flat map


def test_chance_is_the_share_of_cells_the_mask_touches():
    for k in (1, 3, 7, 16):
        mask = torch.zeros(1, FILM, FILM, dtype=torch.bool)
        for cell in range(k):
            r, c = divmod(cell, GRID)
            mask[0, r * CELL + 5, c * CELL + 9] = True  # one pixel inside each of k cells
        assert pointing_game(torch.rand(1, GRID, GRID), mask)[1].item() == pytest.approx(k / 16)


def test_cells_tile_a_film_that_the_grid_does_not_divide():
    # H = 10, h = 4: pixel y is in cell row floor(y * 4 / 10) -> rows of 3, 2, 3, 2 pixels.
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    mask[0, 2, 0] = mask[0, 3, 0] = mask[0, 9, 9] = True
    cover = cell_coverage(mask, (4, 4))[0]
    assert cover[0, 0] == 1 and cover[1, 0] == 1 and cover[3, 3] == 1 and cover.sum() == 3
    full = cell_coverage(torch.ones(1, 10, 10, dtype=torch.bool), (4, 4))[0]
    assert full[:, 0].tolist() == [9.0, 6.0, 9.0, 6.0] and full.sum() == 100


def test_cnr_equals_a_hand_computed_value():
    # Film = grid (8 x 8): the upsample is the identity, so the statistic is on these exact values.
    values = torch.zeros(1, 8, 8)
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :2, :2] = True                                 # 4 pixels inside
    values[0, :2, :2] = torch.tensor([[1.0, 3.0], [1.0, 3.0]])  # mean 2, variance 1
    values[0, 4:, :] = 1.0                                 # outside: 32 ones, 28 zeros among 60
    mean_out, var_out = 32 / 60, 32 / 60 * (1 - 32 / 60)
    expected = abs(2.0 - mean_out) / math.sqrt(1.0 + var_out)
    assert cnr(values, mask).item() == pytest.approx(expected, rel=1e-6)
    assert contrast_to_noise(values, mask).item() == pytest.approx(expected, rel=1e-6)


def test_cnr_of_flat_and_step_maps():
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4] = True
    assert cnr(torch.full((1, 8, 8), 0.3), mask).item() == pytest.approx(0.0, abs=1e-6)  # no contrast
    assert contrast_to_noise(mask.float(), mask).item() == math.inf  # a perfect step
    # upsampled from the 4 x 4 grid, a peak cell gets a finite, large CNR against its own mask
    assert cnr(peak_map(1, 1), cell_mask(1, 1)).item() > 2.0


def test_miou_of_a_perfect_map_is_one_and_of_a_flat_map_zero():
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 2:5, 3:7] = True
    assert miou(mask.float(), mask).item() == pytest.approx(1.0)
    assert miou(torch.ones(1, 8, 8), mask).item() == 0.0
    # a 0 / 0.5 / 1 map: thresholds 0.1 .. 0.5 also take the 0.5 pixel, 0.6 .. 0.9 see the mask alone
    values = mask.float().clone()
    values[0, 0, 0] = 0.5
    lower = mask.sum().item() / (mask.sum().item() + 1)
    expected = (5 * lower + 4 * 1.0) / 9
    assert miou(values, mask).item() == pytest.approx(expected)


def test_random_map_chance_is_seeded_and_falls_with_mask_size():
    small, big = cell_mask(1, 1), torch.zeros(1, FILM, FILM, dtype=torch.bool)
    big[0, :, :FILM // 2] = True
    a = random_map_chance(cnr, small, (GRID, GRID), draws=30, seed=3)
    assert torch.equal(a, random_map_chance(cnr, small, (GRID, GRID), draws=30, seed=3))
    assert a.item() > 0  # noise alone gives a random map some contrast against a small mask
    assert random_map_chance(cnr, big, (GRID, GRID), draws=30, seed=3).item() < a.item()


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    values = np.random.default_rng(0).random(200)
    lo, hi = bootstrap_ci(values, n_resamples=1000, seed=1)
    assert lo < values.mean() < hi and hi - lo < 0.2
    assert bootstrap_ci(values, n_resamples=1000, seed=1) == [lo, hi]
    assert bootstrap_ci([0.4]) == [0.4, 0.4] and bootstrap_ci([1.0, 1.0, 1.0]) == [1.0, 1.0]


def test_shuffled_partners_take_another_study_with_the_same_finding():
    findings = ["edema", "edema", "edema", "edema", "nodule", "pneumothorax", "pneumothorax"]
    studies = [0, 0, 1, 2, 3, 4, 5]
    partner = shuffled_partners(findings, studies, seed=0)
    for i, j in enumerate(partner):
        if findings[i] == "nodule":
            assert j == -1  # one study only: no control possible
        else:
            assert findings[j] == findings[i] and studies[j] != studies[i]
    assert partner[0] == partner[1]  # two mentions in one study borrow the same mask


def test_peak_cells_counts_border_peaks_against_where_the_masks_are():
    # 4 maps on a 4x4 grid: three peak on border cells (two on (0, 0)), one on the interior cell (1, 2)
    maps = torch.cat([peak_map(0, 0), peak_map(0, 0), peak_map(3, 1), peak_map(1, 2)])
    # masks: each exactly one interior cell, except the last, which covers cells (1, 2) and (1, 3)
    masks = torch.cat([cell_mask(1, 1), cell_mask(2, 2), cell_mask(2, 1), cell_mask(1, 2) | cell_mask(1, 3)])
    s = peak_cells(maps, masks)
    assert s["on_border"] == 0.75 and s["border_cells"] == 12 / 16
    assert s["on_border_if_on_mask"] == pytest.approx((0 + 0 + 0 + 0.5) / 4)  # only (1, 3) of the last is border
    assert s["top_cell"] == [0, 0] and s["top_cell_share"] == 0.5
    assert s["entropy_bits"] == pytest.approx(-(0.5 * math.log2(0.5) + 2 * 0.25 * math.log2(0.25)))  # 1.5 bits
    assert s["max_entropy_bits"] == 4.0
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[0, 0], expected[3, 1], expected[1, 2] = 0.5, 0.25, 0.25
    assert torch.equal(torch.tensor(s["cell_share"], dtype=torch.float64), expected)


def test_peak_cells_entropy_is_maximal_when_every_cell_peaks_once():
    cells = [(r, c) for r in range(GRID) for c in range(GRID)]
    maps = torch.cat([peak_map(r, c) for r, c in cells])
    masks = torch.cat([cell_mask(r, c, inset=1) for r, c in cells])
    s = peak_cells(maps, masks)
    assert s["entropy_bits"] == pytest.approx(4.0) and s["on_border"] == s["on_border_if_on_mask"] == 0.75


def test_location_prior_is_the_share_of_training_masks_touching_each_cell():
    studies = [{"cardiomegaly": cell_mask(1, 1)[0]},
               {"cardiomegaly": (cell_mask(1, 1) | cell_mask(1, 2))[0], "nodule": cell_mask(3, 3, inset=2)[0]},
               {}]                                                     # a study with no finding
    priors = location_priors(studies, (GRID, GRID))
    assert set(priors) == {"cardiomegaly", "nodule"}
    expected = torch.zeros(GRID, GRID)
    expected[1, 1], expected[1, 2] = 1.0, 0.5
    torch.testing.assert_close(priors["cardiomegaly"], expected)
    assert priors["nodule"][3, 3] == 1.0 and priors["nodule"].sum() == 1.0


def test_synth_location_priors_are_the_priors_of_the_rendered_training_masks_and_cached():
    from mgca_lite.data.synth import make_sample
    from mgca_lite.data.tasks import task_split

    by_hand = location_priors([positive_masks(make_sample(int(i), 7, 64))
                               for i in task_split("pretrain", "train", sizes={"train": 12})], (4, 4))
    cached = synth_location_priors(7, 64, (4, 4), 12)
    assert cached.keys() == by_hand.keys()
    for finding in by_hand:
        torch.testing.assert_close(cached[finding], by_hand[finding])
    assert synth_location_priors(7, 64, (4, 4), 12) is cached  # rendered once per process

def test_prior_scores_score_the_same_map_for_every_film():
    priors = {"cardiomegaly": peak_map(1, 1)[0] * 0.9 + 0.01}
    masks = torch.cat([cell_mask(1, 1, inset=1), cell_mask(2, 2, inset=1), cell_mask(0, 3, inset=1)])
    result = prior_scores(priors, masks, ["cardiomegaly", "cardiomegaly", "nodule"])
    # (1, 1) hits, (2, 2) misses; nodule has no prior: a flat map, whose tied maximum touches the mask
    assert result["pointing_game"]["value"] == pytest.approx(2 / 3)
    assert result["per_finding"]["cardiomegaly"]["pointing_game"]["value"] == 0.5
    maps = torch.stack([priors["cardiomegaly"], priors["cardiomegaly"]])
    assert result["per_finding"]["cardiomegaly"]["cnr"]["value"] == pytest.approx(float(cnr(maps, masks[:2]).mean()))
    assert set(result) == {"pointing_game", "cnr", "miou", "per_finding"}


def test_score_phrases_has_the_contract_shape_and_separates_good_maps_from_the_control():
    cells = [(r, c) for r in range(GRID) for c in range(GRID)]
    maps = torch.cat([peak_map(r, c) for r, c in cells])  # every phrase points at its own mask
    masks = torch.cat([cell_mask(r, c, inset=1) for r, c in cells])
    findings = ["edema"] * 8 + ["nodule"] * 8
    result = score_phrases(maps, masks, findings, list(range(16)), ScoreConfig(n_resamples=200, chance_draws=5))
    assert result["n_phrases"] == 16 and set(result["per_finding"]) == {"edema", "nodule"}
    for block in (result, result["per_finding"]["edema"], result["control"]):
        for metric in ("pointing_game", "cnr", "miou"):
            assert set(block[metric]) >= {"value", "chance", "ci"} and len(block[metric]["ci"]) == 2
    assert result["pointing_game"]["value"] == 1.0 and result["pointing_game"]["chance"] == pytest.approx(1 / 16)
    assert result["control"]["pointing_game"]["value"] == 0.0  # another cell's mask is never hit
    assert result["cnr"]["value"] > result["cnr"]["chance"] > 0
    assert result["cnr"]["value"] > result["control"]["cnr"]["value"]
    assert result["miou"]["value"] > result["miou"]["chance"]


# --- phrase maps from a model, and `eval grounding` -------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 2-step run of test_training's tiny model (32 px films, 2 x 2 patch grid): best.pt path."""
    from test_training import tiny_config

    from mgca_lite.training.trainer import Trainer

    out = tmp_path_factory.mktemp("tiny_run")
    Trainer(tiny_config("train.max_steps=2"), out, progress=False).fit()
    return out / "best.pt"


@pytest.mark.parametrize("clean", [True, False])
def test_phrase_words_are_the_models_words_of_the_span(tiny_run, clean):
    from mgca_lite.data.synth import make_sample
    from mgca_lite.evaluation.phrase_maps import report_phrases
    from mgca_lite.training.checkpoint import load_pretrained

    model, tokenizer, _ = load_pretrained(tiny_run)
    checked = 0
    for index in range(800_000, 800_006):
        s = make_sample(index, 1234, 32)
        text, phrases = report_phrases(tokenizer, s.report, s.spans, clean)
        enc = tokenizer([text], truncation=True, max_length=112, return_tensors="pt")
        words = model(torch.zeros(1, 1, 32, 32), enc["input_ids"], enc["attention_mask"], return_words=True).words[0]
        for _, idx, phrase in phrases:
            if max(idx) < len(words):
                # the span's words as BERT's pre-tokeniser splits it (raw text keeps "-" and "," as
                # words, which a vocabulary trained on cleaned text spells [UNK])
                expected = [w.lower() for w, _ in tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(phrase)]
                assert len(idx) == len(expected)
                assert all(words[k] in (w, tokenizer.unk_token) for k, w in zip(idx, expected))
                checked += 1
    assert checked > 10


def test_phrase_maps_skip_truncated_phrases_and_give_one_grid_map_per_phrase(tiny_run):
    import dataclasses

    from mgca_lite.evaluation.phrase_maps import phrase_maps
    from mgca_lite.training.checkpoint import load_pretrained

    model, tokenizer, cfg = load_pretrained(tiny_run)
    indices = np.arange(800_000, 800_012)
    full = phrase_maps(model, tokenizer, cfg, indices, 1234, clean=True)
    short_text = dataclasses.replace(cfg.model.text, max_length=24)
    short = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, text=short_text))
    cut = phrase_maps(model, tokenizer, short, indices, 1234, clean=True)
    assert full.maps.shape == (len(full.findings), 2, 2) and full.masks.shape[1:] == (32, 32)
    assert torch.allclose(full.maps.sum(dim=(1, 2)), torch.ones(len(full.findings)))  # a softmax over patches
    assert bool(full.masks.flatten(1).any(dim=1).all())  # never an empty mask
    assert cut.skipped["truncated"] > full.skipped["truncated"]
    assert len(cut.findings) + cut.skipped["truncated"] == len(full.findings) + full.skipped["truncated"]


def test_eval_grounding_cli_writes_the_result_contract(tiny_run, tmp_path, capsys):
    import json

    from mgca_lite.cli import main

    out = tmp_path / "grounding.json"
    assert main(["eval", "grounding", "--checkpoint", str(tiny_run), "--n", "24", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_phrases"] > 0 and result["grid"] == [2, 2] and result["synth_seed"] == 1234
    for block in [result, *result["per_finding"].values()]:
        for metric in ("pointing_game", "cnr", "miou"):
            assert set(block[metric]) >= {"value", "chance", "ci"}
    assert sum(b["n_phrases"] for b in result["per_finding"].values()) == result["n_phrases"]
    assert set(result["peaks"]) >= {"on_border", "border_cells", "on_border_if_on_mask", "top_cell"}
    assert set(result["prior"]["per_finding"]) <= set(result["per_finding"]) and result["n_prior_studies"] == 2000
    assert 0.0 <= result["prior"]["pointing_game"]["value"] <= 1.0
    table = capsys.readouterr().out
    assert "pointing game" in table and "control" in table and "peaks on the grid's border" in table
    assert "location prior" in table


def test_eval_grounding_of_a_random_init_model(tmp_path):
    import json

    from mgca_lite.cli import main

    out = tmp_path / "random.json"
    assert main(["eval", "grounding", "--checkpoint", "random", "--n", "8", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["grid"] == [4, 4]  # synth_tiny: 64 px films


def test_eval_cli_bad_input_gives_one_error_line(tmp_path, capsys):
    from mgca_lite.cli import main

    (tmp_path / "junk.pt").write_text("not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    for argv in (["eval", "grounding", "--checkpoint", str(tmp_path / "missing.pt")],
                 ["eval", "grounding", "--checkpoint", str(tmp_path / "junk.pt")],
                 ["eval", "prototypes", "--checkpoint", str(tmp_path / "other.pt")],
                 ["eval", "detect", "--checkpoint", str(tmp_path / "missing.pt")]):
        assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("error: ") for line in lines)
    assert "missing.pt" in lines[0] and "junk.pt" in lines[1] and "other.pt" in lines[2]
    assert "missing.pt" in lines[3]  # every task checks its checkpoint before any work

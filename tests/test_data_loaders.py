"""Datasets, transforms and collators: the tensors the trainer and evaluators receive."""

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertTokenizerFast

from mgca_lite.data.collate import PairCollator, collate_task
from mgca_lite.data.datasets import PairedDataset, TaskDataset
from mgca_lite.data.synth import FINDINGS, make_sample, report_corpus
from mgca_lite.data.transforms import ImageTransform, TransformConfig

SIZE = 64


@pytest.fixture(scope="module")
def tokenizer():
    """A small WordPiece BertTokenizerFast trained on SynthCXR reports (as models/ does)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(report_corpus(300), trainers.WordPieceTrainer(vocab_size=400,
                                                                           special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                             cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def test_paired_item_contract():
    ds = PairedDataset.synth("train", image_size=SIZE, n=8)
    assert len(ds) == 8
    item = ds[3]
    s = make_sample(3, image_size=SIZE)
    assert item["image"].shape == (1, SIZE, SIZE) and item["image"].dtype == torch.float32
    torch.testing.assert_close(item["image"][0], torch.from_numpy(s.image / 127.5 - 1).float())
    assert item["report"] == s.report and item["index"] == 3
    assert item["labels"].tolist() == [s.labels[f] for f in FINDINGS]


def test_pair_collator_shapes(tokenizer):
    ds = PairedDataset.synth("val", image_size=SIZE, n=4)
    batch = PairCollator(tokenizer, max_length=32)([ds[i] for i in range(4)])
    assert batch["images"].shape == (4, 1, SIZE, SIZE) and batch["images"].dtype == torch.float32
    L = batch["input_ids"].shape[1]
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (4, L) and L <= 32
    assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.int64
    assert batch["labels"].shape == (4, len(FINDINGS)) and batch["labels"].dtype == torch.float32
    assert batch["index"].tolist() == [600000, 600001, 600002, 600003]
    assert batch["reports"] == [ds[i]["report"] for i in range(4)]
    assert (batch["input_ids"][:, 0] == tokenizer.cls_token_id).all()


@pytest.mark.parametrize("task,target_shape,dtype", [
    ("chexpert5", (5,), torch.float32), ("rsna", (1,), torch.float32),
    ("covidx", (), torch.int64), ("siim", (1,), torch.float32), ("object_cxr", (1,), torch.float32)])
def test_task_items_and_collate(task, target_shape, dtype):
    ds = TaskDataset.synth(task, "val", image_size=SIZE, sizes={"val": 6})
    items = [ds[i] for i in range(6)]
    assert all(it["target"].shape == target_shape and it["target"].dtype == dtype for it in items)
    batch = collate_task(items)
    assert batch["images"].shape == (6, 1, SIZE, SIZE) and batch["masks"].shape == (6, SIZE, SIZE)
    assert batch["targets"].shape == (6, *target_shape) and len(batch["boxes"]) == 6


def test_dense_targets_agree_with_binary_target():
    ds = TaskDataset.synth("object_cxr", "train", image_size=SIZE, sizes={"train": 12})
    for i in range(12):
        it = ds[i]
        positive = bool(it["target"].item())
        assert positive == bool(it["mask"].any()) == (len(it["boxes"]) > 0)


def test_random_crop_keeps_mask_and_boxes_aligned():
    image = np.zeros((50, 80), np.uint8)
    mask = np.zeros((50, 80), bool)
    mask[20:30, 40:60] = True
    tf = ImageTransform(TransformConfig(resize=64, crop=48), train=True)
    torch.manual_seed(0)
    for _ in range(5):
        img, m, boxes = tf(image, mask, np.array([[40, 20, 60, 30]], np.float32))
        assert img.shape == (1, 48, 48) and m.shape == (48, 48)
        if len(boxes):
            rows, cols = torch.nonzero(m.any(1)).flatten(), torch.nonzero(m.any(0)).flatten()
            x1, y1, x2, y2 = boxes[0].tolist()
            assert abs(x1 - cols[0].item()) <= 1 and abs(x2 - cols[-1].item() - 1) <= 1
            assert abs(y1 - rows[0].item()) <= 1 and abs(y2 - rows[-1].item() - 1) <= 1
    centre, _, _ = ImageTransform(TransformConfig(resize=64, crop=48))(image)
    assert torch.equal(centre, ImageTransform(TransformConfig(resize=64, crop=48))(image)[0])


def test_label_fraction_subsets_in_datasets():
    one = TaskDataset.synth("chexpert5", "train", fraction=0.01)
    ten = TaskDataset.synth("chexpert5", "train", fraction=0.1)
    assert len(one) == 50 and len(ten) == 500
    assert set(one.source.indices.tolist()) <= set(ten.source.indices.tolist())

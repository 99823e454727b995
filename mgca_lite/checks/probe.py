"""Exercise of notebook 07: the linear probe, `my_probe(train_x, train_y, val_x, val_y, cfg)` ->
nn.Linear taking raw features, against `mgca_lite.evaluation.linear_probe.train_linear_probe`
(multi-label): the weights and the bias of the returned layer.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..evaluation.linear_probe import ProbeConfig, score, train_linear_probe
from .core import Case, Exercise, Mistake


def _toy(seed: int, n: int, classes: int = 1, dim: int = 2) -> tuple:
    """Features (n, dim): only feature 0 carries the labels, the others are large and offset."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, classes, generator=g) < 0.3).float()
    scale = torch.tensor([1.0] + [20.0] * (dim - 1))
    x = torch.randn(n, dim, generator=g) * scale + torch.tensor([0.0] + [100.0] * (dim - 1))
    x[:, 0] += 1.5 * y[:, 0]
    return x, y


def _data(seed: int, n: int, classes: int = 1, dim: int = 2, **cfg) -> tuple:
    (tx, ty), (vx, vy) = _toy(seed, n, classes, dim), _toy(seed + 100, n, classes, dim)
    return tx, ty, vx, vy, ProbeConfig(**{"lr": 1e-2, "min_steps": 200, **cfg})


def _library(train_x, train_y, val_x, val_y, cfg):
    return train_linear_probe(train_x, train_y, val_x, val_y, "multilabel", train_y.shape[1], cfg)


def _run(function, case: Case) -> tuple:
    layer = function(*case.args)
    return layer.weight.detach(), layer.bias.detach()


def _variant(train_x, train_y, val_x, val_y, cfg, fold=True, keep_best=True, unbiased=False, standardise=True):
    """The probe with one rule broken (for the hints)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    if standardise:
        mean, std = train_x.mean(0), train_x.std(0, unbiased=unbiased).clamp_min(1e-6)
    else:
        mean, std = torch.zeros(train_x.shape[1]), torch.ones(train_x.shape[1])
    torch.manual_seed(cfg.seed)
    layer = nn.Linear(train_x.shape[1], train_y.shape[1])
    optimizer = torch.optim.AdamW(layer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    xs, vxs = (train_x - mean) / std, (val_x - mean) / std
    best, best_state, bad, steps, epoch = -np.inf, None, 0, 0, 0
    while epoch < cfg.max_epochs or steps < cfg.min_steps:
        order = torch.randperm(len(xs), generator=gen)
        for start in range(0, len(xs), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            optimizer.zero_grad()
            loss_fn(layer(xs[idx]), train_y[idx]).backward()
            optimizer.step()
            steps += 1
        epoch += 1
        with torch.no_grad():
            val = score("multilabel", val_y.numpy(), layer(vxs).numpy())
        if best_state is None or val > best:
            best, bad, best_state = val, 0, copy.deepcopy(layer.state_dict())
        else:
            bad += 1
            if bad >= cfg.patience and steps >= cfg.min_steps:
                break
    if keep_best:
        layer.load_state_dict(best_state)
    if fold:
        with torch.no_grad():
            weight = layer.weight / std
            layer.bias -= weight @ mean
            layer.weight.copy_(weight)
    return layer


MISTAKES = [
    Mistake(lambda *a: _variant(*a, fold=False),
            "the returned layer must take RAW features: fold the standardisation into it"
            " (weight / std, bias - weight @ mean)"),
    Mistake(lambda *a: _variant(*a, keep_best=False),
            "keep the best validation epoch's weights, not the last epoch's"),
    Mistake(lambda *a: _variant(*a, unbiased=True),
            "the training std is the population one: std(0, unbiased=False)"),
    Mistake(lambda *a: _variant(*a, standardise=False),
            "standardise the features by the training mean and std before training"),
]


def _visible() -> list[Case]:
    return [Case("the toy of §4 (2 features, 200 films)", _data(0, 200))]


def _hidden() -> list[Case]:
    return [Case("3 classes, 6 features, another seed", _data(5, 150, classes=3, dim=6)),
            Case("batch size larger than the set, patience 3", _data(9, 40, batch_size=64, patience=3))]


EXERCISE = Exercise("linear_probe", "linear probe", _library, _run, _visible, _hidden, MISTAKES,
                    "follow train_linear_probe's recipe: standardise, AdamW in seeded mini-batches,"
                    " score every epoch, keep the best, early-stop, fold")

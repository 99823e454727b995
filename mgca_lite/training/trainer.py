"""The MGCA pretraining loop: plain PyTorch, single process or torchrun/DDP, exact resume.

One optimizer step = `grad_accum` micro-batches. Everything that decides the next step (weights,
optimizer moments, scheduler, RNG states, position inside the epoch) is in `last.pt`, so a run
stopped after k steps and resumed reaches the same weights as one that never stopped.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mgca_lite.data.collate import PairCollator
from mgca_lite.losses.mgca_loss import MGCALoss
from mgca_lite.models.mgca import build_model
from mgca_lite.models.tokenizer import tokenizer_from_pieces, tokenizer_pieces
from mgca_lite.training.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from mgca_lite.training.config import BUDGET_FIELDS, PretrainConfig, config_from_json, require_same_config
from mgca_lite.training.data import build_pretrain_datasets
from mgca_lite.training.ddp import barrier, init_distributed
from mgca_lite.training.metrics import MetricsLogger
from mgca_lite.training.module import PretrainModule
from mgca_lite.training.optim import build_optimizer
from mgca_lite.training.sampler import ResumableSampler

# "local": the local contrast (beyond the paper); only in the loss dict when on, logged as 0 when off
TERMS = ("loss", "ita", "cta", "cpa", "local", "top1", "top5")


class Trainer:
    """Builds model, loss, data and optimizer from a `PretrainConfig` and runs `fit()`.

    Writes `DIR/last.pt`, `DIR/best.pt` (lowest validation loss), `DIR/config.json`,
    `DIR/metrics.csv` and TensorBoard events under `DIR/tb`.
    """

    def __init__(self, cfg: PretrainConfig, output_dir: str | Path, resume: bool = False,
                 progress: bool = True, datasets=None):
        self.cfg, self.dir = cfg, Path(output_dir)
        self.dist = init_distributed(cfg.train.device)
        self.device = self.dist.device
        self.progress = progress and self.dist.is_main
        last = self.dir / "last.pt"
        ckpt = load_checkpoint(last, map_location=self.device) if resume else None
        if ckpt is not None:  # before config.json is rewritten or a film rendered; --resume may change the budget
            require_same_config(config_from_json(ckpt["config"]), cfg, last, BUDGET_FIELDS)
        if self.dist.is_main:
            if last.exists() and not resume:
                raise FileExistsError(f"{self.dir} already holds a run (last.pt); pass --resume to continue "
                                      "it or choose another --output-dir")
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "config.json").write_text(cfg.to_json())

        torch.manual_seed(cfg.train.seed)
        # A resumed run keeps the vocabulary it was trained with (see models.tokenizer_from_pieces).
        saved_tokenizer = tokenizer_from_pieces(ckpt["vocab"]) if ckpt is not None else None
        model, self.tokenizer = build_model(cfg.model, saved_tokenizer)
        self.module = PretrainModule(model, MGCALoss(cfg.loss)).to(self.device)
        self.use_bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and self.device.type == "cuda")
        self.channels_last = cfg.train.channels_last and self.device.type == "cuda"
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)

        train_ds, val_ds = datasets if datasets is not None else build_pretrain_datasets(
            cfg.data, progress=self.progress, is_main=self.dist.is_main)
        self.collate = PairCollator(self.tokenizer, max_length=cfg.model.text.max_length,
                                    clean=cfg.model.text.clean_reports)
        self.sampler = ResumableSampler(len(train_ds), self.dist.rank, self.dist.world_size, seed=cfg.train.seed)
        if self.sampler.per_rank < cfg.train.batch_size:
            raise ValueError(f"training set ({len(train_ds)} pairs over {self.dist.world_size} process(es)) is "
                             f"smaller than one batch ({cfg.train.batch_size})")
        self.train_loader = self._loader(train_ds, self.sampler, drop_last=True)
        val_sampler = ResumableSampler(len(val_ds), self.dist.rank, self.dist.world_size, shuffle=False)
        self.val_loader = self._loader(val_ds, val_sampler, drop_last=False)

        self.batches_per_epoch = self.sampler.per_rank // cfg.train.batch_size
        self.steps_per_epoch = max(1, self.batches_per_epoch // cfg.train.grad_accum)
        self.total_steps = cfg.train.max_steps or cfg.train.max_epochs * self.steps_per_epoch
        self.optimizer, self.scheduler = build_optimizer(self.module, cfg.optim, self.total_steps)

        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_val, self.bad_epochs, self.stopped_early = math.inf, 0, False
        if ckpt is not None:
            self._restore(ckpt)
        self.logger = (MetricsLogger(self.dir, resume_step=self.step if resume else None,
                                     tensorboard=cfg.train.tensorboard) if self.dist.is_main else None)

        self.ddp = self._wrap(self.module)

    # ----------------------------------------------------------------------------------- setup
    def _loader(self, dataset, sampler, drop_last: bool) -> DataLoader:
        workers = self.cfg.data.num_workers
        return DataLoader(
            dataset, batch_size=self.cfg.train.batch_size, sampler=sampler, collate_fn=self.collate,
            drop_last=drop_last, num_workers=workers, persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # keeps the loader from drawing on the global RNG (exact resume)
        )

    def _wrap(self, module):
        """DDP across processes when launched by torchrun; optional torch.compile on top."""
        wrapped = module
        if self.dist.world_size > 1:
            terms_on = self.cfg.loss.use_ita and self.cfg.loss.use_cta and self.cfg.loss.use_cpa
            wrapped = DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=not terms_on,  # a switched-off term leaves its heads unused
            )
        if self.cfg.train.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    def _restore(self, ckpt: dict) -> None:
        self.module.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        self.best_val, self.bad_epochs = ckpt["best_val"], ckpt["bad_epochs"]
        self.stopped_early = ckpt.get("stopped_early", False)
        set_rng_state(ckpt["rng"])

    def _state(self) -> dict:
        return {
            "format": 1, "model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "step": self.step,
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "best_val": self.best_val,
            "bad_epochs": self.bad_epochs, "stopped_early": self.stopped_early, "config": self.cfg.to_json(),
            "vocab": tokenizer_pieces(self.tokenizer), "total_steps": self.total_steps,
            "finished": self.stopped_early or self.step >= self.total_steps or not self._epochs_left(),
        }

    def _epochs_left(self) -> bool:
        """Whether the epoch budget allows another epoch. train.max_steps, when set, is the whole budget
        and overrides max_epochs (the LR schedule spans max_steps, so stopping at max_epochs first
        would cut the run off mid-schedule)."""
        return self.cfg.train.max_steps is not None or self.epoch < self.cfg.train.max_epochs

    def save(self, name: str = "last.pt") -> None:
        if self.dist.is_main:
            save_atomic(self._state(), self.dir / name)
        barrier()

    # -------------------------------------------------------------------------------- training
    def _to_device(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = batch["images"].to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return (images, batch["input_ids"].to(self.device, non_blocking=True),
                batch["attention_mask"].to(self.device, non_blocking=True))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def _optimizer_step(self) -> None:
        criterion = self.module.criterion
        criterion.drop_frozen_prototype_grads(self.epoch)
        if self.cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        criterion.normalize_prototypes_()
        self.step += 1

    def fit(self, stop_after_steps: int | None = None) -> dict:
        """Train until the step/epoch budget, early stopping, or `stop_after_steps` (an interruption).

        Returns a summary: final step, epochs run, best validation loss and the last metrics.
        """
        accum, batch_size = self.cfg.train.grad_accum, self.cfg.train.batch_size
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress, desc="pretrain",
                   dynamic_ncols=True)
        window, last_metrics = _Window(), {}
        interrupted = False
        anomaly = torch.autograd.set_detect_anomaly(True) if self.cfg.train.detect_anomaly else contextlib.nullcontext()
        with anomaly:
            while (self._epochs_left() and self.step < self.total_steps
                   and not self.stopped_early and not interrupted):
                self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch * batch_size)
                self.module.train()
                self.optimizer.zero_grad(set_to_none=True)
                micro = 0
                for batch in self.train_loader:
                    images, ids, mask = self._to_device(batch)
                    sync = (micro + 1) % accum == 0
                    # Gradients are all-reduced only on the last micro-batch of an optimizer step.
                    skip_sync = self.ddp.no_sync() if (not sync and self.dist.world_size > 1) else contextlib.nullcontext()
                    with skip_sync:
                        with self._autocast():
                            out = self.ddp(images, ids, mask, step=self.step)
                        (out["loss"] / accum).backward()
                    micro += 1
                    window.add(out, images.shape[0])
                    if not sync:
                        continue
                    self.batch_in_epoch += accum
                    self._optimizer_step()
                    bar.update(1)
                    if self.step % self.cfg.train.log_every == 0 or self.step == self.total_steps:
                        last_metrics = window.flush(self.scheduler.get_last_lr()[0], self.dist.world_size)
                        self._log("train", last_metrics)
                        bar.set_postfix(loss=f"{last_metrics['loss']:.3f}", top1=f"{last_metrics['top1']:.2f}")
                    if self.step % self.cfg.train.save_every == 0:
                        self.save()
                    if self.step >= self.total_steps:
                        break
                    if stop_after_steps is not None and self.step >= stop_after_steps:
                        interrupted = True
                        break
                epoch_done = self.batch_in_epoch + accum > self.batches_per_epoch
                if interrupted:
                    self.save()
                    break
                if epoch_done or self.step >= self.total_steps:
                    self._end_of_epoch(epoch_done)
        bar.close()
        if self.logger is not None:
            self.logger.close()
        return {"step": self.step, "epoch": self.epoch, "best_val": self.best_val,
                "stopped_early": self.stopped_early, "train": last_metrics}

    def _end_of_epoch(self, epoch_done: bool) -> None:
        val = self.validate()
        self._log("val", val)
        if val["loss"] < self.best_val:
            self.best_val, self.bad_epochs = val["loss"], 0
            self.save("best.pt")
        else:
            self.bad_epochs += 1
            patience = self.cfg.train.early_stop_patience
            self.stopped_early = patience is not None and self.bad_epochs >= patience
        if epoch_done:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.save()

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean of every term over the validation set (all processes), model in eval mode."""
        self.module.eval()
        sums = torch.zeros(len(TERMS) + 1, dtype=torch.float64, device=self.device)
        for batch in self.val_loader:
            images, ids, mask = self._to_device(batch)
            with self._autocast():
                out = self.module(images, ids, mask)
            n = images.shape[0]
            sums[:-1] += torch.stack([out[k].detach().double() if k in out else sums.new_zeros(())
                                      for k in TERMS]) * n
            sums[-1] += n
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
        self.module.train()
        return {k: (sums[i] / sums[-1]).item() for i, k in enumerate(TERMS)}

    def _log(self, split: str, values: dict) -> None:
        if self.logger is not None:
            self.logger.log(self.step, self.epoch, split, values)


class _Window:
    """Running sums of the loss terms between two log rows, and the images/s over that window."""

    def __init__(self):
        self.sums, self.count, self.images, self.start = {}, 0, 0, time.perf_counter()

    def add(self, out: dict, batch_size: int) -> None:
        for key in TERMS:  # tensors, so a GPU run does not synchronise on every micro-batch
            value = out[key].detach().float() if key in out else 0.0  # "local" only when on
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        self.images += batch_size

    def flush(self, lr: float, world_size: int) -> dict:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        row = {k: float(v) / max(self.count, 1) for k, v in self.sums.items()}
        row.update(lr=lr, images_per_s=self.images * world_size / elapsed)
        self.__init__()
        return row

"""The EEGM2 pretraining loop: reconstruction loss, AdamW + OneCycle, subject-grouped validation,
best-validation weights, resumable and Ctrl-C safe.

Official setup (``Jiazhen-Hong/EEGM2`` @ 0fade32, design notes §3): AdamW with weight decay 1e-2,
OneCycle (``div_factor`` 2, ``final_div_factor`` 100, ``pct_start`` 0.1, cosine), gradient-norm
clipping at 1.0, batch 64, best validation loss kept; our defaults are these. Departure (ours): a
seeded split (the official one is unseeded).

Validation windows come from held-out subjects (``eegmamba.training.cv.validation_split``: subjects,
else files, else the last part in time with overlapping training windows dropped and counted). With
``mask_ratio > 0`` each step hides patches drawn from a generator seeded by (seed, step), and the
validation masks are the same at every epoch, so losses are comparable across epochs and a resumed
run repeats the same batches and masks.

Resumable state (``state.pt``): written at the end of every epoch and, on the first Ctrl-C, after
the current step; the loop then raises ``KeyboardInterrupt``. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from eegmamba._interrupt import StopFlag
from eegmamba._checks import UserInputError
from eegmamba.eegm2.loss import ReconLoss, ReconLossConfig
from eegmamba.pretrain.data import PretrainData
from eegmamba.training.cv import ValSplit, validation_split

PARTS = ("l1", "spectral", "mse", "total")


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings of :class:`Pretrainer` (saved into the output metadata).

    epochs, batch_size : int; lr : float, peak OneCycle rate; weight_decay : float (AdamW)
    clip : float, max gradient norm (0 = off); val_frac : fraction of subjects held out (0 < f < 1)
    seed : int; max_steps : int, stop after this many optimizer steps in all (0 = no limit)
    loss : ReconLossConfig
    """

    epochs: int = 50
    batch_size: int = 64  # the official value
    lr: float = 5e-4
    weight_decay: float = 1e-2
    clip: float = 1.0
    val_frac: float = 0.2
    seed: int = 0
    max_steps: int = 0
    loss: ReconLossConfig = field(default_factory=ReconLossConfig)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserInputError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 0:
            raise UserInputError(f"max_steps must be an integer >= 0 (0 = no limit), got {self.max_steps!r}")
        for name in ("lr", "weight_decay", "clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise UserInputError(f"{name} must be a finite number >= 0, got {v!r}")
        if not self.lr > 0:
            raise UserInputError(f"lr must be > 0, got {self.lr!r}")
        if not 0 < self.val_frac < 1:
            raise UserInputError(f"val_frac must be in (0, 1), got {self.val_frac!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["loss"] = self.loss.to_dict()
        return d


@torch.no_grad()
def evaluate(model: nn.Module, X: np.ndarray, loss: ReconLoss, device: torch.device,
             batch_size: int = 32, seed: int = 12345) -> dict[str, float]:
    """Window-weighted mean of each loss part over ``X (N, C, T)`` in eval mode (masks, if any,
    drawn from a generator seeded with ``seed``, so repeated calls use the same masks)."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    sums = dict.fromkeys(PARTS, 0.0)
    for i in range(0, len(X), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size])).to(device)
        xin, mask = loss.mask_input(xb, gen)
        _, parts = loss(xb, model(xin), mask)
        for k in PARTS:
            sums[k] += parts[k] * len(xb)
    model.train(was)
    return {k: v / max(len(X), 1) for k, v in sums.items()}


class Pretrainer:
    """Pretrain ``model`` (an EEGM2 autoencoder) on ``data``.

    Parameters
    ----------
    model : nn.Module, ``model(x (B, C, T)) -> recon (B, C, T)``
    data : PretrainData
    cfg : PretrainConfig
    device : torch.device
    state_path : where the resumable state is written (None: not written)
    progress : optional object with ``start_epoch(epoch, done_steps)``, ``advance(loss, rate)``,
        ``end_epoch(record)`` (``eegmamba.pretrain.cli`` passes a rich one)
    """

    def __init__(self, model: nn.Module, data: PretrainData, cfg: PretrainConfig,
                 device: torch.device, state_path: str | Path | None = None, progress=None) -> None:
        self.model, self.data, self.cfg, self.device = model.to(device), data, cfg, device
        self.state_path = Path(state_path) if state_path else None
        self.progress = progress
        self.loss = ReconLoss(cfg.loss)
        self.split: ValSplit = validation_split(
            np.arange(len(data)), data.subjects, data.files, data.t_start,
            data.profile.window.length_s, cfg.val_frac, cfg.seed)
        if len(self.split.train_idx) == 0 or len(self.split.val_idx) == 0:
            raise UserInputError(f"cannot split {len(data)} windows into training and validation")
        self.steps_per_epoch = math.ceil(len(self.split.train_idx) / cfg.batch_size)
        full = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(full, cfg.max_steps) if cfg.max_steps else full
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=cfg.lr, total_steps=self.total_steps, pct_start=0.1, div_factor=2.0,
            final_div_factor=100.0, anneal_strategy="cos")
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.partial = dict.fromkeys(PARTS, 0.0) | {"n": 0.0}
        self.history: list[dict] = []
        self.best = {"epoch": 0, "val_total": math.inf, "parts": {}}
        self.best_state: dict | None = None
        self.initial_val: dict | None = None

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "epoch": self.epoch, "step": self.step,
                "global_step": self.global_step, "partial": dict(self.partial),
                "history": self.history, "best": self.best, "best_state": self.best_state,
                "initial_val": self.initial_val, "rng": torch.get_rng_state()}

    def save_state(self) -> None:
        if self.state_path is not None:
            tmp = self.state_path.with_suffix(".tmp")
            torch.save(self.state_dict(), tmp)
            tmp.replace(self.state_path)

    def load_state(self, path: str | Path) -> None:
        s = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["optimizer"])
        self.sched.load_state_dict(s["scheduler"])
        self.epoch, self.step, self.global_step = s["epoch"], s["step"], s["global_step"]
        self.partial, self.history = dict(s["partial"]), list(s["history"])
        self.best, self.best_state, self.initial_val = s["best"], s["best_state"], s["initial_val"]
        torch.set_rng_state(s["rng"])

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs or self.global_step >= self.total_steps

    # --- loop --------------------------------------------------------------------------------
    def _batches(self, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(self.split.train_idx)
        bs = self.cfg.batch_size
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def _train_step(self, idx: np.ndarray) -> dict[str, float]:
        xb = torch.from_numpy(self.data.X[idx]).to(self.device)
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.global_step)
        xin, mask = self.loss.mask_input(xb, gen)
        total, parts = self.loss(xb, self.model(xin), mask)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
        self.opt.step()
        self.sched.step()
        return parts

    def validate(self) -> dict[str, float]:
        """Loss parts on the validation windows (same masks every call)."""
        return evaluate(self.model, self.data.X[self.split.val_idx], self.loss, self.device,
                        self.cfg.batch_size, seed=self.cfg.seed + 7)

    def fit(self) -> list[dict]:
        """Train until ``epochs`` or ``max_steps``; returns the history (one dict per epoch, epoch 0 =
        the initial model's validation loss). Raises ``KeyboardInterrupt`` after saving the state
        when Ctrl-C was pressed."""
        if self.initial_val is None:
            self.initial_val = self.validate()
            self.history.append({"epoch": 0, "step": 0, "lr": self.sched.get_last_lr()[0],
                                 "seconds": 0.0, **{f"val_{k}": v for k, v in self.initial_val.items()}})
        self.model.train()
        with StopFlag() as stop:
            while not self.done:
                t0, seen = time.perf_counter(), 0
                if self.progress is not None:
                    self.progress.start_epoch(self.epoch + 1, self.step)
                for k, idx in enumerate(self._batches(self.epoch)):
                    if k < self.step:
                        continue  # resumed mid-epoch: these steps were done before
                    if self.global_step >= self.total_steps:
                        break
                    parts = self._train_step(idx)
                    for p in PARTS:
                        self.partial[p] += parts[p] * len(idx)
                    self.partial["n"] += len(idx)
                    self.step, self.global_step, seen = k + 1, self.global_step + 1, seen + len(idx)
                    if self.progress is not None:
                        self.progress.advance(self.partial["total"] / self.partial["n"],
                                              seen / (time.perf_counter() - t0))
                    if stop.requested:
                        self.save_state()
                        raise KeyboardInterrupt
                self._end_epoch(time.perf_counter() - t0)
                self.save_state()
                if stop.requested:
                    raise KeyboardInterrupt
        return self.history

    def _end_epoch(self, seconds: float) -> None:
        n = max(self.partial["n"], 1.0)
        val = self.validate()
        record = {"epoch": self.epoch + 1, "step": self.global_step, "lr": self.sched.get_last_lr()[0],
                  "seconds": seconds, **{f"train_{k}": self.partial[k] / n for k in PARTS},
                  **{f"val_{k}": v for k, v in val.items()}}
        if val["total"] < self.best["val_total"]:
            self.best = {"epoch": self.epoch + 1, "val_total": val["total"], "parts": val}
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
        self.history.append(record)
        self.epoch, self.step = self.epoch + 1, 0
        self.partial = dict.fromkeys(PARTS, 0.0) | {"n": 0.0}
        if self.progress is not None:
            self.progress.end_epoch(record)

    def summary(self) -> dict:
        """Training summary for the metadata: epochs, steps, split, initial/best/last validation."""
        last = self.history[-1] if self.history else {}
        return {"epochs_run": self.epoch, "steps": self.global_step, "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch, "best_epoch": self.best["epoch"],
                "best_val": self.best["parts"], "initial_val": self.initial_val,
                "last_val": {k: last.get(f"val_{k}") for k in PARTS},
                "train_windows": int(len(self.split.train_idx)),
                "val_windows": int(len(self.split.val_idx)), "validation": self.split.describe(),
                "dropped_overlap": int(self.split.dropped_overlap)}

"""The EEGM2 pretraining: reconstruction loss as the step of the one training engine
(``eegmamba.training.engine``), AdamW + warmup/cosine, subject-grouped validation, best-validation
weights, resumable and Ctrl-C safe.

Official setup (``Jiazhen-Hong/EEGM2`` @ 0fade32, design notes §3): AdamW with weight decay 1e-2,
OneCycle (``div_factor`` 2, ``final_div_factor`` 100, ``pct_start`` 0.1, cosine), gradient-norm
clipping at 1.0, batch 64, best validation loss kept; our defaults are these. Departures (ours): a
seeded split (the official one is unseeded); the warmup is linear (``PretrainConfig.recipe``); no
weight decay on norms, biases, ``A_log``, ``D`` (the engine's parameter groups).

Validation windows come from held-out subjects (``eegmamba.training.cv.validation_split``: subjects,
else files, else the last part in time with overlapping training windows dropped and counted). With
``mask_ratio > 0`` each step hides patches drawn from a generator seeded by (seed, step), and the
validation masks are the same at every epoch, so losses are comparable across epochs and a resumed
run repeats the same batches and masks.

Resumable state (``state.pt``): written at the end of every epoch and, on the first Ctrl-C, after
the current step; the loop then raises ``KeyboardInterrupt``. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from eegmamba._checks import UserInputError
from eegmamba.eegm2.loss import ReconLoss, ReconLossConfig
from eegmamba.pretrain.data import PretrainData
from eegmamba.training.cv import ValSplit, validation_split
from eegmamba.training.engine.loop import Engine, TaskData
from eegmamba.training.engine.predict import map_batches
from eegmamba.training.engine.recipe import Recipe

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

    def recipe(self) -> Recipe:
        """These settings as an engine recipe: the official OneCycle as linear warmup over 10 % of
        the steps from lr/2, then cosine to lr/200 (OneCycle's warmup is cosine-shaped; ours is
        linear, the one schedule of the engine); validation once per epoch, best validation loss
        kept, no early stop, no smoothing or EMA (a reconstruction, not a classifier)."""
        return Recipe(lr=self.lr, weight_decay=self.weight_decay, clip=self.clip, epochs=self.epochs,
                      max_steps=self.max_steps, batch_size=self.batch_size, min_steps_per_epoch=1,
                      warmup_frac=0.1, warmup_start=0.5, final_lr_frac=0.005, label_smoothing=0.0,
                      ema=0.0, evals_per_epoch=1, select="val_loss", patience=self.epochs,
                      val_frac=self.val_frac, seed=self.seed, amp=False)


def evaluate(model: nn.Module, X: np.ndarray, loss: ReconLoss, device: torch.device,
             batch_size: int = 32, seed: int = 12345) -> dict[str, float]:
    """Window-weighted mean of each loss part over ``X (N, C, T)`` in eval mode (masks, if any,
    drawn from a generator seeded with ``seed``, so repeated calls use the same masks)."""
    gen = torch.Generator().manual_seed(seed)

    def parts_times_n(m: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        xin, mask = loss.mask_input(xb, gen)
        _, parts = loss(xb, m(xin), mask)
        return torch.tensor([parts[k] * len(xb) for k in PARTS], dtype=torch.float64)

    out = map_batches(model, X, parts_times_n, device, batch_size)
    sums = torch.stack(out).sum(0).tolist() if out else [0.0] * len(PARTS)
    return {k: v / max(len(X), 1) for k, v in zip(PARTS, sums)}


class Pretrainer:
    """Pretrain ``model`` (an EEGM2 autoencoder) on ``data`` with the one training engine
    (``eegmamba.training.engine.Engine``) and the reconstruction loss as its step.

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
        self.loss = ReconLoss(cfg.loss)
        self.split: ValSplit = validation_split(
            np.arange(len(data)), data.subjects, data.files, data.t_start,
            data.profile.window.length_s, cfg.val_frac, cfg.seed)
        if len(self.split.train_idx) == 0 or len(self.split.val_idx) == 0:
            raise UserInputError(f"cannot split {len(data)} windows into training and validation")
        self.engine = Engine(self.model, {None: TaskData(data.X[self.split.train_idx], None)}, None,
                             cfg.recipe(), device, state_path=state_path, progress=progress,
                             loss_step=self._loss_step, validate=lambda _engine: self._validate(),
                             initial_eval=True, aux=False)
        self.steps_per_epoch = self.engine.steps_per_epoch
        self.total_steps = self.engine.total_steps

    def _loss_step(self, model, xb, _y, _task, gen):
        xin, mask = self.loss.mask_input(xb, gen)
        return self.loss(xb, model(xin), mask)

    def _validate(self) -> dict:
        val = self.validate()
        return {"val_loss": val["total"], **{f"val_{k}": v for k, v in val.items()}}

    # --- the engine's state, under the names this class always had ---------------------------
    epoch = property(lambda self: self.engine.epoch)
    global_step = property(lambda self: self.engine.global_step)
    history = property(lambda self: self.engine.result.history)
    best_state = property(lambda self: self.engine.result.best_state)
    done = property(lambda self: self.engine.done)

    @property
    def best(self) -> dict:
        """``{"epoch", "val_total", "parts"}`` of the selected validation (as before the engine)."""
        r = self.engine.result
        e = next((e for e in r.evals if e["step"] == r.best_step), None)
        if e is None:
            return {"epoch": 0, "val_total": math.inf, "parts": {}}
        return {"epoch": r.best_epoch, "val_total": e["val_total"],
                "parts": {k: e[f"val_{k}"] for k in PARTS}}

    @property
    def initial_val(self) -> dict | None:
        h = self.history
        return {k: h[0][f"val_{k}"] for k in PARTS} if h and h[0]["epoch"] == 0 else None

    def save_state(self) -> None:
        self.engine.save_state()

    def load_state(self, path: str | Path) -> None:
        s = torch.load(path, map_location="cpu", weights_only=True)
        if "engine" not in s:
            raise UserInputError(f"{path} was written by an older eegmamba-pretrain (before the "
                                 "training engine); it cannot be resumed: start the run again")
        self.engine.load_state(path)

    def validate(self) -> dict[str, float]:
        """Loss parts on the validation windows (same masks every call)."""
        return evaluate(self.model, self.data.X[self.split.val_idx], self.loss, self.device,
                        self.cfg.batch_size, seed=self.cfg.seed + 7)

    def fit(self) -> list[dict]:
        """Train until ``epochs`` or ``max_steps``; returns the history (one dict per epoch, epoch 0 =
        the initial model's validation loss). Raises ``KeyboardInterrupt`` after saving the state
        when Ctrl-C was pressed."""
        self.engine.fit()
        return self.history

    def summary(self) -> dict:
        """Training summary for the metadata: epochs, steps, split, initial/best/last validation."""
        last = self.history[-1] if self.history else {}
        best = self.best
        return {"epochs_run": self.epoch, "steps": self.global_step, "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch, "best_epoch": best["epoch"],
                "best_val": best["parts"], "initial_val": self.initial_val,
                "last_val": {k: last.get(f"val_{k}") for k in PARTS},
                "train_windows": int(len(self.split.train_idx)),
                "val_windows": int(len(self.split.val_idx)), "validation": self.split.describe(),
                "dropped_overlap": int(self.split.dropped_overlap),
                "recipe": self.cfg.recipe().to_dict()}

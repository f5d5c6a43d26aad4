"""The training recipe: every optimisation choice of a run, declared once, validated, recorded.

A :class:`Recipe` is what the one fit loop (``engine.loop``) does; every training entry point
(``eegmamba-train``, the protocols' arms, calibration offline and live, EEGM2 fine-tuning, EEGNet,
EEGM2 pretraining) builds one and the run file / result records ``Recipe.to_dict()``.

Defaults are a modern EEG deep-learning recipe (issue 17: the paper's constant 2e-4 with no warmup,
no clipping and weight decay on every parameter memorises the training subjects by epoch 2):

* AdamW lr 1e-3: small EEG convnets / SSMs train well at 1e-3 (EEGNet's Adam default; the issue
  measured 0.658 vs 0.646 AUROC for 1e-3 vs 2e-4 on the unseen subjects).
* weight decay 0.05 on the decayed group only (weights of convs / linears): the usual AdamW value
  for small transformers/SSMs; norms, biases, ``A_log``, ``D`` and the class token are not decayed
  (``engine.optim``) since shrinking them toward 0 changes the function, not its complexity.
* linear warmup over 5 % of the planned steps, then cosine decay to 1 % of the peak, per step:
  warmup keeps Adam's first, badly estimated moments from wrecking the tokenizer; cosine lets the
  late steps settle instead of bouncing at the peak rate.
* gradient-norm clipping at 1.0: one noisy EEG batch (artefacts) cannot throw the weights away.
* label smoothing 0.1: EEG labels are noisy (a cue is not the brain state); smoothing caps the
  confidence that memorising a subject would buy.
* EMA of the weights, 0.999 per step with the usual warm-up ``min(d, (1+n)/(10+n))`` so short runs
  are not stuck at the initial weights; the EMA weights are the ones validated, selected and saved.
* validation 4 times per epoch, selection on balanced accuracy (robust to class imbalance, and it
  is what a user of the live decisions sees); patience counted in epochs of steps.
* batch 64, clipped to the training set and to at least ``min_steps_per_epoch`` steps per epoch
  (the within-subject protocol used to take ONE step per epoch with batch 128 on 105 windows).

``Recipe.paper()`` gives the paper's values (AdamW 2e-4, weight decay 1e-6 on everything, constant,
no clipping, no smoothing, no EMA, validation loss once per epoch, batch 128) to reproduce old runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from eegmamba._checks import UserInputError

SCHEDULES = ("cosine", "constant")
SELECT = ("balanced_acc", "auroc", "acc", "val_loss")
BALANCE = ("none", "loss", "sampler")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained (module docstring for the reasons behind the defaults).

    epochs : maximum epochs; max_steps : stop after this many optimiser steps (0 = no limit)
    batch_size : windows per step (clipped, see ``min_steps_per_epoch``)
    min_steps_per_epoch : the batch is reduced so an epoch has at least this many steps (1 = only
        clip to the training set)
    lr : peak learning rate; weight_decay : AdamW decoupled decay of the decayed group
    head_lr_mult : a model with its own head group (the EEGM2 classifier) trains it at this × lr
    decay_all : paper mode: decay every parameter (norms, biases, A_log, D, class token too)
    betas : AdamW betas
    schedule : ``cosine`` (linear warmup then cosine) or ``constant`` (warmup then constant)
    warmup_frac : fraction of the planned steps spent warming up (0 = none)
    warmup_start : learning rate at step 0 as a fraction of ``lr`` (0: from zero)
    final_lr_frac : the cosine ends at ``final_lr_frac * lr``
    clip : max gradient L2 norm (0 = off); label_smoothing : cross-entropy smoothing in [0, 1)
    ema : EMA decay per step (0 = off): the EMA weights are validated, selected and kept
    eval_every : validate every this many optimiser steps (0: ``evals_per_epoch`` per epoch)
    evals_per_epoch : validations per epoch when ``eval_every`` is 0 (the last one ends the epoch)
    select : ``balanced_acc`` | ``auroc`` | ``acc`` (higher is better) or ``val_loss`` (lower)
    patience : stop after this many epochs' worth of steps without a better selection metric
    balance : ``none``, ``loss`` (class-weighted cross-entropy, weights ∝ 1/count) or ``sampler``
        (each epoch drawn with replacement, every class equally likely)
    val_frac : fraction of training subjects (files, time) held out for validation/selection
    seed : batch order, augmentation, dropout; amp : bfloat16 autocast (CUDA only)
    """

    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 64
    min_steps_per_epoch: int = 4
    lr: float = 1e-3
    weight_decay: float = 0.05
    head_lr_mult: float = 10.0
    decay_all: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_frac: float = 0.05
    warmup_start: float = 0.0
    final_lr_frac: float = 0.01
    clip: float = 1.0
    label_smoothing: float = 0.1
    ema: float = 0.999
    eval_every: int = 0
    evals_per_epoch: int = 4
    select: str = "balanced_acc"
    patience: int = 10
    balance: str = "none"
    val_frac: float = 0.2
    seed: int = 0
    amp: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for name in ("epochs", "batch_size", "patience", "min_steps_per_epoch", "evals_per_epoch"):
            _int(self, name, 1)
        for name in ("max_steps", "eval_every", "seed"):
            _int(self, name, 0)
        for name in ("lr", "weight_decay", "clip", "head_lr_mult"):
            _num(self, name, 0.0, math.inf)
        if not self.lr > 0:
            raise UserInputError(f"recipe lr must be > 0, got {self.lr!r}")
        for name in ("warmup_frac", "label_smoothing", "ema", "val_frac"):
            _num(self, name, 0.0, 1.0, closed_high=False)
        for name in ("warmup_start", "final_lr_frac"):
            _num(self, name, 0.0, 1.0)
        if not 0 < self.val_frac < 1:
            raise UserInputError(f"recipe val_frac must be in (0, 1), got {self.val_frac!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserInputError(f"recipe betas must be two numbers in [0, 1), got {self.betas!r}")
        for name, allowed in (("schedule", SCHEDULES), ("select", SELECT), ("balance", BALANCE)):
            if getattr(self, name) not in allowed:
                raise UserInputError(f"recipe {name} must be one of {', '.join(allowed)}, "
                                     f"got {getattr(self, name)!r}")
        for name in ("decay_all", "amp"):
            if not isinstance(getattr(self, name), bool):
                raise UserInputError(f"recipe {name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def paper(cls, **overrides: Any) -> "Recipe":
        """The EEGMamba paper's settings (Appendix E.5) as this project trained them before issue 17:
        AdamW 2e-4, weight decay 1e-6 on every parameter, constant rate, no clipping, no smoothing,
        no EMA, batch 128 (clipped only to the training set), validation loss once per epoch."""
        base = dict(lr=2e-4, weight_decay=1e-6, decay_all=True, schedule="constant", warmup_frac=0.0,
                    clip=0.0, label_smoothing=0.0, ema=0.0, evals_per_epoch=1, select="val_loss",
                    batch_size=128, min_steps_per_epoch=1)
        return cls(**{**base, **overrides})

    @property
    def select_key(self) -> str:
        """The validation record key of the selection metric."""
        return "val_loss" if self.select == "val_loss" else f"val_{self.select}"

    @property
    def higher_is_better(self) -> bool:
        return self.select != "val_loss"

    def replace(self, **changes: Any) -> "Recipe":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "recipe") -> "Recipe":
        """A recipe from a mapping (YAML); unknown keys are a user error naming the field."""
        if not isinstance(d, dict):
            raise UserInputError(f"{where}: a recipe must be a mapping of options, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserInputError(f"{where}: {unknown[0]} is not a recipe option (allowed: "
                                 f"{', '.join(sorted(known))})")
        return cls(**d)


def _int(r: Recipe, name: str, low: int) -> None:
    v = getattr(r, name)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise UserInputError(f"recipe {name} must be an integer >= {low}, got {v!r}")


def _num(r: Recipe, name: str, low: float, high: float, closed_high: bool = True) -> None:
    v = getattr(r, name)
    ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= low
          and (v <= high if closed_high else v < high))
    if not ok:
        bound = f"[{low:g}, {high:g}{']' if closed_high else ')'}" if math.isfinite(high) else f">= {low:g}"
        raise UserInputError(f"recipe {name} must be a finite number in {bound}, got {v!r}")


PRESETS = {"modern": Recipe, "paper": Recipe.paper}


def load_recipe(path: str | Path, **overrides: Any) -> Recipe:
    """A recipe from a YAML file: ``preset: modern | paper`` (default modern) plus any options of
    :class:`Recipe`; ``overrides`` (e.g. from the command line) win."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"recipe file not found: {path}")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserInputError(f"{path}: cannot read recipe YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise UserInputError(f"{path}: a recipe file must be a mapping of options")
    preset = d.pop("preset", "modern")
    if preset not in PRESETS:
        raise UserInputError(f"{path}: preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    Recipe.from_dict(d, str(path))  # names the bad field
    return PRESETS[preset](**{**d, **overrides})

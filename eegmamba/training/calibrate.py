"""Subject calibration: fine-tune a trained model on a new subject's labelled windows.

The same function serves the live calibration of ``eegmamba-live --calibrate`` (run in a background
worker) and the offline ``calibrated`` protocol (cross-subject model fine-tuned on runs 4 + 8 of a
new subject, tested on run 12). It never modifies the model it is given: it trains a copy.

Which layers train (``CalibConfig.layers``):

- ``"head"``: the classifier head only (EEGMamba: ``classifier``, the LayerNorm + linear head on the
  class token; EEGM2: ``head``). Everything before it is frozen in eval mode, so its output for a
  window never changes: it is computed once and cached, and an epoch costs milliseconds.
- ``"last"``: the last ``n_last`` BiMamba blocks (and their MoE blocks) + the head (EEGMamba only).
  The frozen prefix (ST-adaptive tokenizer and the earlier blocks) is cached the same way.
- ``"all"``: every parameter (BatchNorm statistics adapt too); the most expensive.

Frozen BatchNorm layers stay in eval mode (their running statistics are those of the trained
model). The frozen prefix is cached (``eegmamba.training.frozen_prefix``) and checked against the
model's own forward on a few windows (parity to 1e-4); if a future model change breaks the
equivalence the cache is not used (``info["cached"]``).

Splits (our choices; the papers do not calibrate):

- ``holdout``: whole trials (``groups``: one id per window, e.g. the cue onset) held out to compare
  the new model with the one given (``before`` / ``after``), chronologically per class: the last
  ``val_frac`` of each class's trials. They are used for nothing else, so the comparison that
  decides a live hot-swap is unbiased. ``val_frac=0`` (or an explicit ``holdout``) skips it.
- early stopping: on an inner split of the remaining trials (the last ``es_frac`` of each class's
  trials, same rule), best epoch by validation loss, ``patience`` epochs. With too few trials
  (fewer than 2 per class) training runs a fixed ``epochs``.

Windows overlapping between trials cannot happen for cue-aligned windows (a labelled window lies
inside one cue); windows of one trial overlap each other, which is why splits are by trial.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from eegmamba._checks import UserInputError
from eegmamba.training.engine.loop import Engine, TaskData
from eegmamba.training.engine.predict import predict_logits
from eegmamba.training.engine.recipe import Recipe
from eegmamba.training.frozen_prefix import (PrefixCache, cache_matches, set_train_mode,
                                              trainable)

LAYERS = ("head", "last", "all")


@dataclass(frozen=True)
class CalibConfig:
    """Fine-tuning settings.

    layers : ``head | last | all`` (module docstring); n_last : blocks trained with ``last``
    lr, weight_decay : AdamW (paper's values: 2e-4, 1e-6); batch_size : windows per step
    epochs : maximum epochs; patience : epochs without a better inner-validation loss before stopping
    val_frac : fraction of each class's trials held out for the before/after comparison (0: none)
    es_frac : fraction of each class's remaining trials for early stopping
    seed : shuffling and the head's dropout
    recipe : the engine recipe to fine-tune by (None: :meth:`engine_recipe`, the fields above on the
        project's recipe)
    """

    layers: str = "last"
    n_last: int = 1
    lr: float = 2e-4
    weight_decay: float = 1e-6
    batch_size: int = 32
    epochs: int = 40
    patience: int = 6
    val_frac: float = 0.25
    es_frac: float = 0.2
    seed: int = 0
    recipe: Recipe | None = None

    def engine_recipe(self) -> Recipe:
        """The recipe of this calibration: ``recipe`` if given, else the project's recipe with this
        config's lr, weight decay, batch, epochs, patience and seed, validated once per epoch (an
        epoch is a few steps here) and selected on the validation loss (the inner split holds a
        handful of trials, where accuracy moves in large steps), without autocast."""
        if self.recipe is not None:
            return self.recipe
        return Recipe(lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size,
                      epochs=self.epochs, patience=self.patience, seed=self.seed, evals_per_epoch=1,
                      select="val_loss", amp=False)

    def __post_init__(self) -> None:
        if isinstance(self.recipe, dict):  # from a job file (the live calibration worker)
            object.__setattr__(self, "recipe", Recipe.from_dict(self.recipe, "calibration recipe"))
        if self.layers not in LAYERS:
            raise UserInputError(f"layers must be one of {', '.join(LAYERS)}, got {self.layers!r}")
        for name in ("n_last", "batch_size", "epochs", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserInputError(f"calibration {name} must be an integer >= 1, got {v!r}")
        for name in ("lr", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise UserInputError(f"calibration {name} must be a finite number >= 0, got {v!r}")
        for name in ("val_frac", "es_frac"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise UserInputError(f"calibration {name} must be in [0, 1), got {v!r}")


@dataclass
class CalibResult:
    """What ``finetune`` returns.

    model : the fine-tuned copy (eval mode, on the device it was trained on)
    before, after : metrics on the held-out trials of the given and of the new model (``acc``,
        ``balanced_acc``, ``loss`` (mean cross-entropy), ``n`` windows, ``n_trials``), or None
    history : per epoch ``{"epoch", "train_loss", "val_loss"?, "val_acc"?, "seconds"}``
    train_trials, es_trials, holdout_trials : the trial ids in each part
    info : layers, n_trainable, cached, seconds, n_windows per part, stopped_early, best_epoch
    """

    model: nn.Module
    before: dict | None
    after: dict | None
    history: list[dict] = field(default_factory=list)
    train_trials: list = field(default_factory=list)
    es_trials: list = field(default_factory=list)
    holdout_trials: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        """True when the new model beats the given one on the held-out trials: higher balanced
        accuracy, or the same and a lower cross-entropy. False without held-out trials."""
        if self.before is None or self.after is None:
            return False
        b, a = self.before, self.after
        if a["balanced_acc"] != b["balanced_acc"]:
            return a["balanced_acc"] > b["balanced_acc"]
        return a["loss"] < b["loss"]

    def summary(self) -> str:
        """One line: before → after on the held-out trials."""
        if self.before is None:
            return f"fine-tuned ({self.info.get('layers')}), no held-out trials to compare"
        b, a = self.before, self.after
        return (f"held-out {b['n_trials']} trials / {b['n']} windows: balanced acc "
                f"{b['balanced_acc']:.1%} -> {a['balanced_acc']:.1%}, acc {b['acc']:.1%} -> "
                f"{a['acc']:.1%}, loss {b['loss']:.3f} -> {a['loss']:.3f}")


def split_trials(groups: np.ndarray, y: np.ndarray, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the last ``frac`` of each class's trials (order of first appearance = time order).

    groups : (N,) trial id per window; y : (N,) class per window (one class per trial).
    Returns boolean masks ``(keep, held_out)`` over windows. A class with fewer than 2 trials keeps
    them all; ``held_out`` is all False when ``frac`` is 0 or nothing could be held out.
    """
    groups, y = np.asarray(groups), np.asarray(y)
    held = np.zeros(len(y), dtype=bool)
    if frac <= 0:
        return ~held, held
    _, first = np.unique(groups, return_index=True)
    order = groups[np.sort(first)]
    for k in np.unique(y):
        trials = [g for g in order if np.any((groups == g) & (y == k))]
        if len(trials) < 2:
            continue
        n_out = min(max(1, int(round(frac * len(trials)))), len(trials) - 1)
        held |= np.isin(groups, trials[-n_out:])
    return ~held, held


def _trials(groups: np.ndarray, mask: np.ndarray) -> list:
    _, first = np.unique(groups[mask], return_index=True)
    return [g.item() if hasattr(g, "item") else g for g in groups[mask][np.sort(first)]]


def _metrics(logits: torch.Tensor, y: np.ndarray, groups: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    yt = torch.from_numpy(y)
    pred = logits.argmax(1).numpy()
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected here
        warnings.simplefilter("ignore", UserWarning)
        bal = float(balanced_accuracy_score(y, pred))
    return {"acc": float((pred == y).mean()), "balanced_acc": bal,
            "loss": float(F.cross_entropy(logits, yt)), "n": int(len(y)),
            "n_trials": int(len(np.unique(groups)))}


def _logits(model: nn.Module, X: np.ndarray, task: str | None, device: torch.device,
            batch: int) -> torch.Tensor:
    return predict_logits(model, X, task, device, batch)


def finetune(model: nn.Module, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, *,
             task: str | None = None, config: CalibConfig = CalibConfig(),
             holdout: np.ndarray | None = None, device: str | torch.device = "cpu",
             on_epoch: Callable[[dict], bool | None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> CalibResult:
    """Fine-tune a copy of ``model`` on labelled windows of one subject.

    Parameters
    ----------
    model : a trained EEGMamba (or EEGM2 classifier); not modified
    X : ndarray, shape (N, C, T), float32, windows as the profile normalises them (what the model
        was trained on); y : ndarray, shape (N,), int64, class indices in the model's order
    groups : ndarray, shape (N,), trial id per window (default: every window its own trial)
    task : the model's task name (default: its only task)
    config : CalibConfig
    holdout : boolean mask (N,) of the windows held out for before/after (default: by
        ``config.val_frac``, see ``split_trials``)
    device : where to train
    on_epoch : called with each epoch's record; returning True stops training (like ``should_stop``)
    should_stop : polled between steps; True stops training (the best weights so far are kept)

    Returns a :class:`CalibResult`. Raises ``UserInputError`` for unusable data (shapes, one class
    only, too few windows).
    """
    t0 = time.perf_counter()
    cfg = config
    device = torch.device(device)
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 3 or y.shape != (len(X),):
        raise UserInputError(f"calibration needs X (N, C, T) and y (N,), got {X.shape} and {y.shape}")
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    if groups.shape != y.shape:
        raise UserInputError(f"groups must give one trial id per window: {groups.shape} vs {y.shape}")
    n_classes = _n_classes(model, task)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise UserInputError(f"labels must be class indices in [0, {n_classes}), got {sorted(set(y))}")
    if len(np.unique(y)) < 2:
        raise UserInputError(f"calibration needs windows of at least two classes, got "
                             f"{len(y)} window(s) of class(es) {sorted(set(y.tolist()))}")

    if holdout is None:
        keep, held = split_trials(groups, y, cfg.val_frac)
    else:
        held = np.asarray(holdout, dtype=bool)
        keep = ~held
    k2, e2 = split_trials(groups[keep], y[keep], cfg.es_frac)
    train_mask = np.zeros(len(y), bool)
    es_mask = np.zeros(len(y), bool)
    train_mask[np.flatnonzero(keep)[k2]] = True
    es_mask[np.flatnonzero(keep)[e2]] = True
    if len(np.unique(y[train_mask])) < 2:
        raise UserInputError("too few calibration trials: the training part holds one class only "
                             f"({int(train_mask.sum())} windows); record more trials")

    new = copy.deepcopy(model).to(device)
    train_mods, cut = trainable(new, cfg.layers, cfg.n_last)
    n_trainable = sum(p.numel() for p in new.parameters() if p.requires_grad)
    before = None
    if held.any():
        before = _metrics(_logits(model, X[held], task, next(model.parameters()).device,
                                  cfg.batch_size).cpu(), y[held], groups[held])

    cache = PrefixCache(new, cut, task) if cut is not None else None
    Z = None
    if cache is not None:
        new.eval()
        Z = cache.capture(X, device, cfg.batch_size)
        if not cache_matches(cache, new, X, Z, task, device):
            cache, Z = None, None
    torch.manual_seed(cfg.seed)
    tr_idx, es_idx = np.flatnonzero(train_mask), np.flatnonzero(es_mask)
    data = Z if cache is not None else X
    feed: dict = {}  # the cached-prefix runner, set once its context is entered

    def forward(m, xb, _task):
        return feed["run"](xb) if cache is not None else m(xb, task=task)

    def part(idx: np.ndarray) -> TaskData:
        return TaskData(data[torch.from_numpy(idx)] if cache is not None else X[idx], y[idx])

    recipe = cfg.engine_recipe()
    engine = Engine(new, {task: part(tr_idx)}, {task: part(es_idx)} if len(es_idx) else None, recipe,
                    device, forward=forward, train_mode=lambda m: set_train_mode(m, train_mods),
                    aux=cfg.layers != "head", on_epoch_end=(lambda e, rec: on_epoch(rec)) if on_epoch
                    else None, should_stop=should_stop, interrupt="return",
                    n_classes={task: n_classes})
    ctx = cache.feeding(X.shape) if cache is not None else contextlib.nullcontext(None)
    with ctx as run:
        feed["run"] = run
        fit = engine.fit()
    new.load_state_dict(fit.best_state)
    new.eval()
    for p in new.parameters():
        p.requires_grad_(False)
    after = None
    if held.any():
        after = _metrics(_logits(new, X[held], task, device, cfg.batch_size), y[held], groups[held])
    info = {"layers": cfg.layers, "n_last": cfg.n_last if cfg.layers == "last" else None,
            "n_trainable": int(n_trainable), "cached": cache is not None, "best_epoch": fit.best_epoch,
            "epochs_run": len(fit.history), "stopped_early": fit.stopped_early,
            "interrupted": fit.interrupted, "fit": fit.summary(), "recipe": recipe.to_dict(),
            "n_train": int(train_mask.sum()), "n_es": int(es_mask.sum()), "n_holdout": int(held.sum()),
            "config": asdict(cfg), "seconds": round(time.perf_counter() - t0, 2)}
    return CalibResult(new, before, after, fit.history, _trials(groups, train_mask),
                       _trials(groups, es_mask), _trials(groups, held), info)


def _n_classes(model: nn.Module, task: str | None) -> int:
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "task"):
        try:
            return int(cfg.task(task).n_classes) if task else int(cfg.tasks[0].n_classes)
        except (AttributeError, IndexError, TypeError):
            pass
    if cfg is not None and hasattr(cfg, "n_classes"):
        return int(cfg.n_classes)
    raise UserInputError(f"cannot tell the number of classes of {type(model).__name__}")


def window_trials(files: np.ndarray, t_start: np.ndarray, profile) -> np.ndarray:
    """Trial id per window of a ``WindowSet``: ``"<file>@<onset s>"`` of the labelled annotation
    (cue) the window starts in, so that splits keep a cue's overlapping windows together.

    files, t_start : the window set's ``files`` and ``t_start`` (seconds from the file's start).
    A window in no labelled annotation gets ``"<file>@?<t_start>"`` (its own trial).
    """
    from eegmamba.data.labels import class_of
    from eegmamba.data.readers import read_recording
    from eegmamba.profiles import IGNORE

    files, t_start = np.asarray(files), np.asarray(t_start, dtype=np.float64)
    out = np.empty(len(files), dtype=object)
    for f in sorted(set(files.tolist())):
        rec = read_recording(f, profile)
        cues = sorted((o, o + d) for o, d, desc in rec.annotations
                      if d > 0 and class_of(desc, rec.run, profile) not in (None, IGNORE))
        onsets = np.array([c[0] for c in cues])
        for i in np.flatnonzero(files == f):
            k = int(np.searchsorted(onsets, t_start[i] + 1e-9, side="right")) - 1
            inside = k >= 0 and t_start[i] < cues[k][1]
            out[i] = f"{f}@{onsets[k]:.3f}" if inside else f"{f}@?{t_start[i]:.3f}"
    return out.astype(str)

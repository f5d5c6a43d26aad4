"""The one fit loop. Every trainer of the project (``eegmamba-train``, the protocols' arms, subject
calibration offline and live, EEGM2 fine-tuning and pretraining, EEGNet) runs :class:`Engine`.

One optimiser step::

    batch (seeded sampler; class-balanced pool if asked) → augment(x, y, gen) (train only)
    → loss_step(model, x, y, task, gen) (default: label-smoothed, optionally class-weighted
    cross-entropy + the MoE auxiliary loss) → backward → clip → AdamW at the scheduled rate
    → after_step(model) (e.g. EEGNet's max-norm) → EMA update
    every k steps and at each epoch's end: validate the EMA weights, select on the recipe's metric,
    stop after ``patience`` epochs' worth of steps without improvement.

Batches come from ``DynamicSampler`` (one task per step, the paper's multi-task rule; with one task
a seeded permutation per epoch), the per-step generator from ``(seed, step)``: a resumed run
continues at the same step with the same batches, augmentations and masks. The state
(``state_path``) is written at every epoch's end and when a stop is requested (Ctrl-C); with
``interrupt="raise"`` the loop then raises ``KeyboardInterrupt``, with ``"return"`` it returns the
best weights so far (calibration in a worker thread).
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from eegmamba._interrupt import StopFlag
from eegmamba.training.distributed import DistInfo, all_reduce_sum, any_flag, broadcast_buffers, shard
from eegmamba.training.engine.classify import validate_classification
from eegmamba.training.engine.data import (FitResult, TaskData, class_weights, effective_batch,
                                           steps_per_epoch)
from eegmamba.training.engine.ema import EMA
from eegmamba.training.engine.optim import build_optimizer, set_lr
from eegmamba.training.engine.predict import to_batch
from eegmamba.training.engine.recipe import Recipe
from eegmamba.training.engine.state import engine_state, load_engine_state
from eegmamba.training.sampling import DynamicSampler

__all__ = ["Engine", "FitResult", "TaskData", "effective_batch", "steps_per_epoch", "class_weights"]

Augment = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _core(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _call(model: nn.Module, xb: torch.Tensor, task) -> torch.Tensor:
    return model(xb) if task is None else model(xb, task=task)


class Engine:
    """Fit ``model`` on ``train`` (task name → :class:`TaskData`; name None for a model without
    tasks), validating on ``val`` (None: no validation; the last weights are the result).

    Hooks (all optional): ``forward(model, x, task) -> logits`` (default ``model(x, task=task)``);
    ``loss_step(model, x, y, task, gen) -> (loss, {part: float})`` replaces forward + the default
    loss (self-supervised training); ``validate(engine) -> {"val_…": float}`` replaces the default
    classification validation; ``augment(x (B,C,T), y (B,), gen) -> (x, y)`` (or a dict task →
    such a callable or None); ``after_step(core)``;
    ``train_mode(core)`` (default ``core.train()``); ``on_epoch_end(epoch, record) -> bool`` and
    ``should_stop() -> bool`` request a stop; ``on_step(step, parts)`` sees each step's loss parts;
    ``progress`` an object with ``start_epoch``,
    ``advance``, ``end_epoch`` (default: a rich bar on ``console``). ``aux``: add the model's MoE
    auxiliary loss. ``stop_at_step``: end after that many steps though the schedule is planned for
    the whole recipe (a refit that replays the selected length). ``initial_eval``: validate once
    before training (history epoch 0).
    """

    def __init__(self, model: nn.Module, train: dict, val: dict | None, recipe: Recipe,
                 device: torch.device | str = "cpu", *, dist: DistInfo = DistInfo(),
                 state_path: str | Path | None = None, console=None, label: str = "",
                 forward=None, loss_step=None, validate=None, augment: Augment | None = None,
                 after_step=None, train_mode=None, on_epoch_end=None, should_stop=None,
                 interrupt: str = "raise", progress=None, aux: bool = True,
                 stop_at_step: int = 0, initial_eval: bool = False, n_classes: dict | None = None,
                 on_step=None) -> None:
        self.recipe, self.device, self.dist, self.label = recipe, torch.device(device), dist, label
        self.train, self.val = train, val
        self.state_path = Path(state_path) if state_path else None
        self.console, self.progress = console, progress
        self.forward = forward or _call
        self.loss_step = loss_step or self._classification_step
        self.validate_fn, self.augment, self.after_step = validate, augment, after_step
        self.train_mode = train_mode or (lambda m: m.train())
        self.on_epoch_end, self.should_stop, self.interrupt = on_epoch_end, should_stop, interrupt
        self.aux, self.stop_at_step, self.initial_eval = aux, stop_at_step, initial_eval
        self.on_step = on_step
        self.core = model.to(self.device)
        self.model = self.core
        if dist.enabled:
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            cfg = getattr(self.core, "config", None)
            # MoE routing and per-task heads leave some parameters without gradient in a step
            unused = bool(getattr(cfg, "use_moe", False)) or len(getattr(cfg, "tasks", ())) > 1
            self.model = nn.parallel.DistributedDataParallel(self.core, device_ids=ids,
                                                             find_unused_parameters=unused)
        self.refs = self.core.state_dict(keep_vars=True)  # before any calibration stub
        self.opt = build_optimizer(self.core, recipe, self.device)
        self.ema = EMA(self.core, recipe.ema) if recipe.ema > 0 else None
        sizes = {k: len(v.X) for k, v in train.items()}
        self.batch_size, note = effective_batch(recipe, sizes)
        self.notes = [note] if note else []
        self.sampler = DynamicSampler(sizes, self.batch_size, recipe.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch()
        total = recipe.epochs * self.steps_per_epoch
        self.total_steps = min(total, recipe.max_steps) if recipe.max_steps else total
        self.eval_every = recipe.eval_every or math.ceil(self.steps_per_epoch / recipe.evals_per_epoch)
        self.amp = recipe.amp and self.device.type == "cuda"
        self.weights = self._class_weights(n_classes or {})
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.partial: dict[str, float] = {}
        self.skipped = 0
        self.result = FitResult(notes=list(self.notes), batch_size=self.batch_size,
                                steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps)
        self.last_eval: dict = {}
        self.lr = recipe.lr
        for n in self.notes:
            self._say(f"[yellow]note:[/] {label + ': ' if label else ''}{n}")

    # --- helpers -------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def _class_weights(self, n_classes: dict) -> dict:
        if self.recipe.balance != "loss":
            return {}
        out = {}
        for task, d in self.train.items():
            k = n_classes.get(task) or int(np.max(d.y)) + 1
            out[task] = class_weights(np.asarray(d.y), k).to(self.device)
        return out

    def _classification_step(self, model, xb, yb, task, gen):
        logits = self.forward(model, xb, task)
        ce = F.cross_entropy(logits.float(), yb, weight=self.weights.get(task),
                             label_smoothing=self.recipe.label_smoothing)
        core = _core(model)
        aux_t = getattr(core, "last_aux_loss", None)
        w = float(getattr(getattr(core, "config", None), "aux_loss_weight", 0.0) or 0.0)
        aux = w * aux_t.float() if (self.aux and aux_t is not None and w) else None
        total = ce if aux is None else ce + aux
        parts = getattr(core, "last_aux_parts", None) or {}
        return total, {"loss": float(total.detach()), "ce": float(ce.detach()),
                       "aux": 0.0 if aux is None else float(aux.detach()),
                       "aux_balance": float(parts.get("balance", 0.0)) if aux is not None else 0.0,
                       "aux_z": float(parts.get("z", 0.0)) if aux is not None else 0.0}

    def snapshot(self) -> dict:
        """The weights that are validated and kept (EMA weights if any), cloned to the CPU."""
        out = {k: v.detach().cpu().clone() for k, v in self.refs.items()}
        if self.ema is not None:
            out.update({k: v.detach().cpu().clone() for k, v in self.ema.shadow.items()})
        return out

    def eval_weights(self):
        """Context: the model holds the weights that are validated (the EMA's) inside the block."""
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()

    def _batches(self, epoch: int):
        """Steps of ``epoch``: ``(task, indices into that task's windows)``."""
        pools = {}
        if self.recipe.balance == "sampler":
            for i, (task, d) in enumerate(self.train.items()):
                y = np.asarray(d.y)
                counts = np.bincount(y)
                p = 1.0 / counts[y]
                rng = np.random.default_rng([self.recipe.seed, epoch, i, 17])
                pools[task] = rng.choice(len(y), size=len(y), replace=True, p=p / p.sum())
        for st in self.sampler.epoch(epoch):
            yield st.task, (pools[st.task][st.indices] if pools else st.indices)

    # --- state (engine/state.py) ---------------------------------------------------------------
    def state_dict(self) -> dict:
        return engine_state(self)

    def save_state(self) -> None:
        if self.state_path is not None and self.dist.is_main:
            tmp = self.state_path.with_suffix(".tmp")
            torch.save(self.state_dict(), tmp)
            tmp.replace(self.state_path)

    def load_state(self, path: str | Path) -> None:
        """Continue from a saved state (:func:`~eegmamba.training.engine.state.load_engine_state`)."""
        load_engine_state(self, path)

    @property
    def done(self) -> bool:
        limit = min(self.total_steps, self.stop_at_step) if self.stop_at_step else self.total_steps
        return self.epoch >= self.recipe.epochs or self.global_step >= limit

    # --- validation ----------------------------------------------------------------------------
    def validate(self) -> dict:
        """Validation metrics of the weights being kept (window-weighted over tasks)."""
        core = self.core
        broadcast_buffers(core, self.dist)  # every rank validates the same weights and statistics
        with self.eval_weights():
            if self.validate_fn is not None:
                rec = self.validate_fn(self)
            else:
                rec = validate_classification(self.core, self.val, self.forward, self.device,
                                              max(self.batch_size, 64), self.amp)
        self.train_mode(core)
        return rec

    def _evaluate(self) -> None:
        rec = {"epoch": round(self.epoch + self.step / self.steps_per_epoch, 4),
               "step": self.global_step, "lr": self.lr, **self.validate()}
        self.result.evals.append(rec)
        self.last_eval = {k: v for k, v in rec.items() if k.startswith("val_")}
        r, key = self.result, self.recipe.select_key
        score = rec.get(key, math.nan)
        if r.best_score is None or self._better(score, rec.get("val_loss", math.nan), r.best_score):
            r.best_score = None if not math.isfinite(score) else float(score)
            r.best_step, r.best_epoch = self.global_step, self.epoch + 1
            r.best_loss = rec.get("val_loss", math.nan)
            r.best_state = self.snapshot()

    def _evaluate_and_check(self, patience: int) -> bool:
        """Validate; True (and ``stopped_early``) when patience has run out."""
        self._evaluate()
        if self.global_step - self.result.best_step >= patience:
            self.result.stopped_early = True
        return self.result.stopped_early

    def _better(self, score: float, loss: float, best: float) -> bool:
        if not math.isfinite(score):
            return False
        hi = self.recipe.higher_is_better
        if (score > best + 1e-9) if hi else (score < best - 1e-6):
            return True
        tie = hi and abs(score - best) <= 1e-9
        return tie and loss < self.result.best_loss - 1e-6

    # --- loop ----------------------------------------------------------------------------------
    def _train_step(self, task, idx: np.ndarray) -> int:
        data = self.train[task]
        if self.dist.enabled and len(idx) < self.dist.world_size:
            idx = np.resize(idx, self.dist.world_size)  # pad a tiny last batch so no rank is empty
        idx = shard(idx, self.dist)
        xb = to_batch(data.X, idx, self.device)
        yb = None if data.y is None else torch.from_numpy(np.asarray(data.y)[idx]).to(self.device)
        gen = torch.Generator().manual_seed(self.recipe.seed * 1_000_003 + self.global_step)
        augment = self.augment.get(task) if isinstance(self.augment, dict) else self.augment
        if augment is not None:
            xb, yb = augment(xb, yb, gen)
        self.lr = set_lr(self.opt, self.recipe, self.global_step, self.total_steps)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            loss, parts = self.loss_step(self.model, xb, yb, task, gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.clip:
            nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                     self.recipe.clip)
        self.opt.step()
        if self.after_step is not None:
            self.after_step(self.core)
        if self.ema is not None:
            self.ema.update()
        n = len(idx)
        if self.on_step is not None:
            self.on_step(self.global_step, parts)
        for k, v in parts.items():
            self.partial[k] = self.partial.get(k, 0.0) + v * n
        self.partial["n"] = self.partial.get("n", 0.0) + n
        return n

    def fit(self) -> FitResult:
        """Train (module docstring). Raises ``KeyboardInterrupt`` after saving the state when a stop
        was requested and ``interrupt == "raise"``."""
        from eegmamba.training.progress import TrainProgress

        prog = self.progress
        own = prog is None
        if own:
            prog = TrainProgress(self.console, self.label, self.steps_per_epoch, self.recipe.epochs)
            prog.__enter__()
        try:
            with StopFlag() as stop:
                self._run(stop, prog)
        finally:
            if own:
                prog.__exit__(None, None, None)
        r = self.result
        if r.best_state is None:  # no validation (or only NaN scores): the last weights
            r.best_state, r.best_step, r.best_epoch = self.snapshot(), self.global_step, self.epoch
        return r

    def _stop(self, stop) -> bool:
        """True when the loop must end now; raises in ``interrupt="raise"`` mode after saving."""
        requested = stop.requested or (self.should_stop is not None and self.should_stop())
        if not any_flag(requested, self.dist):
            return False
        self.save_state()
        if self.interrupt == "raise":
            raise KeyboardInterrupt
        self.result.interrupted = True
        return True

    def _run(self, stop, prog) -> None:
        if self.initial_eval and not self.result.history and (self.val is not None or self.validate_fn):
            v = self.validate()
            self.result.history.append({"epoch": 0, "step": 0, "lr": self.lr, "seconds": 0.0, **v})
        self.train_mode(self.core)
        has_val = self.val is not None or self.validate_fn is not None
        patience = self.recipe.patience * self.steps_per_epoch
        while not self.done:
            t0, seen = time.perf_counter(), 0
            prog.start_epoch(self.epoch + 1, self.step)
            ended = False
            for k, (task, idx) in enumerate(self._batches(self.epoch)):
                if k < self.step:
                    continue  # resumed mid-epoch: these steps were done before
                if self.done:
                    ended = True
                    break
                if len(idx) < 2:  # BatchNorm cannot train on one window; counted, seen next epoch
                    self.skipped += len(idx)
                    self.step = k + 1
                    continue
                n = self._train_step(task, idx)
                self.step, self.global_step = k + 1, self.global_step + 1
                seen += n * self.dist.world_size
                prog.advance(self.partial.get("loss", self.partial.get("total", 0.0)) /
                             max(self.partial["n"], 1), seen / max(time.perf_counter() - t0, 1e-9))
                if self._stop(stop):
                    return self._finish_interrupted(has_val, t0, prog)
                if has_val and self.step % self.eval_every == 0 and self.step < self.steps_per_epoch:
                    if self._evaluate_and_check(patience):
                        ended = True
                        break
            if has_val and not self.result.stopped_early:
                if self.result.evals[-1:] and self.result.evals[-1]["step"] == self.global_step:
                    pass  # validated at this very step already
                elif self.global_step > 0:
                    self._evaluate_and_check(patience)
            self._end_epoch(time.perf_counter() - t0, prog)
            if self.on_epoch_end is not None and self.on_epoch_end(self.epoch, self.result.history[-1]):
                stop.requested = True
            self.save_state()
            if self.result.stopped_early:
                return
            if self._stop(stop):
                return

    def _finish_interrupted(self, has_val: bool, t0: float, prog) -> None:
        """A stop in ``return`` mode: validate where the loop stopped and close the epoch."""
        if has_val and not (self.result.evals and self.result.evals[-1]["step"] == self.global_step):
            self._evaluate()
        self._end_epoch(time.perf_counter() - t0, prog)

    def _end_epoch(self, seconds: float, prog) -> None:
        broadcast_buffers(self.core, self.dist)
        keys = sorted(k for k in self.partial if k != "n")
        sums = all_reduce_sum([self.partial[k] for k in keys] + [self.partial.get("n", 0.0)], self.dist)
        n = max(sums[-1], 1)
        record = {"epoch": self.epoch + 1, "step": self.global_step, "lr": self.lr,
                  **{f"train_{k}": v / n for k, v in zip(keys, sums[:-1])},
                  "seconds": seconds, **self.last_eval}
        if self.skipped:
            record["skipped_windows"] = self.skipped
        self.result.history.append(record)
        self.epoch, self.step, self.partial, self.skipped = self.epoch + 1, 0, {}, 0
        prog.end_epoch(record)

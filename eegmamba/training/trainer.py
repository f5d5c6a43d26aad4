"""``Trainer``: the multi-task EEGMamba fit of ``eegmamba-train`` on the one engine
(``eegmamba.training.engine``): dynamic multi-task sampling (paper, Appendix E.4), the recipe's
AdamW / schedule / clipping / label smoothing / EMA, validation several times per epoch, selection
on the recipe's metric, AMP on CUDA, DDP, resume.

The loss is cross-entropy (label-smoothed per the recipe) plus ``config.aux_loss_weight *
model.last_aux_loss`` (the MoE auxiliary loss). The history logs both parts: per epoch
``train_loss`` (the total that was minimised) = ``train_ce`` + ``train_aux`` (the weighted auxiliary
term), with the unweighted MoE parts ``train_aux_balance`` and ``train_aux_z``; ``val_loss`` is
plain cross-entropy of the validated (EMA) weights.

Paper (Appendix E.5): AdamW, learning rate 2e-4, weight decay 1e-6, batch 128, 100 epochs: that is
``Recipe.paper()``; the default recipe is the modern one (``engine.recipe``).

Resumable state (``state.pt``) is written at the end of every epoch and when a stop is requested
(Ctrl-C): the SIGINT handler only sets a flag, the loop finishes the current step, saves the state
at that step and raises ``KeyboardInterrupt``. Batches come from a seeded sampler, so a resumed run
continues at the same step with the same batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from eegmamba.device import resolve_device  # noqa: F401  (re-exported; home: eegmamba.device)
from eegmamba.training.distributed import DistInfo
from eegmamba.training.engine.loop import Engine, FitResult, TaskData
from eegmamba.training.engine.optim import build_optimizer
from eegmamba.training.engine.predict import predict_proba as _predict_proba
from eegmamba.training.engine.recipe import Recipe

__all__ = ["TrainConfig", "TaskData", "FitResult", "Trainer", "predict_proba", "resolve_device",
           "seed_everything", "make_optimizer"]


#: The training settings of ``eegmamba-train`` are the engine's recipe (modern defaults; the paper's
#: values are ``Recipe.paper()``). The old name stays for callers and saved code.
TrainConfig = Recipe


def seed_everything(seed: int) -> None:
    """Seed torch and ask for deterministic kernels (CPU runs repeat bit for bit)."""
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def make_optimizer(core: nn.Module, cfg: Recipe, device: torch.device) -> torch.optim.AdamW:
    """The recipe's AdamW (``engine.optim.build_optimizer``)."""
    return build_optimizer(core, cfg, device)


def predict_proba(model: nn.Module, X: np.ndarray, task: str, device: torch.device,
                  batch_size: int = 128) -> np.ndarray:
    """Softmax probabilities ``(N, n_classes)`` float64 for windows ``X (N, C, T)`` (eval mode);
    ``engine.predict.predict_proba``."""
    return _predict_proba(model, X, task, device, batch_size)


class Trainer(Engine):
    """Fit ``model`` on ``train`` (task → TaskData), selecting on ``val`` (or a fixed epoch count
    when ``val`` is None), with the one engine (``eegmamba.training.engine``). ``state_path``: where
    the resumable state is written (rank 0). ``console``: a rich Console for the progress bar (None:
    no progress). ``on_epoch_end(epoch, record)`` may return True to request a stop (as Ctrl-C does).
    Extra keyword arguments (``augment``, ``stop_at_step``…) go to :class:`Engine`."""

    def __init__(self, model: nn.Module, train: dict[str, TaskData], val: dict[str, TaskData] | None,
                 cfg: Recipe, device: torch.device, dist: DistInfo = DistInfo(),
                 state_path: str | Path | None = None, console=None, label: str = "",
                 on_epoch_end: Callable[[int, dict], bool] | None = None, **kw) -> None:
        super().__init__(model, train, val, cfg, device, dist=dist, state_path=state_path,
                         console=console, label=label, on_epoch_end=on_epoch_end,
                         n_classes=_task_classes(model), **kw)
        self.cfg = cfg


def _task_classes(model: nn.Module) -> dict:
    cfg = getattr(model, "config", None)
    try:
        return {t.name: int(t.n_classes) for t in cfg.tasks}
    except (AttributeError, TypeError):
        return {}

"""EEGNet-8,2 — our implementation from the paper (Lawhern et al., 2018, J. Neural Eng. 15:056013,
"EEGNet: a compact convolutional neural network for EEG-based brain-computer interfaces").

Written by us from the paper's Section 2.2 and Table 2, not copied from braindecode (braindecode
1.8 does not import with torch 2.13 here: it needs torchaudio, whose newest wheel, 2.11.1, fails to
load its C extension against torch 2.13) or from the authors' Keras code.

Blocks (Table 2; F1 = 8 temporal filters, D = 2 spatial filters each, F2 = D * F1 = 16):

1. temporal conv ``(1, K1)``, "same" padding, no bias → BatchNorm → depthwise spatial conv ``(C, 1)``
   with depth D, no bias, max-norm 1 per spatial filter → BatchNorm → ELU → average pool ``(1, 4)``
   → dropout;
2. separable conv: depthwise ``(1, K2)`` ("same") then pointwise to F2 maps, no bias → BatchNorm →
   ELU → average pool ``(1, 8)`` → dropout;
3. flatten → dense to the classes with max-norm 0.25 (softmax in the loss / ``predict_proba``).

The paper's kernel lengths are for 128 Hz data: K1 = 64 = half the sampling rate ("captures 2 Hz and
above") and K2 = 16 = 500 ms at the 32 Hz after the first pooling. At our 200 Hz we keep those
durations: K1 = 100 samples, K2 = 25 (500 ms at 50 Hz); pooling stays (1, 4) and (1, 8) as in the
paper. Dropout: 0.25 cross-subject, 0.5 within-subject (the paper's two settings).

Training (paper, Section 2.2.1): Adam with default parameters (lr 1e-3), cross-entropy, up to 500
epochs with "validation stopping" (keep the weights of the lowest validation loss): that is
``EEGNetTrainConfig.recipe()``. The batch size is not given in the paper; we use 64. Training runs
through the project's one engine (``fit_eegnet``), so EEGNet can also be trained by the project's
recipe. Max-norm constraints are applied after every optimiser step, as Keras does.

Registered as ``eegnet`` (``eegmamba.registry``): ``eegmamba-train --model eegnet`` trains it on a
profile's windows through the engine, and its checkpoint is served by ``eegmamba-live`` and
``eegmamba-eval`` like an EEGMamba one (the config carries the task: ``eegmamba.baselines.served``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from eegmamba.baselines.served import SingleTaskFields, check_task, single_task_config
from eegmamba.registry import register_variant


@dataclass(frozen=True)
class EEGNetConfig(SingleTaskFields):
    """Shapes and hyper-parameters (defaults: EEGNet-8,2 at 200 Hz, see module docstring); the task
    it serves (``task_name``, ``ch_names``, ``class_names``, keyword-only) as
    :class:`~eegmamba.baselines.served.SingleTaskFields`."""

    n_chans: int
    n_times: int
    n_outputs: int
    sfreq: float = 200.0
    f1: int = 8
    d: int = 2
    f2: int = 16
    kernel_s: float = 0.5  # temporal kernel: half a second (paper: half the sampling rate)
    sep_kernel_s: float = 0.5  # separable conv kernel, seconds at the rate after the first pool
    pool1: int = 4
    pool2: int = 8
    dropout: float = 0.25
    max_norm_spatial: float = 1.0
    max_norm_dense: float = 0.25

    def __post_init__(self) -> None:
        for f in ("n_chans", "n_times", "n_outputs", "f1", "d", "f2", "pool1", "pool2"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"EEGNetConfig.{f} must be a positive int, got {v!r}")
        if self.n_outputs < 2:
            raise ValueError(f"EEGNetConfig.n_outputs must be >= 2, got {self.n_outputs}")
        if self.n_times < self.pool1 * self.pool2:
            raise ValueError(f"EEGNetConfig.n_times must be >= {self.pool1 * self.pool2} samples "
                             f"(the two poolings), got {self.n_times}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"EEGNetConfig.dropout must be in [0, 1), got {self.dropout}")
        super().__post_init__()

    @property
    def k1(self) -> int:
        return max(1, round(self.kernel_s * self.sfreq))

    @property
    def k2(self) -> int:
        return max(1, round(self.sep_kernel_s * self.sfreq / self.pool1))


def _same_pad(x: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-pad the time axis so a ``k``-tap conv keeps the length (Keras "same": the extra sample
    of an even kernel goes to the right)."""
    return F.pad(x, ((k - 1) // 2, k // 2))


class EEGNet(nn.Module):
    """EEGNet (Lawhern et al., 2018) — our implementation from the paper (module docstring).

    ``forward(x, task=None)``: ``x : Tensor, shape (B, n_chans, n_times)`` → logits
    ``(B, n_outputs)``; ``task``, when given, must be the config's (as for a single-task EEGMamba).
    """

    def __init__(self, config: EEGNetConfig) -> None:
        super().__init__()
        c = self.config = config
        self.temporal = nn.Conv2d(1, c.f1, (1, c.k1), bias=False)  # "same" via _same_pad
        self.bn1 = nn.BatchNorm2d(c.f1)
        self.spatial = nn.Conv2d(c.f1, c.d * c.f1, (c.n_chans, 1), groups=c.f1, bias=False)
        self.bn2 = nn.BatchNorm2d(c.d * c.f1)
        self.pool1 = nn.AvgPool2d((1, c.pool1))
        self.sep_depth = nn.Conv2d(c.d * c.f1, c.d * c.f1, (1, c.k2), groups=c.d * c.f1, bias=False)
        self.sep_point = nn.Conv2d(c.d * c.f1, c.f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c.f2)
        self.pool2 = nn.AvgPool2d((1, c.pool2))
        self.drop = nn.Dropout(c.dropout)
        self.dense = nn.Linear(c.f2 * (c.n_times // c.pool1 // c.pool2), c.n_outputs)

    def forward(self, x: torch.Tensor, task: str | None = None) -> torch.Tensor:
        c = self.config
        check_task(c, task)
        if x.dim() != 3 or x.shape[1] != c.n_chans or x.shape[2] != c.n_times:
            raise ValueError(f"EEGNet expects input of shape (B, {c.n_chans}, {c.n_times}) "
                             f"(B, n_chans, n_times); got {tuple(x.shape)}")
        x = self.bn1(self.temporal(_same_pad(x.unsqueeze(1), c.k1)))  # (B, F1, C, T)
        x = self.drop(self.pool1(F.elu(self.bn2(self.spatial(x)))))  # (B, D*F1, 1, T/4)
        x = self.bn3(self.sep_point(self.sep_depth(_same_pad(x, c.k2))))  # (B, F2, 1, T/4)
        x = self.drop(self.pool2(F.elu(x)))  # (B, F2, 1, T/32)
        return self.dense(x.flatten(1))

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Project the spatial filters (norm <= 1) and dense rows (norm <= 0.25), as Keras does."""
        for w, limit in ((self.spatial.weight, self.config.max_norm_spatial),
                         (self.dense.weight, self.config.max_norm_dense)):
            flat = w.view(w.shape[0], -1)
            norms = flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
            flat.mul_(torch.clamp(limit / norms, max=1.0))


@register_variant("eegnet", EEGNet, EEGNetConfig)
def eegnet(tasks, **overrides) -> EEGNetConfig:
    """EEGNet-8,2 (Lawhern et al., 2018; our implementation), one task; dropout 0.25 (cross-subject)."""
    return single_task_config(EEGNetConfig, tasks, **overrides)


@dataclass(frozen=True)
class EEGNetTrainConfig:
    """The paper's optimisation of EEGNet (Adam defaults, validation stopping; batch and caps ours).
    ``recipe()`` is that as an engine recipe; pass a :class:`Recipe` to ``fit_eegnet`` instead to
    train EEGNet by the project's recipe (what the protocols do)."""

    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 100
    patience: int = 10
    seed: int = 0

    def recipe(self):
        """Adam at ``lr`` (AdamW without decay is Adam), constant rate, no clipping, smoothing or
        EMA, validation loss once per epoch."""
        from eegmamba.training.engine.recipe import Recipe

        return Recipe(lr=self.lr, batch_size=self.batch_size, epochs=self.epochs, patience=self.patience,
                      seed=self.seed, weight_decay=0.0, schedule="constant", warmup_frac=0.0, clip=0.0,
                      label_smoothing=0.0, ema=0.0, evals_per_epoch=1, select="val_loss",
                      min_steps_per_epoch=1)


def eegnet_proba(model: EEGNet, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(N, n_outputs)`` float64 for windows ``X (N, C, T)`` (eval mode);
    ``eegmamba.training.engine.predict.predict_proba``."""
    from eegmamba.training.engine.predict import predict_proba

    return predict_proba(model, X, None, batch_size=batch_size)


def fit_eegnet(model: EEGNet, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None,
               y_val: np.ndarray | None, cfg=EEGNetTrainConfig(), *, augment=None,
               device: str | torch.device = "cpu", console=None, label: str = "",
               state_path=None) -> dict:
    """Train ``model`` with the one engine (``eegmamba.training.engine``) and load the selected
    weights (the last ones when there is no validation set). The max-norm constraints are applied
    after every optimiser step. ``cfg``: an :class:`EEGNetTrainConfig` (the paper's Adam) or an
    engine ``Recipe``. Returns ``{"best_epoch", "epochs_run", "history", "fit", "evals"}`` (evals: one
    record per validation point).

    X, X_val : ndarray, shape (N, C, T), float32; y, y_val : ndarray, shape (N,), int64
    """
    from eegmamba.training.engine.loop import Engine, TaskData

    recipe = cfg.recipe() if isinstance(cfg, EEGNetTrainConfig) else cfg
    torch.manual_seed(recipe.seed)
    val = None if X_val is None or not len(X_val) else {None: TaskData(X_val, np.asarray(y_val, np.int64))}
    eng = Engine(model, {None: TaskData(np.ascontiguousarray(X), np.asarray(y, np.int64))}, val, recipe,
                 device, after_step=lambda m: m.apply_max_norm(), augment=augment, aux=False,
                 n_classes={None: model.config.n_outputs}, console=console, label=label,
                 state_path=state_path)
    if state_path is not None and Path(state_path).is_file():
        eng.load_state(state_path)
    fit = eng.fit()
    model.load_state_dict(fit.best_state)
    model.eval()
    return {"best_epoch": fit.best_epoch, "epochs_run": len(fit.history), "history": fit.history,
            "fit": fit.summary(), "evals": fit.evals}

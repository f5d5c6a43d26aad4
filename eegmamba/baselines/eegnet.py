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
epochs with "validation stopping" (keep the weights of the lowest validation loss). The batch size
is not given in the paper; we use 64. Max-norm constraints are applied after every optimiser step,
as Keras does.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class EEGNetConfig:
    """Shapes and hyper-parameters (defaults: EEGNet-8,2 at 200 Hz, see module docstring)."""

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

    ``forward(x)``: ``x : Tensor, shape (B, n_chans, n_times)`` → logits ``(B, n_outputs)``.
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
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


@dataclass(frozen=True)
class EEGNetTrainConfig:
    """Optimisation of EEGNet (paper: Adam defaults, validation stopping; batch and caps ours)."""

    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 100
    patience: int = 10
    seed: int = 0


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


@torch.no_grad()
def eegnet_proba(model: EEGNet, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(N, n_outputs)`` float64 for windows ``X (N, C, T)`` (eval mode)."""
    was = model.training
    model.eval()
    out = [torch.softmax(model(torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size]))), 1)
           for i in range(0, len(X), batch_size)]
    model.train(was)
    return torch.cat(out).double().numpy() if out else np.zeros((0, model.config.n_outputs))


def fit_eegnet(model: EEGNet, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None,
               y_val: np.ndarray | None, cfg: EEGNetTrainConfig = EEGNetTrainConfig()) -> dict:
    """Train ``model`` in place; keep the weights of the lowest validation loss (or the last epoch
    when there is no validation set). Returns ``{"best_epoch", "epochs_run", "history"}``.

    X, X_val : ndarray, shape (N, C, T), float32; y, y_val : ndarray, shape (N,), int64
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    history, bad = [], 0
    Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(np.asarray(y, np.int64))
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        tot, n = 0.0, 0
        for b in _batches(len(yt), cfg.batch_size, rng):
            if len(b) < 2:  # BatchNorm needs two windows in training mode
                continue
            loss = F.cross_entropy(model(Xt[b]), yt[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.apply_max_norm()
            tot, n = tot + float(loss.detach()) * len(b), n + len(b)
        rec = {"epoch": epoch, "train_loss": tot / max(n, 1)}
        if X_val is not None and len(X_val):
            p = eegnet_proba(model, X_val)
            rec["val_loss"] = float(-np.mean(np.log(np.clip(p[np.arange(len(y_val)), y_val], 1e-12, 1))))
            improved = rec["val_loss"] < best[0] - 1e-6
        else:
            improved = True
        history.append(rec)
        if improved:
            best, bad = (rec.get("val_loss", -math.inf), epoch, copy.deepcopy(model.state_dict())), 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best[2])
    model.eval()
    return {"best_epoch": best[1], "epochs_run": len(history), "history": history}

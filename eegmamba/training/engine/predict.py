"""The one batched inference helper: eval mode, no gradient, fixed-size batches, on any device.

Every consumer (fold evaluation, protocols' arms, calibration before/after, EEGM2 fine-tuning,
EEGNet, the pretraining reconstruction) calls :func:`map_batches` or one of its two wrappers.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn


def _core(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def to_batch(X, idx, device: torch.device) -> torch.Tensor:
    """Rows ``idx`` of ``X`` (ndarray or tensor, ``(N, ...)``) as a float tensor on ``device``."""
    if isinstance(X, torch.Tensor):
        return X[idx if isinstance(idx, slice) else torch.as_tensor(idx)].to(device)
    return torch.from_numpy(np.ascontiguousarray(X[idx])).to(device, non_blocking=True)


def model_device(model: nn.Module) -> torch.device:
    p = next(_core(model).parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def map_batches(model: nn.Module, X, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                device: torch.device | str | None = None, batch_size: int = 256,
                amp: bool = False) -> list[torch.Tensor]:
    """``fn(model, xb)`` for consecutive batches ``xb`` of ``X (N, ...)`` in eval mode (the model's
    mode is restored after); outputs moved to the CPU (half precision raised to float32).
    ``device`` default: the model's."""
    core = _core(model)
    device = model_device(core) if device is None else torch.device(device)
    was = core.training
    core.eval()
    out = []
    try:
        for i in range(0, len(X), batch_size):
            xb = to_batch(X, slice(i, i + batch_size), device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                o = fn(core, xb)
                out.append((o.float() if o.dtype in (torch.float16, torch.bfloat16) else o).cpu())
    finally:
        core.train(was)
    return out


def forward_task(task: str | None) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """``model(xb, task=task)``, or ``model(xb)`` when ``task`` is None (EEGNet has no tasks)."""
    if task is None:
        return lambda m, xb: m(xb)
    return lambda m, xb: m(xb, task=task)


def predict_logits(model: nn.Module, X, task: str | None = None, device=None, batch_size: int = 256,
                   n_classes: int | None = None, amp: bool = False) -> torch.Tensor:
    """Logits ``(N, n_classes)`` float32 on the CPU for windows ``X (N, C, T)``."""
    out = map_batches(model, X, forward_task(task), device, batch_size, amp)
    if out:
        return torch.cat(out).float()
    return torch.zeros((0, n_classes if n_classes is not None else _n_classes(model, task)))


def predict_proba(model: nn.Module, X, task: str | None = None, device=None,
                  batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(N, n_classes)`` float64 for windows ``X (N, C, T)`` (eval mode)."""
    return torch.softmax(predict_logits(model, X, task, device, batch_size), dim=1).double().numpy()


def _n_classes(model: nn.Module, task: str | None) -> int:
    cfg = getattr(_core(model), "config", None)
    for attr in ("n_outputs", "n_classes"):
        if hasattr(cfg, attr):
            return int(getattr(cfg, attr))
    if cfg is not None and hasattr(cfg, "task"):
        return int(cfg.task(task).n_classes)
    return 0

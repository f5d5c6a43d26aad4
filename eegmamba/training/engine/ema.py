"""An exponential moving average of a model's weights (Polyak averaging).

``shadow = d * shadow + (1 - d) * weights`` after every optimiser step, with the warm-up of
TensorFlow's ``ExponentialMovingAverage(num_updates)``: ``d = min(decay, (1 + n) / (10 + n))`` at
update ``n``, so a run of a few dozen steps averages its recent weights rather than staying at the
initial ones. Buffers (BatchNorm running statistics) are not averaged: the EMA weights are used
with the model's current buffers (as timm's ``ModelEmaV3`` does when it copies them); frozen
parameters never move and are not tracked.

The tensors are held by reference (``state_dict(keep_vars=True)`` taken at construction), so the
EMA keeps working while calibration swaps frozen modules for stubs.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn


class EMA:
    """Shadow weights of ``model``'s trainable parameters (on the model's device)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        refs = model.state_dict(keep_vars=True)
        params = {n for n, _ in model.named_parameters()}
        self.refs = {k: v for k, v in refs.items() if k in params and v.requires_grad}
        self.shadow = {k: v.detach().clone() for k, v in self.refs.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        d = self.current_decay()
        for k, v in self.refs.items():
            self.shadow[k].mul_(d).add_(v.detach(), alpha=1.0 - d)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self):
        """Within the block the model holds the EMA weights; its own weights come back after."""
        with torch.no_grad():
            backup = {k: v.detach().clone() for k, v in self.refs.items()}
            for k, v in self.refs.items():
                v.data.copy_(self.shadow[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in self.refs.items():
                    v.data.copy_(backup[k])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, s: dict) -> None:
        self.decay, self.updates = float(s["decay"]), int(s["updates"])
        for k, v in s["shadow"].items():
            self.shadow[k].copy_(v)

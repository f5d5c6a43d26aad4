"""EEGM2-encoder classifier for fine-tuning (paper Section 4.3 "EEGM2 (Fine)/(Light)", reworked).

``x (B, C, T) → EEGM2Encoder → (B, 4·base, T/8) → pooling over time → head → logits (B, n_classes)``.

Departures from the official ``Downstream.py``, each a fix of a bug listed in the design notes §6:

- The head is an ordinary submodule, so ``model.parameters()`` and :meth:`param_groups` include it
  (officially the optimizer is built before the head exists and the head never trains).
- It classifies pooled encoder features (the official probe's 9 time statistics per channel by
  default), not the flattened C×T reconstruction, so any window length works and the head is small.
- Partial freezing counts encoder stages (modules), not parameter tensors.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from eegmamba.eegm2.config import EEGM2ClassifierConfig, EEGM2Config
from eegmamba.eegm2.model import ENCODER_MODULES, EEGM2Encoder
from eegmamba.registry import register_variant

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_N_STATS = {"quantile": 4 + len(_QUANTILES), "meanmax": 2, "mean": 1}


def pool_time(h: Tensor, mode: str) -> Tensor:
    """Pool encoder features over time.

    h : Tensor, shape (B, F, L). Returns (B, F · k) with k = 9 (``quantile``: min, max, mean, std,
    quantiles .05 .25 .5 .75 .95), 2 (``meanmax``) or 1 (``mean``); features grouped by statistic.
    """
    if mode == "mean":
        return h.mean(-1)
    if mode == "meanmax":
        return torch.cat([h.mean(-1), h.amax(-1)], dim=1)
    if mode != "quantile":
        raise ValueError(f"pooling must be one of {sorted(_N_STATS)}, got {mode!r}")
    q = torch.quantile(h, torch.tensor(_QUANTILES, dtype=h.dtype, device=h.device), dim=-1)
    stats = [h.amin(-1), h.amax(-1), h.mean(-1), h.std(-1, correction=0), *q.unbind(0)]
    return torch.cat(stats, dim=1)


class EEGM2Classifier(nn.Module):
    """Pretrained (or fresh) EEGM2 encoder + pooling + head.

    Parameters
    ----------
    config : EEGM2ClassifierConfig

    ``forward(x)``: ``x : Tensor, shape (B, n_chans, T)``, T >= 8 → logits ``(B, n_classes)``.
    """

    def __init__(self, config: EEGM2ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = EEGM2Encoder(config.encoder)
        n_feat = self.encoder.out_features * _N_STATS[config.pooling]
        if config.head == "linear":
            self.head = nn.Linear(n_feat, config.n_classes)
        else:  # the official non-linear probe: features → 128 → 32 → n_classes
            p = config.dropout
            self.head = nn.Sequential(
                nn.Linear(n_feat, 128), nn.ReLU(), nn.Dropout(p),
                nn.Linear(128, 32), nn.ReLU(), nn.Dropout(p),
                nn.Linear(32, config.n_classes),
            )
        self.last_aux_loss = torch.zeros(())  # no auxiliary loss; read like EEGMamba's
        self.apply_freeze()

    def trainable_stages(self) -> tuple[str, ...]:
        """Names of the encoder stages that train under ``config.freeze``."""
        if self.config.freeze == "frozen":
            return ()
        if self.config.freeze == "full":
            return ENCODER_MODULES
        return ENCODER_MODULES[-self.config.unfreeze_last:]

    def apply_freeze(self) -> None:
        """Set ``requires_grad`` of the encoder per ``config.freeze``; the head always trains."""
        train = set(self.trainable_stages())
        for name in ENCODER_MODULES:
            for p in getattr(self.encoder, name).parameters():
                p.requires_grad_(name in train)
        for p in self.head.parameters():
            p.requires_grad_(True)

    def features(self, x: Tensor) -> Tensor:
        """x : (B, C, T) → pooled features (B, F)."""
        return pool_time(self.encoder(x), self.config.pooling)

    def forward(self, x: Tensor, task: str | None = None) -> Tensor:
        """``x (B, n_chans, T)`` → logits ``(B, n_classes)``; ``task`` (optional) must be this
        model's task, as for a single-task EEGMamba. ``last_aux_loss`` is always zero."""
        if task is not None:
            self.config.task(task)
        return self.head(self.features(x))

    def param_groups(self, lr_encoder: float = 1e-4, lr_head: float = 1e-3) -> list[dict[str, Any]]:
        """Optimizer parameter groups: trainable encoder parameters at ``lr_encoder``, the head at
        ``lr_head`` (our choice: the head starts random, so it gets a larger rate; the official
        code uses 1e-4 for everything). The head group is always present."""
        enc = [p for p in self.encoder.parameters() if p.requires_grad]
        groups = [{"params": list(self.head.parameters()), "lr": lr_head, "name": "head"}]
        if enc:
            groups.insert(0, {"params": enc, "lr": lr_encoder, "name": "encoder"})
        return groups

    def check_pretrained(self, ch_names: Sequence[str], sfreq: float) -> None:
        """Raise ValueError unless the pretrained encoder's channels and rate match this model's.

        ch_names : the pretrained encoder's ordered channel names; sfreq : its rate in Hz.
        Compared against ``config.encoder`` (names only where this config lists them).
        """
        enc = self.config.encoder
        if len(ch_names) != enc.n_chans:
            raise ValueError(f"pretrained encoder has {len(ch_names)} channels, this model "
                             f"{enc.n_chans}; retrain or pick the same channel set")
        if enc.ch_names and tuple(ch_names) != enc.ch_names:
            diff = [f"{a}≠{b}" for a, b in zip(ch_names, enc.ch_names) if a != b][:5]
            raise ValueError(f"pretrained encoder channels differ from this model's (order matters): "
                             f"{', '.join(diff)}")
        if abs(float(sfreq) - enc.sfreq) > 1e-6:
            raise ValueError(f"pretrained encoder runs at {sfreq} Hz, this model at {enc.sfreq} Hz; "
                             "resample the data to the pretrained rate")

    def load_encoder(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load encoder weights from an EEGM2 / EEGM2-Light state dict (extra decoder keys ignored).

        Every encoder key must be present with the right shape; a channel-count mismatch is reported
        as such (never zero-filled). ``apply_freeze`` is re-applied afterwards.
        """
        own = self.encoder.state_dict()
        missing = [k for k in own if k not in state_dict]
        if missing:
            raise ValueError(f"pretrained weights lack {len(missing)} encoder tensors, e.g. {missing[0]!r}")
        w = state_dict["input_embedding.branch1.weight"]
        if w.shape[1] != self.config.encoder.n_chans:
            raise ValueError(f"pretrained encoder was trained on {w.shape[1]} channels, this model "
                             f"has {self.config.encoder.n_chans}")
        for k, v in own.items():
            if state_dict[k].shape != v.shape:
                raise ValueError(f"pretrained tensor {k!r} has shape {tuple(state_dict[k].shape)}, "
                                 f"this model {tuple(v.shape)} (different EEGM2 config?)")
        self.encoder.load_state_dict({k: state_dict[k] for k in own})
        self.apply_freeze()


@register_variant("eegm2_classifier", EEGM2Classifier, EEGM2ClassifierConfig)
def eegm2_classifier(n_chans: int = 16, n_classes: int = 2, encoder: Any = None,
                     **overrides: Any) -> EEGM2ClassifierConfig:
    """EEGM2 encoder (official sizes unless ``encoder`` is given) + quantile pooling + MLP head."""
    enc = encoder if encoder is not None else EEGM2Config(n_chans=n_chans)
    return EEGM2ClassifierConfig(encoder=enc, n_classes=n_classes, **overrides)

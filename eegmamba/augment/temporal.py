"""Time-domain augmentations on a batch ``x (B, C, T)`` (windows as the model sees them, normalized
per the profile). Each returns a new tensor; ``sel (B,)`` picks the windows it applies to, the
others are returned unchanged. Magnitudes (the profile's ``augmentation.<name>.magnitude``):

- :func:`time_shift`: shift by ``U(-m, m)`` seconds, vacated samples zero (the window's mean after
  z-scoring): the cue's onset is not where the training grid put it (crop jitter).
- :func:`scale`: amplitude × ``U(1 - m, 1 + m)`` per window (``m < 1``).
- :func:`noise`: add Gaussian noise of ``m`` × each channel's std in the window.
- :func:`channel_dropout`: zero each channel with probability ``m`` (a bad electrode).
- :func:`time_mask`: zero a segment of ``m`` seconds at a random place, with sigmoid edges of
  :data:`MASK_EDGE_S` (Rommel et al. 2022's smooth time mask, so no step enters the spectrum).
"""

from __future__ import annotations

import torch

from eegmamba.augment._random import normal, uniform, where_rows

MASK_EDGE_S = 0.02  # seconds for a mask edge to go from 10 % to 90 %


def time_shift(x: torch.Tensor, sel: torch.Tensor, m: float, sfreq: float,
               g: torch.Generator) -> torch.Tensor:
    B, C, T = x.shape
    shift = torch.round(uniform((B,), -m, m, g, x.device) * sfreq).long()  # samples
    idx = torch.arange(T, device=x.device)[None, :] - shift[:, None]  # (B, T) source sample
    valid = (idx >= 0) & (idx < T)
    src = x.gather(2, idx.clamp(0, T - 1)[:, None, :].expand(B, C, T))
    return where_rows(sel, src * valid[:, None, :].to(x.dtype), x)


def scale(x: torch.Tensor, sel: torch.Tensor, m: float, sfreq: float,
          g: torch.Generator) -> torch.Tensor:
    f = uniform((x.shape[0],), 1.0 - m, 1.0 + m, g, x.device).to(x.dtype)
    return where_rows(sel, x * f[:, None, None], x)


def noise(x: torch.Tensor, sel: torch.Tensor, m: float, sfreq: float,
          g: torch.Generator) -> torch.Tensor:
    std = x.std(dim=2, keepdim=True)
    return where_rows(sel, x + m * std * normal(tuple(x.shape), g, x.device).to(x.dtype), x)


def channel_dropout(x: torch.Tensor, sel: torch.Tensor, m: float, sfreq: float,
                    g: torch.Generator) -> torch.Tensor:
    keep = uniform(tuple(x.shape[:2]), 0.0, 1.0, g, x.device) >= m  # (B, C)
    return where_rows(sel, x * keep[:, :, None].to(x.dtype), x)


def time_mask(x: torch.Tensor, sel: torch.Tensor, m: float, sfreq: float,
              g: torch.Generator) -> torch.Tensor:
    B, _, T = x.shape
    length = min(m * sfreq, float(T))
    start = uniform((B,), 0.0, T - length, g, x.device)  # samples
    t = torch.arange(T, device=x.device, dtype=torch.float32)[None, :]
    k = 4.394 / (MASK_EDGE_S * sfreq)  # logistic slope: 10 % -> 90 % in MASK_EDGE_S
    inside = torch.sigmoid(k * (t - start[:, None])) - torch.sigmoid(k * (t - start[:, None] - length))
    return where_rows(sel, x * (1.0 - inside)[:, None, :].to(x.dtype), x)

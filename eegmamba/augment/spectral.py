"""Frequency-domain augmentations on a batch ``x (B, C, T)`` (as :mod:`eegmamba.augment.temporal`).

- :func:`freq_shift`: every frequency moves by ``U(-m, m)`` Hz (Rommel et al. 2022): the analytic
  signal (FFT with the negative frequencies zeroed, zero-padded to ``2T`` so the shift does not wrap
  the window's end onto its start) times ``exp(2πi Δf t)``, real part. A person's mu rhythm at
  11 Hz instead of 10 Hz.
- :func:`ft_surrogate`: the Fourier transform's phases get ``U(0, 2π m)`` added, the same draw for
  every channel so the spatial (cross-channel) structure is kept (Rommel et al. 2022, after
  Schwabedal et al. 2019): the power spectrum stays, the waveform changes.
"""

from __future__ import annotations

import math

import torch

from eegmamba.augment._random import uniform, where_rows


def shift_frequency(x: torch.Tensor, shift_hz: torch.Tensor, sfreq: float) -> torch.Tensor:
    """``x (B, C, T)`` with every frequency moved by ``shift_hz (B,)`` Hz (see module docstring)."""
    B, C, T = x.shape
    n = 2 * T
    spec = torch.fft.fft(x.float(), n=n, dim=-1)
    h = torch.zeros(n, device=x.device)
    h[0] = 1.0
    h[1:n // 2] = 2.0
    h[n // 2] = 1.0
    analytic = torch.fft.ifft(spec * h, dim=-1)[..., :T]
    t = torch.arange(T, device=x.device, dtype=torch.float32) / sfreq
    phase = 2 * math.pi * shift_hz.float()[:, None] * t[None, :]  # (B, T)
    return (analytic * torch.polar(torch.ones_like(phase), phase)[:, None, :]).real.to(x.dtype)


def freq_shift(x: torch.Tensor, sel: torch.Tensor, m: float, sfreq: float,
               g: torch.Generator) -> torch.Tensor:
    return where_rows(sel, shift_frequency(x, uniform((x.shape[0],), -m, m, g, x.device), sfreq), x)


def ft_surrogate(x: torch.Tensor, sel: torch.Tensor, m: float, sfreq: float,
                 g: torch.Generator) -> torch.Tensor:
    B, _, T = x.shape
    spec = torch.fft.rfft(x.float(), dim=-1)
    phase = uniform((B, spec.shape[-1]), 0.0, 2 * math.pi * m, g, x.device)
    phase[:, 0] = 0.0  # DC stays real
    if T % 2 == 0:
        phase[:, -1] = 0.0  # so does the Nyquist bin
    out = torch.fft.irfft(spec * torch.polar(torch.ones_like(phase), phase)[:, None, :], n=T, dim=-1)
    return where_rows(sel, out.to(x.dtype), x)

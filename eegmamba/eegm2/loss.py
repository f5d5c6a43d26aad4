"""EEGM2 reconstruction loss ("spatiotemporal-aware loss", paper Section 3.3; ``Code/utility/loss.py``).

Official default (``L1WithSpectralLoss``, alpha = beta = 1)::

    l1   = mean |recon - x|                                      over B, C, T
    spec = mean |rfft(x) - rfft(recon)|²                         over B, C, T//2 + 1 bins
    loss = alpha · l1 + beta · spec

``rfft`` runs over time per channel with torch's default ``norm="backward"`` (unnormalised), on the
complex difference: by Parseval ``spec`` ≈ T · MSE, so it outweighs L1 by about T and its value
depends on the window length (see the design notes, §2). Options (ablations, off by default):

- ``fft_norm="ortho"``: the same term with an orthonormal FFT, ≈ MSE, comparable across T.
- ``mask_ratio > 0``: a fraction of time patches (``mask_span`` samples, all channels) is set to
  zero in the model input (:meth:`ReconLoss.mask_input`); L1 and MSE are then taken over the hidden
  samples only (as in masked autoencoders; over all samples the skip path x1 → decoder1 can copy
  the visible ones). The spectral term stays over the whole window: the FFT has no locality.
  Neither the paper nor the code masks; patch length and zero fill are our choices.

Every component is returned separately so a training loop can log each one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from eegmamba._checks import check_fields, check_option

FFT_NORMS = ("backward", "ortho")


@dataclass(frozen=True)
class ReconLossConfig:
    """Settings of :class:`ReconLoss` (saved into checkpoint metadata).

    Attributes
    ----------
    alpha, beta : float
        Weights of the L1 and spectral terms (1, 1 officially).
    fft_norm : {"backward", "ortho"}
        ``backward`` is the official unnormalised FFT; ``ortho`` divides the term by T.
    mask_ratio : float
        Fraction of time patches hidden from the model, in [0, 1); 0 = the paper (no masking).
    mask_span : int
        Patch length in samples (our choice: 40 = 0.2 s at 200 Hz).
    """

    alpha: float = 1.0
    beta: float = 1.0
    fft_norm: str = "backward"
    mask_ratio: float = 0.0
    mask_span: int = 40

    def __post_init__(self) -> None:
        for f in ("alpha", "beta"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"ReconLossConfig.{f} must be a number >= 0, got {v!r}")
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("ReconLossConfig: alpha and beta are both 0; the loss would be constant")
        check_option(self.fft_norm, FFT_NORMS, "ReconLossConfig.fft_norm")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"ReconLossConfig.mask_ratio must be in [0, 1), got {self.mask_ratio!r}")
        if isinstance(self.mask_span, bool) or not isinstance(self.mask_span, int) or self.mask_span < 1:
            raise ValueError(f"ReconLossConfig.mask_span must be a positive int, got {self.mask_span!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReconLossConfig":
        return cls(**check_fields(cls, d))


def spectral_term(target: Tensor, recon: Tensor, fft_norm: str = "backward") -> Tensor:
    """``mean |rfft(target) - rfft(recon)|²`` over all leading dims and frequency bins.

    target, recon : Tensor, shape (..., T). Returns a 0-d tensor.
    """
    diff = torch.fft.rfft(target, dim=-1, norm=fft_norm) - torch.fft.rfft(recon, dim=-1, norm=fft_norm)
    # |z|² as re² + im²: same value as abs()**2, with a finite gradient where the difference is 0
    return torch.view_as_real(diff).pow(2).sum(-1).mean()


class ReconLoss(nn.Module):
    """``loss(x, recon, mask=None) -> (total, parts)`` for EEGM2 pretraining.

    Parameters
    ----------
    config : ReconLossConfig, optional
        Keyword arguments build one when it is not given.
    """

    def __init__(self, config: ReconLossConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("ReconLoss takes a config or keyword arguments, not both")
        self.config = config if config is not None else ReconLossConfig(**kwargs)

    def mask_input(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """Hide ``mask_ratio`` of the time patches of ``x`` (zeros, all channels).

        x : Tensor, shape (B, C, T). Returns ``(x_masked, mask)`` with ``mask`` a bool tensor of
        shape (B, 1, T), True where hidden; ``(x, None)`` when ``mask_ratio`` is 0. Each window hides
        ``round(mask_ratio · n_patches)`` patches (at least one), drawn without replacement.
        """
        ratio, span = self.config.mask_ratio, self.config.mask_span
        if ratio == 0.0:
            return x, None
        bsz, _, length = x.shape
        n_patches = -(-length // span)
        n_hide = min(n_patches, max(1, round(ratio * n_patches)))
        device = generator.device if generator is not None else x.device
        scores = torch.rand(bsz, n_patches, generator=generator, device=device).to(x.device)
        hidden = torch.zeros(bsz, n_patches, dtype=torch.bool, device=x.device)
        hidden.scatter_(1, scores.argsort(dim=1)[:, :n_hide], True)
        mask = hidden.repeat_interleave(span, dim=1)[:, :length].unsqueeze(1)
        return x.masked_fill(mask, 0.0), mask

    def forward(self, x: Tensor, recon: Tensor, mask: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Loss of ``recon`` against the unmasked input ``x``.

        Parameters
        ----------
        x, recon : Tensor, shape (B, C, T)
            Target (the original window) and the model's reconstruction.
        mask : Tensor of bool, shape (B, 1, T) or (B, C, T), optional
            From :meth:`mask_input`; L1 and MSE are then averaged over hidden samples only.

        Returns
        -------
        total : Tensor, 0-d, with gradient
        parts : dict of float
            ``l1``, ``spectral``, ``mse`` (the L1 and MSE over the same samples) and ``total``.
        """
        if x.shape != recon.shape:
            raise ValueError(f"ReconLoss: x {tuple(x.shape)} and recon {tuple(recon.shape)} differ in shape")
        err = recon - x
        if mask is None:
            l1, mse = err.abs().mean(), err.pow(2).mean()
        else:
            weight = mask.expand_as(err).to(err.dtype)
            n = weight.sum().clamp(min=1.0)
            l1, mse = (err.abs() * weight).sum() / n, (err.pow(2) * weight).sum() / n
        spec = spectral_term(x, recon, self.config.fft_norm)
        total = self.config.alpha * l1 + self.config.beta * spec
        parts = {"l1": float(l1.detach()), "spectral": float(spec.detach()),
                 "mse": float(mse.detach()), "total": float(total.detach())}
        return total, parts

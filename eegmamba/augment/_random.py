"""Random draws for batched augmentation, from the caller's ``torch.Generator`` (any device) and
moved to the batch's device, so a seeded generator gives the same augmented batch on CPU and GPU."""

from __future__ import annotations

import torch


def uniform(shape: tuple[int, ...], lo: float, hi: float, g: torch.Generator,
            device: torch.device) -> torch.Tensor:
    """``U(lo, hi)`` of ``shape``, float32, on ``device``."""
    return (torch.rand(shape, generator=g, device=g.device) * (hi - lo) + lo).to(device)


def normal(shape: tuple[int, ...], g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Standard normal of ``shape``, float32, on ``device``."""
    return torch.randn(shape, generator=g, device=g.device).to(device)


def chosen(p: float, n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Bool ``(n,)``: which of ``n`` windows a transform with probability ``p`` applies to."""
    return uniform((n,), 0.0, 1.0, g, device) < p


def where_rows(sel: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` on the selected rows (``sel`` ``(B,)``), ``old`` elsewhere (``(B, C, T)``)."""
    return torch.where(sel[:, None, None], new, old)

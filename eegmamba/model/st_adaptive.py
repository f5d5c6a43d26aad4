"""ST-Adaptive module (paper Section 2.2, Fig. 3, Eqs. 5-7).

1. Spatial-adaptive convolution: one 1-D conv branch per input channel count ``C_i``, all mapping to the
   hidden size ``D`` (Eq. 5), so datasets with different montages share everything downstream.
2. Dual-path tokenizer (:mod:`eegmamba.model.tokenizer`, Eq. 6).
3. Temporal adaptation: a learned class token is prepended (Eq. 7); the BiMamba stack integrates the
   whole sequence into it, so any window length gives a fixed-size representation.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from eegmamba.model.tokenizer import DualPathTokenizer


class SpatialAdaptiveConv(nn.Module):
    """``CNN_SA``: ``x (B, C_i, L)`` → ``y_SA (B, D, L)`` with a branch chosen by ``C_i``.

    Each branch is ``Conv1d(C_i, D, spatial_kernel, padding=same) -> BatchNorm1d -> GELU``. The paper
    says only "1D-CNN sub-modules with a uniform output channel count"; a pointwise kernel (1) that
    mixes channels without smearing time is our default, configurable.
    """

    def __init__(self, channel_counts: tuple[int, ...], d_model: int, kernel: int = 1) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(
            {
                str(c): nn.Sequential(
                    nn.Conv1d(c, d_model, kernel, padding=kernel // 2),
                    nn.BatchNorm1d(d_model),
                    nn.GELU(),
                )
                for c in sorted(set(channel_counts))
            }
        )
        self.kernel = kernel

    @property
    def channel_counts(self) -> list[int]:
        return sorted(int(k) for k in self.branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = str(x.shape[1])
        if key not in self.branches:
            raise ValueError(
                f"no spatial-adaptive branch for {x.shape[1]} input channels; "
                f"this model has branches for {self.channel_counts}"
            )
        y = self.branches[key](x)
        return y[..., : x.shape[-1]]  # even kernels pad one sample too many


class STAdaptive(nn.Module):
    """Spatial-adaptive conv + dual-path tokenizer + class token.

    ``x (B, C_i, L)`` (µV, z-scored per window by the preprocessing) → ``T (B, N + 1, D)`` with the class
    token at index 0.
    """

    def __init__(
        self,
        channel_counts: tuple[int, ...],
        d_model: int,
        spatial_kernel: int,
        small_kernel: int,
        small_stride: int,
        wide_kernel: int,
        wide_stride: int,
    ) -> None:
        super().__init__()
        self.spatial = SpatialAdaptiveConv(channel_counts, d_model, spatial_kernel)
        self.tokenizer = DualPathTokenizer(d_model, small_kernel, small_stride, wide_kernel, wide_stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.trunc_normal_(self.cls_token, std=0.02)  # ViT's init (Dosovitskiy et al., 2021)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokenizer(self.spatial(x))
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1)

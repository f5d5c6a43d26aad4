"""Dual-path tokenizer of the ST-Adaptive module (paper Section 2.2, Eq. 6).

``CNN_s`` (small kernel) and ``CNN_w`` (wide kernel) turn the spatially mixed signal ``y_SA`` into two
token sequences that are concatenated along time. The paper gives no kernel sizes or strides; the
defaults live in :class:`~eegmamba.model.config.EEGMambaConfig` and are explained there.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from eegmamba.model._strided_conv import conv1d_tokens, inference_segment_weight


def n_tokens(n_times: int, kernel: int, stride: int) -> int:
    """Number of tokens one path makes from ``n_times`` samples (padding ``kernel // 2``)."""
    return (n_times + 2 * (kernel // 2) - kernel) // stride + 1


class ConvPath(nn.Module):
    """One tokenizer path: ``Conv1d(D, D, kernel, stride) -> BatchNorm1d -> GELU``.

    Parameters
    ----------
    d_model : int
        Hidden size ``D`` (input and output channels).
    kernel, stride : int
        Kernel size and stride in samples (at 200 Hz).
    """

    def __init__(self, d_model: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(d_model, d_model, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.BatchNorm1d(d_model)
        self.act = nn.GELU()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``y (B, D, L)`` → tokens ``(B, N_path, D)``."""
        if self.kernel % self.stride:
            return self.act(self.norm(self.conv(y))).transpose(1, 2)
        # the same conv as one GEMM, token-major (faster on CPU; _strided_conv); BatchNorm over
        # (B·N, D) has the statistics of BatchNorm over (B, D, N)
        t = conv1d_tokens(y, self.conv.weight, self.conv.bias, self.stride, self.conv.padding[0],
                          inference_segment_weight(self.conv, self.stride))
        B, N, D = t.shape
        return self.act(self.norm(t.reshape(B * N, D))).view(B, N, D)


class DualPathTokenizer(nn.Module):
    """``T = Concat(T(CNN_s(y_SA)), T(CNN_w(y_SA)), dim=1)`` (Eq. 6).

    Input ``y (B, D, L)``; output ``(B, N_s + N_w, D)``, small-kernel tokens first.
    """

    def __init__(
        self, d_model: int, small_kernel: int, small_stride: int, wide_kernel: int, wide_stride: int
    ) -> None:
        super().__init__()
        self.small = ConvPath(d_model, small_kernel, small_stride)
        self.wide = ConvPath(d_model, wide_kernel, wide_stride)

    def n_tokens(self, n_times: int) -> int:
        """Total tokens ``N = N_s + N_w`` for a window of ``n_times`` samples."""
        return n_tokens(n_times, self.small.kernel, self.small.stride) + n_tokens(
            n_times, self.wide.kernel, self.wide.stride
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.small(y), self.wide(y)], dim=1)

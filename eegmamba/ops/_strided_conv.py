"""A strided ``Conv1d`` whose kernel is a multiple of its stride, computed as one matrix product.

The tokenizer's convolutions (kernel 16 / stride 8 and kernel 100 / stride 50 on 128 channels) are
this case. With ``k = m·s``, cut the padded input into segments of ``s`` samples; output ``n`` is

    y[n] = b + Σ_{j<m} W_j · seg[n + j]          W_j = w[:, :, j s : (j+1) s]

so ``Z = S @ [W_0; ...; W_{m-1}]^T`` over all segments (one GEMM with ``M = B × segments``,
``K = C_in·s``, ``N = m·C_out``), and ``y`` is the sum of ``m`` shifted column blocks of ``Z``. The
same multiply-adds as the convolution, without the im2col duplication; on CPU, forward and
backward run at GEMM speed (oneDNN's strided-conv backward is ~1.5x slower on these shapes).
Results equal ``F.conv1d`` up to float rounding. The output is token-major ``(B, N, C_out)``, the
layout the tokenizer returns anyway.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segment_weight(weight: torch.Tensor, stride: int) -> torch.Tensor:
    """``(C_out, C_in, m·s)`` -> ``(m·C_out, C_in·s)``: row block ``j`` is ``W_j`` flattened."""
    c_out, c_in, k = weight.shape
    m = k // stride
    return weight.view(c_out, c_in, m, stride).permute(2, 0, 1, 3).reshape(m * c_out, c_in * stride)


def conv1d_tokens(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  stride: int, padding: int, wseg: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, stride, padding).transpose(1, 2)`` for ``k % stride == 0``.

    Parameters
    ----------
    x : Tensor, shape (B, C_in, T)
    weight : Tensor, shape (C_out, C_in, k)
    wseg : Tensor, optional
        ``segment_weight(weight, stride)`` when the caller has it cached (inference).

    Returns
    -------
    Tensor, shape (B, N, C_out), ``N = (T + 2 padding - k) // stride + 1``.
    """
    B, c_in, T = x.shape
    c_out, _, k = weight.shape
    if k % stride:
        raise ValueError(f"conv1d_tokens needs kernel % stride == 0, got {k} and {stride}")
    m = k // stride
    N = (T + 2 * padding - k) // stride + 1
    nseg = N + m - 1
    right = nseg * stride - T - padding  # may be < 0: trailing samples no output reads
    xp = F.pad(x, (padding, right)) if right >= 0 else F.pad(x[..., :T + right], (padding, 0))
    S = xp.view(B, c_in, nseg, stride).transpose(1, 2).reshape(B, nseg, c_in * stride)
    Z = F.linear(S, segment_weight(weight, stride) if wseg is None else wseg)  # (B, nseg, m C_out)
    y = Z[:, :N, :c_out]
    for j in range(1, m):
        y = y + Z[:, j:j + N, j * c_out:(j + 1) * c_out]
    return y if bias is None else y + bias


def inference_segment_weight(conv: torch.nn.Conv1d, stride: int) -> torch.Tensor | None:
    """``segment_weight`` of ``conv``, cached on it while no gradient is needed (the weight is
    re-laid out once, not per call); ``None`` when autograd must see the weight."""
    w = conv.weight
    if torch.is_grad_enabled() and w.requires_grad:
        return None
    key = (w.data_ptr(), w._version, w.dtype, w.device, stride)
    cached = getattr(conv, "_segment_weight", None)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, segment_weight(w.detach(), stride).contiguous())
        conv._segment_weight = cached
    return cached[1]

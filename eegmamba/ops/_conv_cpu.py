"""Fused causal depthwise conv + SiLU on the CPU (numba), in BiMamba's (b, L, d) layout.

``Conv`` of Algorithm 1 as Mamba builds it: ``nn.Conv1d(d, d, K, groups=d, padding=K-1)`` cut to
the first ``L`` outputs, then SiLU. Computed here without transposing ``x`` to (b, d, L):

    pre[t, c] = bias[c] + Σ_k w[c, k] x[t - (K-1) + k, c]      (causal; x = 0 outside [0, L))
    out = silu(pre)

``reverse=True`` gives the same conv applied to the time-flipped sequence, flipped back
(``x[t + (K-1) - k]``): BiMamba's backward branch without the two flips. Vectorised over
channels; the backward recomputes ``pre`` from ``x``. Imported lazily (it needs numba), by
:mod:`eegmamba.ops.dispatch` (:func:`~eegmamba.ops.dispatch.conv1d_silu`) only when the fused
backend runs.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from eegmamba.ops._scan_cpu import _OPTS
from eegmamba.ops._scan_cpu_math import dsilu, sigmoid


@njit(**_OPTS)
def _pre(x, wt, bias, rev, b, t, acc):
    """acc[:] = pre[b, t, :]."""
    L, d, K = x.shape[1], x.shape[2], wt.shape[0]
    for c in range(d):
        acc[c] = bias[c]
    for k in range(K):
        src = t + (K - 1) - k if rev else t - (K - 1) + k
        if 0 <= src < L:
            for c in range(d):
                acc[c] += wt[k, c] * x[b, src, c]


@njit(**_OPTS)
def conv_silu_fwd(x, wt, bias, rev, out):
    acc = np.zeros(x.shape[2], x.dtype)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            _pre(x, wt, bias, rev, b, t, acc)
            for c in range(x.shape[2]):
                out[b, t, c] = acc[c] * sigmoid(acc[c])


@njit(**_OPTS)
def conv_silu_bwd(x, wt, bias, rev, gout, gx, gwt, gbias):
    """gx (b, L, d) written; gwt (K, d) and gbias (d,) accumulated (zeros in)."""
    L, d, K = x.shape[1], x.shape[2], wt.shape[0]
    acc = np.zeros(d, x.dtype)
    gpre = np.zeros((L, d), x.dtype)
    for b in range(x.shape[0]):
        for t in range(L):
            _pre(x, wt, bias, rev, b, t, acc)
            for c in range(d):
                g = gout[b, t, c] * dsilu(acc[c], sigmoid(acc[c]))
                gpre[t, c] = g
                gbias[c] += g
        for s in range(L):
            for c in range(d):
                gx[b, s, c] = 0
            for k in range(K):
                t = s - (K - 1) + k if rev else s + (K - 1) - k  # the output x[s] feeds via w[k]
                if 0 <= t < L:
                    for c in range(d):
                        gx[b, s, c] += wt[k, c] * gpre[t, c]
                        gwt[k, c] += gpre[t, c] * x[b, s, c]


class ConvSiLU(torch.autograd.Function):
    """``silu(causal depthwise conv(x))`` on (b, L, d); ``weight`` (d, 1, K) as nn.Conv1d's."""

    @staticmethod
    def forward(ctx, x, weight, bias, reverse):
        wt = weight.detach()[:, 0, :].t().contiguous()
        out = torch.empty_like(x)
        conv_silu_fwd(x.detach().numpy(), wt.numpy(), bias.detach().numpy(), reverse,
                      out.numpy())
        ctx.save_for_backward(x, wt, bias)
        ctx.reverse = reverse
        return out

    @staticmethod
    def backward(ctx, gout):
        x, wt, bias = ctx.saved_tensors
        gx = torch.empty_like(x)
        gwt, gbias = torch.zeros_like(wt), torch.zeros_like(bias)
        conv_silu_bwd(x.detach().numpy(), wt.numpy(), bias.detach().numpy(), ctx.reverse,
                      gout.contiguous().numpy(), gx.numpy(), gwt.numpy(), gbias.numpy())
        return gx, gwt.t()[:, None, :], gbias, None


def conv_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
              reverse: bool = False) -> torch.Tensor:
    """``x (b, L, d)`` contiguous float32/float64 -> ``silu(conv(x)) (b, L, d)``."""
    x = x.contiguous()
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or bias.requires_grad):
        return ConvSiLU.apply(x, weight.to(x.dtype), bias.to(x.dtype), reverse)
    out = torch.empty_like(x)
    wt = weight.detach()[:, 0, :].t().to(x.dtype).contiguous()
    conv_silu_fwd(x.detach().numpy(), wt.numpy(), bias.detach().to(x.dtype).numpy(), reverse,
                  out.numpy())
    return out

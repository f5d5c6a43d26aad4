"""Bidirectional Mamba block (paper Section 2.3, Algorithm 1).

::

    T_norm = LayerNorm(T_{k-1})
    X, Z   = Linear_X(T_norm), Linear_Z(T_norm)
    Y_f    = SSM_f(Conv_f(X^T))
    Y_b    = Reverse(SSM_b(Conv_b(Reverse(X^T))))
    T_k    = Linear_D((Y_f + Y_b)^T ⊙ SiLU(Z)) + T_{k-1}

Each direction (:class:`MambaBranch`) is the inner part of a Mamba-1 mixer (Gu & Dao, 2023): causal
depthwise conv + SiLU, input-dependent ``Δ, B, C`` and the selective scan. The scan runs on the
pure-PyTorch reference, numba's fused CPU kernel or mamba-ssm's fused CUDA kernel (``backend``); all
compute the same function. The backend is chosen by :mod:`eegmamba.ops.dispatch`, which this module
calls for every conv/scan kernel.

With the fused CPU backend the block keeps the Linear layers' (B, L, d_inner) layout throughout: the
conv + SiLU and the scan run in it directly, and the backward direction runs the conv and the scan
from the last step to the first (``reverse=True``) instead of flipping the sequence twice.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from eegmamba import ops


class MambaBranch(nn.Module):
    """One scan direction: ``Conv`` + ``SSM`` of Algorithm 1 (Mamba-1 parametrisation and init).

    Parameters
    ----------
    d_inner : int
        Channels of ``X`` (``expand * d_model``).
    d_state : int
        SSM state size ``N``.
    d_conv : int
        Causal depthwise conv kernel size.
    dt_rank : int
        Rank of the ``Δ`` projection.
    """

    def __init__(
        self,
        d_inner: int,
        d_state: int,
        d_conv: int,
        dt_rank: int,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.d_state, self.dt_rank, self.backend = d_state, dt_rank, backend
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        # Mamba's initialisation: Δ log-uniform in [dt_min, dt_max] through an inverse-softplus bias,
        # A = -[1..N] per channel (S4D-real), D = 1.
        nn.init.uniform_(self.dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
        dt = torch.exp(
            torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(d_inner))

    def forward_bld(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Fused CPU path: ``x (B, L, d_inner)`` → ``y (B, L, d_inner)``, float32/float64.

        ``reverse=True`` computes ``flip(forward(flip(x)))`` (anti-causal), without flipping.
        """
        x = ops.conv1d_silu(x, self.conv1d.weight, self.conv1d.bias, reverse, backend=self.backend)
        dbc = self.x_proj(x)  # (B, L, dt_rank + 2N): B and C are read from it in place
        r, n = self.dt_rank, self.d_state
        dt = F.linear(dbc[..., :r], self.dt_proj.weight)  # bias goes in as delta_bias
        y, _ = ops.selective_scan_bld(
            x, dt, -torch.exp(self.A_log.to(x.dtype)), dbc, r, r + n, 1, self.D.to(x.dtype),
            delta_bias=self.dt_proj.bias.to(x.dtype), delta_softplus=True, reverse=reverse,
            backend=self.backend,
        )
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, d_inner, L)`` → ``y (B, d_inner, L)``, causal in L."""
        L = x.shape[-1]
        x = F.silu(self.conv1d(x)[..., :L])
        dbc = self.x_proj(x.transpose(1, 2))  # (B, L, dt_rank + 2N)
        dt, b, c = torch.split(dbc, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # bias goes in as delta_bias
        f = torch.promote_types(x.dtype, torch.float32)  # float32 for 16-bit, float64 stays
        return ops.selective_scan(
            x,
            dt,
            -torch.exp(self.A_log.to(f)),
            b.transpose(1, 2),
            c.transpose(1, 2),
            self.D.to(f),
            delta_bias=self.dt_proj.bias.to(f),
            delta_softplus=True,
            backend=self.backend,
        )


class BiMambaBlock(nn.Module):
    """Algorithm 1: ``T (B, L, D)`` → ``T (B, L, D)`` with a residual connection.

    ``bidirectional=False`` drops the backward branch (the paper's "single-directional Mamba" ablation).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        bidirectional: bool = True,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        d_inner = expand * d_model
        dt_rank = dt_rank or math.ceil(d_model / 16)
        self.norm = nn.LayerNorm(d_model)
        self.linear_x = nn.Linear(d_model, d_inner, bias=False)
        self.linear_z = nn.Linear(d_model, d_inner, bias=False)
        self.forward_branch = MambaBranch(d_inner, d_state, d_conv, dt_rank, backend=backend)
        self.backward_branch = (
            MambaBranch(d_inner, d_state, d_conv, dt_rank, backend=backend) if bidirectional else None
        )
        self.linear_d = nn.Linear(d_inner, d_model, bias=False)

    def set_backend(self, backend: str) -> None:
        for branch in (self.forward_branch, self.backward_branch):
            if branch is not None:
                branch.backend = backend

    def _fused(self, t: torch.Tensor) -> bool:
        """Whether this call takes the fused CPU path (backend resolves to ``cpu_fused``)."""
        return ops.uses_fused_cpu(self.forward_branch.backend, t)

    def forward_at(self, t: torch.Tensor, i: int) -> torch.Tensor:
        """``forward(t)[:, i]`` (``(B, D)``) for a last block whose other outputs nobody reads
        (the class token's): the causal branch runs over tokens ``0..i``, the anti-causal one over
        ``i..L-1``, and the gate, ``linear_d`` and the residual over token ``i`` only. Both branches
        are exactly causal / anti-causal, so this is the same function; on the fused CPU path it
        skips one of the four scans of a 2-block model and ~60 % of the last block's matrix products
        (class token at the start). Other paths compute everything and pick token ``i``."""
        if not self._fused(t):
            return self.forward(t)[:, i]
        t_norm = self.norm(t)
        x = self.linear_x(t_norm)  # (B, L, d_inner): both branches read it
        z = self.linear_z(t_norm[:, i])  # (B, d_inner)
        y = self.forward_branch.forward_bld(x[:, :i + 1].contiguous())[:, -1]
        if self.backward_branch is not None:
            y = y + self.backward_branch.forward_bld(x[:, i:].contiguous(), reverse=True)[:, 0]
        return self.linear_d(y * F.silu(z)) + t[:, i]

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t_norm = self.norm(t)
        x = self.linear_x(t_norm)  # (B, L, d_inner)
        z = self.linear_z(t_norm)  # (B, L, d_inner)
        if self._fused(t):
            y = self.forward_branch.forward_bld(x)
            if self.backward_branch is not None:
                y = y + self.backward_branch.forward_bld(x, reverse=True)
            return self.linear_d(y * F.silu(z)) + t
        x = x.transpose(1, 2)  # (B, d_inner, L)
        y = self.forward_branch(x)
        if self.backward_branch is not None:
            y = y + self.backward_branch(x.flip(-1)).flip(-1)
        return self.linear_d(y.transpose(1, 2) * F.silu(z)) + t

"""The Mamba-2 block (Dao & Gu 2024, Section 7), in PyTorch, with mamba-ssm's parameter names.

Mirrors ``mamba_ssm.modules.mamba2.Mamba2`` (2.2.4) for ``ngroups`` >= 1, ``rmsnorm=True``,
``d_ssm = d_inner`` (no extra gated MLP) and no ``dt_limit``; the parameters ``in_proj.weight``,
``conv1d.weight``, ``conv1d.bias``, ``dt_bias``, ``A_log``, ``D``, ``norm.weight``,
``out_proj.weight`` have the same names, shapes and initialisation, so a state dict moves between
this block and mamba-ssm's (and thus between the CPU reference and the fused CUDA path) unchanged.

Forward, for ``u`` of shape (B, L, d_model)::

    z, xBC, dt = split(in_proj(u), [d_inner, d_inner + 2·G·N, H])
    xBC = silu(causal depthwise conv1d(xBC))
    x, B, C = split(xBC, [d_inner, G·N, G·N])
    y = SSD(x, dt, A=-exp(A_log), B, C, D, dt_bias)      # see eegm2/ssd.py
    out = out_proj(RMSNormGated(y, z))                     # rms(y · silu(z)) · weight

mamba-ssm fuses the whole forward (``mamba_split_conv1d_scan_combined``); here only the scan is
dispatched to its kernel (``mamba_chunk_scan_combined``), the conv/norm/projections stay in
PyTorch on every backend, which keeps the two paths numerically comparable op by op.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from eegmamba._checks import check_option
from eegmamba.eegm2.ssd import SCANS, mamba_chunk_scan, mamba_chunk_scan_ref
from eegmamba.ops.dispatch import BACKENDS


class RMSNormGated(nn.Module):
    """Gated RMSNorm of mamba-ssm (``layernorm_gated.RMSNorm``), normalised per group of channels.

    ``norm_before_gate=False`` (the Mamba-2 default): ``rms(x · silu(z)) · weight``;
    ``True``: ``rms(x) · weight · silu(z)``. Computed in float32 for half-precision inputs.
    """

    def __init__(self, dim: int, eps: float = 1e-5, norm_before_gate: bool = False,
                 group_size: int | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.norm_before_gate = norm_before_gate
        self.group_size = dim if group_size is None else group_size
        if dim % self.group_size:
            raise ValueError(f"RMSNormGated: dim {dim} is not a multiple of group_size {self.group_size}")
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        """x, z : Tensor, shape (..., dim). Returns the shape and dtype of ``x``."""
        dtype = x.dtype
        xf = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        if z is not None and not self.norm_before_gate:
            xf = xf * F.silu(z.to(xf.dtype))
        groups = xf.unflatten(-1, (-1, self.group_size))
        groups = groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + self.eps)
        out = groups.flatten(-2) * self.weight.to(xf.dtype)
        if z is not None and self.norm_before_gate:
            out = out * F.silu(z.to(xf.dtype))
        return out.to(dtype)


class Mamba2(nn.Module):
    """Mamba-2 block. Defaults are mamba-ssm's except ``chunk_size`` (0 = auto: 64 on CPU, 256 on CUDA).

    Parameters
    ----------
    d_model : int
        Width of the input and output features.
    d_state, d_conv, expand, headdim, ngroups : int
        N, conv kernel width, d_inner = expand·d_model, P (H = d_inner / P), G.
    A_init_range, dt_min, dt_max, dt_init_floor : initialisation of A and dt, as in mamba-ssm.
    D_has_hdim, norm_before_gate, bias, conv_bias : as in mamba-ssm.
    chunk_size : int
        SSD chunk length; exact for any value (a speed/memory knob). 0 picks per device: 64 on
        CPU (about 3x faster than 256 there, see docs/notes), 256 on CUDA (mamba-ssm's default).
    backend : {"auto", "ref", "mamba_ssm"}
        Scan implementation (see ``eegmamba.ops.dispatch``).
    scan : {"chunked", "sequential"}
        ``sequential`` replaces the scan by the step-by-step oracle (PyTorch, any backend setting;
        slow: for tests and benchmarks). ``chunked`` uses ``backend``.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 128,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        D_has_hdim: bool = False,
        norm_before_gate: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        bias: bool = False,
        conv_bias: bool = True,
        chunk_size: int = 0,
        backend: str = "auto",
        scan: str = "chunked",
    ) -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"Mamba2: d_inner = expand·d_model = {self.d_inner} is not a multiple "
                             f"of headdim {headdim}; pick a headdim that divides it")
        self.headdim, self.ngroups = headdim, ngroups
        self.nheads = self.d_inner // headdim
        if self.nheads % ngroups:
            raise ValueError(f"Mamba2: nheads {self.nheads} is not a multiple of ngroups {ngroups}")
        if not (0 < A_init_range[0] <= A_init_range[1]):
            raise ValueError(f"Mamba2: A_init_range must satisfy 0 < lo <= hi, got {A_init_range}")
        if chunk_size < 0:
            raise ValueError(f"Mamba2: chunk_size must be >= 0 (0 = auto), got {chunk_size}")
        self.D_has_hdim, self.norm_before_gate = D_has_hdim, norm_before_gate
        self.chunk_size = chunk_size
        self.backend = check_option(backend, BACKENDS, "Mamba2.backend")
        self.scan = check_option(scan, tuple(SCANS), "Mamba2.scan")

        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads  # order [z, x, B, C, dt]
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=bias)
        conv_dim = self.d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, kernel_size=d_conv, groups=conv_dim,
                                padding=d_conv - 1, bias=conv_bias)
        self.act = nn.SiLU()

        # dt ~ log-uniform in [dt_min, dt_max]; dt_bias = softplus⁻¹(dt)
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.dt_bias._no_weight_decay = True
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(*A_init_range)))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner if D_has_hdim else self.nheads))
        self.D._no_weight_decay = True
        self.norm = RMSNormGated(self.d_inner, eps=1e-5, norm_before_gate=norm_before_gate,
                                 group_size=self.d_inner // ngroups)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def resolved_chunk_size(self, device: torch.device) -> int:
        """The chunk length used for inputs on ``device`` (``chunk_size`` or the per-device default)."""
        if self.chunk_size:
            return self.chunk_size
        return 256 if device.type == "cuda" else 64

    def forward(self, u: Tensor) -> Tensor:
        """u : Tensor, shape (B, L, d_model). Returns the same shape. Causal in L."""
        if u.ndim != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"Mamba2 expects (batch, length, {self.d_model}), got {tuple(u.shape)}")
        bsz, length, _ = u.shape
        z, xbc, dt = torch.split(
            self.in_proj(u),
            [self.d_inner, self.d_inner + 2 * self.ngroups * self.d_state, self.nheads], dim=-1)
        xbc = self.act(self.conv1d(xbc.transpose(1, 2))[..., :length].transpose(1, 2))
        x, b, c = torch.split(
            xbc, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        # float32 at least (as mamba-ssm: exp of a half-precision A_log may overflow), float64 kept
        a = -torch.exp(self.A_log.to(torch.promote_types(self.A_log.dtype, torch.float32)))
        d = self.D.view(self.nheads, self.headdim) if self.D_has_hdim else self.D
        args = (x.reshape(bsz, length, self.nheads, self.headdim), dt, a,
                b.reshape(bsz, length, self.ngroups, self.d_state),
                c.reshape(bsz, length, self.ngroups, self.d_state),
                self.resolved_chunk_size(u.device))
        if self.scan == "sequential":
            y = mamba_chunk_scan_ref(*args, D=d, dt_bias=self.dt_bias, scan="sequential")
        else:
            y = mamba_chunk_scan(*args, D=d, dt_bias=self.dt_bias, backend=self.backend)
        y = self.norm(y.reshape(bsz, length, self.d_inner), z)
        return self.out_proj(y)

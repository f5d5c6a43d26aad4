"""The fused CPU selective scan (backend ``"cpu_fused"``): layouts, autograd and threads around
the numba kernels of :mod:`eegmamba.ops._scan_cpu` (imported here: this module needs numba, and
the dispatcher, :mod:`eegmamba.ops.dispatch`, imports it only once numba is known to import).

Two entry points compute the same function as :func:`eegmamba.ops.scan_ref.selective_scan_ref`:

* :func:`selective_scan_cpu` — mamba-ssm's signature and layouts, ``u (b, d, L)``, ``B, C (b, n, L)``
  or grouped ``(b, g, n, L)``. Time-invariant ``B``/``C`` of shape (d, n) are not taken (the
  dispatcher uses the reference for them under ``backend="auto"``).
* :func:`selective_scan_bld` — the kernel's own layout, used by BiMamba: ``u, δ, z (b, L, d)`` as
  the Linear layers make them, and ``B``/``C`` as column ranges of one ``(b, L, cols)`` tensor (the
  ``x_proj`` output), with ``reverse=True`` scanning from the last step to the first (BiMamba's
  backward direction without flipping anything).

Float32 and float64 are computed as given; other float dtypes in float32 (as the reference).
Gradients flow to ``u, δ, A, B, C, D, z, delta_bias`` and through the returned last state. With
``torch.get_num_threads() > 1`` the work items (batch × channel blocks) run in parallel on
numba's thread pool (one launch at a time, under a lock: numba's default pool does not take
concurrent launches); with 1 thread (the live loop) a serial kernel runs on the calling thread.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
from torch import Tensor

from eegmamba.ops import _scan_cpu

__all__ = ["selective_scan_cpu", "selective_scan_bld", "supports_layout"]

_LAUNCH = threading.Lock()


def _np(t: Tensor | None, like: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous numpy view of ``t`` (a zero-size stand-in of ``like``'s type for None)."""
    if t is None:
        return np.empty((0,) * like.ndim, like.dtype)
    return t.detach().contiguous().numpy()


def _parallel(nwork: int) -> bool:
    """Whether a call runs on numba's thread pool: more than one torch thread and work item."""
    return torch.get_num_threads() > 1 and nwork > 1


def _launch(serial, parallel, nwork: int, *args) -> None:
    """Run a kernel over ``nwork`` items: serially on this thread (it releases the GIL), or on
    numba's pool with as many threads as torch uses, one launch at a time."""
    if _parallel(nwork):
        import numba

        with _LAUNCH:
            numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
            parallel(nwork, *args)
    else:
        serial(nwork, *args)


class _Plan:
    """Shapes and flags of one call, shared by forward and backward."""

    def __init__(self, u, A, bc, b_off, c_off, groups, D, z, softplus, reverse):
        self.nb, self.L, self.d = u.shape
        self.n = A.shape[1]
        self.cols = bc.shape[2]
        gb, gc = groups if isinstance(groups, tuple) else (groups, groups)
        gszb, gszc = self.d // gb, self.d // gc
        self.bo, self.co = b_off, c_off
        self.seg = math.gcd(gszb, gszc)
        self.grp = (self.seg, gszb, gszc)
        self.has_d, self.has_z = D is not None, z is not None
        self.sp, self.rev = bool(softplus), bool(reverse)
        k = _scan_cpu
        self.W, self.K = k.W, k.CHUNK
        self.nblk = (self.d // self.seg) * (-(-self.seg // self.W))  # work items per batch
        self.nwork = self.nb * self.nblk
        self.nck = -(-self.L // self.K)
        f32 = u.dtype == torch.float32
        self.scale = 1.4426950408889634 if f32 else 1.0  # float32 decay: exp(x) = 2**(x log2 e)
        self.inv_scale = (np.float32 if f32 else np.float64)(1.0 / self.scale)


def _forward(p: _Plan, u, dl, A, bc, D, z, bias, save: bool):
    k = _scan_cpu
    un = _np(u)
    A2 = (A.detach() * p.scale).t().contiguous().numpy()
    out = torch.empty_like(u, memory_format=torch.contiguous_format)
    last = u.new_empty(p.nb, p.d, p.n)
    ck = u.new_empty(p.nb, p.nck if save else 0, p.n, p.d)
    bias_n = _np(bias) if bias is not None else np.zeros(p.d, un.dtype)
    args = (un, _np(dl), bias_n, A2, _np(bc), p.bo, p.co, p.grp, _np(D, bias_n), _np(z, un),
            out.numpy(), ck.numpy(), last.numpy(), p.has_d, p.has_z, p.sp, p.rev,
            p.K if save else 0)
    _launch(k.fwd_serial, k.fwd_parallel, p.nwork, *args)
    return out, last, ck


class _FusedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dl, A, bc, D, z, bias, p):
        out, last, ck = _forward(p, u, dl, A, bc, D, z, bias, save=True)
        ctx.save_for_backward(u, dl, A, bc, D, z, bias, ck)
        ctx.plan = p
        return out, last

    @staticmethod
    def backward(ctx, gout, glast):
        u, dl, A, bc, D, z, bias, ck = ctx.saved_tensors
        p: _Plan = ctx.plan
        k = _scan_cpu
        un = _np(u)
        par = _parallel(p.nwork)
        gu, gdl = torch.empty_like(u), torch.empty_like(u)
        gz = torch.empty_like(u) if p.has_z else None
        q = p.nb if par else 1
        gA = u.new_zeros(q, p.n, p.d)
        gD, gbias = u.new_zeros(q, p.d), u.new_zeros(q, p.d)
        gbc = u.new_zeros(p.nblk if par else 1, p.nb, p.L, p.cols)
        if glast is None:
            glast = u.new_zeros(p.nb, p.d, p.n)
        bias_n = _np(bias) if bias is not None else np.zeros(p.d, un.dtype)
        A2 = (A.detach() * p.scale).t().contiguous().numpy()
        args = (un, _np(dl), bias_n, A2, _np(bc), p.bo, p.co, p.grp, _np(D, bias_n),
                _np(z, un), ck.numpy(), _np(gout), _np(glast), p.has_d, p.has_z, p.sp, p.rev,
                p.K, p.inv_scale, gu.numpy(), gdl.numpy(), _np(gz, un), gA.numpy(), gD.numpy(),
                gbias.numpy(), gbc.numpy())
        _launch(k.bwd_serial, k.bwd_parallel, p.nwork, *args)
        need = ctx.needs_input_grad
        return (gu, gdl, gA.sum(0).t() if need[2] else None, gbc.sum(0) if need[3] else None,
                gD.sum(0) if p.has_d and need[4] else None, gz,
                gbias.sum(0) if bias is not None and need[6] else None, None)


def selective_scan_bld(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    bc: Tensor,
    b_off: int,
    c_off: int,
    groups: int | tuple[int, int] = 1,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    reverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Fused scan in the kernel's layout; returns ``(y (b, L, d), last state (b, d, n))``.

    Parameters
    ----------
    u, delta : Tensor, shape (b, L, d)
        Input and time step before ``delta_bias`` / softplus, float32 or float64 (same dtype
        for every tensor argument).
    A : Tensor, shape (d, n)
    bc : Tensor, shape (b, L, cols)
        ``B[:, s, g·n + k] = bc[:, s, b_off + g·n + k]``, ``C`` likewise from ``c_off``.
    groups : int or (int, int)
        B/C groups (one count, or B's and C's); group ``g`` serves channels
        ``[g d/groups, (g+1) d/groups)``.
    D : (d,), z : (b, L, d), delta_bias : (d,), optional
    reverse : bool
        Scan from ``s = L-1`` down to 0: the result equals flipping every input in time,
        scanning, and flipping ``y`` back; the last state is then the one after step 0.
    """
    p = _Plan(u, A, bc, b_off, c_off, groups, D, z, delta_softplus, reverse)
    if p.L == 0:
        return u.new_zeros(u.shape), u.new_zeros(p.nb, p.d, p.n)
    args = (u, delta, A, bc, D, z, delta_bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args):
        return _FusedScan.apply(*args, p)
    out, last, _ = _forward(p, *args, save=False)
    return out, last


def supports_layout(B: Tensor, C: Tensor) -> bool:
    """Whether :func:`selective_scan_cpu` takes these B/C layouts: input-dependent (b, n, L) or
    grouped (b, g, n, L); not time-invariant (d, n)."""
    return B.dim() in (3, 4) and C.dim() in (3, 4)


def selective_scan_cpu(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Fused CPU scan with mamba-ssm's signature (inputs validated by the caller,
    :func:`eegmamba.ops.dispatch.selective_scan`). ``u (b, d, L)``; returns ``y (b, d, L)``
    in ``u``'s dtype (a transposed view of the kernel's (b, L, d) output) and the last state in
    the compute dtype."""
    if not supports_layout(B, C):
        raise ValueError(
            "backend='cpu_fused' takes B and C of shape (batch, d_state, L) or "
            f"(batch, groups, d_state, L), not time-invariant (d_inner, d_state); got "
            f"{tuple(B.shape)} and {tuple(C.shape)}; use backend='auto' or 'ref'"
        )
    dtype = torch.promote_types(u.dtype, torch.float32)
    b, d, L = u.shape
    gb, gc = (1 if M.dim() == 3 else M.shape[1] for M in (B, C))
    n = A.shape[1]

    def bld(t):  # (b, d, L) -> (b, L, d), a view when t is a transposed (b, L, d) tensor
        return None if t is None else t.to(dtype).transpose(1, 2)

    def cols(M, g):  # (b, [g,] n, L) -> (b, L, g n)
        return M.to(dtype).reshape(b, g * n, L).transpose(1, 2)

    bc = torch.cat([cols(B, gb), cols(C, gc)], dim=2)
    y, last = selective_scan_bld(
        bld(u).contiguous(), bld(delta).contiguous(), A.to(dtype), bc, 0, gb * n, (gb, gc),
        None if D is None else D.to(dtype),
        None if z is None else bld(z).contiguous(),
        None if delta_bias is None else delta_bias.to(dtype),
        delta_softplus,
    )
    y = y.transpose(1, 2).to(u.dtype)
    return (y, last) if return_last_state else y


def warmup(dtypes: tuple[torch.dtype, ...] = (torch.float32,), backward: bool = True) -> float:
    """Compile (or load from numba's cache) the scan and conv kernels for ``dtypes``; returns
    the seconds it took. Also the parallel kernels when ``torch.get_num_threads() > 1``.
    Called through :func:`eegmamba.ops.dispatch.warmup`."""
    import time

    from eegmamba.ops._conv_cpu import conv_silu

    t0 = time.perf_counter()
    W = _scan_cpu.W
    for dtype in dtypes:
        g = torch.Generator().manual_seed(0)
        d = W + 3  # a full block and a tail block
        u = torch.randn(2, 5, d, generator=g, dtype=dtype)
        A = -torch.rand(d, 2, generator=g, dtype=dtype) - 0.5
        bc = torch.randn(2, 5, 4, generator=g, dtype=dtype)
        D, bias = torch.ones(d, dtype=dtype), torch.zeros(d, dtype=dtype)
        w, cb = torch.randn(d, 1, 4, generator=g, dtype=dtype), torch.zeros(d, dtype=dtype)
        with torch.set_grad_enabled(backward):
            leaves = [t.clone().requires_grad_(backward) for t in (u, u, A, bc, D, u, bias, w)]
            x = conv_silu(leaves[0], leaves[7], cb, False)
            y, last = selective_scan_bld(x, leaves[1], leaves[2], leaves[3], 0, 2, 1, leaves[4],
                                         leaves[5], leaves[6], True, False)
            if backward:
                (y.sum() + last.sum()).backward()
    return time.perf_counter() - t0

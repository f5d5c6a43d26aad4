"""Selective scan (the S6 recurrence of Mamba) with a fast pure-PyTorch reference and a fused path.

Implements the discretised SSM of EEGMamba section 2.1 (eqs. 2-4; Gu & Dao, 2023): zero-order
hold for ``A``, first-order (Euler) for ``B``, input-dependent ``Δ, B, C``:

    Δ_t   = softplus(Δ_t + bias)            (each optional)
    h_t   = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t         h : (d_inner, d_state)
    y_t   = <C_t, h_t> + D u_t,   then  y_t *= silu(z_t)  if z is given

Three functions share one signature, that of mamba-ssm's ``selective_scan_fn``:

* :func:`eegmamba.ops.dispatch.selective_scan` — the dispatcher (``backend="auto" | "ref" |
  "cpu_fused" | "mamba_ssm"``), in the dispatch module.
* :func:`selective_scan_ref` — the fast pure-PyTorch scan used on CPU and as ground truth for
  the fused kernel: chunked two-level scan (:func:`eegmamba.ops.chunk.chunk_scan`), autograd
  through it, memory linear in ``L``.
* :func:`selective_scan_sequential` — the plain per-step loop; the test oracle only.

Low-precision inputs are computed in float32 (float64 stays float64); ``y`` is returned in
the dtype of ``u``, the last state in the compute dtype (float32 for 16-bit inputs, as mamba-ssm).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from eegmamba.ops.chunk import chunk_scan, plan_chunks

__all__ = ["selective_scan_ref", "selective_scan_sequential"]


class _Inputs(NamedTuple):
    """Validated inputs in the compute dtype, laid out for broadcasting to (b, d, L, n)."""

    u: Tensor  # (b, d, L)
    delta: Tensor  # (b, d, L), bias and softplus applied
    A: Tensor  # (d, n)
    B: Tensor  # (b, 1|d, L, n) or (1, d, 1, n)
    C: Tensor  # same layouts as B
    D: Tensor | None  # (d,)
    z: Tensor | None  # (b, d, L)


def _shape_error(name: str, expected: str, got: Tensor) -> ValueError:
    return ValueError(f"selective_scan: {name} must have shape {expected}, got {tuple(got.shape)}")


def _bc_check(M: Tensor, name: str, b: int, d: int, n: int, L: int) -> None:
    """Raise ``ValueError`` unless B or C has one of the accepted shapes."""
    if M.dim() == 2:  # time-invariant (d, n)
        if tuple(M.shape) != (d, n):
            raise _shape_error(name, f"(d_inner, d_state)=({d}, {n})", M)
    elif M.dim() == 3:
        if tuple(M.shape) != (b, n, L):
            raise _shape_error(name, f"(batch, d_state, L)=({b}, {n}, {L})", M)
    elif M.dim() == 4:
        g = M.shape[1]
        if M.shape[0] != b or M.shape[2:] != (n, L) or g < 1 or d % g:
            raise _shape_error(name, f"(batch, groups, d_state, L)=({b}, g, {n}, {L}), g | {d}", M)
    else:
        raise _shape_error(name, "(d, n), (batch, n, L) or (batch, groups, n, L)", M)


def _bc_layout(M: Tensor, name: str, b: int, d: int, n: int, L: int, dtype: torch.dtype) -> Tensor:
    """B or C in a layout that broadcasts against (b, d, L, n) without copying where possible."""
    _bc_check(M, name, b, d, n, L)
    M = M.to(dtype)
    if M.dim() == 2:
        return M[None, :, None, :]
    if M.dim() == 3:
        return M.transpose(1, 2)[:, None]
    g = M.shape[1]
    M = M.transpose(2, 3)  # (b, g, L, n)
    if g == 1:
        return M
    # each group serves d // g consecutive channels (mamba-ssm's "B G N L -> B (G H) N L")
    return M[:, :, None].expand(b, g, d // g, L, n).reshape(b, d, L, n)


def _validate(u, delta, A, B, C, D, z, delta_bias) -> tuple[int, int, int, int]:
    """Check types and shapes (B and C too); return ``(b, d, L, n)``."""
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        if not isinstance(t, Tensor):
            raise TypeError(f"selective_scan: {name} must be a torch.Tensor, got {type(t).__name__}")
    if u.dim() != 3:
        raise _shape_error("u", "(batch, d_inner, L)", u)
    b, d, L = u.shape
    if delta.shape != u.shape:
        raise _shape_error("delta", f"(batch, d_inner, L)=({b}, {d}, {L}) like u", delta)
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported (EEGMamba uses real A)")
    if A.dim() != 2 or A.shape[0] != d:
        raise _shape_error("A", f"(d_inner, d_state) with d_inner={d}", A)
    n = A.shape[1]
    if delta_bias is not None and delta_bias.shape != (d,):
        raise _shape_error("delta_bias", f"(d_inner,)=({d},)", delta_bias)
    if D is not None and D.shape != (d,):
        raise _shape_error("D", f"(d_inner,)=({d},)", D)
    if z is not None and z.shape != u.shape:
        raise _shape_error("z", f"(batch, d_inner, L)=({b}, {d}, {L}) like u", z)
    for M, name in ((B, "B"), (C, "C")):
        _bc_check(M, name, b, d, n, L)
    return b, d, L, n


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> _Inputs:
    b, d, L, n = _validate(u, delta, A, B, C, D, z, delta_bias)
    dtype = torch.promote_types(u.dtype, torch.float32)
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return _Inputs(
        u=u.to(dtype),
        delta=delta,
        A=A.to(dtype),
        B=_bc_layout(B, "B", b, d, n, L, dtype),
        C=_bc_layout(C, "C", b, d, n, L, dtype),
        D=None if D is None else D.to(dtype),
        z=None if z is None else z.to(dtype),
    )


def _finish(y: Tensor, p: _Inputs, dtype_in: torch.dtype) -> Tensor:
    """Add the skip term D u, gate with silu(z), cast back to the input dtype."""
    if p.D is not None:
        y = y + p.u * p.D[:, None]
    if p.z is not None:
        y = y * F.silu(p.z)
    return y.to(dtype_in)


def selective_scan_sequential(
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
    """Plain per-time-step loop; the test oracle (slow for long ``L``). Same contract as
    :func:`selective_scan_ref`."""
    p = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    b, d, L = p.u.shape
    h = p.u.new_zeros(b, d, p.A.shape[1])
    ys = []
    for t in range(L):
        Bt = p.B[:, :, min(t, p.B.shape[2] - 1)]  # (b|1, 1|d, n); time-invariant B has L=1
        Ct = p.C[:, :, min(t, p.C.shape[2] - 1)]
        dt = p.delta[:, :, t, None]  # (b, d, 1)
        h = torch.exp(dt * p.A) * h + dt * Bt * p.u[:, :, t, None]
        ys.append((h * Ct).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else p.u.new_zeros(b, d, 0)
    out = _finish(y, p, u.dtype)
    return (out, h) if return_last_state else out


def selective_scan_ref(
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
    chunk_size: int | None = None,
    segment_len: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Fast pure-PyTorch selective scan (any device; autograd through it).

    Parameters
    ----------
    u : Tensor, shape (batch, d_inner, L)
        Input sequence.
    delta : Tensor, shape (batch, d_inner, L)
        Time step Δ before ``delta_bias`` / softplus.
    A : Tensor, shape (d_inner, d_state), real
        State matrix (diagonal per channel; negative for a stable scan).
    B, C : Tensor, shape (batch, d_state, L) or (batch, groups, d_state, L) or (d_inner, d_state)
        Input and output projections (input-dependent or time-invariant).
    D : Tensor, shape (d_inner,), optional
        Skip connection ``y += D * u``.
    z : Tensor, shape (batch, d_inner, L), optional
        Gate: ``y *= silu(z)``.
    delta_bias : Tensor, shape (d_inner,), optional
        Added to ``delta`` before softplus.
    delta_softplus : bool
        Apply softplus to ``delta``.
    return_last_state : bool
        Also return ``h_{L-1}``, shape (batch, d_inner, d_state), compute dtype.
    chunk_size, segment_len : int, optional
        Chunk length ``T`` and segment length (steps held in memory at once) of the two-level
        scan; defaults from :func:`~eegmamba.ops.chunk.plan_chunks`. Tuning knobs, results do not change.

    Returns
    -------
    y : Tensor, shape (batch, d_inner, L), dtype of ``u``
        (and the last state if ``return_last_state``).
    """
    p = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    b, d, L = p.u.shape
    n = p.A.shape[1]
    if L == 0:
        out = _finish(p.u.new_zeros(b, d, 0), p, u.dtype)
        return (out, p.u.new_zeros(b, d, n)) if return_last_state else out
    for name, v in (("chunk_size", chunk_size), ("segment_len", segment_len)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"selective_scan_ref: {name} must be a positive int, got {v!r}")
    T, nc = plan_chunks(L, b * d * n, chunk_size, segment_len)
    Lp = -(-L // (T * nc)) * (T * nc)
    # Time-major (Lp, b, d): the padded tail has Δ = 0 and Δu = 0, i.e. decay 1 and input 0,
    # so the state passes through it unchanged and the last state is h_{L-1} exactly.
    dt = _time_major(p.delta, Lp)
    du = _time_major(p.delta * p.u, Lp)
    y, last = _SelectiveScan.apply(dt, du, p.A, _time_major(p.B, Lp), _time_major(p.C, Lp), T, nc)
    out = _finish(y[:L].permute(1, 2, 0), p, u.dtype)
    return (out, last) if return_last_state else out


def _time_major(v: Tensor, Lp: int) -> Tensor:
    """(b, d, L) -> (Lp, b, d); B/C layout (b', d', L|1, n) -> (Lp|1, b', d', n). Zero-padded
    to ``Lp`` steps, contiguous."""
    t_dim = v.dim() - 1 if v.dim() == 3 else 2
    L = v.shape[t_dim]
    if L != 1 or v.dim() == 3:
        pad = [0, 0] * (v.dim() - 1 - t_dim) + [0, Lp - L]
        v = F.pad(v, pad) if Lp != L else v
    return v.movedim(t_dim, 0).contiguous()


def _seg(X: Tensor, sl: slice, nc: int, T: int) -> Tensor:
    """Segment ``sl`` of a time-major tensor as (nc, T, ...); time-invariant rows broadcast."""
    if X.shape[0] == 1:
        return X[None]
    return X[sl].view(nc, T, *X.shape[1:])


def _dot_n(big: Tensor, X: Tensor) -> Tensor:
    """sum_n big * X: (nc, T, b, d, n) x (nc|1, T|1, b', d', n) -> (nc, T, b, d)."""
    if X.shape[-2] == 1 and X.shape[0] != 1 and X.shape[2] == big.shape[2]:
        return torch.matmul(big, X.transpose(-1, -2)).squeeze(-1)  # batched (d, n) @ (n, 1)
    return (big * X).sum(-1)


def _dot_d(big: Tensor, small: Tensor, like: Tensor) -> Tensor:
    """big (nc, T, b, d, n) * small (nc, T, b, d)[..., None], summed to the shape of ``like``."""
    if like.shape[-2] == 1 and like.shape[0] != 1 and like.shape[2] == big.shape[2]:
        return torch.matmul(small.unsqueeze(-2), big)  # batched (1, d) @ (d, n)
    return (big * small[..., None]).sum_to_size(like.shape)


def _decays(dts: Tensor, A: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step decays ``exp(Δ A)``, (nc, T, b, d, n), and their product over each chunk
    ``exp(A * sum Δ)``, (nc, b, d, n). dts : (nc, T, b, d, 1); A : (d, n). With Δ >= 0 and
    A <= 0 every exponent is <= 0."""
    return (dts * A).exp_(), (dts.sum(1) * A).exp_()


class _SelectiveScan(torch.autograd.Function):
    """The scan proper on time-major inputs, segment by segment (:func:`~eegmamba.ops.chunk.chunk_scan`).

    Forward keeps only the state entering each segment; backward recomputes each segment's
    states (right to left) and runs the adjoint recurrence ``g_p = dL/dh_p + a_{p+1} g_{p+1}``
    with the same kernel. Saved: the (Lp, b, d) inputs, B, C and one (b, d, n) state per
    segment — never a (L, b, d, n) tensor; temporaries are O(segment) (see ``plan_chunks``).

    dt, du : (Lp, b, d) — Δ and Δ·u;  A : (d, n);  B, C : (Lp|1, b', d', n).
    Returns y : (Lp, b, d) and the final state (b, d, n).
    """

    @staticmethod
    def forward(ctx, dt, du, A, B, C, T, nc):
        Lp, b, d = dt.shape
        S = T * nc
        y = torch.empty_like(dt)
        h_in = dt.new_zeros(b, d, A.shape[1])
        starts = []
        for s0 in range(0, Lp, S):
            sl = slice(s0, s0 + S)
            dts = dt[sl].view(nc, T, b, d, 1)
            a, P = _decays(dts, A)
            h = chunk_scan(a, du[sl].view(nc, T, b, d, 1) * _seg(B, sl, nc, T), h_in, a_chunk=P)
            y[sl] = _dot_n(h, _seg(C, sl, nc, T)).view(S, b, d)
            starts.append(h_in)
            h_in = h[-1, -1].clone()
        ctx.save_for_backward(dt, du, A, B, C, torch.stack(starts))
        ctx.T, ctx.nc = T, nc
        return y, h_in

    @staticmethod
    def backward(ctx, gy, g_last):
        dt, du, A, B, C, starts = ctx.saved_tensors
        T, nc, S = ctx.T, ctx.nc, ctx.T * ctx.nc
        Lp, b, d = dt.shape
        need = ctx.needs_input_grad
        gdt, gdu = torch.empty_like(dt), torch.empty_like(du)
        gA, gB, gC = torch.zeros_like(A), torch.zeros_like(B), torch.zeros_like(C)
        dt_next = torch.cat([dt[1:], dt.new_zeros(1, b, d)])  # Δ_{p+1}: decay a_{p+1}
        g_right = None  # adjoint state at the first step of the segment to the right
        for k in range(Lp // S - 1, -1, -1):
            sl = slice(k * S, (k + 1) * S)
            dts, dus = dt[sl].view(nc, T, b, d), du[sl].view(nc, T, b, d)
            Bs, Cs, gys = _seg(B, sl, nc, T), _seg(C, sl, nc, T), gy[sl].view(nc, T, b, d)
            a, P = _decays(dts[..., None], A)
            h = chunk_scan(a, dus[..., None] * Bs, starts[k], a_chunk=P)
            gh = gys[..., None] * Cs
            if g_last is not None and k == Lp // S - 1:
                gh[-1, -1] += g_last
            a_next, P = _decays(dt_next[sl].view(nc, T, b, d, 1), A)
            g = chunk_scan(a_next, gh, g_right, reverse=True, a_chunk=P)  # dL/dh_p = dL/dx_p
            g_right = g[0, 0].clone()
            if need[4]:
                gCs = _dot_d(h, gys, Cs)
                gC[sl if C.shape[0] != 1 else slice(None)] += gCs.reshape(-1, *C.shape[1:])
            if need[3]:
                gBs = _dot_d(g, dus, Bs)
                gB[sl if B.shape[0] != 1 else slice(None)] += gBs.reshape(-1, *B.shape[1:])
            gdu[sl] = _dot_n(g, Bs).view(S, b, d)
            # dL/d(Δ A)_p = g_p * a_p * h_{p-1}; h shifted right by one step, in place
            h_prev = h.view(S, b, d, -1).roll(1, 0)
            h_prev[0] = starts[k]
            gda = h_prev.view_as(g).mul_(a).mul_(g)
            if need[2]:
                gA += torch.einsum("ctbdn,ctbd->dn", gda, dts)
            gdt[sl] = gda.mul_(A).sum(-1).view(S, b, d)
        return gdt, gdu, gA, gB, gC, None, None

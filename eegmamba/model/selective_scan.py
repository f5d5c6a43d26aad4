"""Selective scan (the S6 recurrence of Mamba) with a fast pure-PyTorch reference and a fused path.

Implements the discretised SSM of EEGMamba section 2.1 (eqs. 2-4; Gu & Dao, 2023): zero-order
hold for ``A``, first-order (Euler) for ``B``, input-dependent ``Δ, B, C``:

    Δ_t   = softplus(Δ_t + bias)            (each optional)
    h_t   = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t         h : (d_inner, d_state)
    y_t   = <C_t, h_t> + D u_t,   then  y_t *= silu(z_t)  if z is given

Three functions share one signature, that of mamba-ssm's ``selective_scan_fn``:

* :func:`selective_scan` — the dispatcher (``backend="auto" | "ref" | "mamba_ssm"``).
* :func:`selective_scan_ref` — the fast pure-PyTorch scan used on CPU and as ground truth for
  the fused kernel: chunked two-level scan (:func:`eegmamba.model._kernels.linear_scan`), autograd
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

from eegmamba.model import _kernels
from eegmamba.model._kernels import linear_scan

__all__ = ["selective_scan", "selective_scan_ref", "selective_scan_sequential"]


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


def _bc_layout(M: Tensor, name: str, b: int, d: int, n: int, L: int, dtype: torch.dtype) -> Tensor:
    """B or C in a layout that broadcasts against (b, d, L, n) without copying where possible."""
    M = M.to(dtype)
    if M.dim() == 2:  # time-invariant (d, n)
        if tuple(M.shape) != (d, n):
            raise _shape_error(name, f"(d_inner, d_state)=({d}, {n})", M)
        return M[None, :, None, :]
    if M.dim() == 3:
        if tuple(M.shape) != (b, n, L):
            raise _shape_error(name, f"(batch, d_state, L)=({b}, {n}, {L})", M)
        return M.transpose(1, 2)[:, None]
    if M.dim() == 4:
        g = M.shape[1]
        if M.shape[0] != b or M.shape[2:] != (n, L) or g < 1 or d % g:
            raise _shape_error(name, f"(batch, groups, d_state, L)=({b}, g, {n}, {L}), g | {d}", M)
        M = M.transpose(2, 3)  # (b, g, L, n)
        if g == 1:
            return M
        # each group serves d // g consecutive channels (mamba-ssm's "B G N L -> B (G H) N L")
        return M[:, :, None].expand(b, g, d // g, L, n).reshape(b, d, L, n)
    raise _shape_error(name, "(d, n), (batch, n, L) or (batch, groups, n, L)", M)


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> _Inputs:
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
    dtype = torch.promote_types(u.dtype, torch.float32)
    delta = delta.to(dtype)
    if delta_bias is not None:
        if delta_bias.shape != (d,):
            raise _shape_error("delta_bias", f"(d_inner,)=({d},)", delta_bias)
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if D is not None and D.shape != (d,):
        raise _shape_error("D", f"(d_inner,)=({d},)", D)
    if z is not None and z.shape != u.shape:
        raise _shape_error("z", f"(batch, d_inner, L)=({b}, {d}, {L}) like u", z)
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
    chunk_size : int, optional
        Chunk length of the two-level scan; default about sqrt(L).

    Returns
    -------
    y : Tensor, shape (batch, d_inner, L), dtype of ``u``
        (and the last state if ``return_last_state``).
    """
    p = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    # decay and input of the linear recurrence h_t = a_t * h_{t-1} + x_t, each (b, d, L, n)
    a = torch.exp(p.delta[..., None] * p.A[:, None, :])
    x = (p.delta * p.u)[..., None] * p.B
    h = linear_scan(a, x, chunk_size)
    y = (h * p.C).sum(-1)
    out = _finish(y, p, u.dtype)
    if return_last_state:
        b, d, L = p.u.shape
        last = h[:, :, -1] if L else p.u.new_zeros(b, d, p.A.shape[1])
        return out, last
    return out


def selective_scan(
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
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan through the backend resolved by :func:`_kernels.resolve_backend`.

    Same arguments and results as :func:`selective_scan_ref` (and mamba-ssm's
    ``selective_scan_fn``). ``backend="auto"`` uses the fused mamba-ssm kernel for CUDA tensors
    where it imports, else the reference; ``"mamba_ssm"`` forced on CPU or without the kernel
    raises ``RuntimeError`` with the install command. The fused kernel does not propagate
    gradients through the returned last state (the reference does).
    """
    if not isinstance(u, Tensor):
        raise TypeError(f"selective_scan: u must be a torch.Tensor, got {type(u).__name__}")
    if _kernels.resolve_backend(backend, u.device) == "mamba_ssm":
        fn = _kernels.selective_scan_fn()
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return selective_scan_ref(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
    )

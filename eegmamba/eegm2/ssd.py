"""Structured state space duality (SSD) scan of Mamba-2, in pure PyTorch (Dao & Gu 2024, Section 6).

The scan computes, per head h and step t (state ``S`` of shape (P, N))::

    S_t = exp(a_t) * S_{t-1} + x_t ⊗ b_t        y_t = S_t · c_t

with ``a_t <= 0`` the log decay (``A·dt`` in Mamba-2), ``x_t`` (P,) the input (``x·dt``), ``b_t``,
``c_t`` (N,) shared by the heads of one group. Three functions:

- :func:`ssd_chunked`: the chunked SSD algorithm (Listing 1 of the paper, ``ssd_minimal_discrete`` in
  mamba-ssm) with two changes: the sequence is zero-padded at the end to a multiple of the chunk
  size (exact, because the scan is causal: padding only follows the real samples), and the
  inter-chunk recurrence is a loop over chunks, O(L/Q), instead of the paper's (L/Q)² segsum
  matrix, so the whole scan is linear in L.
- :func:`ssd_sequential`: the step-by-step recurrence above, the test oracle.
- :func:`mamba_chunk_scan` / :func:`mamba_chunk_scan_ref`: the Mamba-2 scan with discretisation,
  ``D`` skip and softplus on ``dt``, with the signature of mamba-ssm's
  ``mamba_chunk_scan_combined``; ``backend`` picks the fused Triton kernel (CUDA + mamba-ssm) or the
  reference here.

Shapes: batch ``b``, length ``L``, heads ``H``, head dim ``P``, groups ``G`` (H % G == 0), state ``N``.
Half-precision inputs are computed in float32 and cast back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from eegmamba.ops import dispatch

_UPCAST = (torch.float16, torch.bfloat16)


def _check_shapes(x: Tensor, a: Tensor, b: Tensor, c: Tensor) -> tuple[int, int, int, int, int, int]:
    if x.ndim != 4:
        raise ValueError(f"x must have shape (batch, L, heads, headdim), got {tuple(x.shape)}")
    bs, length, nheads, headdim = x.shape
    if a.shape != (bs, length, nheads):
        raise ValueError(f"a must have shape {(bs, length, nheads)}, got {tuple(a.shape)}")
    if b.ndim != 4 or b.shape[:2] != (bs, length) or b.shape != c.shape:
        raise ValueError(
            f"b and c must have shape (batch={bs}, L={length}, groups, d_state), "
            f"got {tuple(b.shape)} and {tuple(c.shape)}"
        )
    ngroups, dstate = b.shape[2], b.shape[3]
    if nheads % ngroups:
        raise ValueError(f"heads ({nheads}) must be a multiple of groups ({ngroups})")
    return bs, length, nheads, headdim, ngroups, dstate


def _segsum_decay(a_cum: Tensor) -> Tensor:
    """Decay mask within a chunk: ``out[..., l, s] = exp(a[s+1] + ... + a[l])`` for l >= s, else 0.

    a_cum : Tensor, shape (..., Q), the cumulative sum of the log decays over the chunk. Uses the
    difference of cumulative sums, as mamba-ssm's Triton chunk-scan kernel does; within one chunk
    the sums stay small (|a_cum| <= Q·max|A·dt|), so float32 keeps ~1e-6 relative accuracy.
    """
    q = a_cum.shape[-1]
    causal = torch.ones(q, q, dtype=torch.bool, device=a_cum.device).tril()
    return torch.exp((a_cum.unsqueeze(-1) - a_cum.unsqueeze(-2)).masked_fill(~causal, float("-inf")))


def ssd_chunked(
    x: Tensor,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    chunk_size: int = 64,
    initial_state: Tensor | None = None,
    return_final_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Chunked SSD scan, linear in L.

    Parameters
    ----------
    x : Tensor, shape (batch, L, H, P)
        Inputs (already multiplied by dt in Mamba-2).
    a : Tensor, shape (batch, L, H)
        Log decay per step, <= 0 (``A·dt``).
    b, c : Tensor, shape (batch, L, G, N)
        Input and output projections, shared by the H/G heads of each group.
    chunk_size : int
        Q. A pure performance knob: the result is the same for any Q (up to rounding).
    initial_state : Tensor, shape (batch, H, P, N), optional
        State before the first step (zeros if None).
    return_final_state : bool
        Also return the state after the last real step.

    Returns
    -------
    y : Tensor, shape (batch, L, H, P)
    final_state : Tensor, shape (batch, H, P, N), only if ``return_final_state``.
    """
    bs, length, nheads, headdim, ngroups, dstate = _check_shapes(x, a, b, c)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    dtype = x.dtype
    work = torch.float32 if dtype in _UPCAST else dtype
    x, a, b, c = (t.to(work) for t in (x, a, b, c))
    r = nheads // ngroups
    q = chunk_size
    pad = (-length) % q
    if pad:  # zeros after the end: a=0 keeps the state, x=0 adds nothing; cropped below
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, pad))
        b = F.pad(b, (0, 0, 0, 0, 0, pad))
        c = F.pad(c, (0, 0, 0, 0, 0, pad))
    nc = (length + pad) // q
    # layouts: X (b, c, g, r, l, p); A (b, c, g, r, l); B, C (b, c, g, l, n)
    xs = x.view(bs, nc, q, ngroups, r, headdim).permute(0, 1, 3, 4, 2, 5)
    as_ = a.view(bs, nc, q, ngroups, r).permute(0, 1, 3, 4, 2)
    bs_ = b.view(bs, nc, q, ngroups, dstate).permute(0, 1, 3, 2, 4)
    cs = c.view(bs, nc, q, ngroups, dstate).permute(0, 1, 3, 2, 4)
    a_cum = torch.cumsum(as_, dim=-1)  # (b, c, g, r, l)

    # 1. within each chunk: y = (C Bᵀ ∘ decay mask) X; C Bᵀ is shared by the heads of a group
    cb = torch.matmul(cs, bs_.transpose(-1, -2)).unsqueeze(3)  # (b, c, g, 1, l, s)
    y = torch.matmul(cb * _segsum_decay(a_cum), xs)  # (b, c, g, r, l, p)

    # 2. each chunk's own contribution to the state at its end
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, c, g, r, l)
    chunk_states = torch.matmul(
        (xs * decay_to_end.unsqueeze(-1)).transpose(-1, -2), bs_.unsqueeze(3)
    )  # (b, c, g, r, p, n)

    # 3. inter-chunk recurrence, one step per chunk (linear in the number of chunks)
    chunk_decay = torch.exp(a_cum[..., -1])  # (b, c, g, r)
    if initial_state is None:
        state = x.new_zeros(bs, ngroups, r, headdim, dstate)
    else:
        if initial_state.shape != (bs, nheads, headdim, dstate):
            raise ValueError(
                f"initial_state must have shape {(bs, nheads, headdim, dstate)}, "
                f"got {tuple(initial_state.shape)}"
            )
        state = initial_state.to(work).reshape(bs, ngroups, r, headdim, dstate)
    entering = []
    for k in range(nc):
        entering.append(state)
        state = chunk_decay[:, k, :, :, None, None] * state + chunk_states[:, k]
    prev = torch.stack(entering, dim=1)  # (b, c, g, r, p, n): state entering each chunk

    # 4. contribution of the entering state to each output in the chunk
    y = y + torch.matmul(cs.unsqueeze(3), prev.transpose(-1, -2)) * torch.exp(a_cum).unsqueeze(-1)

    y = y.permute(0, 1, 4, 2, 3, 5).reshape(bs, nc * q, nheads, headdim)[:, :length].to(dtype)
    if not return_final_state:
        return y
    # the padded steps have a=0 and x=0, so the state after them is the real final state
    return y, state.reshape(bs, nheads, headdim, dstate).to(dtype)


def ssd_sequential(
    x: Tensor,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    chunk_size: int = 64,
    initial_state: Tensor | None = None,
    return_final_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The same scan, one step at a time (L Python steps): the oracle for :func:`ssd_chunked`.

    Same signature and shapes as :func:`ssd_chunked`; ``chunk_size`` is accepted and ignored.
    """
    bs, length, nheads, headdim, ngroups, dstate = _check_shapes(x, a, b, c)
    dtype = x.dtype
    work = torch.float32 if dtype in _UPCAST else dtype
    r = nheads // ngroups
    xs = x.to(work).view(bs, length, ngroups, r, headdim)
    decay = torch.exp(a.to(work)).view(bs, length, ngroups, r)
    bw, cw = b.to(work), c.to(work)
    if initial_state is None:
        state = xs.new_zeros(bs, ngroups, r, headdim, dstate)
    else:
        state = initial_state.to(work).reshape(bs, ngroups, r, headdim, dstate)
    ys = []
    for t in range(length):
        state = (decay[:, t, :, :, None, None] * state
                 + xs[:, t, :, :, :, None] * bw[:, t, :, None, None, :])
        ys.append((state * cw[:, t, :, None, None, :]).sum(-1))
    y = torch.stack(ys, dim=1).reshape(bs, length, nheads, headdim).to(dtype)
    if not return_final_state:
        return y
    return y, state.reshape(bs, nheads, headdim, dstate).to(dtype)


SCANS = {"chunked": ssd_chunked, "sequential": ssd_sequential}


def mamba_chunk_scan_ref(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    D: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = True,
    scan: str = "chunked",
) -> Tensor:
    """Mamba-2 scan in PyTorch: ``y = SSD(x·dt, A·dt, B, C) + D·x``, as ``mamba_chunk_scan_combined``.

    Parameters
    ----------
    x : Tensor, shape (batch, L, H, P)
    dt : Tensor, shape (batch, L, H)
        Raw step sizes; ``softplus(dt + dt_bias)`` when ``dt_softplus``.
    A : Tensor, shape (H,)
        Negative continuous-time decay rates (``-exp(A_log)``).
    B, C : Tensor, shape (batch, L, G, N)
    chunk_size : int
    D : Tensor, shape (H,) or (H, P), optional
        Skip connection.
    dt_bias : Tensor, shape (H,), optional
    scan : {"chunked", "sequential"}
        Which reference scan to use (the sequential one is the oracle for tests and benchmarks).

    Returns
    -------
    y : Tensor, shape (batch, L, H, P), dtype of ``x``.
    """
    if scan not in SCANS:
        raise ValueError(f"scan must be one of {sorted(SCANS)}, got {scan!r}")
    dtype = x.dtype
    work = torch.float32 if dtype in _UPCAST else dtype
    dt = dt.to(work)
    if dt_bias is not None:
        dt = dt + dt_bias.to(work)
    if dt_softplus:
        dt = F.softplus(dt)
    xw = x.to(work)
    y = SCANS[scan](xw * dt.unsqueeze(-1), A.to(work) * dt, B, C, chunk_size)
    if D is not None:
        d = D.to(work)
        y = y + (d.unsqueeze(-1) if d.ndim == 1 else d) * xw
    return y.to(dtype)


def mamba_chunk_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    D: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = True,
    backend: str = "auto",
) -> Tensor:
    """Dispatch the Mamba-2 scan: mamba-ssm's fused Triton kernel or :func:`mamba_chunk_scan_ref`.

    ``backend`` follows the project rule (``eegmamba.ops.dispatch.resolve_backend``): ``"auto"``
    takes the kernel when mamba-ssm is importable and ``x`` is on CUDA, ``"ref"`` always the
    PyTorch code, ``"mamba_ssm"`` the kernel or a RuntimeError saying how to install it.
    Shapes as in :func:`mamba_chunk_scan_ref`.
    """
    if dispatch.resolve_backend(backend, x.device) == "mamba_ssm":
        return dispatch.mamba_chunk_scan_combined()(
            x, dt, A, B, C, chunk_size, D=D, dt_bias=dt_bias, dt_softplus=dt_softplus
        )
    return mamba_chunk_scan_ref(x, dt, A, B, C, chunk_size, D=D, dt_bias=dt_bias,
                                dt_softplus=dt_softplus)

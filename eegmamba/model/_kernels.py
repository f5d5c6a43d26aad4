"""Scan kernels: the chunked pure-PyTorch linear recurrence, and the one place that imports the
optional fused CUDA kernels of ``mamba-ssm``.

Everything else asks this module which backend to use (:func:`resolve_backend`) and gets the
fused functions from the accessors below, so the optional import, its error message and the
install command live in one place (pattern of state-spaces/mamba's ``selective_scan_fn`` /
``selective_scan_ref`` pair).

Backends
--------
``"ref"``       pure-PyTorch reference (any device, autograd through it); used on CPU.
``"mamba_ssm"`` the fused CUDA kernels of the ``mamba-ssm`` package (CUDA tensors only).
``"auto"``      ``"mamba_ssm"`` for CUDA tensors when ``mamba-ssm`` imports, else ``"ref"``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch
from torch import Tensor

from eegmamba._checks import check_option, check_type

BACKENDS: tuple[str, ...] = ("auto", "ref", "mamba_ssm")

INSTALL_HINT = (
    'install it on a CUDA machine with `pip install "eegmamba-live[cuda]"` '
    "(or `pip install mamba-ssm causal-conv1d --no-build-isolation`)"
)


@functools.lru_cache(maxsize=1)
def _import_error() -> str | None:
    """Why ``mamba_ssm``'s fused selective scan cannot be imported (``None`` if it can)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception as err:  # ImportError, or OSError/RuntimeError from a broken CUDA build
        return f"{type(err).__name__}: {err}"
    return None


def has_mamba_ssm() -> bool:
    """Whether the fused ``mamba_ssm`` selective-scan kernel can be imported here."""
    return _import_error() is None


def _device_of(device: Any) -> torch.device:
    if isinstance(device, torch.Tensor):
        return device.device
    check_type(device, (torch.device, str), "device")
    return torch.device(device)


def resolve_backend(backend: str, device: torch.device | str | torch.Tensor) -> str:
    """Return the concrete backend, ``"ref"`` or ``"mamba_ssm"``, for tensors on ``device``.

    Parameters
    ----------
    backend : str
        ``"auto"``, ``"ref"`` or ``"mamba_ssm"``.
    device : torch.device | str | Tensor
        Where the inputs live (a tensor stands for its device).

    Raises
    ------
    ValueError
        ``backend`` is not one of :data:`BACKENDS`.
    RuntimeError
        ``"mamba_ssm"`` was forced for CPU tensors or where the kernel does not import;
        the message says why and how to install it.
    """
    check_option(backend, BACKENDS, "backend")
    dev = _device_of(device)
    if backend == "ref":
        return "ref"
    if backend == "auto":
        return "mamba_ssm" if dev.type == "cuda" and has_mamba_ssm() else "ref"
    if dev.type != "cuda":
        raise RuntimeError(
            f"backend='mamba_ssm' needs CUDA tensors, got tensors on {dev}; "
            "use backend='ref' or 'auto' on this device"
        )
    if not has_mamba_ssm():
        raise RuntimeError(
            f"backend='mamba_ssm' requested but mamba-ssm is not importable ({_import_error()}); "
            f"{INSTALL_HINT}, or use backend='ref'"
        )
    return "mamba_ssm"


def _require() -> None:
    if not has_mamba_ssm():
        raise RuntimeError(f"mamba-ssm is not importable ({_import_error()}); {INSTALL_HINT}")


def selective_scan_fn() -> Callable[..., Any]:
    """The fused ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``.

    Raises ``RuntimeError`` with the install command where mamba-ssm is missing.
    """
    _require()
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as fn

    return fn


def mamba_chunk_scan_combined() -> Callable[..., Any]:
    """The fused Mamba-2 (SSD) ``mamba_chunk_scan_combined`` from ``mamba_ssm.ops.triton``.

    Raises ``RuntimeError`` with the install command where mamba-ssm (or its Triton SSD
    kernels) is missing.
    """
    _require()
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined as fn
    except Exception as err:
        raise RuntimeError(
            f"mamba-ssm imports but its Mamba-2 kernels do not ({type(err).__name__}: {err}); "
            f"{INSTALL_HINT} (mamba-ssm >= 2.0 with triton)"
        ) from err
    return fn


# ---------------------------------------------------------------------------------------------
# Pure-PyTorch linear recurrence h_t = a_t * h_{t-1} + x_t (the core of the reference scan)
# ---------------------------------------------------------------------------------------------


def default_chunk_size(L: int) -> int:
    """Chunk length of the two-level scan for a sequence of ``L`` steps (about sqrt(L)).

    A chunked scan costs ``T + L / T`` small Python-level steps, minimal at ``T = sqrt(L)``.
    """
    return max(8, min(256, int(round(math.sqrt(max(L, 1))))))


@torch.no_grad()
def _scan(a: Tensor, x: Tensor, T: int, reverse: bool) -> Tensor:
    """Solve the linear recurrence along dim -2 without autograd.

    ``reverse=False``: ``h_t = a_t h_{t-1} + x_t`` (``h_{-1} = 0``);
    ``reverse=True``:  ``h_t = a_t h_{t+1} + x_t`` (``h_L = 0``).

    Two levels: the ``L0 = T * (L // T)`` aligned steps are cut into ``nc`` chunks of ``T``;
    (1) a local scan from a zero state runs in all chunks at once (``T`` vectorised steps);
    (2) the states entering each chunk are carried across chunks (``nc`` small steps) using the
    chunk decay products; (3) each chunk adds ``cumprod(a) * state entering it``. Only products
    of the given decays are formed (never an exponential of a positive cumulative sum), so the
    result is as finite as the recurrence itself. The ``L - L0`` leftover steps run one by one.

    a, x : Tensor, shape (..., L, n), same shape; returns h, same shape, dtype of x.
    """
    L = x.shape[-2]
    h = torch.empty_like(x)
    nc = L // T if L else 0
    if nc < 2:  # short sequence: plain loop
        order = range(L - 1, -1, -1) if reverse else range(L)
        prev = None
        for t in order:
            if prev is None:
                h[..., t, :] = x[..., t, :]
            else:
                torch.addcmul(x[..., t, :], a[..., t, :], h[..., prev, :], out=h[..., t, :])
            prev = t
        return h
    L0 = nc * T
    s = L - L0 if reverse else 0  # start of the chunked part
    a4, x4, h4 = (v[..., s : s + L0, :].unflatten(-2, (nc, T)) for v in (a, x, h))
    # (1) local scans from zero, all chunks together; P = within-chunk decay products
    steps = list(range(T - 1, -1, -1)) if reverse else list(range(T))
    if reverse:  # chunks 0..nc-2 receive state from their right neighbour
        a_in, h_out = a4[..., :-1, :, :], h4[..., :-1, :, :]
    else:  # chunks 1..nc-1 receive state from their left neighbour
        a_in, h_out = a4[..., 1:, :, :], h4[..., 1:, :, :]
    P = torch.empty_like(a_in)
    h4[..., steps[0], :] = x4[..., steps[0], :]
    P[..., steps[0], :] = a_in[..., steps[0], :]
    for prev, t in zip(steps[:-1], steps[1:]):
        torch.addcmul(x4[..., t, :], a4[..., t, :], h4[..., prev, :], out=h4[..., t, :])
        torch.mul(a_in[..., t, :], P[..., prev, :], out=P[..., t, :])
    # (2) carry: H[k] is the state entering chunk k+1 (forward) / chunk k (reverse)
    last = steps[-1]  # chunk position whose local state is handed on
    H = x.new_empty(x4.shape[:-3] + (nc - 1, x.shape[-1]))
    if reverse:
        H[..., nc - 2, :] = h4[..., nc - 1, last, :]
        for k in range(nc - 3, -1, -1):
            torch.addcmul(h4[..., k + 1, last, :], P[..., k + 1, last, :], H[..., k + 1, :],
                          out=H[..., k, :])
    else:
        H[..., 0, :] = h4[..., 0, last, :]
        for k in range(1, nc - 1):
            torch.addcmul(h4[..., k, last, :], P[..., k - 1, last, :], H[..., k - 1, :],
                          out=H[..., k, :])
    # (3) correction of every non-edge chunk
    h_out.addcmul_(P, H.unsqueeze(-2))
    # leftover steps, continuing from the chunked part
    if reverse:
        for t in range(s - 1, -1, -1):
            torch.addcmul(x[..., t, :], a[..., t, :], h[..., t + 1, :], out=h[..., t, :])
    else:
        for t in range(L0, L):
            torch.addcmul(x[..., t, :], a[..., t, :], h[..., t - 1, :], out=h[..., t, :])
    return h


class _LinearScan(torch.autograd.Function):
    """Autograd for the recurrence; the backward pass is the same scan run in reverse:
    ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, ``dL/dx_t = g_t``, ``dL/da_t = g_t h_{t-1}``."""

    @staticmethod
    def forward(ctx, a: Tensor, x: Tensor, T: int) -> Tensor:
        h = _scan(a, x, T, reverse=False)
        ctx.save_for_backward(a, h)
        ctx.T = T
        return h

    @staticmethod
    def backward(ctx, gh: Tensor):
        a, h = ctx.saved_tensors
        a_next = torch.empty_like(a)  # a_{t+1}, zero past the end
        a_next[..., :-1, :] = a[..., 1:, :]
        a_next[..., -1, :] = 0
        g = _scan(a_next, gh, ctx.T, reverse=True)
        ga = None
        if ctx.needs_input_grad[0]:
            ga = torch.empty_like(g)
            ga[..., 0, :] = 0
            torch.mul(g[..., 1:, :], h[..., :-1, :], out=ga[..., 1:, :])
        return ga, (g if ctx.needs_input_grad[1] else None), None


def linear_scan(a: Tensor, x: Tensor, chunk_size: int | None = None) -> Tensor:
    """``h_t = a_t * h_{t-1} + x_t`` along dim -2 from ``h_{-1} = 0``, with autograd.

    Parameters
    ----------
    a : Tensor, shape (..., L, n)
        Per-step decay (e.g. ``exp(Δ A)``).
    x : Tensor, shape (..., L, n)
        Per-step input (e.g. ``Δ B u``).
    chunk_size : int, optional
        Chunk length of the two-level scan (default :func:`default_chunk_size`).

    Returns
    -------
    h : Tensor, shape (..., L, n)
        All states. Work and memory are linear in ``L``; about ``2 sqrt(L)`` vectorised steps.
    """
    if a.shape != x.shape or a.dim() < 2:
        raise ValueError(
            f"linear_scan: a and x must have the same shape (..., L, n), "
            f"got {tuple(a.shape)} and {tuple(x.shape)}"
        )
    if chunk_size is None:
        chunk_size = default_chunk_size(x.shape[-2])
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"linear_scan: chunk_size must be a positive int, got {chunk_size!r}")
    if x.shape[-2] == 0:
        return x.clone()
    return _LinearScan.apply(a, x, chunk_size)

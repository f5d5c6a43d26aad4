"""Scan kernels: the chunked pure-PyTorch linear recurrence, and the one place that imports the
optional fused kernels (numba's CPU scan, ``mamba-ssm``'s CUDA kernels).

Everything else asks this module which backend to use (:func:`resolve_backend`) and gets the
fused functions from the accessors below, so the optional imports, their error messages and the
install commands live in one place (pattern of state-spaces/mamba's ``selective_scan_fn`` /
``selective_scan_ref`` pair).

Backends
--------
``"ref"``       pure-PyTorch reference (any device, autograd through it); the ground truth.
``"cpu_fused"`` the fused numba kernel of :mod:`eegmamba.model.selective_scan_cpu` (CPU tensors).
``"mamba_ssm"`` the fused CUDA kernels of the ``mamba-ssm`` package (CUDA tensors only).
``"auto"``      ``"mamba_ssm"`` for CUDA tensors when ``mamba-ssm`` imports; ``"cpu_fused"`` for
                CPU tensors when numba imports (else ``"ref"``, with one warning line); ``"ref"``
                on other devices.

The Mamba-1 selective scan uses all four; the Mamba-2 (SSD) scan of :mod:`eegmamba.eegm2` has no
CPU kernel of its own and runs its reference wherever ``resolve_backend`` does not say
``"mamba_ssm"``.
"""

from __future__ import annotations

import functools
import logging
import math
from types import ModuleType
from typing import Any, Callable

import torch
from torch import Tensor

from eegmamba._checks import check_option, check_type

BACKENDS: tuple[str, ...] = ("auto", "ref", "cpu_fused", "mamba_ssm")

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


NUMBA_HINT = "install numba (`pip install numba`: wheels for Linux, macOS and Windows)"

_log = logging.getLogger("eegmamba")


@functools.lru_cache(maxsize=1)
def _cpu_import_error() -> str | None:
    """Why the fused CPU scan (numba) cannot be imported (``None`` if it can)."""
    try:
        from eegmamba.model import _scan_cpu  # noqa: F401
    except Exception as err:  # ImportError, or a numba/llvmlite that fails to load or compile
        return f"{type(err).__name__}: {err}".splitlines()[0]
    return None


def has_cpu_fused() -> bool:
    """Whether the fused CPU scan (numba) imports here."""
    return _cpu_import_error() is None


@functools.lru_cache(maxsize=1)
def _warn_cpu_fallback() -> None:
    _log.warning("eegmamba: fused CPU scan unavailable (%s); using the slower backend='ref'. "
                 "To fix: %s", _cpu_import_error(), NUMBA_HINT)


def cpu_fused_kernels() -> ModuleType:
    """The numba kernel module :mod:`eegmamba.model._scan_cpu`.

    Raises ``RuntimeError`` saying why and how to install numba where it does not import.
    """
    if not has_cpu_fused():
        raise RuntimeError(f"the fused CPU scan needs numba, which does not import "
                           f"({_cpu_import_error()}); {NUMBA_HINT}, or use backend='ref'")
    from eegmamba.model import _scan_cpu

    return _scan_cpu


def warmup(backend: str = "auto", device: torch.device | str = "cpu",
           backward: bool = True) -> float:
    """Compile (or load from numba's on-disk cache) the fused CPU kernels now, so that the first
    window or training step does not pay it; returns the seconds taken (0 where the resolved
    backend has nothing to compile). The live loop's model warm-up and the trainer call it.
    ``backward=False`` compiles the inference kernels only.
    """
    if resolve_backend(backend, device) != "cpu_fused":
        return 0.0
    from eegmamba.model import selective_scan_cpu

    return selective_scan_cpu.warmup(backward=backward)


def _device_of(device: Any) -> torch.device:
    if isinstance(device, torch.Tensor):
        return device.device
    check_type(device, (torch.device, str), "device")
    return torch.device(device)


def resolve_backend(backend: str, device: torch.device | str | torch.Tensor) -> str:
    """Return the concrete backend, ``"ref"``, ``"cpu_fused"`` or ``"mamba_ssm"``, for tensors
    on ``device``.

    Parameters
    ----------
    backend : str
        One of :data:`BACKENDS`.
    device : torch.device | str | Tensor
        Where the inputs live (a tensor stands for its device).

    Raises
    ------
    ValueError
        ``backend`` is not one of :data:`BACKENDS`.
    RuntimeError
        ``"mamba_ssm"`` was forced for CPU tensors, ``"cpu_fused"`` for non-CPU tensors, or
        either where its kernel does not import; the message says why and how to install it.
        (``"auto"`` never raises: without numba it logs one warning line and uses ``"ref"``.)
    """
    check_option(backend, BACKENDS, "backend")
    dev = _device_of(device)
    if backend == "ref":
        return "ref"
    if backend == "auto":
        if dev.type == "cuda":
            return "mamba_ssm" if has_mamba_ssm() else "ref"
        if dev.type == "cpu":
            if has_cpu_fused():
                return "cpu_fused"
            _warn_cpu_fallback()
        return "ref"
    if backend == "cpu_fused":
        if dev.type != "cpu":
            raise RuntimeError(f"backend='cpu_fused' needs CPU tensors, got tensors on {dev}; "
                               "use backend='auto' (mamba-ssm on CUDA) or 'ref'")
        cpu_fused_kernels()  # raises with the install hint where numba does not import
        return "cpu_fused"
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
# Pure-PyTorch two-level scan of the linear recurrence h_p = a_p * h_{p-1} + x_p
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def chunk_scan(a: Tensor, x: Tensor, h0: Tensor | None = None, reverse: bool = False,
               a_chunk: Tensor | None = None) -> Tensor:
    """Solve a diagonal linear recurrence over ``S = nc * T`` steps laid out as (nc, T, ...).

    ``reverse=False``: ``h_p = a_p h_{p-1} + x_p`` with ``h_{-1} = h0``;
    ``reverse=True``:  ``h_p = a_p h_{p+1} + x_p`` with ``h_S = h0`` (zero if ``h0`` is None).
    Step ``p = c * T + t`` sits at ``[c, t]``.

    Two levels instead of ``S`` Python steps: (1) a local scan from a zero state runs in all
    ``nc`` chunks at once (``T`` vectorised steps), keeping only each chunk's final state;
    (2) the state entering each chunk is carried across chunks (``nc`` small steps) with the
    chunk decay products; (3) the scan runs again in all chunks at once, now from the right
    entering states, writing every ``h``. This reads ``a`` and ``x`` twice and writes ``h`` once
    (memory traffic dominates on CPU). Only products of the given decays are formed (never the
    exponential of a positive cumulative sum), so the result is as finite as the recurrence.
    No autograd; callers write their own backward.

    a, x : Tensor, shape (nc, T, ...), same shape; h0 : Tensor, shape (...), optional.
    a_chunk : Tensor, shape (nc, ...), optional
        Product of ``a`` over each chunk when the caller has it in closed form (for
        ``a = exp(Δ A)``: ``exp(A * sum Δ)``); else ``a.prod(1)``.
    Returns h : Tensor, shape (nc, T, ...), dtype of x.
    """
    nc, T = x.shape[0], x.shape[1]
    steps = range(T - 1, -1, -1) if reverse else range(T)
    H = x.new_empty((nc,) + tuple(x.shape[2:]))  # H[k]: state entering chunk k
    H[nc - 1 if reverse else 0] = 0 if h0 is None else h0
    if nc > 1:
        end = x[:, steps[0]].clone()  # (1) local final states
        for t in steps[1:]:
            torch.addcmul(x[:, t], a[:, t], end, out=end)
        if a_chunk is None:
            a_chunk = a.prod(1)
        order = range(nc - 2, -1, -1) if reverse else range(1, nc)
        for k in order:  # (2) carry
            src = k + 1 if reverse else k - 1
            torch.addcmul(end[src], a_chunk[src], H[src], out=H[k])
    h = torch.empty_like(x)  # (3) full scan from the entering states
    prev = steps[0]
    torch.addcmul(x[:, prev], a[:, prev], H, out=h[:, prev])
    for t in steps[1:]:
        torch.addcmul(x[:, t], a[:, t], h[:, prev], out=h[:, t])
        prev = t
    return h


def plan_chunks(L: int, step_elements: int, chunk_size: int | None = None,
                segment_len: int | None = None, budget: int = 1 << 22) -> tuple[int, int]:
    """Choose ``(T, nc)``: chunk length and chunks per segment, for ``L`` steps.

    A segment (``nc * T`` steps) is what one pass of :func:`chunk_scan` holds in memory; its
    temporaries have ``nc * T * step_elements`` elements. The default keeps that near ``budget``
    (16 MiB of float32): below glibc's 32 MiB mmap threshold, so the allocator reuses memory
    instead of page-faulting fresh 100 MB buffers (that, not arithmetic, dominated on CPU),
    while segments stay long enough that the op count (each op a thread-pool round trip,
    costly on a loaded 2-core machine) stays low. ``T ~ sqrt(segment)`` minimises the
    ``2 T + nc`` Python steps per segment.
    """
    if segment_len is None:
        segment_len = max(1, min(L, budget // max(1, step_elements)))
    if chunk_size is None:
        chunk_size = max(1, int(round(math.sqrt(segment_len))))
    L = max(L, 1)
    chunk_size = min(chunk_size, L)
    if segment_len >= L:  # one segment covers the sequence
        return chunk_size, -(-L // chunk_size)
    return chunk_size, max(1, segment_len // chunk_size)

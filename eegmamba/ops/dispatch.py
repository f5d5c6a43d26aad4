"""The one place that chooses a scan backend: it imports the optional fused kernels (numba's CPU
scan, ``mamba-ssm``'s CUDA kernels), resolves ``backend`` for the tensors at hand
(:func:`resolve_backend`) and routes each call to the reference or a fused implementation.

Callers (BiMamba, the Mamba-2 scan, benchmarks) use the entry points below with a ``backend``
argument and never import an implementation directly, so the optional imports, their error
messages and the install commands live here (pattern of state-spaces/mamba's
``selective_scan_fn`` / ``selective_scan_ref`` pair). The implementations never import this module.

Backends
--------
``"ref"``       pure-PyTorch reference (any device, autograd through it); the ground truth
                (:mod:`eegmamba.ops.scan_ref`).
``"cpu_fused"`` the fused numba kernel of :mod:`eegmamba.ops.selective_scan_cpu` (CPU tensors).
``"mamba_ssm"`` the fused CUDA kernels of the ``mamba-ssm`` package (CUDA tensors only).
``"auto"``      ``"mamba_ssm"`` for CUDA tensors when ``mamba-ssm`` imports; ``"cpu_fused"`` for
                CPU tensors when numba imports (else ``"ref"``, with one warning line); ``"ref"``
                on other devices.

Entry points
------------
:func:`selective_scan` — mamba-ssm's signature and layouts, every backend.
:func:`selective_scan_bld`, :func:`conv1d_silu` — BiMamba's (b, L, d) layout, computed by the fused
CPU backend only; :func:`uses_fused_cpu` says whether it applies to a tensor.
:func:`warmup` — compile the fused CPU kernels up front.

The Mamba-1 selective scan uses all four backends; the Mamba-2 (SSD) scan of :mod:`eegmamba.eegm2`
has no CPU kernel of its own and runs its reference wherever ``resolve_backend`` does not say
``"mamba_ssm"``.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType
from typing import Any, Callable

import torch
from torch import Tensor

from eegmamba._checks import check_option, check_type
from eegmamba.ops.scan_ref import _validate, selective_scan_ref

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
        from eegmamba.ops import _scan_cpu  # noqa: F401
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
    """The numba kernel module :mod:`eegmamba.ops._scan_cpu`.

    Raises ``RuntimeError`` saying why and how to install numba where it does not import.
    """
    if not has_cpu_fused():
        raise RuntimeError(f"the fused CPU scan needs numba, which does not import "
                           f"({_cpu_import_error()}); {NUMBA_HINT}, or use backend='ref'")
    from eegmamba.ops import _scan_cpu

    return _scan_cpu


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
# Entry points
# ---------------------------------------------------------------------------------------------


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
    """Selective scan through the backend resolved by :func:`resolve_backend`.

    Same arguments and results as :func:`~eegmamba.ops.scan_ref.selective_scan_ref` (and
    mamba-ssm's ``selective_scan_fn``). ``backend="auto"`` uses the fused mamba-ssm kernel for CUDA
    tensors where it imports, else the reference; ``"mamba_ssm"`` forced on CPU or without the
    kernel raises ``RuntimeError`` with the install command. The fused kernel does not propagate
    gradients through the returned last state (the reference does).
    """
    if not isinstance(u, Tensor):
        raise TypeError(f"selective_scan: u must be a torch.Tensor, got {type(u).__name__}")
    resolved = resolve_backend(backend, u.device)
    if resolved == "mamba_ssm":
        fn = selective_scan_fn()
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if resolved == "cpu_fused":
        from eegmamba.ops import selective_scan_cpu as fused

        _validate(u, delta, A, B, C, D, z, delta_bias)
        if fused.supports_layout(B, C) or backend == "cpu_fused":  # forced: a clear error
            return fused.selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                            return_last_state)
    return selective_scan_ref(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
    )


def uses_fused_cpu(backend: str, x: Tensor) -> bool:
    """Whether ``backend`` resolves to the fused CPU kernels for ``x``: a float32/float64 tensor
    on the CPU, with numba importing (:func:`resolve_backend` gives ``"cpu_fused"``). Then
    :func:`selective_scan_bld` and :func:`conv1d_silu` take it."""
    return (x.dtype in (torch.float32, torch.float64)
            and resolve_backend(backend, x.device) == "cpu_fused")


def _require_fused_cpu(name: str, backend: str, x: Tensor) -> None:
    if not uses_fused_cpu(backend, x):
        raise ValueError(
            f"{name}: the (b, L, d) layout is computed by the fused CPU backend only (float32 or "
            f"float64 CPU tensors, numba); got backend={backend!r} for {x.dtype} tensors on "
            f"{x.device}; check uses_fused_cpu() first, or use selective_scan (any backend)"
        )


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
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """The selective scan in BiMamba's layout, ``u, delta, z (b, L, d)``, B and C as column ranges
    of ``bc (b, L, cols)``; returns ``(y (b, L, d), last state (b, d, n))``. Arguments as
    :func:`eegmamba.ops.selective_scan_cpu.selective_scan_bld`; only where
    :func:`uses_fused_cpu` (else ``ValueError``)."""
    _require_fused_cpu("selective_scan_bld", backend, u)
    from eegmamba.ops import selective_scan_cpu as fused

    return fused.selective_scan_bld(u, delta, A, bc, b_off, c_off, groups, D, z, delta_bias,
                                    delta_softplus, reverse)


def conv1d_silu(x: Tensor, weight: Tensor, bias: Tensor, reverse: bool = False,
                backend: str = "auto") -> Tensor:
    """``silu(causal depthwise conv(x))`` in BiMamba's layout: ``x (b, L, d)`` -> ``(b, L, d)``,
    ``weight (d, 1, K)`` and ``bias (d,)`` as ``nn.Conv1d``'s (see :mod:`eegmamba.ops._conv_cpu`);
    ``reverse=True`` is the anti-causal conv. Only where :func:`uses_fused_cpu` (else
    ``ValueError``)."""
    _require_fused_cpu("conv1d_silu", backend, x)
    from eegmamba.ops._conv_cpu import conv_silu

    return conv_silu(x, weight, bias, reverse)


def warmup(backend: str = "auto", device: torch.device | str = "cpu",
           backward: bool = True) -> float:
    """Compile (or load from numba's on-disk cache) the fused CPU kernels now, so that the first
    window or training step does not pay it; returns the seconds taken (0 where the resolved
    backend has nothing to compile). The live loop's model warm-up and the trainer call it.
    ``backward=False`` compiles the inference kernels only.
    """
    if resolve_backend(backend, device) != "cpu_fused":
        return 0.0
    from eegmamba.ops import selective_scan_cpu

    return selective_scan_cpu.warmup(backward=backward)

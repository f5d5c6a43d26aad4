"""Scan and conv kernels behind the model's blocks (moved out of :mod:`eegmamba.model`).

* :mod:`~eegmamba.ops.dispatch` — the one place that chooses a backend (``"auto" | "ref" |
  "cpu_fused" | "mamba_ssm"``), imports the optional kernels (numba, mamba-ssm) with their install
  hints, and routes each call: :func:`selective_scan`, and BiMamba's (b, L, d) entry points
  :func:`selective_scan_bld` / :func:`conv1d_silu` (fused CPU only, see :func:`uses_fused_cpu`).
* Reference: :mod:`~eegmamba.ops.scan_ref` (pure-PyTorch selective scan, any device, the ground
  truth) on :mod:`~eegmamba.ops.chunk` (chunked linear-recurrence scan and its planning).
* Fused CPU (numba): :mod:`~eegmamba.ops.selective_scan_cpu` (torch side) over the kernels
  :mod:`~eegmamba.ops._scan_cpu`, :mod:`~eegmamba.ops._scan_cpu_math`, and the conv + SiLU
  :mod:`~eegmamba.ops._conv_cpu`. Fused CUDA: mamba-ssm's, imported by the dispatcher.
* :mod:`~eegmamba.ops._strided_conv` — a strided Conv1d as one GEMM (the tokenizer's convs).

Implementations never import the dispatcher; only it imports them (the fused ones lazily).
"""

from eegmamba.ops.dispatch import (
    BACKENDS,
    conv1d_silu,
    has_cpu_fused,
    has_mamba_ssm,
    resolve_backend,
    selective_scan,
    selective_scan_bld,
    uses_fused_cpu,
    warmup,
)
from eegmamba.ops.scan_ref import selective_scan_ref, selective_scan_sequential

__all__ = ["BACKENDS", "conv1d_silu", "has_cpu_fused", "has_mamba_ssm", "resolve_backend",
           "selective_scan", "selective_scan_bld", "selective_scan_ref",
           "selective_scan_sequential", "uses_fused_cpu", "warmup"]

"""GPU parity: the pure-PyTorch reference against mamba-ssm's fused kernels.

Runs only where CUDA and mamba-ssm are importable; skipped with the reason elsewhere. Never
hard-codes a device string beyond asking torch for the current CUDA device. The helpers below
(``requires_fused``, ``cuda_device``, ``TOLERANCES``, ``assert_close_dtype``) are meant for
model-level parity tests in this file as well.
"""

from __future__ import annotations

import pytest
import torch

from eegmamba.ops import dispatch, selective_scan, selective_scan_ref


def _skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    if not dispatch.has_mamba_ssm():
        return f"needs mamba-ssm ({dispatch._import_error()}); {dispatch.INSTALL_HINT}"
    return None


requires_fused = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
pytestmark = [pytest.mark.gpu, requires_fused]

# (rtol, atol) for outputs and for gradients, by input dtype. Both paths compute in float32;
# differences come from summation order and, for 16-bit inputs, the final rounding.
TOLERANCES = {
    torch.float32: {"out": (6e-4, 2e-3), "grad": (2e-3, 5e-3)},
    torch.bfloat16: {"out": (3e-2, 5e-2), "grad": (6e-2, 1e-1)},
}


def cuda_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


def assert_close_dtype(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype,
                       kind: str, name: str) -> None:
    """Compare with the dtype-aware tolerance; atol is scaled by the magnitude of ``expected``."""
    rtol, atol = TOLERANCES[dtype][kind]
    scale = max(1.0, float(expected.detach().float().abs().max()))
    torch.testing.assert_close(actual.detach().float(), expected.detach().float(), rtol=rtol,
                               atol=atol * scale, msg=lambda m: f"{name} ({dtype}): {m}")


def make_scan_inputs(L: int, dtype: torch.dtype, device: torch.device, *, batch: int = 2,
                     d: int = 64, n: int = 16, flags: bool = True, seed: int = 0) -> dict:
    """Inputs as EEGMamba's blocks pass them: activations in ``dtype``; A, D, delta_bias in
    float32 (parameters); all leaves requiring grad."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, dt=dtype, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(device=device, dtype=dt)

    t = {
        "u": r(batch, d, L),
        "delta": r(batch, d, L, scale=0.5),
        "A": -torch.exp(r(d, n, dt=torch.float32, scale=0.5)),
        "B": r(batch, n, L),
        "C": r(batch, n, L),
        "D": r(d, dt=torch.float32) if flags else None,
        "z": r(batch, d, L) if flags else None,
        "delta_bias": r(d, dt=torch.float32, scale=0.5) if flags else None,
    }
    return {k: (v.requires_grad_(True) if v is not None else None) for k, v in t.items()}


def run_both(t: dict, softplus: bool) -> dict:
    """Outputs, last states and gradients of the fused and the reference scan on ``t``."""
    names = [k for k, v in t.items() if v is not None]
    results = {}
    for backend in ("mamba_ssm", "ref"):
        y, last = selective_scan(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"],
                                 t["delta_bias"], softplus, True, backend=backend)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y)
        # the fused kernel does not propagate gradients through the last state: y only
        gr = torch.autograd.grad((y * w).sum(), [t[k] for k in names])
        results[backend] = {"y": y, "last": last, **dict(zip(names, gr))}
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("L", [1, 63, 256, 1000, 2049])
@pytest.mark.parametrize("flags", [True, False], ids=["D-z-bias-softplus", "plain"])
def test_scan_parity_fused_vs_ref(dtype, L, flags):
    t = make_scan_inputs(L, dtype, cuda_device(), flags=flags)
    res = run_both(t, softplus=flags)
    fused, ref = res["mamba_ssm"], res["ref"]
    assert fused["y"].dtype == ref["y"].dtype == dtype
    assert_close_dtype(fused["y"], ref["y"], dtype, "out", "y")
    assert_close_dtype(fused["last"], ref["last"], dtype, "out", "last state")
    for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias"):
        if t[k] is not None:
            assert fused[k].dtype == ref[k].dtype, k
            assert_close_dtype(fused[k], ref[k], dtype, "grad", f"grad {k}")


def test_auto_picks_fused_on_cuda():
    assert dispatch.resolve_backend("auto", cuda_device()) == "mamba_ssm"
    t = make_scan_inputs(64, torch.float32, cuda_device(), flags=False)
    args = [t[k].detach() for k in ("u", "delta", "A", "B", "C")]
    y_auto = selective_scan(*args, backend="auto")
    y_fused = dispatch.selective_scan_fn()(*args)
    torch.testing.assert_close(y_auto, y_fused, rtol=0, atol=0)
    assert_close_dtype(y_auto, selective_scan_ref(*args), torch.float32, "out", "auto vs ref")

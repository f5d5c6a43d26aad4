"""The fused CPU scan (backend "cpu_fused", numba) against the sequential oracle and the reference:
outputs, last state and every gradient, float32 and float64, layouts, directions, threads."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from eegmamba.ops import (
    dispatch,
    selective_scan,
    selective_scan_ref,
    selective_scan_sequential,
)
from eegmamba.ops.dispatch import resolve_backend
from tests.ops.test_selective_scan import NAMES, assert_close, assert_same_scan, make_inputs, run

pytestmark = pytest.mark.skipif(not dispatch.has_cpu_fused(),
                                reason="numba does not import here (the fallback has its own test)")

fused = functools.partial(selective_scan, backend="cpu_fused")
TOL = {torch.float64: (1e-12, 1e-10), torch.float32: (2e-5, 1e-4)}  # (outputs, gradients)


def _oracle(t):
    """The float64 sequential scan on the same (rounded) inputs, and its gradients."""
    t64 = {k: (v.detach().double().requires_grad_() if v is not None else None)
           for k, v in t.items()}
    return t64


def _check(t, softplus=True, fn=fused):
    t64 = _oracle(t)
    y0, s0 = run(selective_scan_sequential, t64, softplus=softplus)
    y1, s1 = run(fn, t, softplus=softplus)
    dtype = t["u"].dtype
    assert y1.dtype == dtype and s1.dtype == dtype and y1.shape == y0.shape
    assert_same_scan((y1, s1), (y0, s0), t, t64, *TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("L", [1, 2, 17, 33, 130])
@pytest.mark.parametrize("flags", [True, False], ids=["D-z-bias-softplus", "plain"])
@pytest.mark.parametrize("b,d", [(1, 4), (3, 70)], ids=["b1-d4", "b3-d70"])
def test_fused_matches_sequential(dtype, L, flags, b, d):
    """d = 70: one full block of 64 channels and a 6-channel tail block; L not a multiple of
    the backward's 16-step chunks."""
    _check(make_inputs(L, b=b, d=d, n=5, dtype=dtype, flags=flags), softplus=flags)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("layout", ["grouped", "grouped-B-only", "grouped-odd"])
def test_fused_grouped_b_c(dtype, layout):
    t = make_inputs(21, b=2, d=12, n=3, dtype=dtype, b_layout="grouped")  # B: 2 groups of 6
    g = torch.Generator().manual_seed(5)
    if layout == "grouped":  # C grouped as B
        t["C"] = torch.randn(2, 2, 3, 21, generator=g, dtype=torch.float64).to(dtype)
    elif layout == "grouped-odd":  # C in 3 groups of 4: segments of gcd(6, 4) = 2 channels
        t["C"] = torch.randn(2, 3, 3, 21, generator=g, dtype=torch.float64).to(dtype)
    t["C"].requires_grad_(True)
    _check(t)


def test_fused_matches_reference_float32_long():
    """Realistic sizes and values (Mamba init: Δ ~ 1e-3..1e-1, A = -[1..N]) vs the reference."""
    g = torch.Generator().manual_seed(7)
    b, d, n, L = 2, 128, 16, 700
    t = {
        "u": torch.randn(b, d, L, generator=g), "delta": torch.randn(b, d, L, generator=g),
        "A": -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1),
        "B": torch.randn(b, n, L, generator=g), "C": torch.randn(b, n, L, generator=g),
        "D": torch.ones(d), "z": torch.randn(b, d, L, generator=g),
        "delta_bias": torch.log(torch.expm1(torch.rand(d, generator=g) * 0.1 + 1e-3)),
    }
    t = {k: v.requires_grad_() for k, v in t.items()}
    assert_same_scan(run(fused, t), run(functools.partial(selective_scan, backend="ref"), t), t, t,
                     1e-5, 1e-4)


def test_gradcheck_float64():
    from eegmamba.ops.selective_scan_cpu import selective_scan_cpu

    t = make_inputs(6, b=2, d=3, n=2, dtype=torch.float64)

    def f(u, delta, A, B, C, D, z, bias):
        return selective_scan_cpu(u, delta, A, B, C, D, z, bias, True, True)

    assert torch.autograd.gradcheck(f, [t[k] for k in NAMES])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_reverse_is_the_flipped_scan(dtype):
    """``selective_scan_bld(reverse=True)`` = flip, scan, flip back (BiMamba's backward branch);
    its gradients too."""
    from eegmamba.ops.selective_scan_cpu import selective_scan_bld

    t = make_inputs(19, b=2, d=66, n=4, dtype=dtype)
    n = 4

    def bld(v):
        return v.transpose(1, 2).contiguous()

    bc = torch.cat([bld(t["B"]), bld(t["C"])], dim=2)
    leaves = {k: v.detach().clone().requires_grad_() for k, v in t.items()}
    leaves["bc"] = bc.detach().clone().requires_grad_()
    y1, s1 = selective_scan_bld(bld(leaves["u"]), bld(leaves["delta"]), leaves["A"], leaves["bc"],
                                0, n, 1, leaves["D"], bld(leaves["z"]), leaves["delta_bias"],
                                True, reverse=True)
    flip = {k: (v.flip(-1) if v.dim() == 3 else v) for k, v in t.items()}
    y0, s0 = run(selective_scan_sequential, _oracle(flip))
    tol_y, tol_g = TOL[dtype]
    assert_close(y1.transpose(1, 2), y0.flip(-1), tol_y, "y")
    assert_close(s1, s0, tol_y, "last state")
    wy = torch.randn(y1.shape, generator=torch.Generator().manual_seed(3), dtype=dtype)
    (y1 * wy).sum().backward()
    ref = _oracle(t)
    y_ref, _ = run(selective_scan_sequential, {k: (v.flip(-1) if v is not None and v.dim() == 3
                                                   else v) for k, v in ref.items()})
    (y_ref.flip(-1).transpose(1, 2) * wy.double()).sum().backward()
    for k in ("u", "delta", "A", "D", "z", "delta_bias"):
        assert_close(leaves[k].grad, ref[k].grad, tol_g, f"grad {k}")
    assert_close(leaves["bc"].grad, torch.cat([bld(ref["B"].grad), bld(ref["C"].grad)], 2),
                 tol_g, "grad B, C")


def test_parallel_threads_match_serial():
    """With torch threads > 1 the work items run on numba's pool (slots per block / batch)."""
    t = make_inputs(45, b=3, d=140, n=4, dtype=torch.float64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _check(t)
    finally:
        torch.set_num_threads(before)


def test_time_invariant_b_falls_back_under_auto_and_errors_when_forced():
    t = make_inputs(9, b_layout="constant")
    args = [t[k].detach() for k in NAMES]
    y = selective_scan(*args, delta_softplus=True, backend="auto")
    torch.testing.assert_close(y, selective_scan_ref(*args, delta_softplus=True), rtol=0, atol=0)
    with pytest.raises(ValueError, match="not time-invariant .* use backend='auto' or 'ref'"):
        selective_scan(*args, delta_softplus=True, backend="cpu_fused")


def test_auto_on_cpu_is_the_fused_kernel_and_low_precision_is_computed_in_float32():
    assert resolve_backend("auto", torch.device("cpu")) == "cpu_fused"
    assert resolve_backend("cpu_fused", "cpu") == "cpu_fused"
    with pytest.raises(RuntimeError, match="needs CPU tensors"):
        resolve_backend("cpu_fused", "cuda")
    t = make_inputs(30, dtype=torch.bfloat16)
    y, last = run(functools.partial(selective_scan, backend="auto"), t)
    assert y.dtype == torch.bfloat16 and last.dtype == torch.float32
    y0, s0 = run(selective_scan_sequential, _oracle(t))
    assert_close(y, y0, 1e-2, "y")
    assert_close(last, s0, 1e-5, "last state")


def test_empty_sequence_and_bad_shapes():
    from eegmamba.ops.selective_scan_cpu import selective_scan_bld

    t = make_inputs(0, flags=False)
    y, last = fused(*(t[k].detach() for k in ("u", "delta", "A", "B", "C")),
                    return_last_state=True)
    assert y.shape == (2, 4, 0) and last.shape == (2, 4, 3) and not last.any()
    u = torch.zeros(1, 5, 4)
    y, last = selective_scan_bld(u, u, -torch.ones(4, 2), torch.zeros(1, 5, 4), 0, 2)
    assert y.shape == (1, 5, 4) and last.shape == (1, 4, 2)
    t = make_inputs(5, flags=False)
    with pytest.raises(ValueError, match=r"delta must have shape"):
        fused(t["u"].detach(), t["delta"].detach()[..., :3], *(t[k].detach() for k in "ABC"))


def test_decay_exp_accuracy_float32():
    """The inline exp2 polynomial: < 2.5 ulp of float64 exp2 on [-126, 0] (2.2 measured; the scan's range:
    Δ >= 0, A <= 0), exact 0 below -127, inf from 128, NaN kept; softplus and sigmoid within 4 ulp."""
    from numba import njit

    from eegmamba.ops._scan_cpu_math import decay, sigmoid, softplus

    @njit
    def apply(x, out, which):
        for i in range(x.shape[0]):
            out[i] = decay(x[i]) if which == 0 else softplus(x[i]) if which == 1 else sigmoid(x[i])

    x = np.linspace(-126, 0, 1_000_001).astype(np.float32)
    out = np.empty_like(x)
    apply(x, out, 0)
    ref = np.exp2(x.astype(np.float64))
    ulp = np.abs(out - ref) / np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert ulp.max() < 2.5, ulp.max()
    edge = np.array([-127.0, -200.0, 128.0, np.nan, 0.0], np.float32)
    out = np.empty_like(edge)
    apply(edge, out, 0)
    assert out[0] == 0 and out[1] == 0 and np.isinf(out[2]) and np.isnan(out[3]) and out[4] == 1
    x = np.linspace(-30, 30, 100_001).astype(np.float32)
    for which, f in ((1, lambda v: np.logaddexp(0.0, v)), (2, lambda v: 1 / (1 + np.exp(-v)))):
        out = np.empty_like(x)
        apply(x, out, which)
        ref = f(x.astype(np.float64))
        ulp = np.abs(out - ref) / np.spacing(ref.astype(np.float32)).astype(np.float64)
        assert ulp.max() <= 4.0, (which, ulp.max())

"""The chunked SSD scan equals the sequential recurrence (values, gradients, causality, padding)."""

from __future__ import annotations

import pytest
import torch

from eegmamba.eegm2.ssd import (mamba_chunk_scan, mamba_chunk_scan_ref, ssd_chunked,
                                ssd_sequential)
from eegmamba.ops.dispatch import has_mamba_ssm

TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


def _inputs(length, dtype, heads=4, groups=1, headdim=8, dstate=6, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, heads, headdim, generator=g, dtype=dtype)
    # log decays in the range Mamba-2 produces (A in [-16, -1], dt in [1e-3, 0.1])
    a = -torch.rand(batch, length, heads, generator=g, dtype=dtype) * 1.6
    b = torch.randn(batch, length, groups, dstate, generator=g, dtype=dtype)
    c = torch.randn(batch, length, groups, dstate, generator=g, dtype=dtype)
    return x, a, b, c


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("length,chunk", [(1, 16), (63, 16), (64, 64), (300, 64), (700, 256)])
@pytest.mark.parametrize("groups", [1, 2])
def test_chunked_matches_sequential(dtype, length, chunk, groups):
    x, a, b, c = _inputs(length, dtype, groups=groups)
    s0 = torch.randn(2, 4, 8, 6, dtype=dtype)
    y1, f1 = ssd_chunked(x, a, b, c, chunk, initial_state=s0, return_final_state=True)
    y2, f2 = ssd_sequential(x, a, b, c, initial_state=s0, return_final_state=True)
    scale = y2.abs().max().item()
    assert y1.shape == x.shape and y1.dtype == dtype
    assert (y1 - y2).abs().max().item() <= TOL[dtype] * max(1.0, scale)
    assert (f1 - f2).abs().max().item() <= TOL[dtype] * max(1.0, f2.abs().max().item())


def test_chunk_size_does_not_change_the_result():
    x, a, b, c = _inputs(333, torch.float64)
    ys = [ssd_chunked(x, a, b, c, q) for q in (1, 7, 64, 333, 512)]
    for y in ys[1:]:
        torch.testing.assert_close(y, ys[0], rtol=0, atol=1e-10)


def test_end_padding_is_exact():
    """L not a multiple of Q: the result equals the unpadded prefix of a longer sequence."""
    x, a, b, c = _inputs(128, torch.float64)
    full = ssd_chunked(x, a, b, c, 64)
    part = ssd_chunked(x[:, :100], a[:, :100], b[:, :100], c[:, :100], 64)  # padded to 128 inside
    torch.testing.assert_close(part, full[:, :100], rtol=0, atol=1e-12)


@pytest.mark.parametrize("length,chunk", [(50, 16), (130, 64)])
def test_gradients_match_sequential(length, chunk):
    leaves1 = [t.requires_grad_() for t in _inputs(length, torch.float64, groups=2)]
    leaves2 = [t.detach().clone().requires_grad_() for t in leaves1]
    w = torch.randn(2, length, 4, 8, dtype=torch.float64)
    (ssd_chunked(*leaves1, chunk) * w).sum().backward()
    (ssd_sequential(*leaves2) * w).sum().backward()
    for t1, t2, name in zip(leaves1, leaves2, "xabc"):
        torch.testing.assert_close(t1.grad, t2.grad, rtol=0, atol=1e-8, msg=f"grad of {name}")


def test_causal():
    """Changing inputs from step t0 on leaves every output before t0 bit-identical."""
    x, a, b, c = _inputs(200, torch.float32)
    t0 = 77
    y = ssd_chunked(x, a, b, c, 32)
    x2, a2, b2, c2 = (t.clone() for t in (x, a, b, c))
    for t in (x2, b2, c2):
        t[:, t0:] = torch.randn_like(t[:, t0:]) * 5
    a2[:, t0:] = -torch.rand_like(a2[:, t0:]) * 10
    y2 = ssd_chunked(x2, a2, b2, c2, 32)
    assert torch.equal(y2[:, :t0], y[:, :t0])
    assert not torch.equal(y2[:, t0:], y[:, t0:])


def test_half_precision_is_computed_in_float32():
    x, a, b, c = _inputs(90, torch.float64)
    ref = ssd_sequential(x, a, b, c)
    y = ssd_chunked(*(t.to(torch.bfloat16) for t in (x, a, b, c)), 32)
    assert y.dtype == torch.bfloat16
    assert (y.double() - ref).abs().max().item() <= 0.05 * ref.abs().max().item()


def test_bad_shapes_are_rejected():
    x, a, b, c = _inputs(10, torch.float32)
    with pytest.raises(ValueError, match="a must have shape"):
        ssd_chunked(x, a[:, :5], b, c)
    with pytest.raises(ValueError, match="multiple of groups"):
        ssd_chunked(x, a, b.repeat(1, 1, 3, 1), c.repeat(1, 1, 3, 1))
    with pytest.raises(ValueError, match="chunk_size"):
        ssd_chunked(x, a, b, c, 0)


def _scan_inputs(length=70, heads=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, length, heads, 8, generator=g, dtype=dtype)
    dt = torch.randn(2, length, heads, generator=g, dtype=dtype)
    A = -torch.exp(torch.rand(heads, generator=g, dtype=dtype) * 2.7)
    B = torch.randn(2, length, 1, 6, generator=g, dtype=dtype)
    C = torch.randn(2, length, 1, 6, generator=g, dtype=dtype)
    return x, dt, A, B, C


def test_mamba_scan_ref_discretises_like_mamba2():
    """y = SSD(x·dt, A·dt, B, C) + D·x with dt = softplus(dt + dt_bias), checked step by step."""
    x, dt, A, B, C = _scan_inputs()
    D, bias = torch.rand(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    y = mamba_chunk_scan_ref(x, dt, A, B, C, 16, D=D, dt_bias=bias)
    d = torch.nn.functional.softplus(dt + bias)
    state = torch.zeros(2, 4, 8, 6, dtype=torch.float64)
    for t in range(x.shape[1]):
        state = (torch.exp(A * d[:, t])[..., None, None] * state
                 + (d[:, t, :, None] * x[:, t])[..., None] * B[:, t, 0, None, None, :])
        yt = (state * C[:, t, 0, None, None, :]).sum(-1) + D[:, None] * x[:, t]
        torch.testing.assert_close(y[:, t], yt, rtol=0, atol=1e-10)
    seq = mamba_chunk_scan_ref(x, dt, A, B, C, 16, D=D, dt_bias=bias, scan="sequential")
    torch.testing.assert_close(seq, y, rtol=0, atol=1e-10)


def test_dispatch_ref_and_auto_on_cpu_are_the_reference():
    args = _scan_inputs()
    ref = mamba_chunk_scan_ref(*args, 16)
    for backend in ("ref", "auto"):
        assert torch.equal(mamba_chunk_scan(*args, 16, backend=backend), ref)


def test_forcing_mamba_ssm_on_cpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="mamba_ssm"):
        mamba_chunk_scan(*_scan_inputs(), 16, backend="mamba_ssm")
    with pytest.raises(ValueError, match="backend"):
        mamba_chunk_scan(*_scan_inputs(), 16, backend="triton")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not has_mamba_ssm(), reason="needs mamba-ssm (pip install .[cuda])")
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-3), (torch.bfloat16, 3e-2)])
def test_fused_scan_matches_reference_on_gpu(dtype, tol):
    x, dt, A, B, C = (t.float().cuda() for t in _scan_inputs(length=1000, heads=8))
    D, bias = torch.rand(8, device="cuda"), torch.randn(8, device="cuda")
    xs = [x.to(dtype).clone().requires_grad_() for _ in range(2)]  # two distinct leaves
    dt, B, C = dt.to(dtype), B.to(dtype), C.to(dtype)
    outs = [mamba_chunk_scan(xi, dt, A, B, C, 256, D=D, dt_bias=bias, backend=be)
            for xi, be in zip(xs, ("mamba_ssm", "ref"))]
    scale = outs[1].float().abs().max().item()
    assert (outs[0].float() - outs[1].float()).abs().max().item() <= tol * max(1.0, scale)
    for o in outs:
        o.float().square().sum().backward()
    gscale = xs[1].grad.float().abs().max().item()
    assert (xs[0].grad.float() - xs[1].grad.float()).abs().max().item() <= tol * max(1.0, gscale)

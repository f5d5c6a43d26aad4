"""Selective scan: the fast reference against the per-step oracle, flags, dtypes, backends."""

from __future__ import annotations

import pytest
import torch

from eegmamba.ops import (
    dispatch,
    selective_scan,
    selective_scan_ref,
    selective_scan_sequential,
)
from eegmamba.ops.chunk import chunk_scan, plan_chunks
from eegmamba.ops.dispatch import resolve_backend

T_TEST = 8  # chunk length forced in the boundary tests
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(L, *, b=2, d=4, n=3, dtype=torch.float64, b_layout="variable", seed=0,
                flags=True):
    """Random scan inputs as leaves requiring grad; ``flags`` adds D, z and delta_bias."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)

    B_shape = {"variable": (b, n, L), "grouped": (b, 2, n, L), "constant": (d, n)}[b_layout]
    t = {
        "u": r(b, d, L),
        "delta": r(b, d, L, scale=0.5),
        "A": -torch.exp(r(d, n, scale=0.5).double()).to(dtype),
        "B": r(*B_shape),
        "C": r(b, n, L),
        "D": r(d) if flags else None,
        "z": r(b, d, L) if flags else None,
        "delta_bias": r(d, scale=0.5) if flags else None,
    }
    return {k: (v.requires_grad_(True) if v is not None else None) for k, v in t.items()}


def run(fn, t, softplus=True, **kw):
    y, last = fn(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], t["z"], t["delta_bias"],
                 softplus, True, **kw)
    return y, last


def grads(y, last, t, seed=1):
    """Gradients of a random projection of (y, last state) w.r.t. every given input."""
    g = torch.Generator().manual_seed(seed)
    wy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    wl = torch.randn(last.shape, generator=g, dtype=torch.float64).to(last.dtype)
    names = [k for k in NAMES if t[k] is not None]
    loss = (y.double() * wy.double()).sum() + (last.double() * wl.double()).sum()
    return dict(zip(names, torch.autograd.grad(loss, [t[k] for k in names])))


def assert_close(actual, expected, rtol, name):
    scale = expected.detach().abs().max().clamp_min(1.0)
    err = (actual.detach().double() - expected.detach().double()).abs().max()
    assert err <= rtol * scale, f"{name}: max abs err {err:.3g} > {rtol:g} * {scale:.3g}"


def assert_same_scan(got, want, t_got, t_want, tol_y, tol_g, tol_state=None):
    """``got``, ``want``: ``(y, last state)`` of two scans run on ``t_got`` and ``t_want`` (the same
    values, maybe in other dtypes): outputs within ``tol_y`` (the last state within ``tol_state``,
    default ``tol_y``); the gradients of the same random projection (:func:`grads`) w.r.t. every
    given input within ``tol_g``, with the inputs' shapes and dtypes."""
    (y1, s1), (y0, s0) = got, want
    assert_close(y1, y0, tol_y, "y")
    assert_close(s1, s0, tol_y if tol_state is None else tol_state, "last state")
    g0, g1 = grads(y0, s0, t_want), grads(y1, s1, t_got)
    assert g1.keys() == g0.keys() == {k for k in NAMES if t_got[k] is not None}
    for k in g0:
        assert g1[k].shape == t_got[k].shape and g1[k].dtype == t_got[k].dtype
        assert_close(g1[k], g0[k], tol_g, f"grad {k}")


@pytest.mark.parametrize("L", [1, 7, T_TEST - 1, T_TEST, T_TEST + 1, 1000])
@pytest.mark.parametrize("flags", [True, False], ids=["D-z-bias-softplus", "plain"])
def test_ref_matches_sequential_float64(L, flags):
    t = make_inputs(L, flags=flags)
    y0, s0 = run(selective_scan_sequential, t, softplus=flags)
    g0 = grads(y0, s0, t)
    # default plan, and a forced small chunk with several chunks per segment and segments
    plans = [{}, {"chunk_size": T_TEST}]
    if L < 100:
        plans.append({"chunk_size": 3, "segment_len": 2 * T_TEST})
    for kw in plans:
        y1, s1 = run(selective_scan_ref, t, softplus=flags, **kw)
        assert y1.shape == (2, 4, L) and s1.shape == (2, 4, 3)
        assert_close(y1, y0, 1e-12, f"y {kw}")
        assert_close(s1, s0, 1e-12, f"last state {kw}")
        g1 = grads(y1, s1, t)
        assert g1.keys() == g0.keys() == {k for k in NAMES if t[k] is not None}
        for k in g0:
            assert_close(g1[k], g0[k], 1e-10, f"grad {k} {kw}")


@pytest.mark.parametrize("b_layout", ["grouped", "constant"])
def test_ref_matches_sequential_other_b_layouts(b_layout):
    t = make_inputs(37, b_layout=b_layout)
    assert_same_scan(run(selective_scan_ref, t, chunk_size=4, segment_len=12),
                     run(selective_scan_sequential, t), t, t, 1e-12, 1e-10)


def test_float32_close_to_float64_oracle():
    t64 = make_inputs(300)
    t32 = {k: (v.detach().float().requires_grad_() if v is not None else None)
           for k, v in t64.items()}
    y1, s1 = run(selective_scan_ref, t32)
    assert y1.dtype == torch.float32 and s1.dtype == torch.float32
    assert_same_scan((y1, s1), run(selective_scan_sequential, t64), t32, t64, 1e-5, 1e-4)


def test_bfloat16_inputs_computed_in_float32():
    t = make_inputs(200, dtype=torch.bfloat16)
    y, last = run(selective_scan_ref, t)
    assert y.dtype == torch.bfloat16 and last.dtype == torch.float32
    # oracle: same (bf16-rounded) inputs in float64; bf16 output rounding ~ 2**-8
    t64 = {k: (v.detach().double().requires_grad_() if v is not None else None)
           for k, v in t.items()}
    # gradients in bfloat16 (the inputs' dtype), finite (a NaN fails assert_close)
    assert_same_scan((y, last), run(selective_scan_sequential, t64), t, t64, 1e-2, 3e-2,
                     tol_state=1e-5)


def test_scan_is_not_time_symmetric():
    """flip(scan(flip(x))) differs from scan(x): the recurrence runs one way in time."""
    t = make_inputs(50, flags=False)
    args = [t[k].detach() for k in ("u", "delta", "A", "B", "C")]
    y = selective_scan_ref(*args)
    flipped = [v.flip(-1) if v.dim() == 3 else v for v in args]
    y_rev = selective_scan_ref(*flipped).flip(-1)
    assert not torch.allclose(y, y_rev, rtol=1e-3, atol=1e-3)
    # the first output depends only on the first input step
    assert torch.allclose(y[..., :1], selective_scan_ref(*[v[..., :1] if v.dim() == 3 else v
                                                          for v in args]))


def test_long_sequence_stays_finite_with_strong_decay():
    """Decays of exp(-500) per step underflow to 0; nothing may overflow to inf / nan."""
    t = make_inputs(600, flags=False)
    with torch.no_grad():
        t["delta"].fill_(50.0)
        t["A"].mul_(10.0)
    y, last = run(selective_scan_ref, t, softplus=False)
    g = grads(y, last, t)
    assert torch.isfinite(y).all() and torch.isfinite(last).all()
    assert all(torch.isfinite(v).all() for v in g.values())
    y0, s0 = run(selective_scan_sequential, t, softplus=False)
    assert_close(y, y0, 1e-12, "y")


@pytest.mark.parametrize("reverse", [False, True])
def test_chunk_scan_against_loop(reverse):
    g = torch.Generator().manual_seed(3)
    a = torch.rand(5, 4, 2, 3, generator=g, dtype=torch.float64)
    x = torch.randn(5, 4, 2, 3, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    h = chunk_scan(a, x, h0, reverse=reverse).reshape(20, 2, 3)
    a, x = a.reshape(20, 2, 3), x.reshape(20, 2, 3)
    state, expected = h0, torch.empty_like(h)
    for p in (range(19, -1, -1) if reverse else range(20)):
        state = a[p] * state + x[p]
        expected[p] = state
    torch.testing.assert_close(h, expected, rtol=1e-12, atol=1e-12)


def test_plan_keeps_segments_bounded():
    T, nc = plan_chunks(16000, 8 * 256 * 16)
    assert T * nc * 8 * 256 * 16 <= 1 << 22 and T * nc >= 8
    T, nc = plan_chunks(5, 10)
    assert T * nc >= 5 and T <= 5
    assert plan_chunks(100, 1, chunk_size=7, segment_len=20) == (7, 2)
    assert plan_chunks(100, 1, chunk_size=7, segment_len=200) == (7, 15)


def test_ref_backend_is_the_reference():
    assert resolve_backend("ref", "cpu") == "ref"
    t = make_inputs(20)
    args = [t[k].detach() for k in NAMES]
    y = selective_scan(*args, delta_softplus=True, backend="ref")
    torch.testing.assert_close(y, selective_scan_ref(*args, delta_softplus=True), rtol=0, atol=0)


def test_forcing_mamba_ssm_on_cpu_raises_with_install_hint():
    t = make_inputs(5)
    args = [t[k].detach() for k in NAMES]
    with pytest.raises(RuntimeError, match="needs CUDA tensors") as err:
        selective_scan(*args, backend="mamba_ssm")
    assert "backend='ref'" in str(err.value)
    if not dispatch.has_mamba_ssm():
        with pytest.raises(RuntimeError, match=r"pip install .*eegmamba-live\[cuda\]"):
            dispatch.selective_scan_fn()


def test_unknown_backend_and_bad_shapes_are_value_errors():
    t = make_inputs(6, flags=False)
    u, delta, A, B, C = (t[k].detach() for k in ("u", "delta", "A", "B", "C"))
    with pytest.raises(ValueError, match="backend must be one of"):
        selective_scan(u, delta, A, B, C, backend="triton")
    with pytest.raises(ValueError, match=r"delta must have shape .*got \(2, 4, 5\)"):
        selective_scan(u, delta[..., :5], A, B, C)
    with pytest.raises(ValueError, match=r"B must have shape"):
        selective_scan(u, delta, A, B[:, :2], C)
    with pytest.raises(ValueError, match=r"A must have shape"):
        selective_scan(u, delta, A[:3], B, C)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        selective_scan_ref(u, delta, A, B, C, chunk_size=0)
    with pytest.raises(TypeError, match="u must be a torch.Tensor"):
        selective_scan(u.numpy(), delta, A, B, C)


def test_empty_sequence():
    t = make_inputs(0, flags=False)
    y, last = selective_scan_ref(*(t[k].detach() for k in ("u", "delta", "A", "B", "C")),
                                 return_last_state=True)
    assert y.shape == (2, 4, 0) and last.shape == (2, 4, 3) and not last.any()

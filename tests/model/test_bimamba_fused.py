"""BiMamba and the whole EEGMamba on the fused CPU path (natural layout, reverse scan, fused
conv + SiLU) against the reference path: outputs and every parameter gradient."""

from __future__ import annotations

import pytest
import torch

from eegmamba import TaskSpec, create_model
from eegmamba.ops import dispatch
from eegmamba.model.bimamba import BiMambaBlock

pytestmark = pytest.mark.skipif(not dispatch.has_cpu_fused(), reason="numba does not import here")


def _run(module, backend, x, **kw):
    module.set_backend(backend)
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    y = module(x, **kw)
    w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    (y * w).sum().backward()
    return y.detach(), x.grad, {k: p.grad for k, p in module.named_parameters()}


def _compare(module, x, rtol, **kw):
    y0, gx0, gp0 = _run(module, "ref", x, **kw)
    y1, gx1, gp1 = _run(module, "cpu_fused", x, **kw)
    scale = lambda t: t.abs().max().clamp_min(1e-3)  # noqa: E731
    assert ((y1 - y0).abs().max() / scale(y0)) <= rtol
    assert ((gx1 - gx0).abs().max() / scale(gx0)) <= rtol
    assert gp0.keys() == gp1.keys()
    for k in gp0:
        if gp0[k] is None:
            assert gp1[k] is None, k
            continue
        err = (gp1[k] - gp0[k]).abs().max() / scale(gp0[k])
        assert err <= rtol, f"{k}: {err:.3g}"


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-4)],
                         ids=["f64", "f32"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("b,L", [(1, 1), (1, 37), (3, 20)])
def test_block_fused_matches_reference(dtype, rtol, bidirectional, b, L):
    torch.manual_seed(0)
    block = BiMambaBlock(40, d_state=5, bidirectional=bidirectional).to(dtype)  # d_inner 80
    _compare(block, torch.randn(b, L, 40, dtype=dtype), rtol)


def test_block_uses_the_fused_path_only_where_it_resolves():
    block = BiMambaBlock(8, d_state=2)
    t = torch.randn(1, 3, 8)
    assert block._fused(t)
    block.set_backend("ref")
    assert not block._fused(t)
    block.set_backend("auto")
    assert not block._fused(t.to(torch.bfloat16))  # 16-bit: the generic path (scan in float32)


@pytest.mark.slow
def test_eegmamba_single_fused_matches_reference():
    """The paper's single-task model on one MI window shape (22 x 800 -> 119 tokens), batch 2."""
    torch.manual_seed(0)
    task = TaskSpec("mi", n_chans=22, n_times=800, n_classes=4)
    model = create_model("eegmamba_single", tasks=[task], backend="ref").eval()
    _compare(model, torch.randn(2, 22, 800), 1e-3)


def test_eegmamba_tiny_fused_matches_reference_float64():
    torch.manual_seed(0)
    tasks = [TaskSpec("a", n_chans=3, n_times=200, n_classes=2),
             TaskSpec("b", n_chans=5, n_times=160, n_classes=3)]
    model = create_model("eegmamba_tiny", tasks=tasks, backend="cpu_fused").double().eval()
    assert model.config.backend == "cpu_fused"
    _compare(model, torch.randn(2, 5, 160, dtype=torch.float64), 1e-9, task="b")

"""The Mamba2 block: mamba-ssm parameter names/shapes, chunked == sequential, causality, GPU parity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from eegmamba.eegm2.mamba2 import Mamba2, RMSNormGated
from eegmamba.ops.dispatch import has_mamba_ssm

MAMBA_SSM_NAMES = {"in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D",
                   "norm.weight", "out_proj.weight"}


def test_parameter_names_and_shapes_match_mamba_ssm():
    m = Mamba2(64, d_state=16, d_conv=2, expand=8, headdim=64)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert set(shapes) == MAMBA_SSM_NAMES
    assert shapes["in_proj.weight"] == (1064, 64)  # 2·512 + 2·16 + 8 heads
    assert shapes["conv1d.weight"] == (544, 1, 2)
    assert shapes["dt_bias"] == shapes["A_log"] == shapes["D"] == (8,)
    assert shapes["norm.weight"] == (512,) and shapes["out_proj.weight"] == (64, 512)
    # initial values in mamba-ssm's ranges: A in [1, 16], softplus(dt_bias) in [1e-3, 0.1]
    assert torch.all((m.A_log.exp() >= 1) & (m.A_log.exp() <= 16))
    dt = F.softplus(m.dt_bias)
    assert torch.all((dt >= 1e-4) & (dt <= 0.1 + 1e-6))


def test_rmsnorm_gated_formula():
    norm = RMSNormGated(8, group_size=4)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 9.0))
    x, z = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    g = (x * F.silu(z)).view(3, 2, 4)
    want = (g / torch.sqrt(g.pow(2).mean(-1, keepdim=True) + 1e-5)).view(3, 8) * norm.weight.double()
    torch.testing.assert_close(norm.double()(x, z), want)
    before = RMSNormGated(8, norm_before_gate=True).double()
    want_b = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * F.silu(z)
    torch.testing.assert_close(before(x, z), want_b)


@pytest.mark.parametrize("length,opts", [(1, {}), (37, {"ngroups": 2, "D_has_hdim": True}), (100, {})])
def test_block_chunked_matches_sequential(length, opts):
    torch.manual_seed(0)
    kw = dict(d_state=8, d_conv=2, expand=4, headdim=16, **opts)
    m = Mamba2(32, chunk_size=16, backend="ref", **kw).double()
    seq = Mamba2(32, scan="sequential", **kw).double()
    seq.load_state_dict(m.state_dict())
    u1 = torch.randn(2, length, 32, dtype=torch.float64, requires_grad=True)
    u2 = u1.detach().clone().requires_grad_()
    y1, y2 = m(u1), seq(u2)
    torch.testing.assert_close(y1, y2, rtol=0, atol=1e-10)
    y1.square().sum().backward()
    y2.square().sum().backward()
    torch.testing.assert_close(u1.grad, u2.grad, rtol=0, atol=1e-9)
    for (name, p1), p2 in zip(m.named_parameters(), seq.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=0, atol=1e-8, msg=name)


def test_block_is_causal_and_chunk_size_is_only_a_speed_knob():
    torch.manual_seed(1)
    m = Mamba2(32, d_state=8, d_conv=4, expand=2, headdim=16, chunk_size=64)
    u = torch.randn(1, 300, 32)
    y = m(u)
    u2 = u.clone()
    u2[:, 200:] += 3 * torch.randn_like(u2[:, 200:])
    assert torch.equal(m(u2)[:, :200], y[:, :200])
    other = Mamba2(32, d_state=8, d_conv=4, expand=2, headdim=16, chunk_size=256)
    other.load_state_dict(m.state_dict())
    torch.testing.assert_close(other(u), y, rtol=1e-4, atol=1e-5)


def test_auto_chunk_size_per_device():
    m = Mamba2(16, d_state=4, expand=2, headdim=8)
    assert m.resolved_chunk_size(torch.device("cpu")) == 64
    assert m.resolved_chunk_size(torch.device("cuda")) == 256


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="headdim"):
        Mamba2(64, expand=2, headdim=48)
    with pytest.raises(ValueError, match="backend"):
        Mamba2(64, backend="cuda")
    with pytest.raises(ValueError, match="expects"):
        Mamba2(16, headdim=8)(torch.randn(2, 10, 15))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.skipif(not has_mamba_ssm(), reason="needs mamba-ssm (pip install .[cuda])")
def test_block_matches_mamba_ssm_mamba2_on_gpu():
    """The same state dict gives the same output in mamba-ssm's fused Mamba2 and in ours."""
    from mamba_ssm import Mamba2 as FusedMamba2

    torch.manual_seed(0)
    fused = FusedMamba2(64, d_state=16, d_conv=2, expand=8, headdim=64).cuda()
    ours = Mamba2(64, d_state=16, d_conv=2, expand=8, headdim=64, backend="ref").cuda()
    ours.load_state_dict(fused.state_dict())
    u = torch.randn(2, 1000, 64, device="cuda")
    ref = ours(u)
    assert (fused(u) - ref).abs().max().item() <= 1e-3 * max(1.0, ref.abs().max().item())
    ours.backend = "mamba_ssm"
    assert (ours(u) - ref).abs().max().item() <= 1e-3 * max(1.0, ref.abs().max().item())

"""The tokenizer's strided conv as one GEMM equals F.conv1d (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from eegmamba.ops._strided_conv import conv1d_tokens, inference_segment_weight
from eegmamba.model.tokenizer import ConvPath


@pytest.mark.parametrize("k,s,T", [(16, 8, 800), (100, 50, 800), (16, 8, 803), (100, 50, 777),
                                   (6, 2, 9), (4, 4, 10), (8, 8, 7), (9, 3, 5)])
def test_conv1d_tokens_equals_conv1d(k, s, T):
    g = torch.Generator().manual_seed(k + s + T)
    x = torch.randn(2, 5, T, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 5, k, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    ref = F.conv1d(x, w, b, stride=s, padding=k // 2).transpose(1, 2)
    out = conv1d_tokens(x, w, b, s, k // 2)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    g_ref = torch.autograd.grad((ref * gy).sum(), [x, w, b])
    g_new = torch.autograd.grad((out * gy).sum(), [x, w, b])
    for a, e in zip(g_new, g_ref):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


def test_conv1d_tokens_rejects_kernel_not_multiple_of_stride():
    with pytest.raises(ValueError, match="kernel % stride == 0"):
        conv1d_tokens(torch.zeros(1, 2, 10), torch.zeros(3, 2, 5), None, 2, 2)


def test_conv_path_matches_conv_bn_gelu_and_inference_cache_follows_the_weight():
    torch.manual_seed(0)
    path = ConvPath(8, 16, 8, ("a", "b")).double()
    y = torch.randn(3, 8, 120, dtype=torch.float64)
    bn = path.norm["b"]
    for train in (True, False):
        path.train(train)
        ref = path.act(F.batch_norm(path.conv(y), bn.running_mean.clone(), bn.running_var.clone(),
                                    bn.weight, bn.bias, train, 0.0, bn.eps)).transpose(1, 2)
        torch.testing.assert_close(path(y, "b"), ref, rtol=1e-10, atol=1e-10)
    path.eval()
    with torch.inference_mode():
        first = path(y, "b")
    assert inference_segment_weight(path.conv, 8) is None  # grad mode: autograd sees the weight
    with torch.no_grad():
        path.conv.weight.mul_(2.0)  # an in-place update (optimizer step) must not be missed
    with torch.inference_mode():
        second = path(y, "b")
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, path.act(bn(path.conv(y))).transpose(1, 2).detach())

"""Whole-model GPU parity: EEGMamba on the reference scan vs mamba-ssm's fused scan, same weights.

The backends share every op but the selective scan, so outputs and gradients must agree within
the dtype-aware tolerances of the scan-level parity test. Skipped with the reason where CUDA or
mamba-ssm is missing.
"""

from __future__ import annotations

import copy

import pytest
import torch

from eegmamba import TaskSpec, create_model
from tests.ops.test_gpu_parity import TOLERANCES, _skip_reason, cuda_device

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_skip_reason() is not None,
                                                  reason=str(_skip_reason()))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("variant,n_chans,n_times", [("eegmamba_single", 22, 800),
                                                      ("eegmamba_tiny", 3, 2000)])
def test_model_ref_vs_fused(variant, n_chans, n_times, dtype):
    torch.manual_seed(0)
    dev = cuda_device()
    spec = TaskSpec("t", n_chans, n_times, 4)
    ref = create_model(variant, tasks=[spec], backend="ref").to(dev).eval()
    fused = copy.deepcopy(ref)
    fused.set_backend("mamba_ssm")
    x = torch.randn(4, n_chans, n_times, device=dev)
    outs, grads = [], []
    for model in (ref, fused):
        model.zero_grad()
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            out = model(x)
        out.float().pow(2).sum().backward()
        outs.append(out.float())
        grads.append({n: p.grad.float().clone() for n, p in model.named_parameters()})
    rtol, atol = TOLERANCES[dtype]["out"]
    torch.testing.assert_close(outs[1], outs[0], rtol=rtol, atol=atol * max(1, outs[0].abs().max()))
    rtol, atol = TOLERANCES[dtype]["grad"]
    for name, g in grads[0].items():
        scale = max(1.0, float(g.abs().max()))
        torch.testing.assert_close(grads[1][name], g, rtol=rtol, atol=atol * scale,
                                   msg=lambda m, name=name: f"grad {name}: {m}")

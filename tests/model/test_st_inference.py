"""The CPU inference path of the ST-Adaptive module (``eegmamba.model._st_inference``) computes what
the reference modules compute (BatchNorms folded, time-major buffer, segment views), and is only
taken where it may be."""

from __future__ import annotations

import pytest
import torch

from eegmamba import TaskSpec, create_model
from eegmamba.model import _st_inference


def _model(tasks, cls_position="start", seed=0):
    torch.manual_seed(seed)
    model = create_model("eegmamba_tiny" if len(tasks) > 1 else "eegmamba_single", tasks=tasks,
                         cls_position=cls_position)
    model.train()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for spec in tasks:
            for _ in range(3):
                model(torch.randn(4, spec.n_chans, spec.n_times) * 5 + 1, task=spec.name)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _reference(st, x, task):
    """The reference modules: force them with a parameter that needs a gradient."""
    p = st.tokenizer.wide.conv.weight
    p.requires_grad_(True)
    try:
        with torch.enable_grad():
            assert not _st_inference.applicable(st, x, task)
            out, idx = st(x, task)
        return out.detach(), idx
    finally:
        p.requires_grad_(False)


@pytest.mark.parametrize("n_times", [600, 800, 401, 57])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("cls_position", ["start", "middle", "end"])
def test_matches_reference(n_times, batch, cls_position):
    spec = TaskSpec("mi", 22, n_times, 2)
    model = _model([spec], cls_position)
    st = model.st_adaptive
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(batch, 22, n_times) * 4
    with torch.inference_mode():
        assert _st_inference.applicable(st, x, "mi")
        fast, i = st(x, "mi")
    ref, j = _reference(st, x, "mi")
    assert i == j and fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=2e-5)


def test_float64_and_per_task_norms():
    a, b = TaskSpec("a", 4, 400, 3), TaskSpec("b", 4, 400, 3)
    model = _model([a, b]).double()
    st = model.st_adaptive
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 4, 400, dtype=torch.float64)
    for task in ("a", "b"):
        with torch.no_grad():
            fast, _ = st(x, task)
        ref, _ = _reference(st, x, task)
        torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)


def test_cache_follows_parameter_updates():
    spec = TaskSpec("mi", 22, 600, 2)
    model = _model([spec])
    st = model.st_adaptive
    x = torch.randn(2, 22, 600)
    with torch.no_grad():
        before, _ = st(x, "mi")
        st.tokenizer.wide.norm["mi"].running_mean.add_(0.5)
        st.spatial.branches["mi"].weight.mul_(1.1)
        after, _ = st(x, "mi")
    ref, _ = _reference(st, x, "mi")
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, ref, rtol=1e-5, atol=2e-5)


def test_not_taken_when_training_or_grad_needed():
    spec = TaskSpec("mi", 22, 600, 2)
    model = _model([spec])
    st = model.st_adaptive
    x = torch.randn(2, 22, 600)
    with torch.enable_grad():
        assert not _st_inference.applicable(st, x, "mi")  # parameters require grad
    with torch.no_grad():
        assert _st_inference.applicable(st, x, "mi")
        st.train()
        assert not _st_inference.applicable(st, x, "mi")


def test_not_taken_when_a_submodule_is_hooked():
    spec = TaskSpec("mi", 22, 600, 2)
    st = _model([spec]).st_adaptive
    x = torch.randn(2, 22, 600)
    seen = []
    h = st.tokenizer.small.norm["mi"].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        assert not _st_inference.applicable(st, x, "mi")
        st(x, "mi")
    h.remove()
    assert seen


@pytest.mark.parametrize("cls_position", ["start", "middle", "end"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_last_block_class_token_only_equals_full_forward(cls_position, bidirectional):
    """Without gradients the last BiMamba block computes only the class token
    (``BiMambaBlock.forward_at``): the same logits as the full block."""
    torch.manual_seed(0)
    model = create_model("eegmamba_single", tasks=[TaskSpec("mi", 22, 600, 2)],
                         cls_position=cls_position, bidirectional=bidirectional).eval()
    x = torch.randn(3, 22, 600)
    t, i = model.st_adaptive(x, "mi")
    block = model.blocks[-1]
    with torch.no_grad():
        for b in model.blocks[:-1]:
            t = b(t)
        full = block(t)[:, i]
        only = block.forward_at(t, i)
        logits = model(x)
    torch.testing.assert_close(only, full, rtol=1e-5, atol=1e-5)
    with torch.enable_grad():  # training: every block in full
        ref = model(x).detach()
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)


def test_hooked_last_block_runs_in_full():
    """A forward hook anywhere in the last block (feature extraction) sees every token."""
    torch.manual_seed(0)
    model = create_model("eegmamba_single", tasks=[TaskSpec("mi", 22, 600, 2)]).eval()
    seen = []
    h = model.blocks[-1].linear_d.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    with torch.no_grad():
        model(torch.randn(2, 22, 600))
    h.remove()
    assert seen == [(2, 90, 128)]

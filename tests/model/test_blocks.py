"""Per-block tests of the EEGMamba model: shapes, gradients, reversal, routing, aux losses."""

from __future__ import annotations

import pytest
import torch

from eegmamba.model.bimamba import BiMambaBlock
from eegmamba.model.heads import TaskAwareClassifier
from eegmamba.model.moe import TaskAwareMoE, balance_loss, router_z_loss
from eegmamba.model.config import TaskSpec
from eegmamba.model.st_adaptive import STAdaptive, montage_branches


def _grads_everywhere(module: torch.nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
            or p.grad.abs().sum() == 0]


TASKS = (TaskSpec("one", 1, 600, 2), TaskSpec("three", 3, 37, 2), TaskSpec("mi", 22, 800, 2))


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
@pytest.mark.parametrize("position", ["start", "middle", "end"])
def test_st_adaptive_shapes(task, position):
    torch.manual_seed(0)
    st = STAdaptive(TASKS, 16, 1, 8, 4, 40, 20, position)
    x = torch.randn(2, task.n_chans, task.n_times)
    t, cls_index = st(x, task.name)
    n_s, n_w = st.tokenizer.n_tokens_per_path(task.n_times)
    assert t.shape == (2, n_s + n_w + 1, 16)
    assert cls_index == {"start": 0, "middle": n_s, "end": n_s + n_w}[position]
    assert torch.isfinite(t).all()
    # the class token sits at cls_index and is identical for every sample
    assert torch.equal(t[0, cls_index], st.cls_token[0, 0]) and torch.equal(t[1, cls_index], st.cls_token[0, 0])
    # the tokens around it are the small path then the wide path, in order
    rest = torch.cat([t[:, :cls_index], t[:, cls_index + 1:]], dim=1)
    y = st.spatial(x, task.name)
    torch.testing.assert_close(rest, torch.cat([st.tokenizer.small(y, task.name),
                                                st.tokenizer.wide(y, task.name)], dim=1))
    t.sum().backward()
    assert st.cls_token.grad is not None


def test_st_adaptive_unknown_task_and_wrong_channel_count():
    st = STAdaptive((TaskSpec("mi", 22, 100, 2),), 16, 1, 8, 4, 40, 20)
    with pytest.raises(ValueError, match=r"no spatial-adaptive branch for task 'x'.*\['mi'\]"):
        st(torch.randn(1, 22, 100), "x")
    with pytest.raises(ValueError, match=r"task 'mi': the spatial-adaptive branch takes 22 channels, got 5"):
        st(torch.randn(1, 5, 100), "mi")


def test_spatial_branches_keyed_by_montage_not_channel_count():
    mi = TaskSpec("mi", 3, 100, 2, ch_names=("C3", "Cz", "C4"))
    mi4 = TaskSpec("mi4", 3, 100, 4, ch_names=("c3.", "CZ..", "C4"))  # same electrodes, other spelling
    seiz = TaskSpec("seizure", 3, 100, 2, ch_names=("FP1-F7", "F7-T7", "T7-P7"))  # same count
    anon = TaskSpec("anon", 3, 100, 2)  # no names: montage unknown
    anon2 = TaskSpec("anon2", 3, 100, 2)
    assert montage_branches((mi, mi4, seiz, anon, anon2)) == {
        "mi": "mi", "mi4": "mi", "seizure": "seizure", "anon": "anon", "anon2": "anon2"}
    st = STAdaptive((mi, mi4, seiz, anon, anon2), 8, 1, 8, 4, 40, 20)
    assert list(st.spatial.branches) == ["mi", "seizure", "anon", "anon2"]
    assert list(st.spatial.norm) == ["mi", "mi4", "seizure", "anon", "anon2"]  # norms are per task
    x = torch.randn(4, 3, 100)
    st.eval()
    # mi and mi4 share the conv (and here identical fresh norms): same tokens; seizure does not
    torch.testing.assert_close(st(x, "mi")[0], st(x, "mi4")[0])
    assert not torch.allclose(st(x, "mi")[0], st(x, "seizure")[0])


def test_bimamba_shape_and_gradients():
    torch.manual_seed(0)
    block = BiMambaBlock(16, d_state=4, backend="ref")
    t = torch.randn(2, 33, 16, requires_grad=True)
    out = block(t)
    assert out.shape == t.shape and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert _grads_everywhere(block) == []
    assert t.grad is not None


def _influence(block, t, pos_out, pos_in):
    """|d out[:, pos_out] / d t[:, pos_in]|: does the input at pos_in reach the output at pos_out?"""
    t = t.clone().requires_grad_(True)
    block(t)[:, pos_out].sum().backward()
    return t.grad[:, pos_in].abs().sum().item()


def test_backward_branch_sees_the_future_forward_only_does_not():
    torch.manual_seed(0)
    t = torch.randn(1, 20, 16)
    bi = BiMambaBlock(16, d_state=4, bidirectional=True, backend="ref")
    uni = BiMambaBlock(16, d_state=4, bidirectional=False, backend="ref")
    # output at the class-token position (0) depends on the last token only through the backward branch
    assert _influence(bi, t, 0, 19) > 1e-6
    assert _influence(uni, t, 0, 19) == 0.0
    assert _influence(uni, t, 19, 0) > 1e-6


def test_backward_branch_is_a_true_reversal():
    """With both branches sharing weights the block commutes with reversing the sequence."""
    torch.manual_seed(0)
    block = BiMambaBlock(16, d_state=4, backend="ref")
    block.backward_branch.load_state_dict(block.forward_branch.state_dict())
    t = torch.randn(2, 25, 16)
    torch.testing.assert_close(block(t.flip(1)), block(t).flip(1), rtol=1e-5, atol=1e-5)
    # and a forward-only block does not commute with reversal
    uni = BiMambaBlock(16, d_state=4, bidirectional=False, backend="ref")
    assert not torch.allclose(uni(t.flip(1)), uni(t).flip(1), atol=1e-4)


def test_moe_routes_top2_plus_universal_and_omega():
    torch.manual_seed(0)
    moe = TaskAwareMoE(16, n_experts=8, top_k=2, hidden=32)
    torch.nn.init.normal_(moe.linear_gate.weight, std=0.5)
    moe.eval()
    t, task = torch.randn(3, 11, 16), torch.randn(3, 16)
    out = moe(t, task)
    assert out.shape == t.shape
    r = moe.routing
    assert r.indices.shape == (33, 2) and r.weights.shape == (33, 2)
    assert (r.indices[:, 0] != r.indices[:, 1]).all()  # two distinct experts per token
    torch.testing.assert_close(r.weights.sum(-1), torch.ones(33))
    # the chosen experts are the two largest gate logits, weighted by their softmax
    top = r.logits.topk(2, dim=-1)
    assert torch.equal(r.indices, top.indices)
    torch.testing.assert_close(r.weights, torch.softmax(top.values, -1))
    torch.testing.assert_close(r.omega, 1 - r.weights.max(-1).values)
    assert (r.omega >= 0).all() and (r.omega <= 0.5 + 1e-6).all()
    # output = residual + sum of the two experts + omega * universal, computed by hand for one token
    h = moe.norm(t).reshape(33, 16)
    s = 7
    manual = sum(r.weights[s, j] * moe.experts[int(r.indices[s, j])](h[s]) for j in range(2))
    manual = manual + r.omega[s] * moe.universal(h[s])
    torch.testing.assert_close(out.reshape(33, 16)[s], t.reshape(33, 16)[s] + manual, rtol=1e-5, atol=1e-5)


def test_moe_task_token_changes_routing_and_aux_losses():
    torch.manual_seed(0)
    moe = TaskAwareMoE(16, n_experts=4, top_k=2, hidden=32)
    torch.nn.init.normal_(moe.linear_gate.weight, std=1.0)
    moe.eval()
    t = torch.randn(2, 9, 16)
    moe(t, torch.zeros(2, 16))
    a = moe.routing.logits.clone()
    moe(t, torch.ones(2, 16) * 3)
    assert not torch.allclose(a, moe.routing.logits)
    assert torch.isfinite(moe.aux_loss) and moe.aux_loss >= 0


def test_aux_losses_by_hand():
    gates = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.7, 0.3]])
    imp = torch.tensor([0.5, 1.2, 0.3])
    torch.testing.assert_close(balance_loss(gates), imp.std(unbiased=False) / imp.mean())
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = (torch.logsumexp(logits, -1) ** 2).mean()
    torch.testing.assert_close(router_z_loss(logits), expected)
    assert balance_loss(torch.full((4, 3), 1 / 3)) < 1e-6  # perfectly balanced → 0


def test_moe_noise_only_while_training():
    torch.manual_seed(0)
    moe = TaskAwareMoE(16, n_experts=4, top_k=2, hidden=32)
    torch.nn.init.normal_(moe.linear_noise.weight)
    t, task = torch.randn(2, 5, 16), torch.randn(2, 16)
    moe.eval()
    torch.testing.assert_close(moe(t, task), moe(t, task))
    moe.train()
    assert not torch.allclose(moe.gate_logits(t, task), moe.gate_logits(t, task))


def test_router_z_loss_on_clean_logits_while_training():
    """ST-MoE's z-loss penalises the router's own logits, not the noise added to sample routes."""
    torch.manual_seed(0)
    moe = TaskAwareMoE(16, n_experts=4, top_k=2, hidden=32)
    torch.nn.init.normal_(moe.linear_gate.weight)
    torch.nn.init.normal_(moe.linear_noise.weight, std=2.0)
    moe.train()
    t, task = torch.randn(2, 7, 16), torch.randn(2, 16)
    moe(t, task)
    r = moe.routing
    h = moe.norm(t)
    clean = moe.linear_gate(torch.cat([h, task[:, None].expand_as(h)], -1)).reshape(14, 4)
    torch.testing.assert_close(r.clean_logits, clean.detach())
    assert not torch.allclose(r.logits, r.clean_logits)  # routing used the noisy logits
    torch.testing.assert_close(moe.aux_parts["z"], router_z_loss(clean).detach())
    assert not torch.allclose(moe.aux_parts["z"], router_z_loss(r.logits))
    dense = torch.zeros(14, 4).scatter(1, r.indices, r.weights)
    torch.testing.assert_close(moe.aux_parts["balance"], balance_loss(dense))
    torch.testing.assert_close(moe.aux_loss.detach(), moe.aux_parts["balance"] + moe.aux_parts["z"])
    # in eval mode there is no noise: routing and z-loss see the same logits
    moe.eval()
    moe(t, task)
    assert torch.equal(moe.routing.logits, moe.routing.clean_logits)


def test_moe_ablation_flags():
    t = torch.randn(2, 5, 16)
    plain = TaskAwareMoE(16, n_experts=4, hidden=32, universal_expert=False, task_aware_gating=False)
    assert plain.universal is None and plain.linear_gate.in_features == 16
    assert plain(t).shape == t.shape
    with pytest.raises(ValueError, match="task token"):
        TaskAwareMoE(16, n_experts=4, hidden=32)(t)


def test_classifier_heads():
    clf = TaskAwareClassifier(16, {"a": 2, "b": 5})
    assert clf(torch.randn(3, 16), "b").shape == (3, 5)
    with pytest.raises(ValueError, match=r"unknown task 'c'"):
        clf(torch.randn(3, 16), "c")

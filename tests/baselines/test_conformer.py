"""EEG Conformer (our implementation from the paper): shapes, gradients, input checks."""

from __future__ import annotations

import pytest
import torch

from eegmamba.baselines import ConformerConfig, EEGConformer, create_conformer


@pytest.mark.parametrize("attention", ["explicit", "sdpa"])
@pytest.mark.parametrize("n_chans,n_times,n_outputs", [(1, 99, 2), (3, 400, 5), (22, 800, 4)])
def test_forward_backward_shapes(n_chans, n_times, n_outputs, attention):
    torch.manual_seed(0)
    model = create_conformer(n_chans, n_times, n_outputs, depth=2, attention=attention)
    x = torch.randn(3, n_chans, n_times)
    logits = model(x)
    assert logits.shape == (3, n_outputs)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_paper_defaults_and_token_count():
    cfg = ConformerConfig(n_chans=22, n_times=1000, n_outputs=4)
    # Paper: 40 filters, 1x25 temporal kernel, pool 75/15, 6 layers, 10 heads; T=1000 gives 61 tokens
    assert (cfg.n_filters, cfg.temporal_kernel, cfg.pool_size, cfg.pool_stride) == (40, 25, 75, 15)
    assert (cfg.depth, cfg.n_heads) == (6, 10)
    assert cfg.n_tokens == 61
    model = EEGConformer(cfg)
    assert len(model.encoder) == 6
    assert model.classifier[1].in_features == 61 * 40  # the released code's 2440


def test_explicit_and_sdpa_attention_agree_in_eval():
    torch.manual_seed(1)
    a = create_conformer(4, 300, 3, depth=2, attention="explicit").eval()
    b = create_conformer(4, 300, 3, depth=2, attention="sdpa").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 4, 300)
    with torch.inference_mode():
        torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)


def test_attention_mixes_tokens():
    """Changing the last samples changes the attention output of the first token."""
    torch.manual_seed(2)
    model = create_conformer(2, 400, 2, depth=1).eval()
    x = torch.randn(1, 2, 400)
    y = x.clone()
    y[..., -100:] += 5.0
    with torch.inference_mode():
        t0 = model.encoder(model.embed(x))[0, 0]
        t1 = model.encoder(model.embed(y))[0, 0]
    assert not torch.allclose(t0, t1)


def test_wrong_input_shape_names_both():
    model = create_conformer(22, 800, 4, depth=1)
    with pytest.raises(ValueError, match=r"\(B, 22, 800\).*\(2, 22, 900\)"):
        model(torch.randn(2, 22, 900))
    with pytest.raises(ValueError, match="got \\(22, 800\\)"):
        model(torch.randn(22, 800))
    with pytest.raises(TypeError):
        model([[0.0]])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_times": 98}, "n_times must be >= 99"),
        ({"n_chans": 0}, "n_chans must be a positive int"),
        ({"n_outputs": 1}, "n_outputs must be >= 2"),
        ({"n_heads": 7}, "divisible by n_heads"),
        ({"attention": "flash"}, "attention must be one of"),
        ({"drop_attn": 1.0}, "dropout"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    base = {"n_chans": 2, "n_times": 200, "n_outputs": 2}
    with pytest.raises(ValueError, match=match):
        ConformerConfig(**{**base, **kwargs})

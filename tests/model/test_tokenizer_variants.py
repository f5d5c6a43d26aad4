"""Tokenizer variants (issue 17): every registered variant builds, tokenizes a 3 s MI window into the
token count it declares, trains (gradients reach the tokenizer), regularises only in training, saves
and loads through the checkpoint; the config of the checkpoint bundled before them (no tokenizer
fields) still builds the original dense paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import load_checkpoint, save_checkpoint
from eegmamba.model.config import EEGMambaConfig
from eegmamba.model.tokenizer_paths import TokenDrop, depthwise_fft, fft_length, pool_factors
from eegmamba.model.variants import TOKENIZER_VARIANTS
from eegmamba.registry import build_model

MI = TaskSpec("motor_imagery", 22, 600, 2)
DEMO = Path(__file__).resolve().parents[2] / "eegmamba" / "assets" / "demo" / "mi_checkpoint"
OLD_DEMO_CONFIG = Path(__file__).with_name("data") / "demo_v02_config.json"


@pytest.mark.parametrize("name", sorted(TOKENIZER_VARIANTS))
def test_variant_tokenizes_trains_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, tasks=[MI], backend="ref", d_model=32)
    tok = model.st_adaptive.tokenizer
    assert tok.kind == TOKENIZER_VARIANTS[name]["tokenizer"]
    x = torch.randn(6, 22, 600)
    y = model.st_adaptive.spatial(x, "motor_imagery")
    n_s, n_w = tok.n_tokens_per_path(600)
    assert tok.small(y, "motor_imagery").shape == (6, n_s, 32)
    assert tok.wide(y, "motor_imagery").shape == (6, n_w, 32)
    assert n_w < n_s <= 76
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1] * 3))
    loss.backward()
    grads = [p.grad for p in tok.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)  # no dropout / path drop at evaluation
    assert torch.equal(a, b)
    folder = save_checkpoint(tmp_path / name, model)
    loaded, meta = load_checkpoint(folder)
    assert meta["variant"] == name
    with torch.no_grad():
        assert torch.allclose(loaded(x), a, atol=1e-6)


def test_lighter_variants_have_far_fewer_tokenizer_parameters():
    def n_tok(name):
        m = create_model(name, tasks=[MI])
        return sum(p.numel() for p in m.st_adaptive.tokenizer.parameters())

    dense = n_tok("eegmamba_single")
    assert dense > 1.8e6  # the 128x128 kernel-100 conv is most of the model
    for name in TOKENIZER_VARIANTS:
        assert n_tok(name) < dense / 7, name


def test_token_drop_zeroes_whole_windows_only_in_training():
    drop = TokenDrop(0.0, drop_path=0.5)
    t = torch.ones(2000, 4, 3)
    out = drop(t)
    zeroed = (out == 0).all(2).all(1)
    assert 0.45 < zeroed.float().mean() < 0.55
    assert torch.equal(out[~zeroed], torch.full_like(out[~zeroed], 2.0))
    assert torch.equal(drop.eval()(t), t)
    assert pool_factors(50) == (2, 5, 5) and pool_factors(8) == (2, 2, 2)


def test_a_checkpoint_written_before_the_variants_builds_the_original_paths(tmp_path):
    """The config of the demo checkpoint bundled until 2026-12-07 (no tokenizer fields) builds the
    dense paths, and a checkpoint folder with that config loads as the dense tokenizer."""
    old = json.loads(OLD_DEMO_CONFIG.read_text())
    cfg = old["config"]
    assert "tokenizer" not in cfg  # written before the variants
    model = build_model(old["variant"], cfg)
    assert model.st_adaptive.tokenizer.kind == "conv"
    assert model.st_adaptive.tokenizer.small.conv.groups == 1
    folder = save_checkpoint(tmp_path / "v02", model, {})
    meta = json.loads((folder / "model.json").read_text())
    meta["config"] = cfg  # as the old file had it
    (folder / "model.json").write_text(json.dumps(meta))
    loaded, _ = load_checkpoint(folder)
    assert loaded.config.tokenizer == "conv"


def test_the_bundled_checkpoint_is_a_registered_variant_and_loads():
    meta = json.loads((DEMO / "model.json").read_text())
    loaded, _ = load_checkpoint(DEMO)
    assert meta["variant"] in TOKENIZER_VARIANTS or meta["variant"] == "eegmamba_single"
    assert type(loaded).__name__ and loaded.config.tasks[0].n_chans == 22


def test_config_validation():
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        EEGMambaConfig(tasks=(MI,), tokenizer="fft")
    with pytest.raises(ValueError, match="not a multiple of tokenizer_groups"):
        EEGMambaConfig(tasks=(MI,), tokenizer_groups=3)
    with pytest.raises(ValueError, match="tokenizer_drop_path must be in"):
        EEGMambaConfig(tasks=(MI,), tokenizer_drop_path=1.0)


@pytest.mark.parametrize("k, L", [(50, 600), (100, 600), (7, 33), (100, 80)])
def test_fft_depthwise_conv_equals_conv1d(k, L):
    g = torch.Generator().manual_seed(k)
    y, w = torch.randn(3, 8, L, generator=g), torch.randn(8, 1, k, generator=g)
    ref = torch.nn.functional.conv1d(y, w, padding=k // 2, groups=8)
    assert torch.allclose(depthwise_fft(y, w, k // 2), ref, atol=1e-4)
    n = fft_length(L, k // 2)
    assert n % 2 == 0 and n >= L + k // 2
    for n_fft in (n, L + k // 2 + (L + k // 2) % 2, 1 << (L + k).bit_length()):  # any long-enough n
        assert torch.allclose(depthwise_fft(y, w, k // 2, n_fft), ref, atol=1e-4)
    with pytest.raises(ValueError, match="would wrap"):
        depthwise_fft(y, w, k // 2, L + k // 2 - 1)


def test_fft_length_is_the_smallest_even_5_smooth_size():
    assert fft_length(600, 50) == 720 and fft_length(600, 25) == 640
    assert fft_length(2, 0) == 2 and fft_length(33, 3) == 36


def test_filterbank_shares_y_spectrum_and_caches_weight_spectrum_only_in_inference():
    torch.manual_seed(0)
    model = create_model("eegmamba_fb", tasks=[MI], backend="ref", d_model=16)
    tok = model.st_adaptive.tokenizer
    paths = (tok.small, tok.wide)
    x = torch.randn(2, MI.n_chans, MI.n_times)
    model.eval()
    with torch.no_grad():
        a = model(x, task=MI.name)
        b = model(x, task=MI.name)  # from the cached weight spectra
    assert all(getattr(p, "_w_spec", None) is not None for p in paths)
    assert torch.equal(a, b)
    y = torch.randn(2, 16, MI.n_times)
    n = max(fft_length(MI.n_times, p.kernel // 2) for p in paths)
    for p in paths:  # the shared length and the cached spectrum: the same filters as conv1d
        ref = torch.nn.functional.conv1d(y, p.temporal.weight, padding=p.kernel // 2, groups=16)
        with torch.no_grad():
            got = depthwise_fft(y, p.temporal.weight, p.kernel // 2, n, None, p.weight_spectrum(n))
        assert torch.allclose(got, ref, atol=1e-4)
    with torch.no_grad():  # an in-place weight change (optimizer step, load_state_dict) is seen
        paths[0].temporal.weight.mul_(0.5)
        c = model(x, task=MI.name)
        paths[0].temporal.weight.mul_(2.0)
        d = model(x, task=MI.name)
    assert not torch.allclose(a, c, atol=1e-4) and torch.allclose(a, d, atol=1e-5)
    model.train()  # training: no cache, gradients reach the filters
    assert paths[0].weight_spectrum(n) is None
    model(x, task=MI.name).sum().backward()
    assert all(p.temporal.weight.grad.abs().sum() > 0 for p in paths)

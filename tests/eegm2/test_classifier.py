"""EEGM2-encoder classifier: the head trains (official bug), freeze modes, loading a pretrained encoder."""

from __future__ import annotations

import pytest
import torch

from eegmamba.eegm2 import EEGM2, EEGM2Classifier, EEGM2ClassifierConfig, EEGM2Config, pool_time
from eegmamba.registry import create_model

TINY = dict(base=16, expand=2, headdim=16)


def _clf(**kw):
    enc = EEGM2Config(n_chans=4, ch_names=("C3", "Cz", "C4", "Pz"), **TINY)
    return EEGM2Classifier(EEGM2ClassifierConfig(encoder=enc, n_classes=3, **kw))


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize("freeze", ["frozen", "partial", "full"])
def test_head_changes_after_one_step(freeze):
    torch.manual_seed(0)
    model = _clf(freeze=freeze, unfreeze_last=1)
    head0, enc0 = _snapshot(model.head), _snapshot(model.encoder)
    opt = torch.optim.Adam(model.param_groups(lr_encoder=1e-3, lr_head=1e-2))
    x, y = torch.randn(6, 4, 64), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    for name, p in model.head.named_parameters():
        assert not torch.equal(p, head0[name]), f"head parameter {name} did not change"
    changed = {n.split(".")[0] for n, p in model.encoder.named_parameters() if not torch.equal(p, enc0[n])}
    assert changed == {"frozen": set(), "partial": {"encoder3"},
                       "full": {"input_embedding", "encoder1", "encoder2", "encoder3"}}[freeze]


def test_param_groups_always_hold_the_head():
    groups = _clf(freeze="frozen").param_groups()
    assert [g["name"] for g in groups] == ["head"]
    full = _clf(freeze="full").param_groups(lr_encoder=1e-4, lr_head=1e-3)
    assert [(g["name"], g["lr"]) for g in full] == [("encoder", 1e-4), ("head", 1e-3)]


@pytest.mark.parametrize("pooling,k", [("quantile", 9), ("meanmax", 2), ("mean", 1)])
@pytest.mark.parametrize("head", ["mlp", "linear"])
def test_output_shape_for_any_window_length(pooling, k, head):
    model = _clf(pooling=pooling, head=head).eval()
    for length in (64, 203):
        assert model.features(torch.randn(2, 4, length)).shape == (2, 64 * k)
        assert model(torch.randn(2, 4, length)).shape == (2, 3)


def test_quantile_pooling_statistics():
    h = torch.arange(10.0).view(1, 1, 10).repeat(1, 2, 1)
    feats = pool_time(h, "quantile").view(1, 9, 2)[0, :, 0]
    want = torch.tensor([0, 9, 4.5, h[0, 0].std(correction=0), 0.45, 2.25, 4.5, 6.75, 8.55])
    torch.testing.assert_close(feats, want)


def test_load_pretrained_encoder_from_the_full_model():
    torch.manual_seed(0)
    pre = EEGM2(EEGM2Config(n_chans=4, **TINY))
    model = _clf(freeze="frozen")
    model.load_encoder(pre.state_dict())  # decoder keys are ignored
    x = torch.randn(2, 4, 80)
    torch.testing.assert_close(model.encoder(x), pre.encode_levels(x)[-1])
    assert not any(p.requires_grad for p in model.encoder.parameters())  # freeze re-applied


def test_mismatched_pretrained_encoder_is_a_clear_error():
    model = _clf()
    wrong_chans = create_model("eegm2_tiny", n_chans=5).state_dict()
    with pytest.raises(ValueError, match="trained on 5 channels, this model has 4"):
        model.load_encoder(wrong_chans)
    wrong_size = create_model("eegm2_tiny", n_chans=4, base=8, headdim=8).state_dict()
    with pytest.raises(ValueError, match="shape"):
        model.load_encoder(wrong_size)
    with pytest.raises(ValueError, match="lack"):
        model.load_encoder({})
    with pytest.raises(ValueError, match="3 channels, this model 4"):
        model.check_pretrained(["C3", "Cz", "C4"], 200.0)
    with pytest.raises(ValueError, match="Cz≠Pz"):
        model.check_pretrained(["C3", "Pz", "C4", "Cz"], 200.0)
    with pytest.raises(ValueError, match="128.0 Hz"):
        model.check_pretrained(["C3", "Cz", "C4", "Pz"], 128.0)
    model.check_pretrained(["C3", "Cz", "C4", "Pz"], 200.0)


def test_classifier_config_roundtrip_and_registry():
    cfg = _clf(pooling="meanmax", freeze="partial").config
    assert EEGM2ClassifierConfig.from_dict(cfg.to_dict()) == cfg
    model = create_model("eegm2_classifier", n_chans=4, n_classes=2, encoder=EEGM2Config(n_chans=4, **TINY))
    assert model(torch.randn(1, 4, 64)).shape == (1, 2)
    with pytest.raises(ValueError, match="freeze"):
        EEGM2ClassifierConfig(encoder=cfg.encoder, n_classes=2, freeze="some")
    with pytest.raises(ValueError, match="n_classes"):
        EEGM2ClassifierConfig(encoder=cfg.encoder, n_classes=1)

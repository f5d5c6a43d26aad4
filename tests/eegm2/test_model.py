"""EEGM2 architecture: official parameter counts, shapes, Light prefix, registry variants, configs."""

from __future__ import annotations

import pytest
import torch

import eegmamba.eegm2  # noqa: F401  (registers the variants)
from eegmamba.eegm2 import EEGM2, EEGM2Config, EEGM2Encoder, count_parameters
from eegmamba.registry import build_model, create_model, list_models

EEGM2_VARIANTS = [n for n in list_models() if n.startswith("eegm2") and n != "eegm2_classifier"]


@pytest.mark.parametrize("n_chans,full,light", [(16, 4_565_144, 254_392), (23, 4_570_527, 259_320),
                                                (64, 4_602_056, 288_184)])
def test_parameter_counts_match_the_official_model(n_chans, full, light):
    """16 channels: 4,565,144 is the count in the official TUAB training log."""
    model = create_model("eegm2", n_chans=n_chans)
    assert count_parameters(model) == full
    assert count_parameters(create_model("eegm2_light", n_chans=n_chans)) == light
    assert len(list(model.parameters())) == 66  # official: "Unfroze last [66] layers"


def test_mamba_block_shapes_match_the_official_log():
    sd = create_model("eegm2", n_chans=16).state_dict()
    shapes = {k.split(".mamba.")[0]: tuple(v.shape) for k, v in sd.items() if k.endswith("in_proj.weight")}
    assert shapes == {"encoder1.1": (1064, 64), "bottleneck.1": (4160, 256),
                      "decodeMamba3": (4160, 256), "decodeMamba2": (2096, 128)}
    convs = [tuple(v.shape)[0] for k, v in sd.items() if k.endswith("mamba.conv1d.weight")]
    assert convs == [544, 2080, 2080, 1056]


@pytest.mark.parametrize("name", EEGM2_VARIANTS)
def test_every_variant_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name, n_chans=5, **({} if name == "eegm2_tiny" else {"base": 16, "headdim": 32}))
    x = torch.randn(2, 5, 83)  # odd length: pooling floors, upsampling restores the skip lengths
    out = model(x)
    want = (2, 5, 83) if isinstance(model, EEGM2) else (2, 4 * model.config.base, 83 // 8)
    assert tuple(out.shape) == want and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_light_is_a_prefix_of_the_full_model():
    torch.manual_seed(0)
    full = create_model("eegm2_tiny", n_chans=4)
    light = EEGM2Encoder(full.config)
    light.load_state_dict(full.encoder_state_dict())  # strict: exactly the encoder keys
    x = torch.randn(3, 4, 64)
    torch.testing.assert_close(light(x), full.encode_levels(x)[-1])
    assert set(light.state_dict()) < set(full.state_dict())


def test_outputs_channels_and_input_checks():
    model = create_model("eegm2_tiny", n_chans=4, n_outputs=2)
    assert model(torch.randn(1, 4, 40)).shape == (1, 2, 40)
    with pytest.raises(ValueError, match="built for 4 channels, got 3"):
        model(torch.randn(1, 3, 40))
    with pytest.raises(ValueError, match="at least 8"):
        model(torch.randn(1, 4, 7))


def test_config_roundtrip_and_validation():
    cfg = EEGM2Config(n_chans=2, ch_names=("C3", "C4"), base=16, expand=2, headdim=16, n_times=400)
    assert EEGM2Config.from_dict(cfg.to_dict()) == cfg
    model = build_model("eegm2", cfg.to_dict())
    assert model.variant == "eegm2" and model.config == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        EEGM2Config.from_dict({**cfg.to_dict(), "scale_factor": 1})
    with pytest.raises(ValueError, match="headdim"):
        EEGM2Config(n_chans=2, base=16, expand=2, headdim=64)
    with pytest.raises(ValueError, match="ch_names"):
        EEGM2Config(n_chans=3, ch_names=("C3", "C4"))
    with pytest.raises(ValueError, match="backend"):
        EEGM2Config(n_chans=3, backend="gpu")

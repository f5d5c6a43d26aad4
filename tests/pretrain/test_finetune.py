"""Fine-tuning from a pretrain folder: encoder loaded, head trained, mismatches refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eegmamba._checks import UserInputError
from eegmamba.data.dataset import build_windows
from eegmamba.pretrain.finetune import (FinetuneConfig, classifier_from_pretrained, finetune,
                                        load_pretrained, predict_proba, scratch_classifier)
from eegmamba.profiles import load_profile


@pytest.fixture(scope="module")
def labelled(shared_data):
    """chb01_03 ictal + pre-ictal 10-s crops through the seizure profile (22 ch, 200 Hz, 4-s windows)."""
    files = [shared_data / "seizure" / f"chb01_03_{k}10s.edf" for k in ("ictal", "preictal")]
    return build_windows(files, "seizure", hop_s=1.0)


def test_encoder_loaded_and_head_trained(pretrained_dir, labelled):
    pre = load_pretrained(pretrained_dir)
    assert pre.sfreq == 200.0 and len(pre.ch_names) == 22
    model = classifier_from_pretrained(pretrained_dir, 2, labelled.ch_names, labelled.sfreq,
                                       freeze="full", dropout=0.0)
    enc = model.encoder.state_dict()
    assert all(torch.equal(enc[k], v) for k, v in pre.state_dict.items())
    head0 = {k: v.clone() for k, v in model.head.named_parameters()}
    enc0 = {k: v.clone() for k, v in model.encoder.named_parameters()}
    losses = finetune(model, labelled.X, labelled.y, FinetuneConfig(steps=1, batch_size=8))
    assert len(losses) == 1 and np.isfinite(losses[0])
    for k, v in model.head.named_parameters():
        assert not torch.equal(v, head0[k]), f"head parameter {k} did not change"
    assert any(not torch.equal(v, enc0[k]) for k, v in model.encoder.named_parameters())
    proba = predict_proba(model, labelled.X)
    assert proba.shape == (len(labelled), 2) and np.allclose(proba.sum(1), 1)


def test_frozen_encoder_stays_put(pretrained_dir, labelled):
    model = classifier_from_pretrained(pretrained_dir, 2, labelled.ch_names, 200.0, freeze="frozen")
    enc0 = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head0 = [p.clone() for p in model.head.parameters()]
    finetune(model, labelled.X, labelled.y, FinetuneConfig(steps=2, batch_size=8))
    assert all(torch.equal(v, enc0[k]) for k, v in model.encoder.state_dict().items())
    assert all(not torch.equal(a, b) for a, b in zip(head0, model.head.parameters()))


def test_same_arms_differ_only_in_encoder_init(pretrained_dir, labelled):
    pre = load_pretrained(pretrained_dir)
    torch.manual_seed(0)
    a = classifier_from_pretrained(pre, 2, labelled.ch_names, 200.0)
    torch.manual_seed(0)
    b = scratch_classifier(pre.config, 2, labelled.ch_names, 200.0)
    assert a.config == b.config
    assert all(torch.equal(x, y) for x, y in zip(a.head.parameters(), b.head.parameters()))


def test_channel_and_rate_mismatch_refused(pretrained_dir, shared_data):
    names = list(load_profile("seizure").channels.names)
    with pytest.raises(ValueError, match="22 channels, this model 21"):
        classifier_from_pretrained(pretrained_dir, 2, names[:-1], 200.0)
    swapped = [names[1], names[0], *names[2:]]
    with pytest.raises(ValueError, match="order matters"):
        classifier_from_pretrained(pretrained_dir, 2, swapped, 200.0)
    with pytest.raises(ValueError, match="200.0 Hz, this model at 256.0 Hz"):
        classifier_from_pretrained(pretrained_dir, 2, names, 256.0)
    # spelling differences that normalize equal are the same channels
    model = classifier_from_pretrained(pretrained_dir, 2, [n.lower() for n in names], 200.0)
    assert model.config.encoder.n_chans == 22
    with pytest.raises(UserInputError, match="checkpoint"):
        load_pretrained(shared_data)

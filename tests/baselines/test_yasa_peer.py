"""YASA's pretrained staging as a peer: runs offline on a real DREAMS excerpt, its epochs line up
with our 30 s windows, and it stages that excerpt far better than chance."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.baselines.yasa_peer import YasaPeer
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import load_profile
from eegmamba.training.metrics import compute_metrics

pytest.importorskip("yasa")


def test_yasa_stages_a_dreams_excerpt_on_our_windows(shared_data):
    prof = load_profile("sleep")
    path = shared_data / "sleep" / "dreams_excerpt1.edf"
    ws = build_windows(path, prof)
    peer = YasaPeer(prof)
    proba = peer.proba(ws.files, ws.t_start)
    assert proba.shape == (len(ws), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert len(peer._cache[str(path)]) == 60  # 30 min = 60 epochs of 30 s
    m = compute_metrics(ws.y, proba)
    # W, N2 and N3 occur here: always predicting N2 would give balanced accuracy 1/3 and kappa 0
    assert m["balanced_acc"] > 0.6 and m["kappa"] > 0.4, m
    with pytest.raises(ValueError, match="30 s epoch grid"):
        peer.proba(ws.files[:1], ws.t_start[:1] + 7.0)


def test_yasa_needs_30_s_single_channel_windows():
    with pytest.raises(UserInputError, match="scores 30 s epochs"):
        YasaPeer(load_profile("seizure"))


def test_yasa_stages_a_50_hz_excerpt_after_resampling(shared_data):
    # YASA asserts >= 80 Hz; DREAMS excerpt 3 is 50 Hz: the peer resamples it to 100 Hz first
    prof = load_profile("sleep")
    path = shared_data / "sleep" / "dreams_excerpt3.edf"
    ws = build_windows(path, prof)
    proba = YasaPeer(prof).proba(ws.files, ws.t_start)
    assert proba.shape == (len(ws), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)

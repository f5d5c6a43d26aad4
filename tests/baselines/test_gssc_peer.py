"""GSSC's pretrained staging as a second sleep peer: loads under our torch (its pickled networks),
runs offline on a real DREAMS excerpt, its epochs line up with our 30 s windows (the last full epoch
included), and it stages that excerpt far better than chance, through ``fit_arm`` as any arm."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import load_profile
from eegmamba.training.metrics import compute_metrics

pytest.importorskip("gssc")


def test_gssc_stages_a_dreams_excerpt_on_our_windows(shared_data):
    from eegmamba.training.arms import Windows, fit_arm

    prof = load_profile("sleep")
    path = shared_data / "sleep" / "dreams_excerpt1.edf"
    ws = build_windows(path, prof)
    fitted = fit_arm("gssc", prof, Windows(ws.X, ws.X, ws.y, ws.files, ws.t_start), None, None, 0)
    assert fitted.info["pretrained"] and fitted.info["n_train"] == 0
    proba = fitted.proba(Windows(ws.X, ws.X, ws.y, ws.files, ws.t_start))
    assert proba.shape == (len(ws), 5)
    assert set(np.unique(proba)) <= {0.0, 1.0} and np.all(proba.sum(axis=1) == 1.0)  # hard stages
    stages = fitted.model._cache[str(path)]
    assert len(stages) == 60  # 30 min = 60 epochs of 30 s: the last one is not cut off
    last = fitted.model.proba(np.array([str(path)]), np.array([1770.0]))  # our last 30 s window
    assert last.shape == (1, 5) and last.sum() == 1.0
    m = compute_metrics(ws.y, proba)
    # W, N2 and N3 occur here: always predicting N2 would give balanced accuracy 1/3 and kappa 0
    assert m["balanced_acc"] > 0.6 and m["kappa"] > 0.4, m
    with pytest.raises(ValueError, match="30 s epoch grid"):
        fitted.model.proba(ws.files[:1], ws.t_start[:1] + 7.0)


def test_gssc_needs_30_s_single_channel_windows():
    from eegmamba.baselines.gssc_peer import GsscPeer

    with pytest.raises(UserInputError, match="scores 30 s epochs"):
        GsscPeer(load_profile("seizure"))

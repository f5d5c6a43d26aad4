"""The motor-imagery peers: pyriemann's TS+LR and MDM, and our EEGNet-8,2 (shapes, constraints,
and that each learns a class-dependent spatial rhythm)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from eegmamba.baselines.eegnet import EEGNet, EEGNetConfig, EEGNetTrainConfig, eegnet_proba, fit_eegnet
from eegmamba.baselines.riemann import MDM, TSLR
from tests.baselines.test_classical import SFREQ, _band_set, _split


@pytest.mark.parametrize("cls", [TSLR, MDM])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_riemannian_peers_beat_chance(cls, n_classes):
    X, y = _band_set(n_classes=n_classes, seed=10 + n_classes)
    Xtr, ytr, Xte, yte = _split(X, y)
    clf = clone(cls(sfreq=SFREQ)).fit(Xtr, ytr)
    proba = clf.predict_proba(Xte)
    assert proba.shape == (len(yte), n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    acc = float((clf.predict(Xte) == yte).mean())
    assert acc > 1.0 / n_classes + 0.25, acc


def test_riemannian_peer_errors():
    X, y = _band_set()
    with pytest.raises(ValueError, match="at least 2 channels"):
        TSLR(sfreq=SFREQ).fit(X[:, :1], y)
    with pytest.raises(ValueError, match="band must satisfy"):
        MDM(sfreq=SFREQ, band=(8.0, 120.0)).fit(*_band_set()[:2])
    with pytest.raises(RuntimeError, match="not fitted"):
        MDM().predict_proba(X)


def test_eegnet_shapes_kernels_and_errors():
    cfg = EEGNetConfig(n_chans=22, n_times=600, n_outputs=2)
    assert (cfg.k1, cfg.k2) == (100, 25)  # half a second at 200 Hz; 500 ms at 50 Hz after pooling
    model = EEGNet(cfg)
    assert model(torch.randn(3, 22, 600)).shape == (3, 2)
    assert model.dense.in_features == 16 * (600 // 32)
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 22, 600\)"):
        model(torch.randn(3, 21, 600))
    with pytest.raises(ValueError, match="n_outputs must be >= 2"):
        EEGNetConfig(n_chans=22, n_times=600, n_outputs=1)


def test_eegnet_max_norm_holds_after_training_and_it_learns():
    X, y = _band_set(n=240, n_chans=4, n_times=400, n_classes=2, seed=3)
    X = (X - X.mean(axis=2, keepdims=True)) / X.std(axis=2, keepdims=True)  # z-scored, as the nets get
    Xtr, ytr, Xte, yte = X[:160], y[:160], X[160:], y[160:]
    torch.manual_seed(0)
    model = EEGNet(EEGNetConfig(n_chans=4, n_times=400, n_outputs=2))
    with torch.no_grad():
        model.dense.weight.mul_(100.0)
        model.dense.weight[0].zero_()  # a row below the limit stays as it is
    model.apply_max_norm()
    assert torch.allclose(model.dense.weight[1:].norm(dim=1), torch.tensor(0.25))
    assert torch.all(model.dense.weight[0] == 0)
    torch.manual_seed(0)
    model = EEGNet(EEGNetConfig(n_chans=4, n_times=400, n_outputs=2))
    fit = fit_eegnet(model, Xtr[:128], ytr[:128], Xtr[128:], ytr[128:],
                     EEGNetTrainConfig(epochs=25, patience=25, batch_size=32))
    assert 1 <= fit["best_epoch"] <= fit["epochs_run"] == 25
    spatial = model.spatial.weight.flatten(1).norm(dim=1)
    dense = model.dense.weight.norm(dim=1)
    assert torch.all(spatial <= 1.0 + 1e-5) and torch.all(dense <= 0.25 + 1e-5)
    proba = eegnet_proba(model, Xte)
    assert proba.shape == (80, 2) and not model.training
    assert float((proba.argmax(1) == yte).mean()) > 0.7

"""Classical baselines on synthetic windows with class-dependent band power (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from eegmamba.baselines import BandPowerLR, CSPLDA, make_baseline

SFREQ = 200.0


def _band_set(n=150, n_chans=6, n_times=400, n_classes=3, seed=0, spatial=True):
    """White noise (std 10) plus a class-dependent rhythm, ``X : (n, n_chans, n_times)``.

    With ``spatial`` (motor-imagery-like, what CSP finds): class k adds a 12 Hz rhythm on channel k
    only. Otherwise (sleep-like): class k adds a rhythm at ``freqs[k]`` Hz on all channels. Random
    phase and amplitude keep single windows from being trivially separable.
    """
    rng = np.random.default_rng(seed)
    freqs = [12.0] * n_classes if spatial else [6.0, 11.0, 22.0, 40.0][:n_classes]
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    t = np.arange(n_times) / SFREQ
    X = rng.standard_normal((n, n_chans, n_times)) * 10.0
    for i, k in enumerate(y):
        amp = rng.uniform(2.0, 8.0)
        rhythm = amp * np.sin(2 * np.pi * freqs[k] * t + rng.uniform(0, 2 * np.pi))
        if spatial:
            X[i, k] += rhythm
        else:
            X[i] += rhythm
    return X.astype(np.float32), y


def _split(X, y, n_train=100):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_csplda_beats_chance(n_classes):
    X, y = _band_set(n_classes=n_classes, seed=n_classes)
    Xtr, ytr, Xte, yte = _split(X, y)
    clf = CSPLDA(sfreq=SFREQ, n_components=4).fit(Xtr, ytr)
    acc = float((clf.predict(Xte) == yte).mean())
    assert acc > 1.0 / n_classes + 0.25, acc
    assert list(clf.classes_) == sorted(set(ytr))


def test_bandpower_lr_beats_chance_and_probas_are_calibrated_shape():
    X, y = _band_set(n_classes=4, spatial=False, seed=5)
    Xtr, ytr, Xte, yte = _split(X, y)
    clf = BandPowerLR(sfreq=SFREQ).fit(Xtr, ytr)
    proba = clf.predict_proba(Xte)
    assert proba.shape == (len(yte), 4)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert np.array_equal(clf.predict(Xte), clf.classes_[proba.argmax(axis=1)])
    acc = float((clf.predict(Xte) == yte).mean())
    assert acc > 0.25 + 0.3, acc


def test_bandpower_features_follow_band_power():
    """A 10 Hz sinusoid on channel 1 raises that channel's alpha feature, nothing else much."""
    t = np.arange(800) / SFREQ
    X = np.random.default_rng(0).standard_normal((1, 2, 800))
    Y = X.copy()
    Y[0, 1] += 20 * np.sin(2 * np.pi * 10 * t)
    bp = BandPowerLR(sfreq=SFREQ)
    diff = (bp.band_powers(Y) - bp.band_powers(X)).reshape(2, 6)  # (chan, band)
    assert diff[1, 2] > 2.0  # alpha, log10 units
    assert np.abs(np.delete(diff.ravel(), 1 * 6 + 2)).max() < 0.5


def test_string_labels_and_clone():
    X, y = _band_set(n_classes=2, spatial=False, seed=3)
    names = np.array(["W", "N2"])[y]
    clf = clone(make_baseline("sleep")).fit(X, names)
    assert set(clf.predict(X[:10])) <= {"W", "N2"}
    assert clf.score(X, names) > 0.7


def test_make_baseline_kinds():
    assert isinstance(make_baseline("motor_imagery"), CSPLDA)
    assert isinstance(make_baseline("mi", n_components=4), CSPLDA)
    assert isinstance(make_baseline("sleep", sfreq=100.0), BandPowerLR)
    assert isinstance(make_baseline("seizure"), BandPowerLR)
    with pytest.raises(ValueError, match="task_kind must be one of"):
        make_baseline("emotion")


@pytest.mark.parametrize("cls", [CSPLDA, BandPowerLR])
def test_errors_on_bad_input(cls):
    X, y = _band_set(n=40, n_classes=2)
    clf = cls(sfreq=SFREQ)
    with pytest.raises(RuntimeError, match="not fitted"):
        clf.predict(X)
    with pytest.raises(ValueError, match=r"shape \(n_windows, n_chans, n_times\)"):
        clf.fit(X[0], y)
    with pytest.raises(TypeError, match="numpy array"):
        clf.fit(X.tolist(), y)
    with pytest.raises(ValueError, match=r"y must have shape \(40,\)"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.zeros(40, int))
    bad = X.copy()
    bad[3, 0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 1 of 40 windows"):
        clf.fit(bad, y)
    clf.fit(X, y)
    with pytest.raises(ValueError, match=r"fitted on windows of shape .*\(6, 400\), got \(5, 400\)"):
        clf.predict_proba(X[:, :5])


def test_parameter_errors():
    X, y = _band_set(n=40, n_classes=2)
    with pytest.raises(ValueError, match="at least 2 channels"):
        CSPLDA().fit(X[:, :1], y)
    with pytest.raises(ValueError, match="band must satisfy"):
        CSPLDA(sfreq=50.0).fit(X, y)
    with pytest.raises(ValueError, match="Nyquist"):
        BandPowerLR(sfreq=50.0).fit(X, y)  # gamma up to 50 Hz needs sfreq >= 100
    with pytest.raises(ValueError, match="holds no frequency bin"):
        BandPowerLR(sfreq=SFREQ, bands={"narrow": (10.1, 10.2)}).fit(X, y)

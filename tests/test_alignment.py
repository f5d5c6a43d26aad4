"""Euclidean alignment in the one preprocessing path: the causal reference fed a real recording in
chunks gives exactly the windows it gives fed whole (offline = live), the warm-up drops are counted,
aligned windows of a real recording have mean covariance = identity, the state round-trips, the
offline helper and the profile section."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.alignment import EuclideanReference, align_windows, window_covariance
from eegmamba.data.readers import read_recording
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import load_profile
from eegmamba.windowing import Windower, window_recording

MI = load_profile("motor_imagery")


def _profile(**alignment):
    return MI.with_overrides({"alignment": {"method": "euclidean", **alignment},
                              "normalization": "none"})


def _stream(profile, rec, seed, reference="causal"):
    """The live path: Preprocessor + Windower fed random chunks of the raw recording."""
    pre = Preprocessor(profile, rec.sfreq, rec.data.shape[0])
    win = Windower.from_profile(profile, in_sfreq=rec.sfreq, reference=reference)
    rng = np.random.default_rng(seed)
    ts = np.arange(rec.n_samples) / rec.sfreq
    out, i = [], 0
    while i < rec.n_samples:
        k = int(rng.integers(1, 300))
        x, t = rec.data[:, i:i + k], ts[i:i + k]
        win.push_input(x)
        out += win.push(*pre.push(x, t))
        i += k
    return out, win


@pytest.fixture(scope="module")
def rec(shared_data):
    return read_recording(shared_data / "motor_imagery" / "S001R04.edf", MI)


def test_streamed_equals_offline_simulation_of_the_causal_reference(rec):
    prof = _profile(warmup_s=10.0, halflife_s=30.0, offline_reference="causal")
    offline, drops = window_recording(rec.data, rec.sfreq, None, prof)
    for seed in (0, 1):
        live, win = _stream(prof, rec, seed)
        assert [w.index for w in live] == [w.index for w in offline]
        assert max(np.abs(a.data - b.data).max() for a, b in zip(live, offline)) <= 1e-4
        assert win.drops == drops
        assert win.reference.ready and win.reference.seconds > 100
    # 3 s windows every 0.5 s: the 15th window brings the reference to 10 s; 14 wait for it
    assert drops["alignment_warmup"] == 14 and offline[0].index == 14
    # after the warm-up the running reference keeps the windows roughly white
    cov = np.mean([window_covariance(w.data) for w in offline], axis=0)
    assert np.abs(np.diag(cov) - 1).max() < 0.5


def test_aligned_windows_of_a_recording_have_identity_mean_covariance(rec):
    windows, drops = window_recording(rec.data, rec.sfreq, None, _profile())
    assert "alignment_warmup" not in drops  # the recording's own reference: nobody waits
    cov = np.mean([window_covariance(w.data) for w in windows], axis=0)
    assert np.allclose(cov, np.eye(22), atol=1e-6)
    raw, _ = window_recording(rec.data, rec.sfreq, None, MI.with_overrides(
        {"normalization": "none"}))
    assert len(raw) == len(windows)
    raw_cov = np.mean([window_covariance(w.data) for w in raw], axis=0)
    assert not np.allclose(raw_cov, np.eye(22), atol=0.5)  # µV: far from white before


def test_zscored_training_windows_and_flagged_windows(rec):
    windows, _ = window_recording(rec.data, rec.sfreq, None,
                                  MI.with_overrides({"alignment": {"method": "euclidean"}}))
    x = np.stack([w.data for w in windows])
    assert np.allclose(x.std(axis=2), 1, atol=1e-3)  # aligned, then z-scored per the profile
    ref = EuclideanReference(22, 200.0, warmup_s=1.0)
    seg = rec.data[:, :600]
    assert ref.process(seg, 0, 3.0, clean=False) is None and ref.n_windows == 0  # flagged: no update
    assert ref.process(seg, 0, 3.0, clean=True) is not None and ref.n_windows == 1


def test_state_round_trips_and_continues_identically(rec):
    prof = _profile(warmup_s=5.0)
    _, win = _stream(prof, rec, seed=2)
    state = json.loads(json.dumps(win.reference.state_dict()))
    back = EuclideanReference.from_state(state)
    assert np.array_equal(back.ref, win.reference.ref) and back.seconds == win.reference.seconds
    seg = rec.data[:, 1000:1600]
    a = win.reference.process(seg, 10**6, 200.0, True)
    back.new_timeline(), win.reference.new_timeline()
    assert np.allclose(a, EuclideanReference.from_state(state).process(seg, 10**6, 200.0, True))
    age = win.reference.age(now=210.0)
    assert age["ready"] and age["since_update_s"] == 10.0 and age["seconds"] > 100


def test_running_mean_forgets_with_the_half_life():
    ref = EuclideanReference(2, 100.0, warmup_s=1.0, halflife_s=10.0)
    rng = np.random.default_rng(0)
    for k in range(200):  # 1 s windows, no overlap: 200 s of a signal with variance 1 ...
        ref.update(rng.standard_normal((2, 100)), k * 100)
    for k in range(200, 210):  # ... then 10 s (one half-life) with variance 9
        ref.update(3 * rng.standard_normal((2, 100)), k * 100)
    assert 4.0 < ref.ref[0, 0] < 6.0  # ~ (1 + 9) / 2
    assert ref.seconds == 210


def test_align_windows_whitens_each_group():
    rng = np.random.default_rng(0)
    mix = [rng.standard_normal((4, 4)) for _ in range(2)]
    X = np.concatenate([np.einsum("cd,ndl->ncl", m, rng.standard_normal((30, 4, 200))) for m in mix])
    groups = np.repeat(["a", "b"], 30)
    out = align_windows(X, groups)
    for g in "ab":
        d = out[groups == g] - out[groups == g].mean(axis=2, keepdims=True)
        assert np.allclose(np.einsum("ncl,ndl->cd", d, d) / (30 * 200), np.eye(4), atol=1e-8)
    with pytest.raises(ValueError, match="groups must have shape"):
        align_windows(X, groups[:3])


def test_profile_section_validation():
    assert not MI.alignment.enabled and MI.alignment.method == "none"
    with pytest.raises(UserInputError, match="alignment.method must be one of"):
        MI.with_overrides({"alignment": {"method": "riemann"}})
    with pytest.raises(UserInputError, match="alignment.method euclidean needs normalization"):
        MI.with_overrides({"alignment": {"method": "euclidean"}, "normalization": "recording"})
    with pytest.raises(UserInputError, match="alignment.warmup_s must be > 0"):
        MI.with_overrides({"alignment": {"warmup_s": 0}})

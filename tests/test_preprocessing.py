"""The one preprocessing step: chunk invariance on real recordings, resampling rate/length/frequency,
agreement with scipy's offline polyphase resampler, non-finite handling, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from eegmamba.data.readers import read_recording
from eegmamba.preprocessing import Preprocessor, resample_ratio
from eegmamba.profiles import FilterSpec, load_profile


def _push_chunked(pre, x, t, seed):
    rng = np.random.default_rng(seed)
    outs, ts, i = [], [], 0
    while i < x.shape[1]:
        k = int(rng.integers(1, 400))
        y, ty = pre.push(x[:, i:i + k], t[i:i + k])
        outs.append(y)
        ts.append(ty)
        i += k
    return np.concatenate(outs, axis=1), np.concatenate(ts)


@pytest.mark.parametrize("fname, rate", [("S088R10.edf", 128.0), ("S001R04.edf", 160.0)])
def test_chunked_equals_whole_on_real_recording(shared_data, fname, rate):
    prof = load_profile("motor_imagery")
    rec = read_recording(shared_data / "motor_imagery" / fname, prof)
    assert rec.sfreq == rate
    x = rec.data[:, : int(60 * rate)]
    t = 1000.0 + np.arange(x.shape[1]) / rate  # an LSL-like clock offset
    whole, tw = Preprocessor(prof, rate, x.shape[1] and x.shape[0]).push(x, t)
    chunked, tc = _push_chunked(Preprocessor(prof, rate, x.shape[0]), x, t, seed=int(rate))
    assert whole.shape == chunked.shape == (22, Preprocessor(prof, rate, 1).n_outputs(x.shape[1]))
    assert np.max(np.abs(whole - chunked)) <= 1e-6
    assert np.max(np.abs(tw - tc)) <= 1e-9
    assert abs(whole.shape[1] - x.shape[1] * 200 / rate) <= 30  # only the FIR latency is pending


@pytest.mark.parametrize("rate, up, down", [
    (160, 5, 4), (128, 25, 16), (256, 25, 32), (100, 2, 1), (50, 4, 1), (200, 1, 1), (250, 4, 5),
])
def test_rate_length_and_sine_frequency(rate, up, down):
    assert resample_ratio(rate, 200.0) == (up, down)
    n = rate * 20
    t = np.arange(n) / rate
    x = np.vstack([40 * np.sin(2 * np.pi * 10 * t) + 25, 10 * np.sin(2 * np.pi * 3 * t)])
    pre = Preprocessor(FilterSpec(), rate, 2)
    y, ty = pre.push(x, t)
    pending = pre.latency_samples * 200 / rate + 1  # outputs still waiting for FIR look-ahead
    assert y.shape[0] == 2 and n * 200 / rate - pending <= y.shape[1] <= n * 200 / rate
    np.testing.assert_allclose(np.diff(ty), 1 / 200, atol=1e-9)
    assert ty[0] == t[0]  # output 0 represents input position 0 (FIR delay compensated)
    for ch, f0 in ((0, 10.0), (1, 3.0)):
        f, p = signal.periodogram(y[ch, 400:], fs=200.0)
        assert abs(f[np.argmax(p)] - f0) <= 0.1
    # steady-state amplitude of the 10 Hz sine kept (pass band), DC removed
    assert np.std(y[0, 1000:]) == pytest.approx(40 / np.sqrt(2), rel=0.03)
    assert abs(np.mean(y[0, 1000:])) < 1.0


@pytest.mark.parametrize("rate", [160, 128, 256, 50])
def test_resampler_matches_scipy_resample_poly(rate):
    rng = np.random.default_rng(rate)
    x = rng.standard_normal((3, rate * 10)) * 20
    pre = Preprocessor(FilterSpec(l_freq=None, h_freq=None), rate, 3)  # resampling only
    y, _ = pre.push(x, np.arange(x.shape[1]) / rate)
    ref = signal.resample_poly(x, pre.up, pre.down, axis=1, window=pre._h / pre.up)
    m = y.shape[1]
    np.testing.assert_allclose(y[:, 100:m - 100], ref[:, 100:m - 100], atol=1e-9)


def test_identity_at_200hz_is_just_the_filter():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2000))
    t = np.arange(2000) / 200
    y, ty = Preprocessor(FilterSpec(), 200.0, 2).push(x, t)
    sos = signal.butter(4, [0.1, 50.0], "bandpass", fs=200.0, output="sos")
    zi = signal.sosfilt_zi(sos)[:, None, :] * x[None, :, 0, None]
    np.testing.assert_allclose(y, signal.sosfilt(sos, x, axis=1, zi=zi)[0], atol=1e-12)
    np.testing.assert_array_equal(ty, t)


def test_nonfinite_input_is_contained():
    rate = 160
    t = np.arange(rate * 30) / rate
    x = np.vstack([30 * np.sin(2 * np.pi * 10 * t), 20 * np.sin(2 * np.pi * 6 * t)])
    x_bad = x.copy()
    x_bad[0, 1600:1620] = np.nan
    x_bad[0, 1700] = np.inf
    y, ty = _push_chunked(Preprocessor(FilterSpec(), rate, 2), x_bad, t, seed=3)
    nan_t = ty[np.isnan(y[0])]
    # NaN exactly over the bad span plus the FIR support (~10 input samples each side), nowhere else
    assert nan_t.min() >= t[1600] - 12 / rate and nan_t.max() <= t[1700] + 12 / rate
    assert np.all(np.isfinite(y[1])) and np.all(np.isfinite(y[0, ty > t[1700] + 12 / rate]))
    # the filter state was not poisoned: well after the span the output is the clean output again
    ref, _ = Preprocessor(FilterSpec(), rate, 2).push(x, t)
    late = ty > 25.0
    assert np.max(np.abs(y[0, late] - ref[0, late])) < 0.5


def test_bad_arguments_and_metadata():
    prof = load_profile("seizure")
    pre = Preprocessor(prof, 256.0, 22)
    with pytest.raises(ValueError, match=r"shape \(22, n\)"):
        pre.push(np.zeros((3, 10)), np.zeros(10))
    with pytest.raises(ValueError, match="timestamps"):
        pre.push(np.zeros((22, 10)), np.zeros(9))
    with pytest.raises(TypeError):
        Preprocessor("seizure", 256.0, 22)
    with pytest.raises(ValueError, match="rational"):
        Preprocessor(prof, 173.3, 22)
    d = json.loads(json.dumps(pre.to_dict()))
    assert d["resample"]["up"] == 25 and d["resample"]["down"] == 32 and d["notch_hz"] == 60.0
    # a 50 Hz input cannot carry the 50 Hz low-pass edge: it is left out and says so
    low = Preprocessor(prof, 50.0, 22).to_dict()["effective"]
    assert low["h_freq"] is None and low["notch_hz"] is None and low["l_freq"] == 0.1


def test_reset_restarts():
    x = np.random.default_rng(1).standard_normal((1, 800))
    t = np.arange(800) / 160
    pre = Preprocessor(FilterSpec(), 160.0, 1)
    a, _ = pre.push(x, t)
    pre.reset()
    b, _ = pre.push(x, t)
    np.testing.assert_array_equal(a, b)

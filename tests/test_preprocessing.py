"""The one preprocessing step: chunk invariance on real recordings, resampling rate/length/frequency,
agreement with scipy's causal polyphase resampler, zero look-ahead, the filter's response,
non-finite handling, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from eegmamba.data.readers import read_recording
from eegmamba.preprocessing import Preprocessor, resample_ratio
from eegmamba.profiles import FilterSpec, load_profile
from eegmamba.resampling import band_edges, filter_response, resample_filter
from eegmamba.windowing import Windower


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
    assert whole.shape[1] == int(np.ceil(x.shape[1] * 200 / rate))  # nothing pending: no look-ahead


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
    assert y.shape == (2, n * 200 // rate)  # every output up to the last input's position is out
    np.testing.assert_allclose(np.diff(ty), 1 / 200, atol=1e-9)
    assert ty[0] == t[0]  # output k is stamped at input position k*down/up
    for ch, f0 in ((0, 10.0), (1, 3.0)):
        f, p = signal.periodogram(y[ch, 400:], fs=200.0)
        assert abs(f[np.argmax(p)] - f0) <= 0.1
    # steady-state amplitude of the 10 Hz sine kept (pass band), DC removed
    assert np.std(y[0, 1000:]) == pytest.approx(40 / np.sqrt(2), rel=0.03)
    assert abs(np.mean(y[0, 1000:])) < 1.0


@pytest.mark.parametrize("rate", [160, 128, 256, 50])
def test_resampler_matches_scipy_upfirdn(rate):
    """The resampler is scipy's causal polyphase upfirdn with our filter (no delay compensation)."""
    rng = np.random.default_rng(rate)
    x = rng.standard_normal((3, rate * 10)) * 20
    pre = Preprocessor(FilterSpec(l_freq=None, h_freq=None), rate, 3)  # resampling only
    y, _ = _push_chunked(pre, x, np.arange(x.shape[1]) / rate, seed=rate)
    ref = signal.upfirdn(pre._h, x, pre.up, pre.down, axis=1)
    np.testing.assert_allclose(y, ref[:, :y.shape[1]], atol=1e-9)


@pytest.mark.parametrize("rate", [160, 128, 256, 100])
def test_zero_lookahead_outputs_final_when_their_last_input_arrives(rate):
    """Pushed one sample at a time, output k is emitted in the push of input floor(k*down/up) (from
    the second sample on) and never changes afterwards: it equals the whole-recording output."""
    n = rate * 3
    x = np.random.default_rng(1).standard_normal((2, n)) * 30
    t = 50.0 + np.arange(n) / rate
    whole, tw = Preprocessor(FilterSpec(), rate, 2).push(x, t)
    pre = Preprocessor(FilterSpec(), rate, 2)
    assert pre.lookahead_samples == 0
    emitted = 0
    for i in range(n):
        y, ty = pre.push(x[:, i:i + 1], t[i:i + 1])
        ks = np.arange(emitted, emitted + y.shape[1])
        emitted += y.shape[1]
        assert emitted == (1 if i == 0 else -(-(i + 1) * pre.up // pre.down))
        if i >= 1:  # every output whose newest input is <= i is out; the next one needs a later input
            assert (emitted * pre.down) // pre.up > i
        np.testing.assert_allclose(y, whole[:, ks], atol=1e-9)
        np.testing.assert_allclose(ty, tw[ks], atol=1e-9)


@pytest.mark.parametrize("rate", [160, 128, 256, 100, 200, 1000])
def test_inputs_needed_inverts_n_outputs(rate):
    pre = Preprocessor(FilterSpec(), rate, 1)
    for m in range(0, 2000, 7):
        n = pre.inputs_needed(m)
        assert pre.n_outputs(n) >= m and (n == 0 or pre.n_outputs(n - 1) < m)


def test_window_complete_when_its_last_input_sample_is_pushed(shared_data):
    """Live: a motor-imagery window comes out of the push that delivers the last input sample at or
    before its end (at 160 Hz in chunks of 10, a window of whole 0.5 s steps ends on a chunk's
    last sample)."""
    prof = load_profile("motor_imagery")
    rec = read_recording(shared_data / "motor_imagery" / "S001R04.edf", prof)
    rate = rec.sfreq
    x = rec.data[:, : int(20 * rate)]
    t = np.arange(x.shape[1]) / rate
    pre, win = Preprocessor(prof, rate, x.shape[0]), Windower.from_profile(prof)
    n_windows = 0
    for i in range(0, x.shape[1], 10):
        y, ty = pre.push(x[:, i:i + 10], t[i:i + 10])
        for w in win.push(y, ty):
            last_input = int(np.floor(w.t_end * rate + 1e-6))  # newest input at or before t_end
            assert last_input == min(i + 9, x.shape[1] - 1)  # ... is in this very chunk: the last
            n_windows += 1
    length, hop = prof.window.length_s, prof.window.hop_s
    assert n_windows == 1 + round((20 - length) / hop)  # windows over 20 s, the last one included


@pytest.mark.parametrize("rate", [128, 160, 250, 256, 500, 100, 50])
def test_filter_response_within_spec(rate):
    """Flat to the pass edge, >= 60 dB stop band, minimum phase: group delay over 1-40 Hz well under
    the linear-phase FIR's half length (its look-ahead before), and as stated in the docstrings."""
    up, down = resample_ratio(rate, 200.0)
    h_freq = 50.0 if 50.0 < 0.45 * rate else None
    f_pass, f_stop = band_edges(up, down, rate, h_freq)
    h = resample_filter(up, down, rate, h_freq) / up
    r = filter_response(h, rate * up, f_pass, f_stop)
    assert r["pass_ripple_db"] <= 0.01 and r["stop_band_db"] >= 60.0
    assert h.sum() == pytest.approx(1.0, abs=1e-12)
    gd_min, gd_max = r["group_delay_ms"]
    assert 0 < gd_min <= gd_max < 0.5 * (len(h) - 1) / (rate * up) * 1e3
    stated = {160: (8.0, 9.6), 128: (11.9, 16.7), 250: (6.0, 6.7), 256: (6.3, 7.0)}
    if rate in stated:
        np.testing.assert_allclose(r["group_delay_ms"], stated[rate], atol=0.05)
        pre = Preprocessor(load_profile("motor_imagery"), rate, 1)
        np.testing.assert_allclose(pre.group_delay_ms, stated[rate], atol=0.05)


@pytest.mark.parametrize("rate, f_in, f_out", [(256, 160.0, 40.0), (512, 330.0, 70.0),
                                               (160, 30.0, 70.0), (128, 40.0, 88.0)])
def test_aliases_and_images_suppressed_60db(rate, f_in, f_out):
    """A stop-band tone (256, 512 Hz in: it would alias to ``f_out``) or the image of a pass-band
    tone (160, 128 Hz in: at ``f_out``) comes out >= 60 dB below a 10 Hz tone of the same size."""
    n = rate * 20
    t = np.arange(n) / rate
    pre = Preprocessor(FilterSpec(l_freq=None, h_freq=None), rate, 2)
    y, _ = pre.push(np.vstack([np.sin(2 * np.pi * f_in * t), np.sin(2 * np.pi * 10.0 * t)]), t)
    f, p = signal.periodogram(y[:, 400:], fs=200.0, window="blackmanharris", axis=1)
    near = np.abs(f - f_out) < 1.0
    assert 10 * np.log10(p[0, near].max() / p[1].max()) <= -60.0


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
    # NaN from the first bad sample (causal: never before it) to the last one plus the FIR's
    # support (12 input samples at 160 Hz), nowhere else
    assert nan_t.min() >= t[1600] - 1e-9 and nan_t.max() <= t[1700] + 12 / rate
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
    assert d["resample"]["lookahead_samples"] == 0 and "minimum-phase" in d["resample"]["design"]
    assert 6.0 < d["resample"]["group_delay_ms"][0] <= d["resample"]["group_delay_ms"][1] < 7.5
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

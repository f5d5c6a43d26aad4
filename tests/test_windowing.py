"""The windowing rule: which samples belong to window k, chunk invariance (real recording), drops
counted by reason (gap, nonfinite, flat, saturated), flags, normalization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eegmamba.data.readers import read_recording
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import QualitySpec, load_profile
from eegmamba.windowing import Windower, stack_windows, window_recording

SF = 200.0


def _ramp(n, c=2):
    """Channel 0 = sample index (traceable), channel 1 = a sine (not flat)."""
    i = np.arange(n, dtype=float)
    return np.vstack([i, 50 * np.sin(i / 3.0)][:c]), i / SF


def test_window_k_covers_k_hop_to_k_hop_plus_length():
    x, t = _ramp(1000)
    w = Windower(100, 30, SF, normalization="none")
    out = []
    for a in range(0, 1000, 7):  # small odd chunks
        out += w.push(x[:, a:a + 7], t[a:a + 7])
    assert [v.index for v in out] == list(range((1000 - 100) // 30 + 1))
    for v in out:
        assert v.sample_start == v.index * 30
        np.testing.assert_array_equal(v.data[0], np.arange(v.index * 30, v.index * 30 + 100))
        assert v.t_start == t[v.index * 30] and v.t_end == t[v.index * 30 + 99]
        assert v.data.dtype == np.float32 and v.flags == frozenset()
    assert not w.drops and w.n_emitted == len(out) and w.n_samples_seen == 1000


def test_hop_larger_than_length_and_reset():
    x, t = _ramp(500)
    w = Windower(50, 120, SF, normalization="none")
    got = w.push(x, t)
    assert [v.sample_start for v in got] == [0, 120, 240, 360]
    w.reset()
    assert w.push(x[:, 7:], t[7:])[0].data[0, 0] == 7  # after reset, counting restarts


def test_gap_drops_window_and_counts():
    x, t = _ramp(1000)
    t = t.copy()
    t[500:] += 0.1  # 20 lost samples' worth of time
    w = Windower(100, 30, SF)
    out = w.push(x, t)
    n = (1000 - 100) // 30 + 1
    bad = [k for k in range(n) if k * 30 <= 499 and k * 30 + 99 >= 500]  # windows holding the jump
    assert w.drops["gap"] == len(bad) == 3
    assert [v.index for v in out] == [k for k in range(n) if k not in bad]


def test_nonfinite_and_flat_and_saturated():
    x, t = _ramp(600)
    x[0] -= 300  # keep channel 0 away from the saturation threshold
    x[1, 50] = np.nan
    x[1, 300:400] = 0.0  # flat
    x[1, 480] = 5000.0  # saturated
    q = QualitySpec(flat_std_uv=0.5, saturation_uv=1000.0)
    w = Windower(100, 100, SF, quality=q)
    out = w.push(x, t)
    assert dict(w.drops) == {"nonfinite": 1, "flat": 1, "saturated": 1}
    assert [v.index for v in out] == [1, 2, 5]
    wf = Windower(100, 100, SF, quality=QualitySpec(on_bad="flag", saturation_uv=1000.0))
    out = wf.push(x, t)
    assert dict(wf.drops) == {"nonfinite": 1}  # non-finite always drops
    assert {v.index: v.flags for v in out if v.flags} == {3: {"flat"}, 4: {"saturated"}}
    assert dict(wf.flagged) == {"flat": 1, "saturated": 1}


def test_zscore_per_window_per_channel():
    x, t = _ramp(400)
    out = Windower(200, 200, SF).push(x, t)
    for v in out:
        np.testing.assert_allclose(v.data.mean(axis=1), 0, atol=1e-5)
        np.testing.assert_allclose(v.data.std(axis=1), 1, atol=1e-4)


def _bursty(n=2000, seed=0):
    """Two channels of noise whose amplitude triples halfway (as slow waves or a seizure would)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10, (2, n))
    x[:, n // 2:] *= 3
    return x, np.arange(n) / SF


def test_recording_scale_is_the_causal_running_rms():
    x, t = _bursty()
    out = Windower(200, 100, SF, normalization="recording").push(x, t)
    for v in out:
        end = v.sample_start + 200
        seg = x[:, v.sample_start:end]
        rms = np.sqrt(np.mean(x[:, :end] ** 2, axis=1))  # every sample up to the window's last one
        np.testing.assert_allclose(v.data, (seg - seg.mean(1, keepdims=True)) / rms[:, None], rtol=1e-5,
                                   atol=1e-5)
    # unlike z-scoring, the louder second half stays louder than the first
    early = np.mean([v.data.std() for v in out if v.sample_start + 200 <= 1000])
    late = np.mean([v.data.std() for v in out if v.sample_start >= 1000])
    assert late > 1.5 * early
    z = Windower(200, 100, SF).push(x, t)
    np.testing.assert_allclose([v.data.std() for v in z], 1.0, atol=1e-3)


def test_recording_scale_never_sees_later_samples_and_ignores_chunking():
    x, t = _bursty()
    louder = x.copy()
    louder[:, 1500:] *= 50
    a = Windower(200, 100, SF, normalization="recording").push(x, t)
    b = Windower(200, 100, SF, normalization="recording").push(louder, t)
    for u, v in zip(a, b):
        if v.sample_start + 200 <= 1500:
            np.testing.assert_array_equal(u.data, v.data)
    w, chunked = Windower(200, 100, SF, normalization="recording"), []
    for i in range(0, 2000, 37):
        chunked += w.push(x[:, i:i + 37], t[i:i + 37])
    assert [v.index for v in chunked] == [v.index for v in a]
    for u, v in zip(a, chunked):
        np.testing.assert_allclose(u.data, v.data, rtol=1e-6, atol=1e-6)
    w.reset()  # a reset starts a new recording: the scale starts over
    again = w.push(x[:, 1000:], t[1000:])
    seg = x[:, 1000:1200]
    rms = np.sqrt(np.mean(seg ** 2, axis=1))
    np.testing.assert_allclose(again[0].data, (seg - seg.mean(1, keepdims=True)) / rms[:, None], rtol=1e-5,
                               atol=1e-5)


def test_recording_scale_clips_artefacts_at_the_saturation_level():
    x, t = _bursty()
    x[0, 50] = 1e6  # one huge artefact sample
    q = QualitySpec(on_bad="flag", saturation_uv=500.0)
    out = Windower(200, 100, SF, quality=q, normalization="recording").push(x, t)
    last = out[-1]
    sq = np.minimum(x[0] ** 2, 500.0 ** 2)
    rms = np.sqrt(sq.mean())
    seg = x[0, last.sample_start:]
    np.testing.assert_allclose(last.data[0], (seg - seg.mean()) / rms, rtol=1e-5, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="hop_samples"):
        Windower(100, 0, SF)
    with pytest.raises(ValueError, match="normalization"):
        Windower(100, 10, SF, normalization="l2")
    w = Windower(10, 10, SF)
    w.push(np.zeros((2, 5)), np.arange(5) / SF)
    with pytest.raises(ValueError, match="channels"):
        w.push(np.zeros((3, 5)), np.arange(5) / SF)


@pytest.mark.parametrize("normalization", ["zscore", "recording"])
def test_real_recording_chunked_gives_same_windows(shared_data, normalization):
    prof = dataclasses.replace(load_profile("seizure"), normalization=normalization)
    rec = read_recording(shared_data / "seizure" / "chb01_03_Seizure_41s.edf", prof)
    t = 50.0 + np.arange(rec.n_samples) / rec.sfreq
    whole, drops = window_recording(rec.data, rec.sfreq, t, prof)
    pre, win = Preprocessor(prof, rec.sfreq, prof.n_channels), Windower.from_profile(prof)
    rng = np.random.default_rng(7)
    chunked, a = [], 0
    while a < rec.n_samples:
        k = int(rng.integers(1, 300))
        chunked += win.push(*pre.push(rec.data[:, a:a + k], t[a:a + k]))
        a += k
    assert len(whole) == len(chunked) == (41 * 200 - 800) // 200 + 1  # no resampler look-ahead
    assert [w.index for w in whole] == [w.index for w in chunked] and not drops and not win.drops
    for u, v in zip(whole, chunked):
        assert u.t_start == pytest.approx(v.t_start, abs=1e-9)
        np.testing.assert_allclose(u.data, v.data, atol=1e-5)
    X, t0 = stack_windows(whole)
    assert X.shape == (len(whole), 22, 800) and t0[1] - t0[0] == pytest.approx(1.0)
    assert t0[0] == pytest.approx(50.0)

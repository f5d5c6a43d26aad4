"""Per-stream checks without LSL: units scaling and plausibility, declared vs measured rate, holds."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.stream.monitor import Declaration, StreamMonitor


def _eeg(n, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 20, (c, n))  # µV


def _feed(mon, x_uv_to_send, fs_true, seconds, chunk=10, t0=100.0):
    """Push ``seconds`` of data stamped exactly at ``fs_true`` in chunks; return the scaled samples."""
    n = int(seconds * fs_true)
    out = []
    for a in range(0, n, chunk):
        k = np.arange(a, min(a + chunk, n))
        block = x_uv_to_send[:, k % x_uv_to_send.shape[1]].copy()
        samples, ts, breaks = mon.on_block(block, t0 + k / fs_true, t0 + k[-1] / fs_true + 0.001)
        assert breaks == []
        out.append(samples)
    return np.concatenate(out, axis=1)


def test_declared_volts_are_scaled_and_pass():
    mon = StreamMonitor(Declaration("s", 160.0, ("volts",) * 4, ("EEG",) * 4))
    assert mon.unit_label == "V" and mon.hold == "unverified"
    x = _eeg(480)
    got = _feed(mon, x * 1e-6, 160.0, 3.0)
    np.testing.assert_allclose(got, x, rtol=1e-9)
    assert mon.hold is None and mon.message is None


def test_undeclared_volts_are_held_with_a_message():
    mon = StreamMonitor(Declaration("headset", 160.0, (None,) * 4))
    assert mon.unit_label == "µV (assumed)"
    _feed(mon, _eeg(800) * 1e-6, 160.0, 3.0)
    assert mon.hold == "units"
    assert mon.message.startswith("stream 'headset' declares no unit (µV assumed) but its EEG "
                                  "amplitude is implausibly small for µV")
    assert mon.message.endswith("looks like V; rerun with --units V")


def test_units_override_scales_and_is_trusted():
    mon = StreamMonitor(Declaration("headset", 160.0, (None,) * 4), units="V")
    assert mon.unit_label == "V (--units)" and np.all(mon.scale == 1e6)
    _feed(mon, _eeg(800) * 1e-6, 160.0, 3.0)
    assert mon.hold is None


def test_clean_microvolts_and_a_sample_index_channel():
    mon = StreamMonitor(Declaration("s", 160.0, ("microvolts",) * 3 + ("samples",),
                                    ("eeg",) * 3 + ("misc",)))
    assert list(mon.eeg) == [True, True, True, False] and mon.identity
    x = _eeg(480)
    x[3] = np.arange(480) * 1e6  # huge, but not EEG: not checked, not scaled
    got = _feed(mon, x, 160.0, 3.0)
    np.testing.assert_array_equal(got, x)
    assert mon.hold is None and mon.unit_label == "µV"


def test_declared_128_delivering_160_is_held_then_accepted():
    decl = Declaration("cheap", 128.0, ("uV",) * 4)
    mon = StreamMonitor(decl)
    _feed(mon, _eeg(800), 160.0, 6.0)
    assert mon.hold == "rate_mismatch"
    assert "declares 128 Hz, delivers 160.0 Hz (+25 %)" in mon.message
    assert mon.message.endswith("rerun with --accept-measured-rate")
    acc = StreamMonitor(decl, accept_measured_rate=True)
    _feed(acc, _eeg(800), 160.0, 6.0)
    assert acc.hold is None and acc.accepted_srate == 160.0
    assert "processed at the measured 160 Hz" in acc.message


@pytest.mark.parametrize("fs_true", [160.0 * 1.01, 160.0 * 0.99])
def test_one_percent_off_is_a_cheap_clock_not_a_mismatch(fs_true):
    mon = StreamMonitor(Declaration("s", 160.0, ("uV",) * 4))
    _feed(mon, _eeg(800), fs_true, 6.0)
    assert mon.hold is None and mon.timestamps.rate == pytest.approx(fs_true, rel=1e-3)


def test_a_replay_declares_its_speed():
    mon = StreamMonitor(Declaration("replay", 160.0, ("uV",) * 4, speed=8.0))
    _feed(mon, _eeg(800), 1280.0, 1.0)  # 8 s of recording in 1 s
    assert mon.hold is None  # units and rate checked within the first 2 s of the recording


def test_flat_stream_is_not_blocked_by_the_units_check():
    mon = StreamMonitor(Declaration("s", 160.0, (None,) * 4))
    _feed(mon, np.zeros((4, 800)), 160.0, 3.0)
    assert mon.hold is None  # undecided: the windowing's flat rules speak for it

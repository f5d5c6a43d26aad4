"""The raw-input part of the windowing rule: flat-line and rail runs inside a window, timeline breaks
(gap / jump), chunk invariance, flagging, and what the rule does on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba.data.readers import read_recording
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import QualitySpec, load_profile
from eegmamba.quality import InputMarks
from eegmamba.windowing import Windower, window_recording

FS_IN, FS_OUT = 160.0, 200.0
LEN, HOP = 800, 100  # 4 s every 0.5 s at 200 Hz


def _eeg(n, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 20, (c, n)) + 30 * np.sin(2 * np.pi * 10 * np.arange(n) / FS_IN)


def _cut(x, quality=QualitySpec(), chunks=None, breaks=None, ts=None):
    """Run preprocessing + windowing (input at 160 Hz) like the live pipeline; return (windows, drops,
    flagged)."""
    from eegmamba.profiles import FilterSpec

    n = x.shape[1]
    ts = np.arange(n) / FS_IN if ts is None else ts
    pre = Preprocessor(FilterSpec(), FS_IN, x.shape[0], FS_OUT)
    win = Windower(LEN, HOP, FS_OUT, quality=quality, in_sfreq=FS_IN)
    bounds = [0, n] if chunks is None else sorted({0, n, *chunks})
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        win.push_input(x[:, a:b], None if breaks is None else
                       [(i - a, r) for i, r in breaks if a <= i < b])
        out += win.push(*pre.push(x[:, a:b], ts[a:b]))
    _cut.n_windows = (win.n_samples_seen - LEN) // HOP + 1  # windows the pushed outputs allow
    return out, dict(win.drops), dict(win.flagged)


def _input_range(k, length=LEN, hop=HOP):
    """Input samples [lo, hi] of window k (160 -> 200 Hz: up 5, down 4)."""
    return (k * hop) * 4 // 5, (k * hop + length - 1) * 4 // 5


def _expected(n_in, run, min_len):
    """Window indices holding at least min_len samples of the input run [a, z]."""
    ks = range((n_in * 5 // 4 - LEN) // HOP + 1)
    return {k for k in ks if min(run[1], _input_range(k)[1]) - max(run[0], _input_range(k)[0]) + 1 >= min_len}


def test_partial_flatline_drops_exactly_the_windows_holding_a_quarter_second_of_it():
    n = int(40 * FS_IN)
    x = _eeg(n)
    a = int(12 * FS_IN) + 50  # off the hop grid: some windows hold only a few samples of it
    z = a + int(4 * FS_IN) - 1  # all channels at exactly 0 for 4 s
    x[:, a:z + 1] = 0.0
    out, drops, _ = _cut(x)
    bad = _expected(n, (a, z), 40)
    assert drops == {"flat_run": len(bad)} and len(bad) > 8
    assert {w.index for w in out}.isdisjoint(bad)
    assert len(out) + len(bad) == _cut.n_windows
    # a window with 0.24 s of the flat-line inside is kept: the rule counts samples in the window
    edge = [k for k in range(100) if min(z, _input_range(k)[1]) - max(a, _input_range(k)[0]) + 1 in
            range(1, 40)]
    assert edge and set(edge) <= {w.index for w in out}


def test_whole_window_std_alone_missed_it():
    """Without the run rule (flat_run_s None) windows partly over the flat-line pass: the old bug."""
    n = int(40 * FS_IN)
    x = _eeg(n)
    x[:, int(12 * FS_IN):int(16 * FS_IN)] = 0.0
    _, drops, _ = _cut(x, QualitySpec(flat_run_s=None))
    assert drops.get("flat", 0) < 4  # only windows (almost) inside the 4 s


def test_near_constant_within_tolerance_and_not_beyond():
    n = int(20 * FS_IN)
    rng = np.random.default_rng(1)
    for noise, caught in ((0.2, True), (3.0, False)):
        x = _eeg(n)
        x[1, 1600:1700] = 5.0 + rng.uniform(-noise / 2, noise / 2, 100)  # 0.625 s, one channel
        _, drops, _ = _cut(x)
        assert ("flat_run" in drops) is caught, (noise, drops)


def test_short_runs_on_different_channels_do_not_add_up():
    n = int(20 * FS_IN)
    x = _eeg(n)
    x[0, 1600:1630] = 1.0  # 30 samples = 0.19 s
    x[1, 1625:1655] = 2.0  # overlapping in time, other channel
    _, drops, _ = _cut(x)
    assert "flat_run" not in drops


def test_rail_run_counted_as_rail_and_flag_mode():
    n = int(20 * FS_IN)
    x = _eeg(n)
    x[2, 1600:1760] = 187500.0 + np.random.default_rng(2).normal(0, 5, 160)  # 1 s at the rail, noisy
    out, drops, _ = _cut(x)
    bad = _expected(n, (1600, 1759), 40)
    # windows holding a little of it still see the filtered step: saturated, as before
    assert drops.pop("rail") == len(bad) and set(drops) == {"saturated"}
    out, drops, flagged = _cut(x, QualitySpec(on_bad="flag"))
    assert drops == {} and flagged["rail"] == len(bad)
    assert {w.index for w in out if "rail" in w.flags} == bad


def test_chunk_invariance_of_runs_and_breaks():
    n = int(30 * FS_IN)
    x = _eeg(n)
    x[:, 1000:1100] = 0.0
    x[0, 2500:2600] = 9000.0
    breaks = [(3000, "jump"), (3800, "gap")]
    whole = _cut(x, breaks=breaks)
    chunks = np.cumsum(np.random.default_rng(3).integers(1, 40, n // 10))
    chunked = _cut(x, chunks=[int(c) for c in chunks if c < n], breaks=breaks)
    assert whole[1] == chunked[1] and whole[1]["jump"] > 0 and whole[1]["gap"] > 0
    assert [w.index for w in whole[0]] == [w.index for w in chunked[0]]


@pytest.mark.parametrize("reason", ["jump", "gap"])
def test_reported_break_drops_every_window_spanning_it(reason):
    n = int(20 * FS_IN)
    b = 1500
    out, drops, _ = _cut(_eeg(n), breaks=[(b, reason)])
    spanning = {k for k in range(100) if _input_range(k)[0] < b <= _input_range(k)[1]}
    assert drops == {reason: len(spanning)} and len(spanning) == 8
    assert {w.index for w in out}.isdisjoint(spanning)


def test_backward_timestamps_without_report_are_a_jump():
    n = int(20 * FS_IN)
    ts = np.arange(n) / FS_IN
    ts[1500:] -= 3.0
    _, drops, _ = _cut(_eeg(n), ts=ts)
    assert set(drops) == {"jump"}


def test_marks_bookkeeping_stays_small():
    m = InputMarks(QualitySpec(), FS_IN, 2)
    x = np.zeros((2, 1000))
    m.push(x)
    assert m.runs == [] and len(list(m._open_runs())) == 2  # still open
    m.push(np.ones((2, 1)) * 50)
    assert m.runs == [(0, 999, "flat_run"), (0, 999, "flat_run")]
    m.forget_before(1000)
    assert m.runs == []
    with pytest.raises(ValueError, match="break index"):
        m.push(x[:, :5], [(7, "gap")])


def test_real_recordings(shared_data):
    """EEGMMIDB files end with 0.5 s of zeros on every channel: the last window is a flat-line;
    CHB-MIT and DREAMS excerpts lose nothing to the run rules."""
    prof = load_profile("motor_imagery")
    rec = read_recording(shared_data / "motor_imagery" / "S001R04.edf", prof)
    assert not rec.data[:, -80:].any()
    wins, drops = window_recording(rec.data, rec.sfreq, None, prof)
    n_windows = len(wins) + sum(drops.values())
    zeros = (rec.n_samples - 80, rec.n_samples - 1)
    rng = [_input_range(k, prof.window_samples, prof.hop_samples()) for k in range(n_windows)]
    expected = sum(min(zeros[1], hi) - max(zeros[0], lo) + 1 >= 40 for lo, hi in rng)
    assert dict(drops) == ({"flat_run": expected} if expected else {})
    for rel, name in (("seizure/chb01_03_Seizure_41s.edf", "seizure"), ("sleep/dreams_excerpt1.edf", "sleep")):
        p = load_profile(name)
        rec = read_recording(shared_data / rel, p)
        _, drops = window_recording(rec.data, rec.sfreq, None, p)
        assert "flat_run" not in drops and "rail" not in drops, (rel, drops)


def test_vectorised_tracking_equals_the_per_channel_reference():
    """``InputMarks._track`` (all channels at once) finds exactly the runs ``_runs`` finds channel
    by channel, in the same order, over random chunkings, open runs carried across chunks."""
    from eegmamba.profiles import load_profile
    from eegmamba.quality import InputMarks, _runs

    class PerChannel(InputMarks):
        def _track(self, reason, flags, shift, min_len):
            open_ = self._open[reason]
            for c in np.flatnonzero(flags.any(axis=1) | (open_ >= 0)):
                start = open_[c] - shift if open_[c] >= 0 else -1
                runs, still = _runs(flags[c], self.n_in, start)
                self.runs += [(a + shift, z, reason) for a, z in runs if z - (a + shift) + 1 >= min_len]
                open_[c] = still + shift if still >= 0 else -1

    q = load_profile("motor_imagery").quality
    rng = np.random.default_rng(1)
    total = 0
    for _ in range(60):
        C = int(rng.integers(1, 6))
        fast, ref = InputMarks(q, 160.0, C), PerChannel(q, 160.0, C)
        moving = rng.random((C, 3000)) < rng.random()
        x = np.cumsum(rng.integers(-1, 2, (C, 3000)) * moving, axis=1).astype(float)
        x[rng.random((C, 3000)) < 0.002] = 6000.0  # rail
        pos = 0
        while pos < x.shape[1]:
            k = int(rng.integers(0, 90))
            fast.push(x[:, pos:pos + k])
            ref.push(x[:, pos:pos + k])
            pos += k
            assert fast.runs == ref.runs
            assert all((fast._open[r] == ref._open[r]).all() for r in fast._open)
        total += len(fast.runs)
    assert total > 100

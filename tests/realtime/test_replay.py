"""Replay real recordings on LSL loopback and read them back with pylsl."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import mne
import numpy as np
import pylsl
import pytest

from eegmamba._checks import UserInputError
from realtime.replay.cli import main as replay_main
from realtime.replay.player import Replay

pytestmark = pytest.mark.timeout(60)


def _read_all(replay: Replay, find_stream, max_s: float = 30.0):
    """Read the EEG and marker streams of a started replay until it has finished."""
    eeg = pylsl.StreamInlet(find_stream(replay.name), max_buflen=60)
    eeg.open_stream(5)
    mk = None
    if replay.has_markers:
        mk = pylsl.StreamInlet(find_stream(replay.marker_name), max_buflen=60)
        mk.open_stream(5)
    data, stamps, arrivals, markers = [], [], [], []
    deadline = time.monotonic() + max_s
    idle = 0
    while time.monotonic() < deadline and idle < 5:
        d, ts = eeg.pull_chunk(timeout=0.1, max_samples=4096, as_numpy=True)
        if len(ts):
            data.append(d.copy())
            stamps.append(ts)
            arrivals.append(np.full(len(ts), pylsl.local_clock()))
        if mk is not None:
            m, mts = mk.pull_chunk(timeout=0.0)
            markers += list(zip(m, mts))
        idle = idle + 1 if (not replay.running and len(ts) == 0) else 0
    if mk is not None:
        m, mts = mk.pull_chunk(timeout=0.2)
        markers += list(zip(m, mts))
    return np.concatenate(data), np.concatenate(stamps), np.concatenate(arrivals), markers


def test_replay_streams_file_samples_markers_and_timestamps(player, mi_recording, find_stream):
    replay = player(mi_recording, speed=50.0, index_channel=True, wait_for_consumer_s=5.0,
                    wait_for_markers=True).start()
    data, ts, _, markers = _read_all(replay, find_stream)
    raw = mne.io.read_raw_edf(mi_recording, preload=True, verbose="error")
    info = find_stream(replay.name)
    assert (info.type(), info.channel_count(), info.nominal_srate()) == ("EEG", 65, 160.0)
    assert info.source_id() == f"eegmamba-replay:{replay.name}"
    # every sample once, in order, equal to the file (µV) -- nothing lost or duplicated
    np.testing.assert_array_equal(data[:, -1], np.arange(raw.n_times))
    np.testing.assert_array_equal(data[:, :-1], raw.get_data().T * 1e6)
    # timestamps: exactly one period apart at 50x speed
    np.testing.assert_allclose(np.diff(ts), 1 / (160 * 50), atol=1e-9)
    # markers: one per annotation, same labels, durations on the stream's clock (/ speed),
    # stamped at their onset sample
    assert [m[0][0] for m in markers] == list(raw.annotations.description)
    assert [float(m[0][1]) for m in markers] == pytest.approx(list(raw.annotations.duration / 50))
    onsets = np.round(raw.annotations.onset * 160).astype(int)
    np.testing.assert_allclose([m[1] for m in markers], ts[onsets], atol=1e-6)
    assert replay.n_samples_pushed == raw.n_times and replay.n_markers_pushed == len(raw.annotations)


def test_replay_runs_at_real_rate_with_current_timestamps(player, short_recording, find_stream):
    replay = player(short_recording, repeat=math.inf, markers=False, wait_for_consumer_s=5.0).start()
    inlet = pylsl.StreamInlet(find_stream(replay.name))
    inlet.open_stream(5)
    t_end = time.monotonic() + 2.0
    n, lags, first = 0, [], None
    while time.monotonic() < t_end:
        d, ts = inlet.pull_chunk(timeout=0.05, max_samples=1024, as_numpy=True)
        if len(ts):
            first = ts[0] if first is None else first
            n += len(ts)
            lags.append(pylsl.local_clock() - ts[-1])
    assert n > 0
    rate = n / (pylsl.local_clock() - first)
    assert 256 * 0.9 < rate < 256 * 1.1, rate
    # the last sample of a chunk is stamped when it is pushed: never in the future, never stale
    assert min(lags) > -0.002 and np.median(lags) < 0.05, (min(lags), np.median(lags))


def test_replay_repeat_and_chunk_size(player, short_recording, find_stream):
    replay = player(short_recording, speed=20.0, repeat=2, chunk_size=64, index_channel=True,
                    wait_for_consumer_s=5.0, wait_for_markers=True).start()
    data, ts, _, markers = _read_all(replay, find_stream)
    assert data.shape == (2 * 2560, 24)
    np.testing.assert_array_equal(data[:, -1], np.arange(2 * 2560))
    np.testing.assert_array_equal(data[:2560, :-1], data[2560:, :-1])
    assert [m[0][0] for m in markers] == ["seizure", "seizure"]
    assert replay.n_chunks_pushed == 2 * 2560 // 64
    assert np.all(np.diff(ts) > 0)


def test_replay_rejects_bad_input(tmp_path, short_recording):
    bad = tmp_path / "bad.edf"
    bad.write_text("not an EDF file")
    with pytest.raises(UserInputError, match="cannot read recording"):
        Replay(bad)
    with pytest.raises(UserInputError, match="not found"):
        Replay(tmp_path / "missing.edf")
    with pytest.raises(ValueError, match="speed"):
        Replay(short_recording, speed=0)
    with pytest.raises(ValueError, match="repeat"):
        Replay(short_recording, repeat=0)


def test_cli_unreadable_file_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.edf"
    bad.write_text("garbage")
    assert replay_main([str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read recording" in err[0]


def test_cli_finite_run_options_take_effect(short_recording, unique_name, capsys):
    rc = replay_main([str(short_recording), "--name", unique_name, "--speed", "50",
                      "--repeat", "1", "--chunk-size", "64", "--no-markers"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"'{unique_name}'" in out and "(no markers)" in out
    assert "pushed 2560 samples in 40 chunks, 0 markers" in out


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_cli_streams_until_ctrl_c(short_recording, unique_name, find_stream, sigint_ignored):
    """Ctrl-C stops it and it reports what it pushed, also when started with SIGINT ignored (a
    script's background job; Python keeps an inherited SIG_IGN unless told otherwise)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime.replay.cli", str(short_recording), "--name", unique_name,
         "--source-id", f"{unique_name}-src", "--index-channel"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )
    try:
        info = find_stream(unique_name, timeout=20)
        assert info.source_id() == f"{unique_name}-src" and info.channel_count() == 24
        assert find_stream(f"{unique_name}-markers").type() == "Markers"
        inlet = pylsl.StreamInlet(info)
        _, ts = inlet.pull_chunk(timeout=1.0, max_samples=64, as_numpy=True)
        assert len(ts) > 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # ~0.3 s; a loaded CI machine once took > 10 s
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "pushed" in out and "Traceback" not in err


def test_pusher_thread_failure_is_raised_by_stop(player, short_recording):
    replay = player(short_recording, speed=1.0, markers=False).start()
    time.sleep(0.1)
    replay._outlet = None  # the outlet vanishes under the running thread: it must not die silently
    assert replay.wait(2.0)
    assert isinstance(replay.error, AttributeError)
    with pytest.raises(RuntimeError, match="failed"):
        replay.stop()
    replay.stop()  # reported once; a second stop is a no-op

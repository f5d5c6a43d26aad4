"""XDF recordings (LabRecorder): a real EEGMMIDB recording and its annotations written as a real
XDF file (``eegmamba/testing/xdf_writer.py``, per the XDF 1.0 specification) read back through the readers,
the dataset, the evaluation command and the replay."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.data import xdf
from eegmamba.data.dataset import build_windows
from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from eegmamba.testing.xdf_writer import XdfStream, recording_to_xdf, write_xdf

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def edf(shared_data) -> Path:
    return shared_data / "motor_imagery" / "S002R04.edf"


@pytest.fixture(scope="module")
def xdf_file(edf, tmp_path_factory) -> Path:
    """The EEG on a clock 0.5 s behind the recorder's (ClockOffset chunks), 0.5 ms jitter."""
    return recording_to_xdf(edf, tmp_path_factory.mktemp("xdf") / "S002R04.xdf", offset_s=0.5,
                            jitter_s=0.0005)


@pytest.fixture(autouse=True)
def _default_selection():
    xdf.select_streams()
    yield
    xdf.select_streams()


def _windows(path, profile):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_windows([path], profile)


def test_round_trip_gives_the_edf_windows_and_labels(edf, xdf_file):
    profile = load_profile("motor_imagery")
    a, b = _windows(edf, profile), _windows(xdf_file, profile)
    assert len(a) == len(b) > 50 and (a.y == b.y).all() and a.drops == b.drops
    np.testing.assert_allclose(b.X, a.X, atol=1e-4)
    np.testing.assert_allclose(b.t_start, a.t_start, atol=1e-4)
    assert set(b.subjects) == {"S002"}
    rec = read_recording(xdf_file, profile)
    assert rec.run == 4 and rec.timestamps[0] == 0.0 and rec.sfreq == 160.0
    np.testing.assert_allclose(np.diff(rec.timestamps), 1 / 160, atol=1e-9)  # dejittered


def test_clock_offsets_are_honoured(edf, xdf_file):
    """Read without the ClockOffset chunks, the EEG would sit 0.5 s before its markers."""
    import pyxdf

    raw_streams, _ = pyxdf.load_xdf(str(xdf_file), synchronize_clocks=False)
    eeg = next(s for s in raw_streams if s["info"]["type"] == ["EEG"])
    assert abs(eeg["time_stamps"][0] - 999.5) < 0.01  # as written: the amplifier's clock
    rec = read_recording(xdf_file, load_profile("motor_imagery"))
    edf_rec = read_recording(edf, load_profile("motor_imagery"))
    np.testing.assert_allclose([a[0] for a in rec.annotations], [a[0] for a in edf_rec.annotations],
                               atol=1e-6)


def test_a_gap_drops_the_windows_over_it_and_labels_stay_aligned(edf, tmp_path):
    profile = load_profile("motor_imagery")
    import mne

    raw = mne.io.read_raw(edf, preload=True, verbose="error")
    fs = raw.info["sfreq"]
    data = (raw.get_data() * 1e6).T
    t = 1000.0 + np.arange(raw.n_times) / fs
    keep = np.ones(raw.n_times, bool)
    keep[int(30 * fs):int(32 * fs)] = False  # 2 s lost by the recorder
    onsets = 1000.0 + np.round(raw.annotations.onset * fs) / fs
    markers = XdfStream("m", "Markers", 0.0, "string",
                        [[d, repr(float(u))] for d, u in zip(raw.annotations.description,
                                                             raw.annotations.duration)],
                        onsets, ["description", "duration_s"])
    eeg = XdfStream("amp", "EEG", fs, "float32", data[keep], t[keep], list(raw.ch_names),
                    ["uV"] * len(raw.ch_names))
    path = write_xdf(tmp_path / "S002R04.xdf", [eeg, markers])
    a, b = _windows(edf, profile), _windows(path, profile)
    assert b.drops["gap"] + b.drops["jump"] > 0, b.drops  # dropped as a timeline break
    assert not ((b.t_start < 32.0) & (b.t_start + 3.0 > 30.0)).any()  # no window spans the gap
    by_t = dict(zip(np.round(a.t_start, 3), a.y))
    assert all(by_t[round(t0, 3)] == y for t0, y in zip(b.t_start, b.y))  # same labels, same times


def test_a_short_loss_inside_a_segment_is_reported(edf, tmp_path):
    import mne

    raw = mne.io.read_raw(edf, preload=True, verbose="error")
    fs = raw.info["sfreq"]
    t = 1000.0 + np.arange(raw.n_times) / fs
    keep = np.ones(raw.n_times, bool)
    keep[int(30 * fs):int(30.3 * fs)] = False  # 0.3 s: under the break threshold
    eeg = XdfStream("amp", "EEG", fs, "float32", (raw.get_data() * 1e6).T[keep], t[keep],
                    list(raw.ch_names), ["uV"] * len(raw.ch_names))
    path = write_xdf(tmp_path / "S002R04.xdf", [eeg])
    with pytest.warns(UserWarning,
                      match=r"runs at 159\.\d+ Hz .* roughly (4[5-9]|5[0-5]) samples missing"):
        read_recording(path, load_profile("motor_imagery"))


def test_stream_selection(edf, xdf_file, tmp_path):
    profile = load_profile("motor_imagery")
    streams = xdf.load_streams(xdf_file)
    second = [dict(s) for s in streams]
    eeg2 = next(s for s in second if s["info"]["type"] == ["EEG"])
    labels, units = xdf.channels(eeg2)
    other = XdfStream("other-amp", "EEG", 160.0, "float32", np.zeros((100, 2)),
                      1000 + np.arange(100) / 160.0, ["X1", "X2"])
    mine = XdfStream("amp", "EEG", 160.0, "float32", np.asarray(eeg2["time_series"]),
                     np.asarray(eeg2["time_stamps"]), labels, ["microvolts"] * len(labels))
    path = write_xdf(tmp_path / "two.xdf", [other, mine])
    rec = read_recording(path, profile)  # the stream that has the profile's channels
    assert rec.source_ch_names[0] == "Fz.." and rec.annotations == ()
    with pytest.raises(UserInputError, match="several EEG stream"):
        xdf.pick_eeg(xdf.load_streams(path), path)
    xdf.select_streams(eeg="other-amp")
    with pytest.raises(UserInputError, match="missing channel"):
        read_recording(path, profile)
    xdf.select_streams(eeg="nope")
    with pytest.raises(UserInputError, match="no stream named 'nope'.*'other-amp'"):
        read_recording(path, profile)


def test_eval_and_replay_read_xdf(edf, xdf_file, tmp_path):
    from realtime.replay.player import Replay
    from realtime.session import DEMO_CHECKPOINT

    runs = {}
    for f in (edf, xdf_file):
        out = tmp_path / f"{f.suffix[1:]}.json"
        r = subprocess.run([sys.executable, "-m", "eegmamba.training.cli_eval", "--checkpoint",
                            str(DEMO_CHECKPOINT), "--data", str(f), "--device", "cpu", "--out",
                            str(out)], capture_output=True, text=True, timeout=150, cwd=REPO)
        assert r.returncode == 0, r.stderr
        runs[f.suffix] = json.loads(out.read_text())
    assert runs[".xdf"]["windows"] == runs[".edf"]["windows"]
    assert runs[".xdf"]["metrics"]["acc"] == pytest.approx(runs[".edf"]["metrics"]["acc"], abs=1e-9)
    a, b = Replay(edf), Replay(xdf_file)
    assert (a.n_times, a.ch_names, a.ch_units) == (b.n_times, b.ch_names, b.ch_units)
    np.testing.assert_allclose(b._data, a._data, atol=1e-3)
    assert (a.marker_onsets == b.marker_onsets).all() and a.marker_labels == b.marker_labels


def test_pretraining_reads_xdf(xdf_file):
    from eegmamba.pretrain.data import common_channels, load_unlabeled, pretrain_profile

    names = common_channels([xdf_file])
    assert len(names) == 64 and names[0] == "Fc5"
    data = load_unlabeled([xdf_file], pretrain_profile(names[:8]))
    assert len(data) > 10


def test_integer_units_are_volts_only_on_voltage_channels(edf, tmp_path):
    """mne-lsl's integer units (a power of ten of volts) are read with each channel's declared
    type: ``0`` on ``eeg`` channels is volts, ``0`` on ``misc`` channels is not a voltage (µV
    assumed and checked, so the same µV samples read the same)."""
    import mne

    profile = load_profile("motor_imagery")
    raw = mne.io.read_raw(edf, preload=True, verbose="error").crop(0, 20)
    n_ch, fs = len(raw.ch_names), raw.info["sfreq"]
    t = 1000.0 + np.arange(raw.n_times) / fs
    expected = read_recording(edf, profile).data[:, :raw.n_times]
    for types, data in ((["eeg"] * n_ch, raw.get_data().T), (["misc"] * n_ch, raw.get_data().T * 1e6)):
        eeg = XdfStream("amp", "EEG", fs, "double64", data, t, list(raw.ch_names), ["0"] * n_ch,
                        types=types)
        path = write_xdf(tmp_path / f"S002R04_{types[0]}.xdf", [eeg])
        np.testing.assert_allclose(read_recording(path, profile).data, expected, atol=1e-6)
    mixed = XdfStream("amp", "EEG", fs, "double64", np.zeros((3, 4)), t[:3], ["a", "b", "c", "d"],
                      ["0", "0", "-6", "-3"], types=["eeg", "misc", "", "stim"])
    stream = next(iter(xdf.load_streams(write_xdf(tmp_path / "mixed.xdf", [mixed]))))
    assert xdf.channel_scales(stream) == [1e6, None, 1.0, None]

"""XDF files shaped like the XDF project's own ``minimal.xdf`` (xdf-modules/example-files): a 3-channel
``int16`` EEG stream at 10 Hz (9 samples, a ClockOffset of -0.1 s) and a ``string`` marker stream of
type ``StringMarker`` at a nominal 10 Hz whose last marker lies after the EEG. That file crashed
``eegmamba-replay`` (an ``AssertionError`` in MNE's ``Annotations.crop``: the last marker got a
negative duration). The file here is written by ``eegmamba/testing/xdf_writer.py`` with that shape,
plus markers before the EEG; it is not the example file itself. Every XDF file replays or gets one
clear line (exit 2); markers outside the EEG's span are kept (cut) or counted, never a crash."""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.data import xdf
from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from eegmamba.testing.xdf_writer import XdfStream, write_xdf

pytestmark = pytest.mark.timeout(60)

WORDS = ["Hello", "World", "from", "LSL"]


def _minimal_like(path, n_eeg: int = 9):
    eeg_t = 5.1 + np.arange(n_eeg) / 10.0
    values = np.array([[192, 255, 238]] + [[12 + k % 4, 22 + k % 4, 32 + k % 4] for k in range(8)])
    eeg = XdfStream("SendDataC", "EEG", 10.0, "int16", values[:n_eeg].astype(np.int16), eeg_t,
                    ["ch0", "ch1", "ch2"], clock_offsets=[(6.1, -0.1), (7.1, -0.1)])
    # two markers before the EEG (the second one's cue reaches into it), 5.1 .. 5.9 as in the
    # example (on the recorder's clock: the EEG, put back by -0.1 s, ends before 5.9), one at 8.0
    t = np.array([2.0, 3.0, *(5.1 + np.arange(9) / 10.0), 8.0])
    text = ["early", "cue"] + [WORDS[k % 4] for k in range(9)] + ["late"]
    markers = XdfStream("SendDataString", "StringMarker", 10.0, "string", [[w] for w in text], t,
                        ["text"])
    return write_xdf(path, [eeg, markers])


@pytest.fixture(autouse=True)
def _default_selection():
    xdf.select_streams()
    yield
    xdf.select_streams()


def test_markers_outside_the_eeg_are_cut_or_counted(tmp_path):
    path = _minimal_like(tmp_path / "minimal_like.xdf")
    with pytest.warns(UserWarning, match=r"3 marker\(s\) outside the EEG stream's time span "
                                         r"\(1 before its first sample, 2 after its last\)"):
        raw, breaks = xdf.xdf_as_raw(path)
    assert raw.info["sfreq"] == 10.0 and raw.get_data().shape == (3, 9) and breaks == 0
    np.testing.assert_allclose(raw.get_data()[:, 1] * 1e6, [12, 22, 32])  # int16, µV assumed
    ann = raw.annotations
    # EEG on the recorder's clock: 5.0 .. 5.8; the cue at 3.0 lasts until 5.1: kept as [0, 0.1)
    assert list(ann.description) == ["cue"] + [WORDS[k % 4] for k in range(8)]
    np.testing.assert_allclose(ann.onset, np.arange(9) / 10.0, atol=1e-6)
    np.testing.assert_allclose(ann.duration, 0.1, atol=1e-6)


def test_replay_streams_it_and_a_file_without_eeg_samples_is_one_line(tmp_path, capsys):
    from realtime.replay.cli import main

    unique_name = f"t-minimal-like-{uuid.uuid4().hex[:8]}"
    path = _minimal_like(tmp_path / "minimal_like.xdf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main([str(path), "--repeat", "1", "--speed", "4", "--name", unique_name]) == 0
    out = capsys.readouterr().out
    assert "3 ch @ 10 Hz" in out and "(9 annotations)" in out and "pushed 9 samples" in out
    empty = _minimal_like(tmp_path / "empty_eeg.xdf", n_eeg=0)
    assert main([str(empty), "--repeat", "1", "--name", unique_name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("EEG stream 'SendDataC' (EEG, 3 ch @ 10 Hz) has no samples")


def test_evaluating_it_with_a_profile_it_does_not_fit_is_one_line(tmp_path):
    path = _minimal_like(tmp_path / "minimal_like.xdf")
    with pytest.raises(UserInputError, match="missing channel") as exc:
        read_recording(path, load_profile("motor_imagery"))
    assert "\n" not in str(exc.value)

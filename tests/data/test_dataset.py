"""Window-set builder on real recordings: labels line up with annotations, every window is kept or
counted by reason, clear errors/warnings."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.data.dataset import build_windows, n_windows_for
from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from eegmamba.windowing import window_recording


def test_motor_imagery_labels_and_accounting(shared_data):
    prof = load_profile("motor_imagery_5class")
    r03, r04 = shared_data / "motor_imagery" / "S001R03.edf", shared_data / "motor_imagery" / "S001R04.edf"
    with pytest.warns(UserWarning, match="no windows for class.*both_fists, both_feet"):
        ws = build_windows([r03, r04], prof)
    assert ws.X.shape[1:] == (22, 600) and ws.X.dtype == np.float32 and ws.y.dtype == np.int64
    assert set(ws.subjects) == {"S001"} and set(ws.files) == {str(r04)}
    counts = ws.class_counts()
    assert counts["rest"] > 0 and counts["left_fist"] > 0 and counts["right_fist"] > 0
    assert ws.skipped_files == [(str(r03), "no_labels_in_file")]
    per_file = n_windows_for(20000, 160.0, prof, prof.window.train_hop_s)
    assert ws.drops["no_labels_in_file"] == per_file
    # every window of R04 is either kept or counted
    assert len(ws) + sum(v for k, v in ws.drops.items() if k != "no_labels_in_file") == per_file
    assert ws.drops["straddles_label_change"] > 0
    # each kept window lies inside one annotation of its class (T1 = left_fist in run 4)
    rec = read_recording(r04, prof)
    code = {"T0": "rest", "T1": "left_fist", "T2": "right_fist"}
    for t0, k in zip(ws.t_start, ws.y):
        inside = [a for a in rec.annotations if a[0] - 1e-6 <= t0 and t0 + 3.0 <= a[0] + a[1] + 1e-6]
        assert len(inside) == 1 and code[inside[0][2]] == ws.classes[k]
    t_rel = np.diff(ws.t_start[:3])
    assert np.all(np.isclose(t_rel, 0.25) | (t_rel > 0.25))  # the training grid


def test_seizure_window_straddling_onset_is_dropped(shared_data):
    with pytest.warns(UserWarning, match="no windows for class.*background"):
        ws = build_windows(shared_data / "seizure" / "chb01_03_Seizure_41s.edf", "seizure")
    # background 0-1 s, seizure 1-41 s: windows starting before 1 s straddle the onset
    assert ws.class_counts()["background"] == 0 and ws.drops["straddles_label_change"] == 2
    assert np.all(ws.t_start >= 1.0) and np.all(ws.y == 1)


def test_nothing_labelled_is_an_error_with_counts(shared_data):
    with pytest.raises(UserInputError, match=r"no labelled windows .*no_labels_in_file=\d+"):
        build_windows(shared_data / "motor_imagery" / "S001R03.edf", "motor_imagery")


def test_nonfinite_windows_dropped_with_reason(shared_data):
    prof = load_profile("seizure")
    rec = read_recording(shared_data / "seizure" / "chb01_03_ictal10s.edf", prof)
    data = rec.data.copy()
    data[3, 1000:1010] = np.nan  # ~3.9 s
    clean, d0 = window_recording(rec.data, rec.sfreq, None, prof)
    dirty, d1 = window_recording(data, rec.sfreq, None, prof)
    assert not d0 and d1["nonfinite"] == 4 and len(dirty) == len(clean) - 4
    assert all(not (w.t_start <= 3.95 and w.t_end >= 3.9) for w in dirty)


def test_summary_table_text_and_rich(shared_data):
    ws = build_windows(sorted((shared_data / "seizure").glob("chb0*_16*ictal10s.edf")), "seizure")
    text = ws.summary_table()
    assert "background" in text and "chb02" in text and "dropped:" in text
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(ws.summary_table(rich=True))
    assert "chb02" in console.export_text()
    assert isinstance(ws.drops, collections.Counter)

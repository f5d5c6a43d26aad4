"""Label rules: run-dependent EEGMMIDB labels, sleep stage merging, ignore rules, conflicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eegmamba.data.labels import UNLABELLED, label_counts, sample_labels
from eegmamba.data.readers import read_recording
from eegmamba.data.recording import Recording
from eegmamba.profiles import load_profile


def _at(rec, labels, t):
    return labels[int(round(t * rec.sfreq))]


def test_imagined_fist_runs(shared_data):
    prof = load_profile("motor_imagery_5class")
    rec = read_recording(shared_data / "motor_imagery" / "S001R04.edf", prof)
    lab = sample_labels(rec, prof)
    first_t1 = next(a for a in rec.annotations if a[2] == "T1")
    first_t2 = next(a for a in rec.annotations if a[2] == "T2")
    assert prof.classes[_at(rec, lab, first_t1[0] + 1)] == "left_fist"
    assert prof.classes[_at(rec, lab, first_t2[0] + 1)] == "right_fist"
    assert prof.classes[_at(rec, lab, 1.0)] == "rest"
    counts = label_counts(lab, prof)
    assert counts["both_fists"] == counts["both_feet"] == 0 and counts["left_fist"] > 0


def test_imagined_fists_feet_runs(shared_data):
    prof = load_profile("motor_imagery_5class")
    rec = read_recording(shared_data / "motor_imagery" / "S001R06.edf", prof)
    lab = sample_labels(rec, prof)
    first_t1 = next(a for a in rec.annotations if a[2] == "T1")
    assert prof.classes[_at(rec, lab, first_t1[0] + 1)] == "both_fists"
    assert label_counts(lab, prof)["left_fist"] == 0 and label_counts(lab, prof)["both_feet"] > 0


def test_left_right_profile_leaves_rest_unlabelled(shared_data):
    prof = load_profile("motor_imagery")
    rec = read_recording(shared_data / "motor_imagery" / "S001R04.edf", prof)
    lab = sample_labels(rec, prof)
    first_t1 = next(a for a in rec.annotations if a[2] == "T1")
    assert prof.classes[_at(rec, lab, first_t1[0] + 1)] == "left_fist"
    assert _at(rec, lab, 1.0) == UNLABELLED  # T0 (rest) is ignored on purpose
    task = sum(round(a[1] * rec.sfreq) for a in rec.annotations if a[2] in ("T1", "T2"))
    counts = label_counts(lab, prof)
    assert abs(counts["left_fist"] + counts["right_fist"] - task) <= 15  # one edge sample per cue
    run6 = read_recording(shared_data / "motor_imagery" / "S001R06.edf", prof)
    assert np.all(sample_labels(run6, prof) == UNLABELLED)  # both fists / feet: not this paradigm


def test_real_movement_run_has_no_labels(shared_data):
    prof = load_profile("motor_imagery")
    rec = read_recording(shared_data / "motor_imagery" / "S001R03.edf", prof)
    assert np.all(sample_labels(rec, prof) == UNLABELLED)


def _fake(annotations, n=1000, sfreq=10.0):
    return Recording(np.zeros((1, n)), sfreq, ("EEG",), ("C3-A1",), tuple(annotations), "x", None,
                     Path("x.edf"))


def test_sleep_stage_4_is_n3_and_ignored_stages():
    prof = load_profile("sleep")
    rec = _fake([(0, 30, "Sleep stage 4"), (30, 30, "Sleep stage 3"), (60, 5, "Movement time"),
                 (65, 5, "Sleep stage ?"), (70, 10, "Sleep stage R"), (80, 0, "Sleep stage W")])
    lab = sample_labels(rec, prof)
    n3, rem = prof.classes.index("N3"), prof.classes.index("REM")
    assert np.all(lab[:600] == n3)
    assert np.all(lab[600:700] == UNLABELLED)
    assert np.all(lab[700:800] == rem) and np.all(lab[800:] == UNLABELLED)  # zero duration: nothing


def test_real_dreams_n3(shared_data):
    prof = load_profile("sleep")
    rec = read_recording(shared_data / "sleep" / "dreams_excerpt1.edf", prof)
    s4 = next(a for a in rec.annotations if a[2] == "Sleep stage 4")
    lab = sample_labels(rec, prof)
    assert prof.classes[_at(rec, lab, s4[0] + 0.5)] == "N3"


def test_conflicting_overlap_is_unlabelled():
    prof = load_profile("seizure")
    rec = _fake([(0, 50, "background"), (40, 20, "seizure")])
    lab = sample_labels(rec, prof)
    assert np.all(lab[:400] == 0) and np.all(lab[400:500] == UNLABELLED) and np.all(lab[500:600] == 1)

"""Unlabeled windows: channel intersection, the shared preprocessing contract, counted drops."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.pretrain.data import common_channels, load_unlabeled, pretrain_profile
from eegmamba.profiles import load_profile
from eegmamba.windowing import window_recording
from eegmamba.data.readers import read_recording


def test_common_channels_normalises_names(shared_data, tmp_path):
    from eegmamba.testing.synthetic_edf import make_synthetic_edf

    mi = shared_data / "motor_imagery"
    names = common_channels([mi / "S001R03.edf", mi / "S088R10.edf"])
    assert len(names) == 64 and names[:3] == ("Fc5", "Fc3", "Fc1")  # dots stripped, file order
    syn = make_synthetic_edf(tmp_path / "syn.edf", 3, 160.0, 10, ["x"], ch_names=["CZ", "C3", "Foo"])
    assert common_channels([mi / "S001R03.edf", syn]) == ("C3", "Cz")
    other = make_synthetic_edf(tmp_path / "other.edf", 2, 160.0, 10, ["x"], ch_names=["A1", "A2"])
    with pytest.raises(UserInputError, match="no channel is common"):
        common_channels([syn, other])


def test_windows_are_the_shared_pipeline(shared_data):
    f = shared_data / "seizure" / "chb02_16_ictal10s.edf"
    profile = pretrain_profile(base="seizure", window_s=2.0, hop_s=0.5)
    seizure = load_profile("seizure")
    assert profile.channels == seizure.channels and profile.filter == seizure.filter
    assert profile.labels == () and profile.window.length_s == 2.0
    data = load_unlabeled([f], profile)
    rec = read_recording(f, profile)  # annotations are there, and ignored
    assert rec.annotations
    wins, drops = window_recording(rec.data, rec.sfreq, None, profile, hop_s=0.5)
    assert np.array_equal(data.X, np.stack([w.data for w in wins]))
    assert len(data) + sum(data.drops.values()) == len(wins) + sum(drops.values())
    assert data.files_info == [{"path": str(f), "subject": "chb02", "windows": len(wins),
                                "drops": dict(drops)}]


def test_short_file_counted_and_too_few_windows(shared_data):
    f = shared_data / "seizure" / "chb02_16_ictal10s.edf"
    long_win = pretrain_profile(base="seizure", window_s=12.0)
    with pytest.raises(UserInputError, match="too few windows.*too_short=1"):
        load_unlabeled([f], long_win)
    profile = pretrain_profile(base="seizure", window_s=4.0)
    data = load_unlabeled([f, shared_data / "seizure" / "chb01_03_NonSeizure_41s.edf"], profile)
    assert data.drops == {} and len(data) == 2 + 10  # 10 s → 2 windows of 4 s (hop 4), 41 s → 10
    assert set(data.subjects.tolist()) == {"chb01", "chb02"}


def test_flat_windows_dropped_and_counted(tmp_path):
    from eegmamba.testing.synthetic_edf import make_synthetic_edf

    path = make_synthetic_edf(tmp_path / "s.edf", 2, 200.0, 20, ["x"], ch_names=["C3", "C4"],
                              amplitude_uv=0.0, noise_uv=0.0)  # (0.01 µV would be implausible units)
    profile = pretrain_profile(["C3", "C4"], window_s=2.0)
    with pytest.raises(UserInputError, match="flat_run=10"):
        load_unlabeled([path], profile)

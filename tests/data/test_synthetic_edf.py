"""Synthetic EDF generator: round trip through MNE, sample-index channel, and a full labelled build
with a custom profile (any channel count/rate)."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest
import yaml
from scipy import signal

from eegmamba.data.dataset import build_windows

from eegmamba.testing import synthetic_edf as syn


def test_round_trip_with_sample_index(tmp_path):
    path = syn.make_synthetic_edf(tmp_path / "s.edf", 3, 128, 300, ["a", "b"], seed=1,
                                  sample_index=True)
    raw = mne.io.read_raw(path, verbose="error", preload=True)
    assert raw.ch_names == ["EEG001", "EEG002", "EEG003", "SAMPLE_IDX"] and raw.info["sfreq"] == 128
    idx = syn.unwrap_sample_index(raw.get_data(picks=["SAMPLE_IDX"])[0] * 1e6)
    np.testing.assert_array_equal(idx, np.arange(300 * 128))  # wraps at 32768, unwrapped exactly
    ann = raw.annotations
    assert list(ann.description[:3]) == ["a", "b", "a"] and ann.duration[0] == 5.0
    assert 5 < np.std(raw.get_data(picks=[0]) * 1e6) < 100


def test_cli_writes_file_and_rejects_bad_input(tmp_path, capsys):
    assert syn.main([str(tmp_path / "c.edf"), "--channels", "2", "--duration", "10"]) == 0
    assert (tmp_path / "c.edf").is_file()
    assert syn.main([str(tmp_path / "d.edf"), "--channels", "0"]) == 2
    assert "n_channels" in capsys.readouterr().err


@pytest.mark.parametrize("n_ch, sfreq", [(5, 160), (2, 256)])
def test_build_windows_on_synthetic(tmp_path, n_ch, sfreq):
    classes = ["slow", "fast"]
    path = syn.make_synthetic_edf(tmp_path / "S900R01.edf", n_ch, sfreq, 60, classes, segment_s=6.0,
                                  seed=2, ch_names=[f"Ch{i}." for i in range(n_ch)])
    prof = {
        "name": "synthetic", "window": {"length_s": 2.0, "hop_s": 1.0, "train_hop_s": 0.5},
        "channels": {"names": [f"CH{i}" for i in range(n_ch)]}, "classes": classes,
        "labels": [{"description": c, "class": c} for c in classes], "normalization": "none",
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(prof))
    ws = build_windows(tmp_path, tmp_path / "p.yaml")
    assert ws.X.shape[1:] == (n_ch, 400) and set(ws.subjects) == {"S900"}
    # 6 s segments hold 9 whole 2-s windows at a 0.5 s hop; the rest straddle a change; the very
    # last window (58-60 s) is complete too: the resampler needs no input past the end
    assert ws.class_counts() == {"slow": 45, "fast": 45}
    assert ws.drops["straddles_label_change"] > 0
    # the label lines up with the data: class i's rhythm (8 + 4 i Hz) dominates channel i
    for k, f0 in ((0, 8.0), (1, 12.0)):
        f, p = signal.periodogram(ws.X[ws.y == k, k], fs=200.0, axis=-1)
        assert abs(f[np.argmax(p.mean(axis=0))] - f0) <= 0.5


def test_subject_alias_groups_chb21_with_chb01_in_cross_validation(tmp_path):
    """chb21 is chb01 recorded later: its windows get subject chb01, so no fold trains on one and
    tests on the other; a profile's own subject_aliases map other names the same way."""
    from eegmamba.training.cv import n_folds_for, subject_folds
    from eegmamba._checks import UserInputError

    classes = ["slow", "fast"]
    for name in ("chb01_03.edf", "chb21_19.edf", "chb02_16.edf", "px7_1.edf"):
        syn.make_synthetic_edf(tmp_path / name, 2, 128, 24, classes, segment_s=6.0, seed=len(name),
                               ch_names=["CH0", "CH1"])
    prof = {
        "name": "synthetic", "window": {"length_s": 2.0, "hop_s": 1.0}, "channels": {"names": ["CH0", "CH1"]},
        "classes": classes, "labels": [{"description": c, "class": c} for c in classes],
        "subject_aliases": {"PX7_1": "chb02"},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(prof))
    ws = build_windows(tmp_path, tmp_path / "p.yaml")
    by_file = {Path(f).name: s for f, s in zip(ws.files, ws.subjects)}
    assert by_file == {"chb01_03.edf": "chb01", "chb21_19.edf": "chb01", "chb02_16.edf": "chb02",
                       "px7_1.edf": "chb02"}
    folds = subject_folds(ws.subjects, n_folds_for(ws.subjects, 5)[0])
    assert len(folds) == 2
    for f in folds:
        test_files = {Path(x).name for x in ws.files[f.test_idx]}
        train_files = {Path(x).name for x in ws.files[f.train_idx]}
        assert ({"chb01_03.edf", "chb21_19.edf"} <= test_files) or not (
            {"chb01_03.edf", "chb21_19.edf"} & test_files)
        assert not (test_files & train_files)
    only = build_windows([tmp_path / "chb01_03.edf", tmp_path / "chb21_19.edf"], tmp_path / "p.yaml")
    with pytest.raises(UserInputError, match="at least 2 subjects, found 1"):
        n_folds_for(only.subjects, 5)

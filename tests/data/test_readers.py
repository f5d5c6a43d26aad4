"""Readers: channel picking in profile order, µV, subject/run from the name, hypnogram pairing,
folder expansion, clear errors."""

from __future__ import annotations

import shutil

import mne
import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.data.readers import expand_paths, read_recording
from eegmamba.data.recording import subject_and_run
from eegmamba.profiles import load_profile


@pytest.mark.parametrize("name, subject, run", [
    ("S001R04.edf", "S001", 4), ("S088R10.edf", "S088", 10), ("chb01_03_ictal10s.edf", "chb01", None),
    ("chb02_16plus_preictal10s.edf", "chb02", None), ("dreams_excerpt1.edf", "dreams_excerpt1", None),
    ("SC4001E0-PSG.edf", "SC400", None), ("my_rec.fif", "my_rec", None),
])
def test_subject_and_run(name, subject, run):
    assert subject_and_run(name) == (subject, run)


def test_subject_aliases_one_name_per_person():
    # CHB-MIT case chb21 is patient chb01 recorded 1.5 years later: a dataset fact, always applied
    assert subject_and_run("chb21_19.edf") == ("chb01", None)
    assert subject_and_run("CHB21_19.edf") == ("chb01", None)
    assert subject_and_run("chb22_01.edf") == ("chb22", None)
    # a profile adds its own (and may override a known one)
    assert subject_and_run("S002R04.edf", {"s002": "S001"}) == ("S001", 4)
    assert subject_and_run("chb21_19.edf", {"chb21": "chb21b"}) == ("chb21b", None)


def test_read_eegmmidb_picks_profile_channels_in_uv(shared_data):
    prof = load_profile("motor_imagery")
    path = shared_data / "motor_imagery" / "S001R04.edf"
    rec = read_recording(path, prof)
    assert rec.ch_names == prof.channels.names and rec.source_ch_names[:2] == ("Fz..", "Fc3.")
    assert rec.data.shape == (22, 20000) and rec.sfreq == 160.0
    assert (rec.subject, rec.run) == ("S001", 4)
    raw = mne.io.read_raw(path, verbose="error")
    cz = raw.get_data(picks=["Cz.."])[0] * 1e6
    np.testing.assert_allclose(rec.data[prof.channels.names.index("Cz")], cz)
    assert 5 < np.std(rec.data) < 500  # µV, not volts
    onset, duration, desc = rec.annotations[1]
    assert (onset, duration, desc) == (pytest.approx(4.2), pytest.approx(4.1), "T2")


def test_read_seizure_uses_first_t8_p8(shared_data):
    prof = load_profile("seizure")
    rec = read_recording(shared_data / "seizure" / "chb01_03_Seizure_41s.edf", prof)
    assert rec.data.shape == (22, 41 * 256) and "T8-P8-0" in rec.source_ch_names
    assert "T8-P8-1" not in rec.source_ch_names and rec.subject == "chb01"


def test_missing_channels_error_names_file(shared_data):
    with pytest.raises(UserInputError, match=r"dreams_excerpt1.edf: missing channel\(s\) Fz.*available: C3-A1"):
        read_recording(shared_data / "sleep" / "dreams_excerpt1.edf", load_profile("motor_imagery"))


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "junk.edf"
    bad.write_bytes(b"this is not an EDF file at all" * 10)
    with pytest.raises(UserInputError, match="cannot read recording .*junk.edf"):
        read_recording(bad, load_profile("sleep"))
    with pytest.raises(UserInputError, match="not found"):
        read_recording(tmp_path / "nope.edf", load_profile("sleep"))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(UserInputError, match="no readable recordings"):
        expand_paths(empty)


def test_folder_expands_and_psg_pairs_with_hypnogram(shared_data, tmp_path):
    # Sleep-EDF layout: signal and hypnogram in separate files whose names differ before the dash
    src = shared_data / "sleep" / "dreams_excerpt3.edf"
    raw = mne.io.read_raw(src, verbose="error", preload=True)
    psg = tmp_path / "SC4011E0-PSG.edf"
    shutil.copy(src, psg)
    hyp = tmp_path / "SC4011EH-Hypnogram.edf"
    ann = mne.Annotations([0.0, 30.0], [30.0, 60.0], ["Sleep stage W", "Sleep stage 4"])
    raw_hyp = raw.copy().crop(0, 100 - 1 / raw.info["sfreq"]).set_annotations(ann)
    mne.export.export_raw(hyp, raw_hyp, fmt="edf", verbose="error")
    files = expand_paths([tmp_path])
    assert files == [psg]  # the hypnogram is not a recording of its own
    rec = read_recording(psg, load_profile("sleep"))
    assert [a[2] for a in rec.annotations] == ["Sleep stage W", "Sleep stage 4"]
    assert rec.subject == "SC401" and rec.source_ch_names == ("C3-A1",)

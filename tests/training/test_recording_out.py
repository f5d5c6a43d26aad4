"""Leave-one-recording-out protocol: CHB-MIT segments are grouped by the recording they were cut
from, and no test recording reaches training or validation."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba.training.protocols import (ProtocolConfig, load_data, recording_key,
                                         recording_out_units)


@pytest.mark.parametrize("name, key", [
    ("chb01_03_ictal10s.edf", "chb01_03"), ("chb01_03_preictal10s.edf", "chb01_03"),
    ("chb01_03_Seizure_41s.edf", "chb01_03"), ("chb01_03_NonSeizure_41s.edf", "chb01_03"),
    ("chb02_16plus_ictal10s.edf", "chb02_16plus"), ("S001R04.edf", "S001R04"),
    ("dreams_excerpt1.edf", "dreams_excerpt1")])
def test_recording_key(name, key):
    assert recording_key(name) == key


def test_units_hold_out_whole_recordings(shared_data, tmp_path):
    cfg = ProtocolConfig(protocol="leave-one-recording-out", profile="seizure",
                         data=(str(shared_data / "seizure"),), out=str(tmp_path))
    d = load_data(cfg)
    units = recording_out_units(d, cfg)
    # chb01: recordings 03, 04, 15, 16, 18, 21, 26; chb02: 16, 16plus, 19
    assert [u.name for u in units] == ["chb01_03", "chb01_04", "chb01_15", "chb01_16", "chb01_18",
                                       "chb01_21", "chb01_26", "chb02_16", "chb02_16plus", "chb02_19"]
    rec_tr = np.array([recording_key(f) for f in d.train.files])
    rec_te = np.array([recording_key(f) for f in d.test.files])
    for u in units:
        assert set(rec_te[u.test_idx]) == {u.name}
        s = u.test_subjects[0]
        assert set(d.train.subjects[u.train_idx]) == set(d.train.subjects[u.val_idx]) == {s}
        train_recs, val_recs = set(rec_tr[u.train_idx]), set(rec_tr[u.val_idx])
        assert u.name not in train_recs | val_recs and not train_recs & val_recs
        assert len(u.train_idx) + len(u.val_idx) == int(((d.train.subjects == s) & (rec_tr != u.name)).sum())
    assert len(units[0].test_idx) > 2 * len(units[1].test_idx)  # 03 holds the two 41 s segments too

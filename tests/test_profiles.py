"""Profiles: shipped ones load and round-trip; bad YAML is rejected naming file and field; channel
name normalization and alias matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eegmamba._checks import UserInputError
from eegmamba.channels import match_channels, normalize_name
from eegmamba.profiles import Profile, available_profiles, load_profile

SHIPPED = ["motor_imagery", "motor_imagery_rest", "motor_imagery_5class", "sleep", "seizure"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_and_round_trip(name):
    p = load_profile(name)
    assert p.name == name and p.sfreq == 200.0
    d = json.loads(json.dumps(p.to_dict()))
    assert Profile.from_dict(d) == p
    assert p.window_samples == round(p.window.length_s * 200)


def test_shipped_profile_facts():
    mi = load_profile("motor_imagery")
    assert mi.n_channels == 22 and mi.channels.names[0] == "Fz" and "POz" in mi.channels.names
    assert mi.classes == ("left_fist", "right_fist")  # the demo's paradigm; rest is not a class
    assert [(r.descriptions, r.cls) for r in mi.labels if r.descriptions == ("T0",)] == [(("T0",), "ignore")]
    assert (mi.window.length_s, mi.window.hop_s, mi.window.train_hop_s) == (3.0, 0.5, 0.25)
    assert mi.hop_samples(mi.window.train_hop_s) == 50 and mi.smoothing.method == "none"
    rest = load_profile("motor_imagery_rest")
    assert rest.classes == ("rest", "left_fist", "right_fist") and rest.window == mi.window
    assert rest.channels == mi.channels and rest.task == mi.task == "motor_imagery"
    five = load_profile("motor_imagery_5class")
    assert five.classes == ("rest", "left_fist", "right_fist", "both_fists", "both_feet")
    sl = load_profile("sleep")
    assert sl.classes == ("W", "N1", "N2", "N3", "REM") and sl.n_channels == 1
    sz = load_profile("seizure")
    assert sz.classes == ("background", "seizure") and sz.n_channels == 22
    assert set(available_profiles()) >= set(SHIPPED)


def test_load_by_path(tmp_path):
    src = Path(load_profile("seizure").source)
    assert load_profile(Path(__file__).resolve().parents[1] / "eegmamba" / src).name == "seizure"


def _write(tmp_path, mutate) -> Path:
    d = load_profile("motor_imagery").to_dict()
    mutate(d)
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.mark.parametrize("mutate, field, words", [
    (lambda d: d["window"].update(hop_s=-1), "window.hop_s", "must be > 0, got -1"),
    (lambda d: d["window"].update(length_s="4"), "window.length_s", "finite number"),
    (lambda d: d["window"].update(train_hop_s=0.0123), "window.train_hop_s", "whole number"),
    (lambda d: d.update(colour="red"), "colour", "not a known field"),
    (lambda d: d["filter"].update(bandwidth=3), "filter.bandwidth", "not a known field"),
    (lambda d: d["filter"].update(order=2.5), "filter.order", "integer"),
    (lambda d: d["filter"].update(l_freq=60.0), "filter.l_freq", "< filter.h_freq"),
    (lambda d: d.update(normalization="minmax"), "normalization", "zscore"),
    (lambda d: d["labels"][0].update({"class": "sleepy"}), "labels[0].class", "must be one of"),
    (lambda d: d["quality"].update(on_bad="maybe"), "quality.on_bad", "skip"),
    (lambda d: d["smoothing"].update(k=0), "smoothing.k", ">= 1"),
    (lambda d: d["channels"].update(aliases={"Nope": ["x"]}), "channels.aliases.Nope", "not one of"),
    (lambda d: d.pop("classes"), "classes", "required"),
    (lambda d: d.update(subject_aliases=["chb21"]), "subject_aliases", "mapping"),
    (lambda d: d.update(subject_aliases={"S002": "s002"}), "subject_aliases.S002", "itself"),
    (lambda d: d.update(subject_aliases={"S002": "S003", "S003": "S004"}), "subject_aliases.S002",
     "itself an alias"),
])
def test_bad_yaml_names_file_and_field(tmp_path, mutate, field, words):
    path = _write(tmp_path, mutate)
    with pytest.raises(UserInputError) as exc:
        load_profile(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {field} "), msg
    assert words in msg


def test_unknown_profile_name_lists_available():
    with pytest.raises(UserInputError, match="unknown profile 'nope'.*motor_imagery.*seizure"):
        load_profile("nope")


def test_broken_yaml_syntax(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(UserInputError, match=r"broken.yaml: cannot read profile YAML: .*line"):
        load_profile(p)


@pytest.mark.parametrize("raw, norm", [
    ("Fc3.", "FC3"), ("Cz..", "CZ"), ("EEG Fpz-Cz", "FPZ-CZ"), ("EEG FP1-REF", "FP1"),
    ("C3-Ref", "C3"), (" T10. ", "T10"), ("EEG", "EEG"), ("T8-P8-0", "T8-P8-0"),
])
def test_normalize_name(raw, norm):
    assert normalize_name(raw) == norm


def test_match_eegmmidb_names_to_mi_montage():
    p = load_profile("motor_imagery")
    avail = ["Fc5.", "Fc3.", "Fc1.", "Fcz.", "Fc2.", "Fc4.", "Fc6.", "C5..", "C3..", "C1..", "Cz..",
             "C2..", "C4..", "C6..", "Cp3.", "Cp1.", "Cpz.", "Cp2.", "Cp4.", "Fz..", "P1..", "Pz..",
             "P2..", "Poz.", "O1.."]
    idx = match_channels(avail, p.channels.names, p.channels.aliases)
    assert [normalize_name(avail[i]) for i in idx] == [n.upper() for n in p.channels.names]


def test_aliases_in_order_and_sleep_edf_name():
    aliases = {"EEG": ["C3-A1", "Fpz-Cz", "Pz-Oz"]}
    assert match_channels(["EEG Pz-Oz", "EEG Fpz-Cz", "EOG"], ["EEG"], aliases) == [1]
    assert match_channels(["CZ-A1", "C3-A1"], ["EEG"], aliases) == [1]


def test_missing_channel_lists_available():
    with pytest.raises(UserInputError) as exc:
        match_channels(["Fc3.", "Cz.."], ["FC3", "Cz", "Pz"], {})
    msg = str(exc.value)
    assert "missing channel(s) Pz" in msg and "available: Fc3., Cz.." in msg


def test_ambiguous_and_double_matches_are_errors():
    with pytest.raises(UserInputError, match="ambiguous"):
        match_channels(["Cz", "CZ."], ["Cz"], {})
    with pytest.raises(UserInputError, match="matches several"):
        match_channels(["C3", "C4"], ["A", "B"], {"A": ["C3"], "B": ["C3"]})

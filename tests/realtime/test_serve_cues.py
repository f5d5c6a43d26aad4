"""Cue streams with several headsets (``--markers auto`` / ``EEG=MARKERS`` / one NAME): parsing and
pairing, and ``eegmamba-live --all --workers 2`` on LSL loopback, where each stream's decisions must
be scored against its own cue stream exactly as that stream alone is scored (the replayed file's
labels under each decided window: ``realtime.session.replay_ground_truth``, the rule of
``eegmamba-live --replay FILE`` and of the offline evaluation)."""

from __future__ import annotations

import math
import re
import signal
from types import SimpleNamespace

import pylsl
import pytest

from eegmamba._checks import UserInputError
from eegmamba.profiles import load_profile
from realtime.serve.sharding import worker_of
from realtime.session import DEMO_CALIBRATION, DEMO_RECORDING, replay_ground_truth
from realtime.stream.pairing import CuePairing, parse_markers
from tests.realtime.cue_replays import cue_replays
from tests.realtime.serve_helpers import (live_all, log_by_output, lsl_env, split_prefix,
                                          summary_rows)

FILES = [*DEMO_CALIBRATION, DEMO_RECORDING]  # S019 R04, R08, R12: three different cue sequences


def test_markers_option_forms():
    assert parse_markers([]) == (None, {})
    assert parse_markers(["auto"]) == ("auto", {})
    assert parse_markers(["stim"]) == ("stim", {})
    assert parse_markers(["a=a-cues", "auto", "b=stim"]) == ("auto", {"a": "a-cues", "b": "stim"})
    for bad in (["stim", "other"], ["stim", "a=b"], ["a=x", "a=y"], ["=x"], ["a="]):
        with pytest.raises(UserInputError):
            parse_markers(bad)


def _info(name, stype="Markers", srate=pylsl.IRREGULAR_RATE, sid=""):
    return pylsl.StreamInfo(name, stype, 1, srate, "string" if srate == 0 else "float32", sid)


def test_pairing_finds_each_streams_own_cue_stream():
    eeg = _info("cap3", "EEG", 160.0, "eegmamba-replay:cap3")
    own = _info("cap3-markers", sid="eegmamba-replay:cap3-markers")
    other = _info("cap3-markers", sid="someone-else")
    visible = [eeg, other, own, _info("cap4-markers"), _info("cap3-annotations", srate=10.0)]
    auto = CuePairing.of("auto", {})
    assert auto.find(eeg, visible) is own  # the source id beginning with the EEG stream's wins
    assert auto.find(_info("cap9", "EEG", 160.0), visible) is None
    ann = _info("cap9-annotations", "annotations", sid="mne")  # mne-lsl's PlayerLSL
    assert auto.find(_info("cap9", "EEG", 160.0), [ann]) is ann
    pairs = CuePairing.of(None, {"cap3": "cap4-markers"})
    assert pairs.find(eeg, visible).name() == "cap4-markers"
    assert pairs.wanted(_info("cap4", "EEG", 160.0)) == ()  # not named, no auto: unscored
    shared = CuePairing.of("stim", {})
    assert shared.wanted(eeg) == shared.wanted(_info("cap4", "EEG", 160.0)) == ("stim",)
    assert CuePairing.of(None, {}) is None


@pytest.mark.timeout(60)
def test_one_stream_markers_auto_and_pairs_find_its_cue_stream(player):
    from realtime.session import Session, SessionOptions

    replay = player(FILES[2], wait_for_consumer_s=20.0, wait_for_markers=True).start()
    other = player(FILES[0], markers=True).start()  # another headset's cues, visible too
    for markers, pairs, cues in (("auto", {}, replay.marker_name),
                                 (None, {replay.name: other.marker_name}, other.marker_name)):
        session = Session(SessionOptions(profiles=["motor_imagery"], stream=replay.name,
                                         markers=markers, marker_pairs=pairs, device="cpu"))
        try:
            assert session.markers_inlet.info.name() == cues
            assert session.snapshot().profiles[0].scored
        finally:
            session.close()
    with pytest.raises(UserInputError, match="no cue stream"):
        Session(SessionOptions(profiles=["motor_imagery"], stream=replay.name, device="cpu",
                               marker_pairs={replay.name: "nobody-markers"}, resolve_timeout_s=1.0))


def _expected(decisions, path, t0) -> tuple[int, int]:
    """(scored, correct) of ``decisions`` by the replayed file's labels (the one-stream rule)."""
    replay = SimpleNamespace(paths=[path], sfreq=160.0, speed=1.0, t0=t0)
    truth = replay_ground_truth(replay, load_profile("motor_imagery"))
    labels = [(truth(d["t_start"], d["t_end"]), d["label"]) for d in decisions]
    scored = [(t, lab) for t, lab in labels if t is not None]
    return len(scored), sum(t == lab for t, lab in scored)


def _run(tmp_path, pairs, markers_args, n_decisions=28):
    env = lsl_env(tmp_path)
    with cue_replays(pairs, env) as t0s:
        live = live_all(tmp_path, env, "--workers", "2", *markers_args)
        for _, name in pairs:
            live.wait_for(rf"@{re.escape(name)} #{n_decisions} ", timeout=120)
        rc, err = live.stop(signal.SIGTERM)
    assert rc == 0 and "Traceback" not in err, err
    return t0s, summary_rows(tmp_path / "summary.json"), log_by_output(tmp_path / "log.jsonl"), \
        "\n".join(live.lines)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_markers_auto_with_workers_scores_each_stream_as_alone(tmp_path):
    prefix = split_prefix(3, 2, worker_of)
    pairs = [(f, f"{prefix}-{i}") for i, f in enumerate(FILES)]
    t0s, rows, logged, out = _run(tmp_path, pairs, ["--markers", "auto"])
    assert sorted(r["stream"] for r in rows.values()) == sorted(n for _, n in pairs)
    assert {r["worker"] for r in rows.values()} == {1, 2}  # the streams are shared out
    for path, name in pairs:
        row = rows[f"motor_imagery@{name}"]
        scored, correct = _expected(logged[row["name"]], path, t0s[name])
        assert row["decisions"] == len(logged[row["name"]])
        assert row["n_scored"] == scored >= 2, (name, row, scored)
        assert math.isclose(row["accuracy"], correct / scored), (name, row, correct)
        assert f"'{name}-markers'" in out  # the cue stream in the summary


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_explicit_pairs_score_a_stream_against_the_cues_named(tmp_path):
    """Crossed on purpose: stream 0 is scored against stream 1's cues and the reverse, each in
    the worker that owns the EEG stream."""
    prefix = split_prefix(2, 2, worker_of)
    (f0, s0), (f1, s1) = pairs = [(FILES[0], f"{prefix}-0"), (FILES[2], f"{prefix}-1")]
    crossed = ["--markers", f"{s0}={s1}-markers", "--markers", f"{s1}={s0}-markers"]
    t0s, rows, logged, _ = _run(tmp_path, pairs, crossed)
    for name, cue_file, cue_name in ((s0, f1, s1), (s1, f0, s0)):
        row = rows[f"motor_imagery@{name}"]
        scored, correct = _expected(logged[row["name"]], cue_file, t0s[cue_name])
        assert row["n_scored"] == scored >= 2, (name, row, scored)
        assert math.isclose(row["accuracy"], correct / scored)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_calibrate_with_workers_calibrates_each_streams_own_model(tmp_path):
    import json

    prefix = split_prefix(2, 2, worker_of)
    pairs = [(FILES[0], f"{prefix}-0"), (FILES[1], f"{prefix}-1")]
    env, out = lsl_env(tmp_path), tmp_path / "cal"
    with cue_replays(pairs, env):
        live = live_all(tmp_path, env, "--workers", "2", "--markers", "auto", "--calibrate",
                        "--calib-trials", "4", "--calib-layers", "head", "--calib-out", str(out))
        ends = {}
        for _, name in pairs:
            end = rf"calibration motor_imagery@{re.escape(name)}: (swapped|kept|failed)"
            m = live.wait_for(end, timeout=200)[0]
            ends[name] = m.group(1)
        if "swapped" in ends.values():  # a decision of the swapped model
            live.wait_for(r"#\d+ .* v1$", timeout=20)
        rc, err = live.stop(signal.SIGTERM)
    assert rc == 0 and "Traceback" not in err, err
    assert set(ends.values()) <= {"swapped", "kept"}, "\n".join(live.lines[-30:])
    logged = log_by_output(tmp_path / "log.jsonl")
    for _, name in pairs:
        versions = {d["model_version"] for d in logged[f"motor_imagery@{name}"]}
        if ends[name] == "swapped":  # its own copy, saved in its own folder, for it alone
            meta = json.loads((out / name / "model.json").read_text())
            assert f'"name": "{name}"' in json.dumps(meta)  # provenance: its EEG stream
            assert versions == {0, 1}
        else:
            assert versions == {0}, (name, ends)

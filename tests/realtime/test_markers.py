"""Truth from a marker stream: the marker map, the cue timeline, and live accuracy from a separate
replay's markers agreeing with the offline labels of the same windows."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
import yaml

from eegmamba import TaskSpec, create_model
from eegmamba._checks import UserInputError
from eegmamba.checkpoint import save_checkpoint
from eegmamba.profiles import Profile, load_profile
from realtime.stream.markers import CueTimeline, MarkerMap, parse_marker_map

pytestmark = pytest.mark.timeout(120)


def _profile(classes=("rest", "left", "right"), labels=None) -> Profile:
    d = load_profile("motor_imagery").to_dict()
    d["classes"] = list(classes)
    d.pop("augmentation", None)  # the shipped one swaps left_fist/right_fist, classes renamed here
    d["labels"] = labels or [{"description": ["T0"], "class": "rest"},
                             {"description": ["T1"], "class": "left"},
                             {"description": ["T2"], "class": "right"}]
    return Profile.from_dict(d, source="test")


def test_marker_map_rules_class_names_and_overrides():
    m = MarkerMap(_profile())
    assert (m("T1"), m(" T2 "), m("left"), m("stim 7")) == ("left", "right", "left", None)
    m = MarkerMap(_profile(), {"T0": "ignore", "stim 7": "right"})
    assert (m("T0"), m("stim 7")) == ("ignore", "right")
    with pytest.raises(UserInputError, match="'up' is not a class"):
        MarkerMap(_profile(), {"T1": "up"})
    with pytest.raises(UserInputError, match="MARKER=CLASS"):
        parse_marker_map(["T1"])
    assert parse_marker_map(["a=b=left"]) == {"a=b": "left"}


def test_marker_meaning_that_depends_on_the_run_must_be_resolved():
    labels = [{"description": ["T1"], "class": "left", "runs": [4, 8]},
              {"description": ["T1"], "class": "right", "runs": [6]}]
    with pytest.raises(UserInputError, match=r"marker 'T1' means left \(runs 4, 8\) or right"):
        MarkerMap(_profile(labels=labels))
    assert MarkerMap(_profile(labels=labels), run=6)("T1") == "right"
    assert MarkerMap(_profile(labels=labels), {"T1": "left"})("T1") == "left"


def test_timeline_durations_open_cues_and_the_whole_window_rule():
    tl = CueTimeline(MarkerMap(_profile()))
    tl.add("T1", 10.0, 4.0)  # left on [10, 14)
    tl.add("T0", 14.0, 4.0)  # rest on [14, 18)
    tl.add("T2", 18.0)  # right, open until the next marker
    assert tl.cue_at(10.5, 13.9)[0].cls == "left"
    assert tl.cue_at(12.0, 15.0) == (None, "straddles_label_change")
    assert tl.truth(9.0, 11.0) is None and tl.cue_at(9.0, 11.0)[1] == "partly_unlabelled"
    assert tl.truth(20.0, 60.0) == "right"  # open cue
    tl.add("stop", 21.0)  # an unknown marker ends it
    assert tl.truth(20.0, 22.0) is None and tl.truth(18.5, 20.9) == "right"
    assert tl.counts == {"left": 1, "rest": 1, "right": 1, "unknown": 1}
    late = CueTimeline(MarkerMap(_profile()), max_cue_s=2.0)
    late.add("T1", 5.0)
    late.add("T2", 3.0)  # out of order: inserted before, ends where the later one starts
    assert late.truth(3.1, 4.9) == "right" and late.truth(5.1, 6.9) == "left"
    assert late.truth(5.1, 7.1) is None


def test_window_edges_within_half_a_sample_of_a_cue_edge_are_that_sample():
    # a window starting on a cue's onset sample, its time computed by other float arithmetic
    exact = CueTimeline(MarkerMap(_profile()))
    tol = CueTimeline(MarkerMap(_profile()), tolerance_s=0.5 / 160)
    for tl in (exact, tol):
        tl.add("T1", 1000.0, 4.0)
        tl.add("T0", 1004.0, 4.0)
    early = 1000.0 - 1e-9
    assert exact.truth(early, 1002.0) is None
    assert tol.truth(early, 1002.0) == "left"
    assert tol.truth(1002.0, 1004.0 + 1e-9) == "left"  # ends on the next cue's onset sample - tiny
    assert tol.truth(1000.0 - 1 / 160, 1002.0) is None  # a whole sample before: partly unlabelled
    assert tol.truth(1002.0, 1004.0 + 1 / 160) is None  # a whole sample into the rest cue


def _after_replay(replay, extra_s: float):
    """A ``should_stop`` that turns True ``extra_s`` seconds after the replay finished."""
    end = []

    def stop() -> bool:
        if replay.running:
            return False
        if not end:
            end.append(time.monotonic() + extra_s)
        return time.monotonic() > end[0]

    return stop


def _checkpoint(tmp_path, profile: Profile):
    torch.manual_seed(0)
    model = create_model("eegmamba_tiny", tasks=[TaskSpec(
        profile.task, profile.n_channels, profile.window_samples, len(profile.classes),
        profile.sfreq, profile.channels.names, profile.classes)]).eval()
    return save_checkpoint(tmp_path / "ck", model, {})


def test_live_accuracy_from_an_external_marker_stream_matches_the_offline_labels(
        tmp_path, player, mi_recording):
    from eegmamba.data.dataset import window_label
    from eegmamba.data.labels import sample_labels
    from eegmamba.data.readers import read_recording
    from eegmamba.windowing import Window
    from realtime.session import Session, SessionOptions

    d = load_profile("motor_imagery").to_dict()
    d["window"] = {"length_s": 2.0, "hop_s": 0.5, "train_hop_s": 0.5}
    d["smoothing"] = {"method": "none", "k": 1}
    prof_path = tmp_path / "mi2s.yaml"
    prof_path.write_text(yaml.safe_dump(d))
    profile = load_profile(prof_path)
    ck = _checkpoint(tmp_path, profile)
    speed = 4.0
    replay = player(mi_recording, speed=speed, wait_for_consumer_s=10.0, wait_for_markers=True)
    replay.start()  # a separate player: the session only knows the streams' names
    log = tmp_path / "decisions.jsonl"
    session = Session(SessionOptions(profiles=[str(prof_path)], checkpoints=[str(ck)],
                                     stream=replay.name, markers=replay.marker_name, marker_run=4,
                                     device="cpu", log=str(log)))
    try:
        session.loop.run(90, should_stop=_after_replay(replay, 1.5))
        snap = session.loop.snapshot()
    finally:
        session.close()
    decisions = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(decisions) > 40 and all(d["model_version"] == 0 for d in decisions)
    assert replay.n_markers_pushed == len(replay.marker_onsets) == session.timelines[0].n_markers
    # offline: the file's labels under each decided window (times mapped back to the file)
    rec = read_recording(mi_recording, profile)
    labels = sample_labels(rec, profile)
    scored = correct = 0
    for dec in decisions:
        t0, t1 = ((dec["t_start"] - replay.t0) * speed, (dec["t_end"] - replay.t0) * speed)
        k, reason = window_label(Window(np.zeros(0), t0, t1, 0, 0), labels, rec.sfreq)
        live = session.timelines[0].truth(dec["t_start"], dec["t_end"])
        assert (live is None) == (reason is not None), (t0, t1, live, reason)
        if live is not None:
            assert live == profile.classes[k]
            scored += 1
            correct += live == dec["label"]
    p = snap.profiles[0]
    assert p.n_scored == scored > 10 and math.isclose(p.accuracy, correct / scored)
    assert sum(p.confusion.values()) == scored and p.scored
    assert p.accuracy_by_round == {0: (correct / scored, scored)}
    assert sum(t is not None for t in p.truth_history) > 0
    stream_names = {s.name for s in snap.streams}
    assert {replay.name, replay.marker_name} <= stream_names

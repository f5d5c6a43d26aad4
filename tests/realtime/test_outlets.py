"""Decision outlets read back by pylsl on loopback, and the JSON-lines log."""

from __future__ import annotations

import json
import time

import numpy as np
import pylsl
import pytest

from eegmamba._checks import UserInputError
from realtime.loop.outlets import Decision, DecisionLog, DecisionOutlets

pytestmark = pytest.mark.timeout(30)

CLASSES = ("left", "right", "rest")


def _decision(profile: str, seq: int) -> Decision:
    p = np.array([0.2 + 0.1 * (seq % 3), 0.5, 0.3 - 0.1 * (seq % 3)])
    probs = dict(zip(CLASSES, p.tolist()))
    t_end = 1000.0 + 0.5 * seq
    return Decision(profile, CLASSES[int(np.argmax(p))], probs, t_end - 4.0, t_end, 3.0 + seq, seq)


def _pull(inlet: pylsl.StreamInlet, n: int, timeout: float = 15.0, **kwargs) -> tuple[list, list]:
    """Pull until ``n`` samples came (one pull_chunk may return part of them on a loaded machine)."""
    samples, stamps = [], []
    deadline = time.monotonic() + timeout
    while len(stamps) < n and time.monotonic() < deadline:
        x, ts = inlet.pull_chunk(timeout=0.5, max_samples=n - len(stamps), **kwargs)
        samples += list(x)
        stamps += list(ts)
    return samples, stamps


def test_marker_and_probability_streams_read_back(unique_name, find_stream, tmp_path):
    profile = unique_name.replace("t-", "p")
    log = DecisionLog(tmp_path / "decisions.jsonl")
    with DecisionOutlets(profile, CLASSES, log=log) as outlets:
        minfo, pinfo = find_stream(f"eegmamba-{profile}", 15), find_stream(f"eegmamba-{profile}-probs", 15)
        assert (minfo.type(), minfo.channel_count(), minfo.nominal_srate()) == ("Markers", 1, 0.0)
        assert minfo.channel_format() == pylsl.cf_string
        assert (pinfo.channel_count(), pinfo.channel_format()) == (3, pylsl.cf_float32)
        markers, probs = pylsl.StreamInlet(minfo), pylsl.StreamInlet(pinfo)
        assert list(probs.info(timeout=5).get_channel_labels()) == list(CLASSES)
        markers.open_stream(5)
        probs.open_stream(5)
        sent = [_decision(profile, k) for k in range(5)]
        for d in sent:
            outlets.push(d)
        m, mts = _pull(markers, 5)
        p, pts = _pull(probs, 5, as_numpy=True)
    log.close()
    got = [json.loads(s[0]) for s in m]
    assert [set(g) for g in got] == [{"profile", "label", "probs", "t_start", "t_end", "latency_ms", "seq",
                                      "model_version"}] * 5
    assert [Decision(**g) for g in got] == sent
    assert [g["seq"] for g in got] == list(range(5)) and list(got[0]["probs"]) == list(CLASSES)
    np.testing.assert_allclose(mts, [d.t_end for d in sent])
    np.testing.assert_allclose(pts, [d.t_end for d in sent])
    np.testing.assert_allclose(p, [[d.probs[c] for c in CLASSES] for d in sent], rtol=1e-6)
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    assert [Decision.from_json(line) for line in lines] == sent and log.n_written == 5


def test_a_note_is_logged_once_per_key(tmp_path):
    log = DecisionLog(tmp_path / "decisions.jsonl")
    assert log.note("quality mi", "mi: no decision ... (flat 4)")
    assert not log.note("quality mi", "mi: no decision ... (flat 9)")  # same key: not again
    assert log.note("quality sleep", "sleep: no decision")
    log.close()
    assert not log.note("quality eeg", "after close: nothing")
    lines = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert lines == [{"note": "quality mi", "message": "mi: no decision ... (flat 4)"},
                     {"note": "quality sleep", "message": "sleep: no decision"}]
    assert log.n_written == 0  # decisions only


def test_close_removes_streams_and_rejects_pushes(unique_name, find_stream):
    profile = unique_name.replace("t-", "q")
    outlets = DecisionOutlets(profile, CLASSES)
    find_stream(f"eegmamba-{profile}")
    outlets.close()
    with pytest.raises(RuntimeError, match="closed"):
        outlets.push(_decision(profile, 0))
    names = {i.name() for i in pylsl.resolve_streams(wait_time=1.0)}
    assert f"eegmamba-{profile}" not in names and f"eegmamba-{profile}-probs" not in names


def test_bad_decisions_and_profiles_rejected(unique_name, tmp_path):
    profile = unique_name.replace("t-", "r")
    with pytest.raises(ValueError, match="profile name"):
        DecisionOutlets("bad name!", CLASSES)
    with pytest.raises(ValueError, match="unique"):
        DecisionOutlets(profile, ("a", "a"))
    with DecisionOutlets(profile, CLASSES) as outlets:
        good = _decision(profile, 0)
        with pytest.raises(ValueError, match="probs keys"):
            outlets.push(Decision(profile, "left", {"left": 1.0}, 0.0, 1.0, 1.0, 0))
        with pytest.raises(ValueError, match="not one of"):
            outlets.push(Decision(profile, "up", good.probs, 0.0, 1.0, 1.0, 0))
        with pytest.raises(ValueError, match="pushed to"):
            outlets.push(Decision("other", "left", good.probs, 0.0, 1.0, 1.0, 0))
        assert outlets.n_pushed == 0
    with pytest.raises(UserInputError, match="log directory"):
        DecisionLog(tmp_path / "missing" / "log.jsonl")

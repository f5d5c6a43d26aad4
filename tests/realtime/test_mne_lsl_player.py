"""mne-lsl's ``PlayerLSL`` — the fake headset most Python EEG users reach for — into the live loop.

The real player (mne-lsl, a dependency) plays a shared EEGMMIDB recording read with MNE, the way its
documentation shows: ``PlayerLSL(raw, chunk_size=10, annotations=True)``. Its stream declares each
channel's unit the mne-lsl way (``0``: volts, MNE's ``unit_mul``), type ``eeg``, float64; its
annotations go to ``<name>-annotations`` one-hot encoded. The session ``eegmamba-live --profile
motor_imagery --stream NAME --markers NAME-annotations`` builds must read the samples as volts, decide
every window the offline path decides with the same probabilities (the offline path is what the
in-process replay is asserted equal to, ``test_live.py``), and score them from the annotation stream.
"""

from __future__ import annotations

import time

import mne
import numpy as np
import pytest
import torch

from eegmamba.checkpoint import load_checkpoint
from eegmamba.data.dataset import segment_label
from eegmamba.data.labels import sample_labels
from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from eegmamba.training.trainer import predict_proba
from eegmamba.windowing import window_recording
from realtime.session import DEMO_CHECKPOINT, DEMO_PROFILE, Session, SessionOptions

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

SECONDS = 45.0  # of the recording, played in real time (PlayerLSL has no speed option)


def test_player_lsl_stream_gets_the_offline_decisions_and_its_annotations_score_them(
        shared_data, unique_name):
    from mne_lsl.player import PlayerLSL

    torch.set_num_threads(1)
    path = shared_data / "motor_imagery" / "S001R04.edf"
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error").crop(0, SECONDS)
    player = PlayerLSL(raw, chunk_size=10, n_repeat=1, name=unique_name, source_id=unique_name,
                       annotations=True)
    player.start()
    chunks, decisions = [], []
    try:
        session = Session(SessionOptions(
            profiles=[DEMO_PROFILE], checkpoints=[str(DEMO_CHECKPOINT)], stream=unique_name,
            markers=f"{unique_name}-annotations", device="cpu", resolve_timeout_s=10.0))
        try:
            inlet = session.acquisition.inlets[0]
            session.loop.taps.setdefault(inlet.key, []).append(
                lambda cs, hold: chunks.extend((c[0].copy(), c[1].copy()) for c in cs))
            session.loop.on_decision = decisions.append
            end = time.monotonic() + SECONDS + 30
            while time.monotonic() < end:
                session.loop.run(0.5)
                h = inlet.health()
                if h.n_samples and h.last_sample_age_s > 1.5:  # the player reached the end
                    break
            snap = session.snapshot()
            timeline = session.timelines[0]
        finally:
            session.close()
    finally:
        if player.running:  # it stops by itself at the end of the recording (n_repeat=1)
            player.stop()

    stream = snap.streams[0]
    assert stream.units == "V" and stream.hold is None and stream.message is None
    # the samples arrive whole, converted from volts to µV: a contiguous stretch of the file
    x = np.concatenate([c[0] for c in chunks], axis=1)
    ts = np.concatenate([c[1] for c in chunks])
    file_uv = raw.get_data() * 1e6
    k0 = int(np.flatnonzero(np.all(file_uv == x[:, :1], axis=0))[0])
    np.testing.assert_array_equal(x, file_uv[:, k0:k0 + x.shape[1]])

    # offline: the profile's channels of the same samples, preprocessed and windowed from k0 on
    profile = load_profile(DEMO_PROFILE)
    rec = read_recording(path, profile)
    data = rec.data[:, k0:k0 + x.shape[1]]
    windows, _ = window_recording(data, rec.sfreq, None, profile)
    by_start = {w.sample_start: w for w in windows}
    model, _ = load_checkpoint(DEMO_CHECKPOINT, device="cpu")
    stats = snap.profiles[0]
    assert len(decisions) == stats.n_decisions >= 0.7 * len(windows) > 40
    assert set(stats.drops) <= {"stale", "shutdown"}  # a start-up backlog at most: no quality drop
    ratio = profile.sfreq / rec.sfreq  # output samples per input sample (200 / 160)

    def start_of(d) -> int:  # the window's first output sample, counted from the first received
        return round(round((d.t_start - ts[0]) * rec.sfreq) * ratio)

    offline = predict_proba(model, np.stack([by_start[start_of(d)].data for d in decisions]),
                            profile.name, torch.device("cpu"))
    live = np.array([list(d.probs.values()) for d in decisions])
    assert np.abs(live - offline).max() < 1e-4
    assert [d.label for d in decisions] == [profile.classes[i] for i in offline.argmax(1)]

    # scored from the player's annotation stream (one-hot T0/T1/T2 with durations): a scored
    # decision has the class the file's own labels give its window, and the live accuracy is theirs
    assert timeline.n_markers >= 8 and set(timeline.counts) <= {"left_fist", "right_fist", "ignore"}
    labels = sample_labels(rec, profile)[k0:k0 + x.shape[1]]

    def file_label(d) -> str | None:  # the offline rule on the window's input samples
        s = start_of(d)
        a, b = int(s / ratio), int((s + profile.window_samples - 1) / ratio)
        k, reason = segment_label(labels[a:b + 1])
        return None if reason is not None else profile.classes[k]

    scored = [(d, timeline.truth(d.t_start, d.t_end)) for d in decisions]
    scored = [(d, t) for d, t in scored if t is not None]
    assert len(scored) == stats.n_scored >= 10
    assert all(file_label(d) == t for d, t in scored)
    correct = sum(d.label == t for d, t in scored)
    assert stats.accuracy == pytest.approx(correct / len(scored), abs=1e-12)
    # from the first cue received on (earlier ones were sent before the session subscribed), every
    # window the file labels is scored
    first_cue = timeline.cues()[0].onset
    assert len(scored) == sum(file_label(d) is not None for d in decisions if d.t_start >= first_cue)


def test_one_hot_annotation_samples_become_cues_with_their_durations():
    """``PlayerLSL``'s encoding: one channel per description, the value the duration (-1: none)."""
    from realtime.stream.markers import CueTimeline, MarkerMap

    tl = CueTimeline(MarkerMap(load_profile(DEMO_PROFILE)), one_hot=["T0", "T1", "T2"])
    samples = np.array([[4.2, 0.0, 0.0], [0.0, 4.1, 0.0], [0.0, 0.0, -1.0]])  # (channels, n)
    tl.add_chunk(samples, np.array([10.0, 14.2, 20.0]))
    cues = tl.cues()
    assert [(c.text, c.cls) for c in cues] == [("T0", "ignore"), ("T1", "left_fist"), ("T2", "right_fist")]
    assert [c.end for c in cues[:2]] == [pytest.approx(14.2), pytest.approx(18.3)]
    assert tl.truth(15.0, 18.0) == "left_fist" and tl.truth(18.5, 19.5) is None

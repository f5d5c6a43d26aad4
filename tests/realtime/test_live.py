"""The live loop end to end over real LSL on loopback: replayed recordings in, decisions out.

Models are small random-initialised checkpoints: these tests check plumbing, counts, timing and
online == offline equality, not accuracy.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
import torch
import yaml

from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import save_checkpoint
from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from eegmamba.windowing import window_recording
from realtime.stream.acquisition import Acquisition, AcquisitionConfig, StreamQuery
from realtime.loop.inference import InferenceEngine
from realtime.loop.live import LiveLoop
from realtime.loop.pipeline import ProfilePipeline

pytestmark = pytest.mark.timeout(120)


def _profile_file(tmp_path: Path, base: str, **changes) -> Path:
    d = load_profile(base).to_dict()
    for key, value in changes.items():
        d[key] = value
    path = tmp_path / f"{base}_test.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def _checkpoint(tmp_path: Path, profile_path: Path, seed: int = 0) -> Path:
    p = load_profile(profile_path)
    torch.manual_seed(seed)
    spec = TaskSpec(p.task, p.n_channels, p.window_samples, len(p.classes), p.sfreq,
                    p.channels.names, p.classes)
    model = create_model("eegmamba_tiny", tasks=[spec]).eval()
    return save_checkpoint(tmp_path / f"ck_{p.name}_{seed}", model, {"profile": p.to_dict()})


def _ours(name: str) -> pylsl.StreamInfo:
    """The stream ``name`` published by this process (its source id ends with our pid): other test
    runs on the same machine publish streams of the same name."""
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        found = [i for i in pylsl.resolve_byprop("name", name, timeout=1.0)
                 if i.source_id().rsplit(":", 1)[-1].split("-")[0] == str(os.getpid())]
        if found:
            return found[0]
    raise AssertionError(f"no stream {name} of this process")


class Reader:
    """Reads a decision marker stream and its probability stream with plain pylsl."""

    def __init__(self, name: str) -> None:
        self.markers = pylsl.StreamInlet(_ours(name))
        self.markers.open_stream(timeout=5.0)
        self.probs = pylsl.StreamInlet(_ours(f"{name}-probs"))
        self.probs.open_stream(timeout=5.0)
        self.decisions: list[dict] = []
        self.marker_ts: list[float] = []
        self.prob_rows: list[list[float]] = []

    def pull(self) -> None:
        while True:
            samples, ts = self.markers.pull_chunk(timeout=0.0)
            if not ts:
                break
            self.decisions.extend(json.loads(s[0]) for s in samples)
            self.marker_ts.extend(ts)
        while True:
            rows, ts = self.probs.pull_chunk(timeout=0.0)
            if not ts:
                break
            self.prob_rows.extend(rows)


def _build(replay, profile_paths, checkpoints, delay_s=0.0, stall_s=2.0, on_timing=None, **loop_args):
    acq = Acquisition(AcquisitionConfig(stall_s=stall_s))
    inlet = acq.add(StreamQuery(name=replay.name), timeout=10.0)
    engine = InferenceEngine("cpu", delay_s=delay_s)
    pipelines = []
    for pp, ck in zip(profile_paths, checkpoints):
        m = engine.load(ck)
        pipelines.append(ProfilePipeline(load_profile(pp), inlet.key, inlet.ch_names, inlet.sfreq, m.key))
    engine.warm_up(1)
    return acq, engine, LiveLoop(acq, engine, pipelines, on_timing=on_timing, **loop_args)


def _run_until_done(loop, replay, readers, extra_s=1.5, limit_s=90):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        loop.run(0.2)
        for r in readers:
            r.pull()
        if not replay.running:
            break
    loop.run(extra_s)
    time.sleep(0.3)
    for r in readers:
        r.pull()


def test_online_equals_offline_and_every_window_counted(tmp_path, player, mi_recording):
    prof = _profile_file(tmp_path, "motor_imagery", smoothing={"method": "none", "k": 1})
    ck = _checkpoint(tmp_path, prof)
    replay = player(mi_recording, speed=8.0, chunk_size=16, wait_for_consumer_s=10.0, markers=False)
    replay.start()
    timings = []
    acq, engine, loop = _build(replay, [prof], [ck], on_timing=timings.append)
    name = loop.outputs[0].name
    reader = Reader(f"eegmamba-{name}")
    with acq:
        _run_until_done(loop, replay, [reader])
    loop.close()
    out = loop.outputs[0]
    pipe = out.pipeline
    drops = pipe.all_drops()
    # every window produced is either published or counted as dropped; none waits for the checks:
    # units and rate are verified (2 s of stream) before the first window is complete (3-4 s)
    assert pipe.n_windows == out.seq + drops["stale"] + drops["shutdown"]
    assert "unverified" not in drops
    assert len(reader.decisions) == out.seq > 10
    # schema, order and timestamps
    seqs = [d["seq"] for d in reader.decisions]
    assert seqs == list(range(len(seqs)))
    for d, ts in zip(reader.decisions, reader.marker_ts):
        assert set(d) == {"profile", "label", "probs", "t_start", "t_end", "latency_ms", "seq",
                          "model_version"}
        assert list(d["probs"]) == list(load_profile(prof).classes)
        assert abs(sum(d["probs"].values()) - 1) < 1e-5 and d["label"] in d["probs"]
        assert math.isclose(ts, d["t_end"], abs_tol=1e-6)
        length_s = load_profile(prof).window.length_s
        assert d["t_end"] - d["t_start"] == pytest.approx(length_s / replay.speed, abs=0.02)
    assert len(reader.prob_rows) == len(reader.decisions)
    # stage times, one record per decision, in order on the local clock: the replay stamps a sample
    # with the time it is due and pushes it then or later, so due <= arrival <= preprocessed <= ...
    assert [t.seq for t in timings] == seqs and all(t.output == name and t.batch >= 1 for t in timings)
    for t, d in zip(timings, reader.decisions):
        period = 1 / (160 * replay.speed)  # source: the newest input sample at or before t_end
        assert d["t_end"] - period < t.source <= d["t_end"]
        assert t.source - 1e-4 <= t.arrival <= t.preprocessed <= t.inferred <= t.pushed

    # offline: the same preprocessing + windowing + model on the whole file
    profile = load_profile(prof)
    rec = read_recording(mi_recording, profile)
    windows, off_drops = window_recording(rec.data, rec.sfreq, None, profile)
    unclassified = drops["stale"] + drops["shutdown"]
    assert pipe.n_windows + sum(drops.values()) - unclassified == len(windows) + sum(off_drops.values())
    by_start = {w.sample_start: w for w in windows}
    model = engine.models[pipe.model_key].model
    starts = []
    for d in reader.decisions:
        k = round((d["t_start"] - replay.t0) * replay.sfreq * replay.speed)  # input sample index
        starts.append(round(k * profile.sfreq / replay.sfreq))  # output sample index
    x = torch.from_numpy(np.stack([by_start[s].data for s in starts]))
    with torch.no_grad():
        offline = torch.softmax(model(x), -1).numpy()
    live = np.array([list(d["probs"].values()) for d in reader.decisions])
    assert np.abs(live - offline).max() <= 1e-4
    assert [profile.classes[i] for i in offline.argmax(1)] == [d["label"] for d in reader.decisions]


def test_two_profiles_on_one_stream(tmp_path, player, short_recording):
    seiz = _profile_file(tmp_path, "seizure")
    seiz2 = tmp_path / "seizure_b.yaml"
    d = yaml.safe_load(seiz.read_text())
    d["name"] = "seizure_b"
    d["window"] = {"length_s": 2.0, "hop_s": 0.5, "train_hop_s": 0.5}
    seiz2.write_text(yaml.safe_dump(d))
    cks = [_checkpoint(tmp_path, seiz), _checkpoint(tmp_path, seiz2, seed=1)]
    replay = player(short_recording, speed=2.0, wait_for_consumer_s=10.0, markers=False)
    replay.start()
    acq, engine, loop = _build(replay, [seiz, seiz2], cks)
    readers = [Reader(f"eegmamba-{o.name}") for o in loop.outputs]
    with acq:
        _run_until_done(loop, replay, readers)
    loop.close()
    for o, r in zip(loop.outputs, readers):
        assert len(r.decisions) == o.seq > 0
        assert o.pipeline.n_windows == o.seq + sum(o.pipeline.all_drops().values())
    # a 2-s window every 0.5 s over 10 s makes more windows than a 4-s one every 1 s
    assert loop.outputs[1].pipeline.n_windows > loop.outputs[0].pipeline.n_windows


def test_slow_model_drops_stale_windows_and_latency_stays_bounded(tmp_path, player, mi_recording):
    prof = _profile_file(tmp_path, "motor_imagery")
    ck = _checkpoint(tmp_path, prof)
    replay = player(mi_recording, speed=8.0, chunk_size=16, wait_for_consumer_s=10.0, markers=False)
    replay.start()
    acq, engine, loop = _build(replay, [prof], [ck], delay_s=0.3)  # hop is 0.5/8 s: far too slow
    with acq:
        loop.run(6.0)
    loop.close()
    o = loop.outputs[0]
    drops = o.pipeline.all_drops()
    assert drops["stale"] > 0 and set(drops) <= {"stale", "shutdown"}
    assert o.pipeline.n_windows == o.seq + sum(drops.values())  # classified or counted
    lat = o.latency.snapshot()
    # newest-only keeps latency near one inference (0.3 s) plus one step, not growing with the backlog
    assert lat.p99_ms < 1200


@pytest.mark.parametrize("budget_s, batched", [(5.0, True), (1e-4, False)])
def test_streams_sharing_a_checkpoint_are_batched(tmp_path, player, mi_recording, budget_s, batched):
    """Three streams, one checkpoint, a slow model: waiting windows of different streams go into one
    inference batch (up to the batch budget; one at a time with a tiny budget); every window is
    classified or counted; each stream keeps getting decisions (oldest waiting first)."""
    prof = _profile_file(tmp_path, "motor_imagery")
    ck = _checkpoint(tmp_path, prof)
    replays = [player(mi_recording, speed=4.0, chunk_size=16, markers=False, wait_for_consumer_s=10.0)
               for _ in range(3)]
    for r in replays:
        r.start()
    acq = Acquisition()
    inlets = [acq.add(StreamQuery(name=r.name), timeout=10.0) for r in replays]
    engine = InferenceEngine("cpu", delay_s=0.15)
    m = engine.load(ck)
    pipelines = [ProfilePipeline(load_profile(prof), i.key, i.ch_names, i.sfreq, m.key) for i in inlets]
    batches = []
    loop = LiveLoop(acq, engine, pipelines, on_timing=lambda t: batches.append(t.batch),
                    batch_budget_s=budget_s)
    with acq:
        loop.run(6.0)
    loop.close()
    assert (max(batches) >= 2) == batched and len(batches) > 6
    for o in loop.outputs:
        drops = o.pipeline.all_drops()
        assert o.seq > 0 and set(drops) <= {"stale", "shutdown"}
        assert o.pipeline.n_windows == o.seq + sum(drops.values())


def test_nan_injection_drops_windows_as_nonfinite(tmp_path, player):
    from eegmamba.testing.synthetic_edf import make_synthetic_edf

    prof = _profile_file(tmp_path, "seizure", smoothing={"method": "none", "k": 1})
    profile = load_profile(prof)
    path = tmp_path / "syn.edf"
    make_synthetic_edf(path, len(profile.channels.names), 256.0, 20.0, ["background", "seizure"],
                       ch_names=list(profile.channels.names))
    ck = _checkpoint(tmp_path, prof)
    replay = player(path, speed=4.0, wait_for_consumer_s=10.0, markers=False)
    replay._data[256 * 8: 256 * 9, 3] = np.nan  # one second of NaN on one channel
    replay.start()
    acq, engine, loop = _build(replay, [prof], [ck])
    with acq:
        _run_until_done(loop, replay, [])
    loop.close()
    drops = loop.outputs[0].pipeline.all_drops()
    assert drops["nonfinite"] >= 4  # every 4-s window (hop 1 s) touching the NaN second
    assert loop.outputs[0].seq > 0


def test_wrong_channel_count_is_a_clear_error(tmp_path, player, short_recording):
    prof = _profile_file(tmp_path, "motor_imagery")
    ck = _checkpoint(tmp_path, prof)
    replay = player(short_recording, wait_for_consumer_s=0.0)
    replay.start()
    acq = Acquisition()
    inlet = acq.add(StreamQuery(name=replay.name), timeout=10.0)
    engine = InferenceEngine("cpu")
    m = engine.load(ck)
    with pytest.raises(ValueError, match=r"does not fit profile 'motor_imagery'.*missing channel"):
        ProfilePipeline(load_profile(prof), inlet.key, inlet.ch_names, inlet.sfreq, m.key)
    acq.stop()


def test_stream_killed_and_restarted_reconnects(tmp_path, player, short_recording):
    prof = _profile_file(tmp_path, "seizure")
    ck = _checkpoint(tmp_path, prof)
    first = player(short_recording, speed=1.0, source_id="src-restart", repeat=math.inf,
                   wait_for_consumer_s=10.0, markers=False)
    first.start()
    acq, engine, loop = _build(first, [prof], [ck], stall_s=1.0)
    with acq:
        loop.run(5.0)
        before = loop.outputs[0].seq
        first.stop()  # the outlet disappears
        loop.run(2.5)
        assert acq.health()[0].state == "lost"
        second = player(short_recording, name=first.name, source_id="src-restart", repeat=math.inf)
        second.start()
        loop.run(7.0)
        h = acq.health()[0]
    loop.close()
    assert h.state == "ok" and h.n_losses >= 1 and h.n_reconnects >= 1
    assert loop.n_stream_resets >= 1
    assert loop.outputs[0].seq > before  # decisions resumed after the reconnect


def test_wait_for_data_wakes_on_a_chunk(player, short_recording):
    """The acquisition thread signals queued chunks: ``wait_for_data`` returns True while a stream
    flows and False (after its timeout) once it stopped and the queue was drained."""
    replay = player(short_recording, speed=1.0, wait_for_consumer_s=10.0, markers=False)
    replay.start()
    acq = Acquisition()
    inlet = acq.add(StreamQuery(name=replay.name), timeout=10.0)
    with acq:
        assert acq.wait_for_data(10.0)
        assert inlet.drain()
        assert acq.wait_for_data(2.0)  # the stream keeps pushing chunks
        replay.stop()
        time.sleep(0.5)
        acq.wait_for_data(0.0)
        inlet.drain()
        assert not acq.wait_for_data(0.3)


def test_priming_runs_while_idle_and_switch_interval_is_restored(tmp_path, player, mi_recording):
    """With one slow stream the model is idle between windows: the loop primes it before each is
    due, and publishes as usual; Python's switch interval is the loop's while it runs, then back."""
    import sys

    prof = _profile_file(tmp_path, "motor_imagery")
    ck = _checkpoint(tmp_path, prof)
    before = sys.getswitchinterval()
    counts = {}
    for prime in (0.003, None):
        replay = player(mi_recording, speed=2.0, wait_for_consumer_s=10.0, markers=False)
        replay.start()
        intervals = []
        acq, engine, loop = _build(replay, [prof], [ck], prime_lead_s=prime,
                                   on_decision=lambda d: intervals.append(sys.getswitchinterval()))
        with acq:
            loop.run(5.0)
        loop.close()
        replay.stop()
        assert loop.outputs[0].seq >= 4 and set(intervals) == {0.0005}
        assert sys.getswitchinterval() == before
        counts[prime] = loop.n_primed
    assert counts[0.003] >= 3 and counts[None] == 0

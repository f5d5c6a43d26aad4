"""Streams that are not what they claim, end to end on loopback: a scripted pylsl outlet
(``eegmamba/testing/fault_outlet.py``) streams EEGMMIDB S001R04 with one fault, and the live session that
``eegmamba-live`` builds classifies it with a small random checkpoint. Asserted: decisions, drop
reasons and counts, messages — and that a clean µV stream is unaffected."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import save_checkpoint
from eegmamba.profiles import load_profile
from realtime.replay.player import load_recording
from realtime.session import Session, SessionOptions
from eegmamba.testing.fault_outlet import FaultyOutlet, Jump

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

PROFILE = "motor_imagery"
FS = 160.0
SETTLE_S = 30.0  # after the outlet stops: time the loop gets to take in what was pushed


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    p = load_profile(PROFILE)
    torch.manual_seed(0)
    spec = TaskSpec(p.task, p.n_channels, p.window_samples, len(p.classes), p.sfreq,
                    p.channels.names, p.classes)
    model = create_model("eegmamba_tiny", tasks=[spec]).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "mi", model, {"profile": p.to_dict()})


@pytest.fixture(scope="module")
def recording(shared_data):
    raw = load_recording(shared_data / "motor_imagery" / "S001R04.edf")
    return raw.get_data().T * 1e6, list(raw.ch_names)  # (n, 64) µV


class Run:
    """One outlet + one live session; decisions and the final state after ``seconds`` of stream.

    The outlet pushes for ``seconds`` of stream time; then it stops and the session runs on until
    every sample pushed has reached the pipeline and no window waits (``settled``; at most
    ``SETTLE_S``): the counts asserted are those of the samples pushed, however far a loaded
    machine let the loop fall behind."""

    def __init__(self, name, checkpoint, recording, seconds, data=None, options=None, **outlet):
        x, ch = recording
        self.outlet = FaultyOutlet(name, x if data is None else data, ch, FS, **outlet)
        opts = SessionOptions(profiles=[PROFILE], checkpoints=[str(checkpoint)], stream=name,
                              device="cpu", resolve_timeout_s=10.0, **(options or {}))
        self.session = Session(opts)
        self.decisions = []
        self.n_delivered = 0  # samples handed to the pipelines (held or not)
        loop = self.session.loop
        loop.on_decision = self.decisions.append
        loop.taps.setdefault(self.session.acquisition.inlets[0].key, []).append(self._count)
        try:
            self.outlet.start()
            speed = outlet.get("speed", 1.0)
            loop.run(seconds / speed + 0.5)
            self.outlet.halt()
            self.settled = self._settle()
            self.health = self.session.acquisition.health()[0]
            self.output = loop.outputs[0]
        finally:
            self.outlet.stop()
            self.session.close()
        self.drops = dict(self.output.pipeline.all_drops())
        self.window_s = load_profile(PROFILE).window.length_s / speed

    def _count(self, chunks, hold) -> None:
        self.n_delivered += sum(c[0].shape[1] for c in chunks)

    def _settle(self) -> bool:
        """Run the loop until every pushed sample was delivered and no window waits."""
        loop = self.session.loop
        done = lambda: self.n_delivered >= self.outlet.n_pushed and not loop.n_waiting  # noqa: E731
        deadline = time.monotonic() + SETTLE_S
        while not done() and time.monotonic() < deadline:
            loop.run(0.1, should_stop=done)
        return done()

    @property
    def n_windows(self) -> int:
        """Windows cut or dropped by the windower (everything the stream allowed so far)."""
        p = self.output.pipeline
        return p.n_windows + sum(v for k, v in self.drops.items() if k not in _AFTER_CUT)

    def spans(self) -> np.ndarray:
        return np.array([d.t_end - d.t_start for d in self.decisions])


_AFTER_CUT = {"stale", "shutdown"}  # windows cut, then dropped: counted in n_windows


def _spanning(b: int) -> int:
    """Windows of the profile holding input samples b - 1 and b (160 -> 200 Hz: 4/5)."""
    p = load_profile(PROFILE)
    length, hop = p.window_samples, p.hop_samples()
    return sum((k * hop) * 4 // 5 < b <= (k * hop + length - 1) * 4 // 5 for k in range(2000))


def _overlap(decisions, t0, t1) -> float:
    """Largest overlap (s) of a decision's window with [t0, t1]."""
    return max((min(d.t_end, t1) - max(d.t_start, t0) for d in decisions), default=-1.0)


def test_clean_microvolt_stream_is_unaffected(checkpoint, recording, unique_name):
    r = Run(unique_name, checkpoint, recording, 12.0, speed=2.0)
    assert set(r.drops) <= {"stale", "shutdown"}
    assert len(r.decisions) == r.output.seq >= 14  # (12 - 3) / 0.5 + 1 windows, minus stale
    assert r.output.pipeline.n_windows == r.output.seq + sum(r.drops.values())
    assert np.allclose(r.spans(), r.window_s - 1 / (FS * 2), atol=2e-3)
    h = r.health
    assert h.hold is None and h.message is None and h.units == "µV" and h.n_gaps == h.n_jumps == 0


def test_volts_declared_are_scaled_like_microvolts(checkpoint, recording, unique_name):
    r = Run(unique_name, checkpoint, recording, 12.0, speed=2.0, scale=1e-6, unit="volts")
    assert set(r.drops) <= {"stale", "shutdown"} and len(r.decisions) >= 14
    assert r.health.units == "V" and r.health.hold is None


def test_volts_undeclared_get_no_decision_and_a_message(checkpoint, recording, unique_name):
    r = Run(unique_name, checkpoint, recording, 10.0, speed=2.0, scale=1e-6, unit=None)
    assert r.decisions == [] and r.drops.get("units", 0) >= 12
    assert set(r.drops) <= {"units", "unverified"}
    assert r.health.hold == "units" and "looks like V; rerun with --units V" in r.health.message
    fixed = Run(unique_name + "-u", checkpoint, recording, 10.0, speed=2.0, scale=1e-6, unit=None,
                options={"units": "V"})
    assert len(fixed.decisions) >= 10 and set(fixed.drops) <= {"stale", "shutdown"}


def test_push_stamped_jitter_40ms_is_regularized(checkpoint, recording, unique_name):
    """A naive driver: chunks stamped at push time (0-40 ms late), samples back-dated."""
    r = Run(unique_name, checkpoint, recording, 14.0, stamping="push", push_jitter_s=0.04)
    assert "gap" not in r.drops and "jump" not in r.drops
    # the rate needs ~2 s of jittered stamps to settle: the first windows may wait for it
    assert len(r.decisions) >= 18 and set(r.drops) <= {"stale", "shutdown", "unverified"}
    assert r.drops.get("unverified", 0) <= 4
    assert np.allclose(r.spans(), r.window_s - 1 / FS, atol=0.02)  # regular stamps: window = 3 s
    # the raw jitter shows on the health panel (stamps late by U(0, 40 ms) per chunk, centered: p95
    # about 19 ms; the outlet stamps the scheduled push time, so load does not add to it), and the
    # raw chunks overlap
    assert 15 < r.health.jitter_p95_ms < 25 and r.health.n_backwards > 0


def test_declared_rate_not_real_rate(checkpoint, recording, unique_name):
    """Declares 128 Hz, delivers 160 Hz: no decision, counted as rate_mismatch, then accepted."""
    r = Run(unique_name, checkpoint, recording, 10.0, declared_rate=128.0, true_rate=160.0)
    assert r.decisions == [] and r.drops.get("rate_mismatch", 0) >= 5
    assert set(r.drops) <= {"rate_mismatch", "unverified"}
    assert "declares 128 Hz, delivers 160.0 Hz" in r.health.message and r.health.hold == "rate_mismatch"
    ok = Run(unique_name + "-a", checkpoint, recording, 10.0, declared_rate=128.0, true_rate=160.0,
             options={"accept_measured_rate": True})
    assert len(ok.decisions) >= 5 and ok.health.hold is None
    assert ok.output.pipeline.pre.in_sfreq == 160.0
    assert np.allclose(ok.spans(), ok.window_s - 1 / FS, atol=2e-3)  # 3 s windows, not 3.75 s


def test_time_jumps_either_way_drop_the_windows_spanning_them(checkpoint, recording, unique_name):
    r = Run(unique_name, checkpoint, recording, 20.0, speed=2.0,
            events=[Jump(int(6 * FS), 5.0), Jump(int(13 * FS), -3.0)])
    assert r.drops["jump"] == _spanning(int(6 * FS)) + _spanning(int(13 * FS)) and "gap" not in r.drops
    assert r.health.n_jumps == 2 and r.health.n_gaps == 0
    assert np.allclose(r.spans(), r.window_s - 1 / (FS * 2), atol=2e-3)  # none spans a jump
    after = [d for d in r.decisions if d.t_start > r.outlet.times[int(13 * FS)] - 3.0]
    assert len(after) >= 4  # decisions came back after the second jump


def test_partial_flatline_drops_windows_holding_a_quarter_second(checkpoint, recording, unique_name):
    x, _ = recording
    x = x.copy()
    a, b = int(6 * FS), int(10 * FS)
    x[a:b] = 0.0  # every channel at exactly 0 for 4 s
    r = Run(unique_name, checkpoint, recording, 18.0, data=x, speed=2.0)
    assert r.drops["flat_run"] >= 12
    t0, t1 = r.outlet.times[a], r.outlet.times[b - 1]
    assert _overlap(r.decisions, t0, t1) < 0.25 / 2  # stream time 0.25 s at 2x
    assert any(d.t_start > t1 for d in r.decisions) and any(d.t_end < t0 for d in r.decisions)


def test_partial_rail_drops_windows_holding_it(checkpoint, recording, unique_name):
    x, ch = recording
    x = x.copy()
    a, b = int(6 * FS), int(7 * FS)
    # one required channel on the rail (above the profile's rail_uv) for 1 s; after it the band-pass
    # takes a few seconds to settle below saturation_uv (as in training: same filter, same rule)
    x[a:b, ch.index("C3..")] = 6000.0
    r = Run(unique_name, checkpoint, recording, 16.0, data=x, speed=2.0)
    assert r.drops["rail"] >= 3 and set(r.drops) <= {"rail", "saturated", "stale", "shutdown"}
    assert _overlap(r.decisions, r.outlet.times[a], r.outlet.times[b - 1]) < 0.25 / 2
    assert sum(d.t_start > r.outlet.times[b - 1] for d in r.decisions) >= 3


def test_windows_are_all_accounted_for(checkpoint, recording, unique_name):
    """Jumps, a flat-line and stale windows together: every window is a decision or a counted drop."""
    x, _ = recording
    x = x.copy()
    x[int(9 * FS):int(10 * FS)] = 0.0
    r = Run(unique_name, checkpoint, recording, 16.0, data=x, speed=2.0,
            events=[Jump(int(5 * FS), 2.0)], options={"inference_delay_s": 0.4})
    assert r.drops["stale"] > 0 and r.drops["jump"] > 0 and r.drops["flat_run"] > 0
    assert r.settled  # every sample pushed reached the pipeline
    pushed_out = math.ceil(r.outlet.n_pushed * 200 / FS)  # output samples the stream allowed
    expected = (pushed_out - 600) // 100 + 1
    assert r.n_windows == expected
    assert r.output.pipeline.n_windows == r.output.seq + r.drops["stale"] + r.drops.get("shutdown", 0)


def test_stall_drops_the_windows_spanning_it_and_resumes(checkpoint, recording, unique_name):
    """No sample for 3 s (more than the stall limit; the samples are lost): the stream is lost; when
    it comes back the hole is a gap break, the windows spanning it are counted, decisions resume."""
    from eegmamba.testing.fault_outlet import Gap

    r = Run(unique_name, checkpoint, recording, 20.0, speed=2.0, events=[Gap(int(6 * FS), int(6 * FS))],
            options={"stall_s": 1.0})
    assert r.health.n_losses == 1 and r.health.n_reconnects == 1
    assert r.drops["gap"] == _spanning(int(6 * FS)) and r.health.n_gaps == 1
    back = r.outlet.times[int(12 * FS)]
    assert sum(d.t_start >= back for d in r.decisions) >= 8


def test_burst_after_a_pause_loses_no_window(checkpoint, recording, unique_name):
    """The outlet pauses 3 s (the stream is marked lost), then pushes the backlog with its exact
    stamps: nothing was missing, so no window is dropped for it and decisions catch up."""
    from eegmamba.testing.fault_outlet import Burst

    r = Run(unique_name, checkpoint, recording, 16.0, speed=2.0, events=[Burst(int(6 * FS), 1.5)],
            options={"stall_s": 1.0})
    assert r.health.n_losses == 1 and r.health.n_gaps == 0 and r.health.n_jumps == 0
    assert set(r.drops) <= {"stale", "shutdown"} and r.drops.get("stale", 0) >= 1  # caught up
    assert r.output.pipeline.n_windows >= 26  # (16 - 3) / 0.5 + 1 windows, none lost to the pause


def test_two_sessions_replaying_one_file_each_read_their_own():
    """Two --demo sessions on one host (two users, a test beside a demo) publish streams of the same
    name: each reads its own replay (source id of the session), so its decisions are scored on its
    own replay's clock."""
    opts = SessionOptions(demo=True, device="cpu", speed=4.0)
    a = Session(opts)
    try:
        b = Session(opts)
        try:
            assert a.replay.name == b.replay.name and a.replay.source_id != b.replay.source_id
            assert a.acquisition.inlets[0].source_id == a.replay.source_id
            assert b.acquisition.inlets[0].source_id == b.replay.source_id
            for s in (a, b):
                s.loop.run(4.0)
                assert s.loop.outputs[0].seq >= 3
        finally:
            b.close()
    finally:
        a.close()

"""``eegmamba-live --all --workers 2`` as a real process tree on LSL loopback (4 replayed
streams): the streams are shared out by their stable hash, every window is decided or counted in ONE
merged summary, a worker killed with SIGKILL comes back and its lost windows are counted
(``worker_restart``), SIGTERM to the supervisor stops every worker."""

from __future__ import annotations

import os
import re
import signal

import pytest

from realtime.serve.sharding import worker_of
from tests.realtime.serve_helpers import (between, live_all, log_by_output, lsl_env,
                                          split_prefix, summary_rows, worker_pids)

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


@pytest.fixture
def four_streams(tmp_path, mi_recording):
    from benchmarks._latency_common import stream_server

    env = lsl_env(tmp_path)
    prefix = split_prefix(4, 2, worker_of)
    with stream_server(mi_recording, prefix, 4, env=env):
        yield env, [f"{prefix}-{i}" for i in range(4)]


def test_two_workers_share_the_streams_and_account_every_window(tmp_path, four_streams):
    env, streams = four_streams
    live = live_all(tmp_path, env, "--workers", "2")
    pids = worker_pids(live)
    for s in streams:  # every stream decided
        live.wait_for(rf"@{re.escape(s)} #2 ")
    reserve = live.wait_for(r"\[workers\] reserve worker ready \(pid (\d+)\)")[0]
    pids[0] = int(reserve.group(1))
    rc, err = live.stop(signal.SIGTERM)
    out = "\n".join(live.lines)
    assert rc == 0, err
    assert "Traceback" not in err
    assert out.count("eegmamba-live summary") == 1 and "stopping (SIGTERM)" in out
    for pid in pids.values():  # every worker and the reserve ended with the supervisor
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()
    rows, logged = summary_rows(tmp_path / "summary.json"), log_by_output(tmp_path / "log.jsonl")
    assert sorted(r["stream"] for r in rows.values()) == sorted(streams)
    for name, r in rows.items():
        # each stream served by the one worker its stable hash names
        assert r["worker"] == worker_of(f"eegmamba-replay:{r['stream']}", 2) + 1
        assert r["decisions"] == len(logged[name]) >= 3
        assert set(r["drops"]) <= {"stale", "shutdown"}, r["drops"]
        # every window between the first and the last decision decided or counted
        assert between(logged[name]) == r["decisions"] + r["drops"].get("stale", 0)
        unclassified = r["drops"].get("stale", 0) + r["drops"].get("shutdown", 0)
        assert r["windows"] == r["decisions"] + unclassified


def test_a_killed_worker_comes_back_and_its_lost_windows_are_counted(tmp_path, four_streams,
                                                                     monkeypatch):
    """... and a client that opened the killed worker's marker outlets before the kill keeps
    receiving from the same pylsl inlets (the outlets are re-made with the same source id)."""
    import pylsl

    from benchmarks._marker_client import marker_client

    env, streams = four_streams
    monkeypatch.setenv("LSLAPICFG", env["LSLAPICFG"])  # the marker client joins the test's session
    live = live_all(tmp_path, env, "--workers", "2")
    pids = worker_pids(live)
    for s in streams:
        live.wait_for(rf"@{re.escape(s)} #3 ")
    live.wait_for(r"\[workers\] reserve worker ready")  # what makes a restart quick
    owned = [s for s in streams if worker_of(f"eegmamba-replay:{s}", 2) == 0]
    with marker_client([f"eegmamba-motor_imagery@{s}" for s in owned]) as received:
        n_open = len(live.lines)
        for s in owned:  # the client's inlets have received from the first worker
            live.wait_for(rf"@{re.escape(s)} #\d+ ", count=2, since=n_open)
        n_before = len(live.lines)
        t_kill = pylsl.local_clock()
        os.kill(pids[1], signal.SIGKILL)
        assert live.wait_for(r"worker 1 \(pid \d+\) died \(killed by SIGKILL\)", since=n_before)
        back = live.wait_for(r"worker 1 back \(pid (\d+)\) ([\d.]+) s after it died",
                             since=n_before)[0]
        assert float(back.group(2)) <= 2.0
        assert int(back.group(1)) != pids[1]
        for s in owned:  # its streams resume: new decisions (a window needs 3 s of samples first)
            live.wait_for(rf"@{re.escape(s)} #\d+ ", count=4, since=n_before)
    for s in owned:  # the client's inlets, opened on the dead worker's outlets, recovered
        got = received()[f"eegmamba-motor_imagery@{s}"]
        assert any(t < t_kill for _, t in got) and any(t > t_kill + 1.0 for _, t in got), got
    rc, err = live.stop(signal.SIGTERM)
    assert rc == 0, err
    assert "\n".join(live.lines).count("eegmamba-live summary") == 1
    rows, logged = summary_rows(tmp_path / "summary.json"), log_by_output(tmp_path / "log.jsonl")
    for name, r in rows.items():
        lost = r["drops"].get("worker_restart", 0)
        counted = r["decisions"] + r["drops"].get("stale", 0) + lost
        assert r["decisions"] == len(logged[name])
        if r["stream"] in owned:
            assert lost > 0
            assert abs(between(logged[name]) - counted) <= 1  # an estimate: time down x rate
        else:
            assert lost == 0 and between(logged[name]) == counted
        assert set(r["drops"]) <= {"stale", "shutdown", "worker_restart"}, r["drops"]


def test_ctrl_c_to_the_process_group_stops_every_worker_with_one_summary(tmp_path, four_streams):
    """A terminal's Ctrl-C reaches the supervisor and every worker at once: the workers leave the
    stopping to the supervisor, which collects their last decisions and prints one summary."""
    env, streams = four_streams
    live = live_all(tmp_path, env, "--workers", "2")
    pids = worker_pids(live)
    for s in streams:
        live.wait_for(rf"@{re.escape(s)} #1 ")
    rc, err = live.stop(signal.SIGINT, group=True)
    out = "\n".join(live.lines)
    assert rc == 0, err
    assert out.count("eegmamba-live summary") == 1 and "stopping (Ctrl-C)" in out
    assert "Traceback" not in err
    rows, logged = summary_rows(tmp_path / "summary.json"), log_by_output(tmp_path / "log.jsonl")
    assert sorted(r["stream"] for r in rows.values()) == sorted(streams)
    for name, r in rows.items():
        assert r["decisions"] == len(logged[name]) >= 2
        unclassified = r["drops"].get("stale", 0) + r["drops"].get("shutdown", 0)
        assert r["windows"] == r["decisions"] + unclassified
    for pid in pids.values():
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()


def test_a_hung_worker_is_killed_and_replaced(tmp_path, four_streams):
    """A worker that stops answering (SIGSTOP: no report for the supervisor's ``hang_s``, 5 s) is
    killed, reported as hung, and replaced like a dead one; its streams resume."""
    env, streams = four_streams
    live = live_all(tmp_path, env, "--workers", "2")
    pids = worker_pids(live)
    for s in streams:
        live.wait_for(rf"@{re.escape(s)} #2 ")
    live.wait_for(r"\[workers\] reserve worker ready")
    n_before = len(live.lines)
    os.kill(pids[1], signal.SIGSTOP)
    try:
        assert live.wait_for(rf"worker 1 \(pid {pids[1]}\) hung: no report for [\d.]+ s; killing it",
                             since=n_before)
        assert live.wait_for(rf"worker 1 \(pid {pids[1]}\) died \(hung: no report for", since=n_before)
        assert live.wait_for(r"worker 1 back \(pid \d+\)", since=n_before)
        owned = [s for s in streams if worker_of(f"eegmamba-replay:{s}", 2) == 0]
        for s in owned:
            live.wait_for(rf"@{re.escape(s)} #\d+ ", count=2, since=n_before)
    finally:
        if os.path.exists(f"/proc/{pids[1]}"):
            os.kill(pids[1], signal.SIGCONT)
    rc, err = live.stop(signal.SIGTERM)
    assert rc == 0, err
    rows = summary_rows(tmp_path / "summary.json")
    assert any(r["drops"].get("worker_restart", 0) > 0 for r in rows.values())

"""One ``eegmamba-live`` process serving several headsets: ``--all``, several ``--stream``, a stream
appearing later, a stream that does not fit, ``--list`` telling what ``--all`` takes, and enough LSL
ports for 40 outlets on one host. Real replayed recordings and real outlets on loopback."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pylsl
import pytest

from eegmamba.profiles import load_profile
from realtime.stream.lsl_config import package_config, with_setting
from realtime.stream.resolve import StreamQuery, StreamSelection, stream_key

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]


def _live_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "realtime.cli_live", *args]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _find(name: str, timeout: float) -> pylsl.StreamInfo:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = pylsl.resolve_byprop("name", name, timeout=0.5)
        if found:
            return found[0]
    raise AssertionError(f"no stream {name!r} within {timeout} s")


def test_all_serves_each_stream_on_its_own_outlets_and_skips_a_misfit(
        seizure_checkpoint, player, short_recording, mi_recording, tmp_path):
    """``--all`` (filtered to this test's streams: the machine is shared) serves 2 streams at once
    and a third that appears later, each on ``eegmamba-seizure@<stream>`` with its name and source id
    in every decision and in the outlet description; the 64-channel MI stream lacks the seizure
    montage: listed with the reason, not served, not fatal."""
    a, b, late = (player(short_recording, speed=2.0, repeat=math.inf, markers=False) for _ in "abl")
    misfit = player(mi_recording, repeat=math.inf, markers=False)
    for r in (a, b, misfit):
        r.start()
    log = tmp_path / "decisions.jsonl"
    names = [r.name for r in (a, b, late, misfit)]
    proc = subprocess.Popen(
        _live_cmd("--all", *[x for n in names for x in ("--stream", n)], "--profile", "seizure",
                  "--checkpoint", str(seizure_checkpoint), "--no-dashboard", "--device", "cpu",
                  "--duration", "40", "--log", str(log)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=_env())
    try:
        info = _find(f"eegmamba-seizure@{a.name}", 90)  # the session is up
        desc = pylsl.StreamInlet(info).info(timeout=5).desc().child("stream")
        assert desc.child_value("name") == a.name and desc.child_value("source_id") == a.source_id
        assert _find(f"eegmamba-seizure@{b.name}-probs", 10).type() == "Probabilities"
        late.start()  # appears while the session runs: picked up by the background resolve
        inlet = pylsl.StreamInlet(_find(f"eegmamba-seizure@{late.name}", 20))
        sample, _ = inlet.pull_sample(timeout=20)
        assert sample is not None, "no decision on the late stream's outlet"
        d = json.loads(sample[0])
        assert d["stream"] == late.name and d["stream_source_id"] == late.source_id
        assert d["profile"] == f"seizure@{late.name}"
        assert not pylsl.resolve_byprop("name", f"eegmamba-seizure@{misfit.name}", timeout=1.0)
        proc.send_signal(2)  # Ctrl-C: stops cleanly with the summary
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    decisions = [json.loads(x) for x in log.read_text().splitlines()]
    by_stream = {}
    for d in decisions:
        by_stream.setdefault(d["stream"], []).append(d)
    assert set(by_stream) == {a.name, b.name, late.name}
    for r in (a, b, late):
        got = by_stream[r.name]
        assert {d["profile"] for d in got} == {f"seizure@{r.name}"}
        assert {d["stream_source_id"] for d in got} == {r.source_id}
        assert [d["seq"] for d in got] == list(range(len(got)))  # each stream counts its own
    flat = " ".join(out.split())  # the summary table may wrap long names
    assert f"not served: stream '{misfit.name}'" in flat and "does not fit profile 'seizure'" in flat
    for r in (a, b, late):
        assert f"stream '{r.name}':" in out  # one health line per stream
    assert "Traceback" not in err


def test_several_streams_by_name_and_a_missing_one(seizure_checkpoint, player, short_recording):
    """``--stream A --stream B``: both named streams are required; one not visible is a user error
    naming it (exit 2, one line)."""
    a = player(short_recording, repeat=math.inf, markers=False).start()
    r = subprocess.run(
        _live_cmd("--stream", a.name, "--stream", f"{a.name}-absent", "--profile", "seizure",
                  "--checkpoint", str(seizure_checkpoint), "--no-dashboard", "--device", "cpu",
                  "--timeout", "2", "--duration", "3"),
        capture_output=True, text=True, timeout=120, cwd=REPO, env=_env())
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("eegmamba-live: error")]
    assert len(lines) == 1 and f"name='{a.name}-absent'" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


_OUTLETS = """
import sys, time, pylsl
from realtime.stream.lsl_config import quiet_liblsl
quiet_liblsl()
prefix, n, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
outlets = []
for i in range(n):
    info = pylsl.StreamInfo(f"{prefix}-{i}", "EEG", len(labels), 256.0, "float32", f"{prefix}-sid-{i}")
    info.set_channel_labels(labels)
    outlets.append(pylsl.StreamOutlet(info))
print("ready", flush=True)
sys.stdin.read()
"""


def test_list_and_all_see_40_outlets_with_a_loopback_only_resolver(seizure_checkpoint, tmp_path):
    """40 EEG outlets on this host, resolved without multicast (``KnownPeers`` = loopback, machine
    scope: the resolver asks each port of the LSL port range). With liblsl's default range (32
    ports) such a resolver saw 12-13 of them; the package's range lets ``--list`` and ``--all`` see
    all 40. A profile-less row count would pass by luck, so each stream must be marked ``takes``."""
    prefix = f"p40-{uuid.uuid4().hex[:6]}"
    labels = ",".join(load_profile("seizure").channels.names)
    outlets = subprocess.Popen([sys.executable, "-c", _OUTLETS, prefix, "40", labels], cwd=REPO,
                               env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text("[lab]\nKnownPeers = {127.0.0.1}\n[multicast]\nResolveScope = machine\n"
                   "MachineAddresses = {127.0.0.1}\n")
    try:
        assert outlets.stdout.readline().strip() == "ready"
        filt = [x for i in range(40) for x in ("--stream", f"{prefix}-{i}")]
        r = subprocess.run(_live_cmd("--list", "--all", "--profile", "seizure", *filt),
                           capture_output=True, text=True, timeout=120, cwd=REPO,
                           env=_env(LSLAPICFG=str(cfg)))
        assert r.returncode == 0, r.stderr
        rows = [ln for ln in r.stdout.splitlines() if ln.startswith("│ " + prefix)]  # table rows
        assert len(rows) == 40 and all("takes (seizure)" in ln for ln in rows), r.stdout
        r = subprocess.run(
            _live_cmd("--all", *filt, "--profile", "seizure", "--checkpoint", str(seizure_checkpoint),
                      "--no-dashboard", "--device", "cpu", "--duration", "2"),
            capture_output=True, text=True, timeout=180, cwd=REPO, env=_env(LSLAPICFG=str(cfg)))
        assert r.returncode == 0, r.stderr
        served = {ln.split("'")[1] for ln in r.stdout.splitlines() if ln.startswith("stream '")}
        assert served == {f"{prefix}-{i}" for i in range(40)}
    finally:
        outlets.stdin.close()
        outlets.wait(10)


def test_port_range_and_log_level_added_unless_the_user_set_them():
    assert package_config("") == "[log]\nlevel = -1\n[ports]\nPortRange = 2048\n"
    theirs = "[ports]\nportrange = 64\n"
    assert package_config(theirs) == theirs + "[log]\nlevel = -1\n"
    assert with_setting("[ports]\nBasePort = 1\n", "ports", "PortRange", 8) == \
        "[ports]\nPortRange = 8\nBasePort = 1\n"


def test_selection_stream_key_and_cli_queries():
    from realtime.cli_live import _parser, _stream_queries

    info = pylsl.StreamInfo("S1", "EEG", 2, 100.0, "float32", "")
    assert stream_key(info) == f"S1@{info.hostname()}"
    info2 = pylsl.StreamInfo("S1", "EEG", 2, 100.0, "float32", "amp-7")
    assert stream_key(info2) == "amp-7"
    sel = StreamSelection()
    assert sel.matches(info) and not sel.matches(pylsl.StreamInfo("M", "Markers", 1, 0, "string", ""))
    assert not StreamSelection(accept=lambda i: i.source_id() == "x").matches(info2)
    q = lambda *a: _stream_queries(_parser().parse_args(list(a)))  # noqa: E731
    assert q("--stream", "A") == [] and q("--type", "EEG", "--source-id", "s") == []
    assert q("--stream", "A", "--stream", "B") == [StreamQuery("A"), StreamQuery("B")]
    assert q("--all") == [] and q("--all", "--type", "ExG") == [StreamQuery(stype="ExG")]
    assert q("--all", "--stream", "A", "--type", "EEG") == [StreamQuery("A", "EEG")]
    assert isinstance(_parser().parse_args(["--all"]), argparse.Namespace)


def test_accept_keeps_one_share_of_the_streams(seizure_checkpoint, player, short_recording):
    """The interface worker processes and shards build on: ``SessionOptions(all_streams=True,
    accept=...)`` serves only the streams the predicate keeps (here by ``stream_key``), in one
    process, with per-stream outputs."""
    from realtime.session import Session, SessionOptions

    mine, other = (player(short_recording, speed=2.0, repeat=math.inf, markers=False).start()
                   for _ in "mo")
    opts = SessionOptions(
        profiles=["seizure"], checkpoints=[str(seizure_checkpoint)], device="cpu",
        streams=[StreamQuery(name=mine.name), StreamQuery(name=other.name)], all_streams=True,
        accept=lambda info: stream_key(info) == mine.source_id, resolve_timeout_s=3.0)
    session = Session(opts)
    try:
        session.loop.run(6.0)
        snap = session.snapshot()
    finally:
        session.close()
    assert [s.name for s in snap.streams] == [mine.name]
    assert [p.name for p in snap.profiles] == [f"seizure@{mine.name}"]
    assert snap.profiles[0].n_decisions > 0 and not snap.skipped


def test_same_named_streams_in_two_workers_get_distinct_outlet_names(
        seizure_checkpoint, player, short_recording, unique_name):
    """Two headsets sending under one name (different source ids), each served by another worker
    (``accept`` = its share): each worker sees the twin and adds the source id to its stream's
    outlet name, so no two outlets on the network share a name."""
    from realtime.session import Session, SessionOptions

    a, b = (player(short_recording, name=unique_name, source_id=f"{unique_name}-{x}", speed=2.0,
                   repeat=math.inf, markers=False).start() for x in "ab")
    sessions = []
    try:
        for mine in (a, b):
            sessions.append(Session(SessionOptions(
                profiles=["seizure"], checkpoints=[str(seizure_checkpoint)], device="cpu",
                streams=[StreamQuery(name=unique_name)], all_streams=True,
                accept=lambda info, sid=mine.source_id: stream_key(info) == sid,
                resolve_timeout_s=3.0)))
        for s in sessions:
            s.loop.run(0.5)  # the found streams' outputs join at the loop's next step
        names = [[o.name for o in s.loop.outputs] for s in sessions]
        markers = [[o.outlets.marker_name for o in s.loop.outputs] for s in sessions]
    finally:
        for s in sessions:
            s.close()
    assert names == [[f"seizure@{unique_name}.{unique_name}-a"], [f"seizure@{unique_name}.{unique_name}-b"]]
    assert len({m for ms in markers for m in ms}) == 2


def test_the_loop_heartbeat_follows_progress_within_a_slow_step(
        seizure_checkpoint, player, short_recording):
    """The heartbeat a supervisor reads (``LiveLoop.last_step``) is refreshed stream by stream and
    before each batch, so an overloaded step that drains many streams for seconds is not taken for a
    hung worker (issue 18: at 128 streams on 2 cores a busy worker was killed as hung)."""
    from realtime.session import Session, SessionOptions

    streams = [player(short_recording, speed=2.0, repeat=math.inf, markers=False).start()
               for _ in "ab"]
    session = Session(SessionOptions(
        profiles=["seizure"], checkpoints=[str(seizure_checkpoint)], device="cpu",
        streams=[StreamQuery(name=s.name) for s in streams], all_streams=True,
        resolve_timeout_s=3.0))
    ages: list[float] = []
    loop = session.loop
    try:
        def slow_tap(chunks, hold):  # a stream whose processing takes 0.3 s
            ages.append(time.monotonic() - loop.last_step)
            time.sleep(0.3)

        loop.run(2.0)  # both streams attached
        assert len(loop.served.by_stream) == 2
        for key in list(loop.served.by_stream):
            loop.taps.setdefault(key, []).append(slow_tap)
        loop.run(3.0)
    finally:
        session.close()
    assert len(ages) >= 4
    # each stream's processing starts with a fresh heartbeat although the one before it took 0.3 s
    assert max(ages) < 0.1, ages

"""``eegmamba-live --all --shard 1/2`` and ``--shard 2/2`` as two real processes (as on two
machines) against several replayed streams on loopback: each stream is served exactly once, by the
shard its stable hash names, as the outlets that appear show."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections import Counter

import pytest

from realtime.serve.sharding import shard_of
from tests.realtime.serve_helpers import Live, lsl_env, split_prefix

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

LIST_OUTLETS = """
import json, time, pylsl
r = pylsl.ContinuousResolver(forget_after=2.0)
time.sleep(1.5)
print(json.dumps([[i.name(), i.source_id()] for i in r.results() if i.type() == "Markers"]))
"""


def test_two_shards_serve_each_stream_exactly_once(tmp_path, mi_recording):
    from benchmarks._latency_common import stream_server
    from benchmarks._live_cli import outlet_name

    env = lsl_env(tmp_path)
    prefix = split_prefix(4, 2, shard_of)
    streams = [f"{prefix}-{i}" for i in range(4)]
    with stream_server(mi_recording, prefix, 4, env=env):
        shards = [Live(["--all", "--profile", "motor_imagery", "--device", "cpu", "--no-dashboard",
                        "--shard", f"{k}/2", "--workers", "1"], env) for k in (1, 2)]
        try:
            for k, live in enumerate(shards):
                for s in streams:
                    if shard_of(f"eegmamba-replay:{s}", 2) == k:
                        live.wait_for(rf"@{re.escape(s)} #1 ")
            listed = json.loads(subprocess.run([sys.executable, "-c", LIST_OUTLETS], env=env,
                                               capture_output=True, text=True, check=True).stdout)
        finally:
            results = [live.stop(signal.SIGTERM) for live in shards]
    counts = Counter(name for name, _ in listed)
    for k, s in enumerate(streams):
        owner = shards[shard_of(f"eegmamba-replay:{s}", 2)]
        other = shards[1 - shard_of(f"eegmamba-replay:{s}", 2)]
        assert counts[outlet_name(s)] == 1, listed  # one marker outlet per stream: served once
        sid = dict(listed)[outlet_name(s)]
        # named after the EEG stream, not the process (a restarted one re-makes the same)
        assert sid == f"eegmamba-motor_imagery@eegmamba-replay:{s}-markers", sid
        assert any(f"@{s} #" in ln for ln in owner.lines)  # the owner decided it
        assert not any(f"@{s} #" in ln for ln in other.lines)  # the other shard never decided it
    for rc, err in results:
        assert rc == 0, err

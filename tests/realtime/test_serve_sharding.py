"""Who serves which stream (``realtime.serve.sharding``) and the supervisor's accounting across a
worker restart (``realtime.serve.merge``), without processes."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from eegmamba._checks import UserInputError
from realtime.loop.outlets import Decision
from realtime.serve.merge import Merger
from realtime.serve.sharding import Share, parse_shard, shard_of, stable_hash, worker_of
from realtime.serve.supervisor import default_workers, exit_reason
from realtime.serve.worker import OutputInfo
from realtime.stats import ProfileStats

ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"eegmamba-replay:S001R04-{i}" for i in range(64)] + ["EEG-amp@host-a", "x"]


def test_the_hash_is_the_same_in_every_process():
    """Python's hash() is salted per process; the owner of a stream must not be."""
    code = ("from realtime.serve.sharding import stable_hash as h; "
            f"print([h(k, 'worker') for k in {KEYS!r}])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}, cwd=ROOT).stdout
            for seed in ("1", "2")}
    assert runs == {f"{[stable_hash(k, 'worker') for k in KEYS]}\n"}


def test_every_stream_has_exactly_one_owner_among_shards_and_workers():
    shares = [Share(s, 2, w, 3) for s in range(2) for w in range(3)]
    for key in KEYS:
        owners = [sh for sh in shares if sh.owns(key)]
        assert owners == [Share(shard_of(key, 2), 2, worker_of(key, 3), 3)]
    # the shard does not decide the worker: the streams of one shard spread over its workers
    in_shard = [k for k in KEYS if shard_of(k, 2) == 0]
    assert len(Counter(worker_of(k, 2) for k in in_shard)) == 2


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2"])
def test_bad_shard_is_a_user_error(text):
    with pytest.raises(UserInputError, match="--shard expects K/N"):
        parse_shard(text)


def test_parse_shard():
    assert parse_shard("2/3") == (2, 3)


def _decision(name: str, seq: int, t_end: float) -> Decision:
    return Decision(name, "left", {"left": 0.6, "right": 0.4}, t_end - 3.0, t_end, 5.0, seq)


def _stats(name: str, n_windows: int, n_decisions: int, drops: dict) -> ProfileStats:
    return ProfileStats(name, ("left", "right"), n_windows=n_windows, n_decisions=n_decisions,
                        drops=drops)


def test_a_restart_counts_the_windows_between_the_last_and_the_first_decision():
    m = Merger("t")
    outs = [OutputInfo("mi@a", "a", 0.5), OutputInfo("mi@b", "b", 0.5)]
    m.started(0, outs)
    m.report(0, None, [_decision("mi@a", k, 10.0 + 0.5 * k) for k in range(10)]
             + [_decision("mi@b", k, 20.0 + 0.5 * k) for k in range(4)])
    m.report(0, type("S", (), {"profiles": (_stats("mi@a", 11, 10, {"stale": 1}),
                                            _stats("mi@b", 4, 4, {})),
                               "device": "cpu"})(), [])
    m.died(0, outs)  # last decisions: a at t 14.5, b at 21.5
    m.started(0, outs)
    m.report(0, None, [_decision("mi@a", 0, 17.0), _decision("mi@a", 1, 17.5)])
    m.finish(now_lsl=23.0)  # b never came back before the end: (23 - 21.5) / 0.5 hops
    rows = {p.name: p for p in m.snapshot().profiles}
    a, b = rows["mi@a"], rows["mi@b"]
    assert a.drops["worker_restart"] == 4  # 15.0, 15.5, 16.0, 16.5
    assert a.n_decisions == 12 and a.drops["stale"] == 1
    assert a.n_windows == 12 + 1 + 4
    assert b.drops["worker_restart"] == 3 and b.n_decisions == 4


def test_default_workers_one_per_core_at_most_one_per_stream_one_on_cuda():
    import os

    cores = len(os.sched_getaffinity(0))
    assert default_workers(1, "cpu") == 1
    assert default_workers(1000, "cpu") == cores
    assert default_workers(0, "cpu") == cores  # --all: streams may come later
    assert default_workers(512, "cuda") == 1  # one process batches every stream on the GPU


def test_exit_reason_in_words():
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(1) == "exit code 1"

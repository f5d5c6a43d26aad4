"""Which process serves which stream: a stable hash of the stream's key, the same on every machine.

A stream's key is ``realtime.stream.resolve.stream_key(info)`` (its LSL source_id; name and host
where it has none). ``sha256`` of the key, not Python's ``hash()``, which is salted per process:
every worker, every restarted worker and every shard on another machine computes the same owner
without asking anyone, so a stream is served exactly once and no broker is needed.

The shard and the worker are drawn from two different hashes of the key (``domain``), so that the
streams of one shard still spread over that shard's workers (with one hash, ``--shard 1/2`` and
``--workers 2`` would put every stream of shard 1 on the same worker).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from eegmamba._checks import UserInputError


def stable_hash(key: str, domain: str) -> int:
    """A 64-bit hash of ``key`` that does not change between processes, runs or machines."""
    digest = hashlib.sha256(f"{domain}\0{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def shard_of(key: str, n_shards: int) -> int:
    """Index (0-based) of the shard that serves the stream with ``key``."""
    return stable_hash(key, "shard") % n_shards


def worker_of(key: str, n_workers: int) -> int:
    """Index (0-based) of the worker process that serves the stream with ``key``."""
    return stable_hash(key, "worker") % n_workers


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1 <= K <= N) -> ``(K, N)``; anything else is a user error."""
    k, sep, n = text.partition("/")
    try:
        k_i, n_i = int(k), int(n)
    except ValueError:
        k_i = n_i = 0
    if not sep or n_i < 1 or not 1 <= k_i <= n_i:
        raise UserInputError(f"--shard expects K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
    return k_i, n_i


@dataclass(frozen=True)
class Share:
    """The streams one process serves: those of shard ``shard`` (0-based) of ``n_shards`` and,
    within it, of worker ``worker`` of ``n_workers``. Picklable (it crosses to worker processes);
    called with a ``pylsl.StreamInfo`` it is the ``SessionOptions.accept`` predicate."""

    shard: int = 0
    n_shards: int = 1
    worker: int = 0
    n_workers: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.shard < self.n_shards and 0 <= self.worker < self.n_workers):
            raise ValueError(f"bad share {self}")

    def owns(self, key: str) -> bool:
        return ((self.n_shards == 1 or shard_of(key, self.n_shards) == self.shard)
                and (self.n_workers == 1 or worker_of(key, self.n_workers) == self.worker))

    def __call__(self, info) -> bool:
        from realtime.stream.resolve import stream_key

        return self.owns(stream_key(info))

    def with_worker(self, worker: int, n_workers: int) -> "Share":
        return Share(self.shard, self.n_shards, worker, n_workers)

    def __str__(self) -> str:
        parts = []
        if self.n_shards > 1:
            parts.append(f"shard {self.shard + 1}/{self.n_shards}")
        if self.n_workers > 1:
            parts.append(f"worker {self.worker + 1}/{self.n_workers}")
        return ", ".join(parts) or "all streams"

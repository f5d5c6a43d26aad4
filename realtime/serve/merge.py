"""The supervisor's view of all workers: per-output ledgers folded across worker restarts, merged
into one :class:`~realtime.stats.Snapshot` for the dashboard and the final summary.

Counts come from the workers' snapshots (~2/s); latencies from the decisions they forward (every
decision, so the percentiles are over the same values a single process would use). When a worker
dies, each of its outputs' counts up to its last report are kept, and the windows the stream
produced while nobody served it are counted as dropped (``worker_restart``): the stream time from
the last decision the dead worker published to the first its replacement published, in hops of
the profile (one window per hop per stream), less one. This is an estimate from the time down
times the window rate: a window the dead worker had already dropped as ``stale`` inside that span
is counted twice, and windows it decided after its last report (published, but never reported)
are counted as lost.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from realtime.stats import LatencyTracker, ProfileStats, Snapshot

RESTART = "worker_restart"


@dataclass
class _Tally:
    """Counters of one output summed over finished worker incarnations."""

    n_windows: int = 0
    n_decisions: int = 0
    drops: Counter = field(default_factory=Counter)
    n_scored: int = 0
    n_correct: float = 0.0
    confusion: Counter = field(default_factory=Counter)
    rounds: dict = field(default_factory=dict)  # round -> [correct, scored]

    def add(self, p: ProfileStats, decisions: int) -> None:
        """Fold an incarnation's last stats in; ``decisions``: those it published (forwarded)."""
        d = max(p.n_decisions, decisions)
        self.n_decisions += d
        self.drops.update(p.drops)
        unclassified = p.drops.get("stale", 0) + p.drops.get("shutdown", 0)
        self.n_windows += d + unclassified  # windows waiting at death fall into the restart gap
        self.n_scored += p.n_scored
        self.n_correct += (p.accuracy or 0.0) * p.n_scored
        self.confusion.update(p.confusion)
        for r, (acc, n) in p.accuracy_by_round.items():
            c = self.rounds.setdefault(r, [0.0, 0])
            c[0] += acc * n
            c[1] += n


@dataclass
class OutputLedger:
    """One decision output (profile on one stream) across the workers that served it."""

    name: str
    hop_s: float | None = None
    stream: str = ""
    worker: int | None = None  # index of the worker serving it now (or last)
    past: _Tally = field(default_factory=_Tally)
    current: ProfileStats | None = None
    got: int = 0  # decisions forwarded by the current incarnation
    latency: LatencyTracker = field(default_factory=LatencyTracker)
    last_t_end: float | None = None  # of the newest decision, any incarnation
    gap_from: float | None = None  # t_end of the last decision before a worker died
    lost: int = 0

    def decided(self, d) -> None:
        if self.gap_from is not None and self.hop_s:
            self.lost += max(0, round((d.t_end - self.gap_from) / self.hop_s) - 1)
            self.gap_from = None
        self.got += 1
        self.latency.add(d.latency_ms)
        self.last_t_end = d.t_end

    def worker_died(self) -> None:
        if self.current is not None:
            self.past.add(self.current, self.got)
        self.current, self.got = None, 0
        if self.last_t_end is not None and self.gap_from is None:
            self.gap_from = self.last_t_end

    def close_gap(self, now_lsl: float) -> None:
        """The run ends while this output's stream waits for its replacement's first decision."""
        if self.gap_from is not None and self.hop_s:
            emitted = 0 if self.current is None else self.current.n_windows
            self.lost += max(0, int((now_lsl - self.gap_from) / self.hop_s) - emitted)
            self.gap_from = None

    def stats(self) -> ProfileStats:
        base, cur = self.past, self.current
        drops = Counter(base.drops)
        n_windows, n_decisions = base.n_windows, base.n_decisions
        n_scored, n_correct = base.n_scored, base.n_correct
        confusion = Counter(base.confusion)
        rounds = {r: list(v) for r, v in base.rounds.items()}
        decided = max(self.got, 0 if cur is None else cur.n_decisions)
        n_decisions += decided
        n_windows += max(decided, 0 if cur is None else cur.n_windows)
        if cur is not None:
            drops.update(cur.drops)
            n_scored += cur.n_scored
            n_correct += (cur.accuracy or 0.0) * cur.n_scored
            confusion.update(cur.confusion)
            for r, (acc, n) in cur.accuracy_by_round.items():
                c = rounds.setdefault(r, [0.0, 0])
                c[0] += acc * n
                c[1] += n
        if self.lost:
            drops[RESTART] += self.lost
            n_windows += self.lost
        shown = cur or ProfileStats(self.name, ())
        return dataclasses.replace(
            shown, n_windows=n_windows, n_decisions=n_decisions, drops=dict(drops),
            n_scored=n_scored, accuracy=(n_correct / n_scored) if n_scored else None,
            latency=self.latency.snapshot(), confusion=dict(confusion),
            accuracy_by_round={r: (c / n, n) for r, (c, n) in sorted(rounds.items()) if n})


class Merger:
    """Latest snapshot per worker plus the ledgers; :meth:`snapshot` is what the dashboard shows
    (from its own thread: every method holds one lock)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.t_start = time.monotonic()
        self.ledgers: dict[str, OutputLedger] = {}
        self.snaps: dict[int, Snapshot] = {}  # worker index -> its latest snapshot
        self.latency = LatencyTracker()
        self.device = "cpu"
        self.events: list[str] = []
        self._lock = threading.Lock()

    def started(self, index: int, outputs) -> None:
        with self._lock:
            for o in outputs:
                led = self.ledgers.setdefault(o.name, OutputLedger(o.name))
                led.hop_s, led.stream, led.worker = o.hop_s, o.stream, index

    def report(self, index: int, snap: Snapshot | None, decisions) -> None:
        with self._lock:
            for d in decisions:
                self.ledgers.setdefault(d.profile, OutputLedger(d.profile)).decided(d)
                self.latency.add(d.latency_ms)
            if snap is not None:
                self.snaps[index] = snap
                self.device = snap.device
                for p in snap.profiles:
                    self.ledgers.setdefault(p.name, OutputLedger(p.name)).current = p

    def died(self, index: int, outputs) -> None:
        with self._lock:
            self.snaps.pop(index, None)
            for o in outputs:
                if o.name in self.ledgers:
                    self.ledgers[o.name].worker_died()

    def finish(self, now_lsl: float) -> None:
        with self._lock:
            for led in self.ledgers.values():
                led.close_gap(now_lsl)

    def snapshot(self) -> Snapshot:
        with self._lock:
            snaps = [self.snaps[k] for k in sorted(self.snaps)]
            profiles = tuple(led.stats() for led in self.ledgers.values())
        drops: Counter = Counter()
        for p in profiles:
            drops.update(p.drops)
        errors = [s.last_error for s in snaps if s.last_error]
        return Snapshot(
            streams=tuple(h for s in snaps for h in s.streams), profiles=profiles,
            latency=self.latency.snapshot(), drops=dict(drops),
            uptime_s=time.monotonic() - self.t_start, device=self.device,
            n_errors=sum(s.n_errors for s in snaps),
            last_error=errors[-1] if errors else (self.events[-1] if self.events else None),
            title=self.title, signals=tuple(x for s in snaps for x in s.signals),
            markers=tuple(x for s in snaps for x in s.markers),
            calibrations=tuple(x for s in snaps for x in s.calibrations),
            round_names=next((s.round_names for s in snaps if s.round_names), ()),
            # every worker sees (and lists) the same streams that fit no profile: once each
            skipped=tuple({(x.source_id, x.name, x.host): x
                           for s in snaps for x in s.skipped}.values()),
            selection=next((s.selection for s in snaps if s.selection), None),
            notices=next((s.notices for s in snaps if s.notices), ()))  # same checkpoints in each

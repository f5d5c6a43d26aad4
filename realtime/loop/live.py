"""The live loop: acquisition → per-profile pipelines → batched inference → smoothing →
marker/probability outlets, decision log and stats. One thread runs :meth:`LiveLoop.step`; the
acquisition thread only pulls samples, and the dashboard only reads :meth:`LiveLoop.snapshot`.

The loop sleeps until the acquisition thread signals that a chunk was queued
(:meth:`Acquisition.wait_for_data`), then in one step preprocesses every stream's new samples,
classifies the windows they completed (one batched inference per checkpoint) and publishes: a window
is classified in the step that receives its last input sample (the resampler has no look-ahead).
While a model is idle, shortly before its next window is due the loop primes it (``prime_lead_s``):
an idle model's code and weights leave the caches, and a cold window costs ~3x a warm one.

Never falls behind, and degrades gracefully with many streams: each pipeline has at most one window
waiting (a newer one replaces it, and the older is counted as dropped, ``stale``); each step
classifies the windows of the pipelines waiting longest that share a checkpoint in one batch, sized
so that a batch takes at most ``batch_budget_s`` (from the measured cost of a batch), publishes them,
and takes in new data before the next batch. A window thus waits at most about one hop plus one batch, and every
window is classified or counted (``shutdown`` for those still waiting at :meth:`close`). A stream
that stops for longer than the stall limit restarts its smoothing; when it comes back, the windows
spanning the outage are dropped as ``gap`` (the timestamp model reports the hole as a break) and
windows resume.
Windows of a stream the acquisition holds (``Inlet.hold``: units or rate not checked yet, implausible
units, declared rate ≠ real rate) are counted as dropped with that reason, never classified.
"""

from __future__ import annotations

import gc
import re
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pylsl

from realtime.stream.acquisition import Acquisition, Inlet
from realtime.loop.inference import InferenceEngine
from realtime.loop.outlets import Decision, DecisionLog, DecisionOutlets
from realtime.loop.pipeline import PendingWindow, ProfilePipeline
from realtime.loop.smoothing import Smoother
from realtime.stats import LatencyTracker, ProfileStats, Snapshot

GroundTruth = Callable[[float, float], "str | None"]


@dataclass(frozen=True)
class StageTimes:
    """When one decision passed each stage, seconds on the local LSL clock (``pylsl.local_clock``).

    ``source``: stream timestamp of the window's last input sample (its due time for a replayed
    stream, pushed then or later); ``arrival``: the chunk holding it pulled by the acquisition thread; ``woke``: the loop's step started; ``preprocessed``: preprocessing and
    windowing of the stream's new samples done; ``inferred``: the batch holding the window was
    classified; ``pushed``: the marker and probabilities were pushed.
    """

    output: str
    seq: int
    batch: int
    source: float
    arrival: float
    woke: float
    preprocessed: float
    inferred: float
    pushed: float


_gc_frozen = False


def freeze_gc() -> None:
    """Once per process, before the loop first runs: collect, then move every object alive now
    (torch, numpy, mne, the models: ~290k objects) to the garbage collector's permanent generation.

    Python's cyclic collector stops every thread (the acquisition thread too) while it walks a
    generation. With those objects in the oldest generation a full collection took 214-337 ms
    (``benchmarks/bench_latency.py`` process, 5 during its setup); one in a long session is a third of a
    second of stalled streams. Frozen objects are never walked again, so the rare full collection
    only walks what the session allocated since. (In a 10-s one-stream run the loop itself
    triggered a single 0.15 ms young collection, with or without the freeze.)"""
    global _gc_frozen
    if not _gc_frozen:
        gc.collect()
        gc.freeze()
        _gc_frozen = True


class BatchCost:
    """Running estimate of one model's inference time for a batch: ``t(n) = a + b n`` seconds
    (``a``: per-call overhead, ``b``: per window), fitted by exponentially weighted least squares
    over the batches seen (weight ``decay`` per new batch). With one batch size seen so far,
    ``a = 0`` and ``b`` is its mean cost per window (pessimistic for bigger batches)."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay
        self._s = np.zeros(5)  # weighted sums of 1, n, t, n², n t

    def add(self, n: int, seconds: float) -> None:
        self._s = self.decay * self._s + np.array([1.0, n, seconds, n * n, n * seconds])

    def coefficients(self) -> tuple[float, float]:
        w, sn, st, snn, snt = self._s
        var = w * snn - sn * sn
        if w <= 0:
            return 0.0, 0.0
        if var <= 1e-9 * max(w * snn, 1e-12):  # one batch size: cost per window only
            return 0.0, st / sn
        b = (w * snt - sn * st) / var
        a = (st - b * sn) / w
        if a < 0 or b <= 0:  # noise (a busy machine): fall back to the mean cost per window
            return 0.0, st / sn
        return a, b

    def fits(self, budget_s: float) -> int:
        """Largest batch expected to take at most ``budget_s`` seconds (at least 1)."""
        a, b = self.coefficients()
        return max(1, int((budget_s - a) / max(b, 1e-6)))


def output_name(profile: str, stream_key: str, n_streams: int) -> str:
    """Outlet base name: ``<profile>`` for one stream, ``<profile>.<stream>`` for several."""
    if n_streams == 1:
        return profile
    return f"{profile}.{re.sub(r'[^A-Za-z0-9_.-]', '_', stream_key)}"


@dataclass
class _Output:
    """What one pipeline publishes, with its running state."""

    pipeline: ProfilePipeline
    name: str
    classes: tuple[str, ...]
    outlets: DecisionOutlets
    smoother: Smoother
    ground_truth: GroundTruth | None = None
    seq: int = 0
    label: str | None = None
    probs: tuple[float, ...] = ()
    history: deque = field(default_factory=lambda: deque(maxlen=40))
    latency: LatencyTracker = field(default_factory=LatencyTracker)
    processing: LatencyTracker = field(default_factory=LatencyTracker)
    n_scored: int = 0
    n_correct: int = 0
    truth_history: deque = field(default_factory=lambda: deque(maxlen=40))  # aligned with history
    confusion: Counter = field(default_factory=Counter)  # (truth, label) -> decisions
    scored_by_round: Counter = field(default_factory=Counter)  # LiveLoop.round -> scored
    correct_by_round: Counter = field(default_factory=Counter)


class LiveLoop:
    """Run profiles over acquired streams.

    Parameters
    ----------
    acquisition : Acquisition, already holding the inlets (started by :meth:`start`)
    engine : InferenceEngine, with the checkpoints loaded
    pipelines : list of ProfilePipeline (their ``stream_key`` names an inlet of ``acquisition``)
    log : DecisionLog | None, also write every decision as a JSON line
    ground_truth : dict pipeline index → callable(t_start, t_end) → class name or None, to score
        decisions against replayed annotations
    on_decision : callable(Decision), called after each publish
    on_timing : callable(StageTimes), called after each publish with the decision's stage times
    batch_budget_s : float, seconds one inference batch may take (its size follows the measured
        cost of a batch, :class:`BatchCost`: large batches where they are cheap, e.g. on a GPU;
        smaller on a busy CPU). Every window waiting when a batch starts and fitting the budget goes
        into it: a window costs less in a bigger batch (MI on the 2-core VM, one thread: ~4 ms
        alone, ~2.5 ms each in a batch of 64), so under load the loop catches up instead of
        classifying a few windows at a time at the single-window cost. The budget bounds how long
        newly arrived samples wait to be preprocessed.
    max_batch : int, at most this many windows per batch
    prime_lead_s : float | None, prime a model idle for ``prime_idle_s`` (0.05 s) this many seconds
        (plus the priming's own measured duration) before its next window is due
        (:meth:`ProfilePipeline.due`): the held chunks of the pipelines due go through preprocessing
        and the model classifies one window of zeros, result discarded. An idle model's code and
        weights leave the caches within tens of ms (2-vCPU VM, one MI window: 3.5 ms back to back,
        4.4 ms 10 ms after the last call, 11.5 ms after 0.5 s idle, in CPU time, no page faults), so
        with few streams every window would meet a cold model. Costs one extra inference per window
        while the model is otherwise idle (with many streams it never is). ``None``: off.
    switch_interval_s : float | None, Python's thread switch interval while :meth:`run` runs
        (``sys.setswitchinterval``, restored after; default 0.5 ms instead of Python's 5 ms). The
        acquisition thread's Python work and this loop take turns holding the GIL, and every torch
        operation of an inference gives it up and takes it back, so with Python's 5 ms the loop can
        wait that long at a hand-back. Measured with 64 streams: one pair of runs gave p50 78 → 36
        ms, three alternating rounds a difference within this VM's run-to-run spread
        (docs/benchmarks.md); kept because it bounds that wait. ``None``: leave Python's.
    """

    def __init__(self, acquisition: Acquisition, engine: InferenceEngine,
                 pipelines: list[ProfilePipeline], log: DecisionLog | None = None,
                 ground_truth: dict[int, GroundTruth] | None = None,
                 on_decision: Callable[[Decision], None] | None = None,
                 on_timing: Callable[[StageTimes], None] | None = None,
                 batch_budget_s: float = 0.06, max_batch: int = 64,
                 prime_lead_s: float | None = 0.003,
                 switch_interval_s: float | None = 0.0005) -> None:
        self.acquisition, self.engine, self.log = acquisition, engine, log
        self.batch_budget_s = float(batch_budget_s)
        self._waiting: dict[int, PendingWindow] = {}  # per pipeline, the newest unclassified window
        self.max_batch = int(max_batch)
        self._cost: dict[str, BatchCost] = {}  # per model, the measured cost of a batch
        self.on_decision, self.on_timing = on_decision, on_timing
        streams = {p.stream_key for p in pipelines}
        inlet_keys = {i.key for i in acquisition.inlets}
        if not streams <= inlet_keys:
            raise ValueError(f"pipelines name streams {sorted(streams - inlet_keys)} not acquired")
        self.outputs: list[_Output] = []
        for i, p in enumerate(pipelines):
            name = output_name(p.profile.name, p.stream_key, len(streams))
            classes = engine.models[p.model_key].class_names
            self.outputs.append(_Output(
                p, name, classes, DecisionOutlets(name, classes, log=log), Smoother(p.profile.smoothing),
                (ground_truth or {}).get(i),
            ))
        self._by_stream: dict[str, list[_Output]] = {}
        for o in self.outputs:
            self._by_stream.setdefault(o.pipeline.stream_key, []).append(o)
        self._lost: dict[str, bool] = {k: False for k in self._by_stream}
        self._output_of = {id(o.pipeline): o for o in self.outputs}
        self.latency = LatencyTracker()
        # stream key -> callables tap(chunks, hold) given every chunk list of that stream and its
        # hold reason, on this thread, before inference (the calibration collects labelled windows
        # and swaps models there)
        self.taps: dict[str, list[Callable[[list, str | None], None]]] = {}
        self.round = 0  # scored decisions are tallied per round (realtime.calibration.calibrator advances it)
        self.n_stream_resets = 0
        self.t_start = time.monotonic()
        self.prime_lead_s, self.prime_idle_s = prime_lead_s, 0.05
        self.switch_interval_s = switch_interval_s
        self._by_model: dict[str, list[_Output]] = {}
        for o in self.outputs:
            self._by_model.setdefault(o.pipeline.model_key, []).append(o)
        self._inlet_of = {i.key: i for i in acquisition.inlets}
        self._primed: dict[str, bool] = {}
        self._last_inferred: dict[str, float] = {}
        self._prime_cost: dict[str, float] = {}
        self.n_primed = 0

    # ------------------------------------------------------------------ running
    @property
    def n_waiting(self) -> int:
        """Windows complete but not classified yet (at most one per pipeline)."""
        return len(self._waiting)

    def step(self) -> int:
        """Take in what arrived, classify one batch of the oldest waiting windows, publish; return
        the number of decisions."""
        clock = pylsl.local_clock
        woke = clock()
        for inlet in self.acquisition.inlets:
            outputs = self._by_stream.get(inlet.key)
            if not outputs:
                inlet.drain()
                continue
            self._watch_loss(inlet, outputs)
            chunks = [(c.samples, c.timestamps, c.arrival, c.breaks) for c in inlet.drain()]
            if chunks:
                hold = self._hold(inlet, outputs)
                for tap in self.taps.get(inlet.key, ()):
                    tap(chunks, hold)
                for o in outputs:
                    # a held stream (not what it claims, or not checked yet): counted, not classified
                    for p in o.pipeline.push_many(chunks, clock, hold=hold):
                        self._wait(p)
        if not self._waiting:
            return 0
        items = self._next_batch()
        key = items[0].pipeline.model_key
        t0 = clock()
        probs = self.engine.infer(key, np.stack([p.window.data for p in items]))
        inferred = clock()
        self._cost.setdefault(key, BatchCost()).add(len(items), inferred - t0)
        self._last_inferred[key], self._primed[key] = inferred, False
        for p, pr in zip(items, probs):
            del self._waiting[id(p.pipeline)]
            self._publish(self._output_of[id(p.pipeline)], p, pr, woke, inferred, len(items))
        return len(items)

    def _wait(self, p: PendingWindow) -> None:
        """``p`` waits for a batch; the window it replaces (same pipeline, older) is ``stale`` and
        hands on its place in the queue (the pipeline has been waiting since then)."""
        old = self._waiting.get(id(p.pipeline))
        if old is not None:
            old.pipeline.drops["stale"] += 1
        self._waiting[id(p.pipeline)] = p  # dict order: since when the pipeline waits

    def _next_batch(self) -> list[PendingWindow]:
        """The pipeline waiting longest and the next longest of the same checkpoint, as many as fit
        the batch budget by the model's measured batch cost (:class:`BatchCost`; one at first).
        Under overload the pipelines take turns."""
        waiting = list(self._waiting.values())
        key = waiting[0].pipeline.model_key
        cost = self._cost.get(key)
        n = 1 if cost is None else cost.fits(self.batch_budget_s)
        return [p for p in waiting if p.pipeline.model_key == key][:min(n, self.max_batch)]

    @staticmethod
    def _hold(inlet: Inlet, outputs: list[_Output]) -> str | None:
        """The inlet's hold reason; switches its pipelines to an accepted measured rate first."""
        rate = inlet.accepted_srate
        if rate is not None:
            for o in outputs:
                if o.pipeline.pre.in_sfreq != rate:
                    o.pipeline.set_input_rate(rate)
                    o.smoother.reset()
        return inlet.hold

    def _watch_loss(self, inlet: Inlet, outputs: list[_Output]) -> None:
        """A lost stream restarts its decision smoothing. Its pipelines go on: when samples come
        back the timestamp model reports the hole as a break with them, and the windowing rule drops
        the windows holding both sides (``gap``); a stream that only paused and then delivered
        its backlog (a burst) loses no window."""
        lost = inlet.state == "lost"
        if lost and not self._lost[inlet.key]:
            for o in outputs:
                o.smoother.reset()
            self.n_stream_resets += 1
        self._lost[inlet.key] = lost

    def _publish(self, o: _Output, p: PendingWindow, probs: np.ndarray, woke: float,
                 inferred: float, batch: int) -> None:
        idx, smoothed = o.smoother(probs)
        now = pylsl.local_clock()
        latency_ms = (now - p.arrival) * 1000.0
        version = self.engine.models[p.pipeline.model_key].version
        d = Decision(o.name, o.classes[idx], dict(zip(o.classes, map(float, smoothed))),
                     p.window.t_start, p.window.t_end, latency_ms, o.seq, version)
        o.outlets.push(d)
        if self.on_timing is not None:
            self.on_timing(StageTimes(o.name, o.seq, batch, p.source_time, p.arrival, woke,
                                      p.preprocessed, inferred, pylsl.local_clock()))
        o.seq += 1
        o.label, o.probs = d.label, tuple(float(v) for v in smoothed)
        o.history.append(d.label)
        o.latency.add(latency_ms)
        o.processing.add((now - p.completed) * 1000.0)
        self.latency.add(latency_ms)
        truth = None
        if o.ground_truth is not None:
            truth = o.ground_truth(p.window.t_start, p.window.t_end)
            if truth is not None:
                o.n_scored += 1
                o.n_correct += int(truth == d.label)
                o.confusion[(truth, d.label)] += 1
                o.scored_by_round[self.round] += 1
                o.correct_by_round[self.round] += int(truth == d.label)
        o.truth_history.append(truth)
        if self.on_decision is not None:
            self.on_decision(d)

    def run(self, duration_s: float | None = None, should_stop: Callable[[], bool] | None = None,
            check_every_s: float = 0.05) -> None:
        """Step whenever data arrive, until ``duration_s`` elapsed or ``should_stop()`` (checked at
        least every ``check_every_s`` seconds while no data arrive)."""
        freeze_gc()
        interval = sys.getswitchinterval()
        if self.switch_interval_s is not None:
            sys.setswitchinterval(self.switch_interval_s)
        end = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not (should_stop and should_stop()):
                wait = check_every_s
                if end is not None:
                    wait = min(wait, end - time.monotonic())
                    if wait <= 0:
                        break
                if not self._waiting:  # windows waiting: go on with the next batch at once
                    self.acquisition.wait_for_data(self._prime(wait))
                self.step()  # also on a timeout: a lost stream must reset its pipelines
        finally:
            sys.setswitchinterval(interval)

    def _prime(self, wait: float) -> float:
        """Before a model's next window is due, warm it and its pipelines up; return how long to
        wait for data until the next priming (at most ``wait``)."""
        if self.prime_lead_s is None:
            return wait
        clock = pylsl.local_clock
        now = clock()
        nxt = float("inf")
        for key, outputs in self._by_model.items():
            if self._primed.get(key):
                continue
            dues = [(d, o) for o in outputs if (d := o.pipeline.due()) is not None]
            if not dues:
                continue
            due = min(d for d, _ in dues)
            lead = self._prime_cost.get(key, 0.01) + self.prime_lead_s
            if now < due - lead:
                nxt = min(nxt, due - lead)
                continue
            self._primed[key] = True
            if now - self._last_inferred.get(key, -1e9) < self.prime_idle_s:
                continue
            t0 = clock()
            for d, o in dues:
                if d - lead <= now:
                    key_s = o.pipeline.stream_key
                    hold = self._hold(self._inlet_of[key_s], self._by_stream[key_s])
                    for w in o.pipeline.flush(clock, hold=hold):
                        self._wait(w)
            m = self.engine.models[key]
            self.engine.infer(key, np.zeros((1, m.n_chans, m.n_times), np.float32))
            cost = clock() - t0
            self._prime_cost[key] = cost if key not in self._prime_cost else \
                0.8 * self._prime_cost[key] + 0.2 * cost
            self.n_primed += 1
        return max(0.0, min(wait, nxt - clock()))

    def close(self) -> None:
        """Close the outlets; windows still waiting are counted as dropped (``shutdown``)."""
        for p in self._waiting.values():
            p.pipeline.drops["shutdown"] += 1
        self._waiting.clear()
        for o in self.outputs:
            o.outlets.close()

    # ------------------------------------------------------------------ reporting
    def drops(self) -> Counter:
        total: Counter = Counter()
        for o in self.outputs:
            total.update(o.pipeline.all_drops())
        return total

    def snapshot(self) -> Snapshot:
        """A consistent-enough view for the dashboard (read-only; never touches a stream)."""
        profiles = tuple(
            ProfileStats(
                name=o.name, classes=o.classes, label=o.label, probs=o.probs,
                history=tuple(o.history), smoothing=f"{o.smoother.method} k={o.smoother.k}",
                n_windows=o.pipeline.n_windows, n_decisions=o.seq,
                accuracy=(o.n_correct / o.n_scored) if o.n_scored else None, n_scored=o.n_scored,
                latency=o.latency.snapshot(), drops=dict(o.pipeline.all_drops()),
                truth_history=tuple(o.truth_history), confusion=dict(o.confusion),
                scored=o.ground_truth is not None,
                model_version=self.engine.models[o.pipeline.model_key].version,
                accuracy_by_round={r: (o.correct_by_round[r] / n, n)
                                   for r, n in sorted(o.scored_by_round.items())},
                alignment=o.pipeline.alignment_age(),
            )
            for o in self.outputs
        )
        return Snapshot(
            streams=self.acquisition.health(), profiles=profiles, latency=self.latency.snapshot(),
            drops=dict(self.drops()), uptime_s=time.monotonic() - self.t_start,
            device=str(self.engine.device), n_errors=self.acquisition.n_errors,
            last_error=self.acquisition.last_error,
        )

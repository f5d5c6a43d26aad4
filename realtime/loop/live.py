"""The live loop: acquisition → per-profile pipelines → batched inference → smoothing →
marker/probability outlets, decision log and stats. One thread runs :meth:`LiveLoop.step`; the
acquisition thread only pulls samples, and the dashboard only reads :meth:`LiveLoop.snapshot`.

The loop sleeps until the acquisition thread signals that a chunk was queued
(:meth:`Acquisition.wait_for_data`), then in one step preprocesses every stream's new samples,
classifies the windows they completed (one batched inference per checkpoint) and publishes: a window
is classified in the step that receives its last input sample (the resampler has no look-ahead).
Which windows go into a batch, and when an idle model is primed shortly before its next window is
due, is the :class:`~realtime.loop.scheduler.Scheduler`'s part; scoring against the truth is
:mod:`realtime.loop.truth`'s; the process settings it runs under are :mod:`realtime.loop.runtime`'s.

Never falls behind, and degrades gracefully with many streams: each pipeline has at most one window
waiting (a newer one replaces it, and the older is counted as dropped, ``stale``); each step
classifies the windows of the pipelines waiting longest that share a checkpoint in one batch, sized
so that a batch takes at most ``batch_budget_s`` (from the measured cost of a batch), publishes
them, and takes in new data before the next batch. A window thus waits at most about one hop plus
one batch, and every window is classified or counted (``shutdown`` for those still waiting at
:meth:`close`). A stream that stops for longer than the stall limit restarts its smoothing; when it
comes back, the windows spanning the outage are dropped as ``gap`` (the timestamp model reports the
hole as a break) and windows resume.
Windows of a stream the acquisition holds (``Inlet.hold``: units or rate not checked yet,
implausible units, declared rate ≠ real rate) are counted as dropped with that reason, never
classified.

Streams can join a running loop (:meth:`LiveLoop.attach`, from any thread; a session serving every
headset of a lab does so as they appear, :mod:`realtime.finder`): their outputs join at the next
step (:mod:`realtime.loop.served` keeps the outputs and their indexes).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pylsl

from realtime.stream.acquisition import Acquisition, Inlet
from realtime.loop.inference import InferenceEngine
from realtime.loop.outlets import Decision, DecisionLog, StreamIdentity
from realtime.loop.pipeline import PendingWindow, ProfilePipeline
from realtime.loop.runtime import freeze_gc, switch_interval
from realtime.loop.scheduler import BatchCost, Scheduler  # noqa: F401  (BatchCost re-exported)
from realtime.loop.served import Output, ServedStreams, Tap
from realtime.loop.truth import GroundTruth
from realtime.stats import LatencyTracker, ProfileStats, Snapshot


@dataclass(frozen=True)
class StageTimes:
    """When one decision passed each stage, seconds on the local LSL clock (``pylsl.local_clock``).

    ``source``: stream timestamp of the window's last input sample (its due time for a replayed
    stream, pushed then or later); ``arrival``: the chunk holding it pulled by the acquisition
    thread; ``woke``: the loop's step started; ``preprocessed``: preprocessing and windowing of the
    stream's new samples done; ``inferred``: the batch holding the window was classified;
    ``pushed``: the marker and probabilities were pushed.
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


class LiveLoop:
    """Run profiles over acquired streams.

    Parameters
    ----------
    acquisition : Acquisition, already holding the inlets (started by :meth:`start`)
    engine : InferenceEngine, with the checkpoints loaded
    pipelines : list of ProfilePipeline (their ``stream_key`` names an inlet of ``acquisition``)
    log : DecisionLog | None, also write every decision as a JSON line
    ground_truth : dict pipeline index → callable(t_start, t_end) → class name or None, to score
        decisions against replayed annotations (:mod:`realtime.loop.truth`)
    on_decision : callable(Decision), called after each publish
    on_timing : callable(StageTimes), called after each publish with the decision's stage times
    batch_budget_s : float, seconds one inference batch may take (its size follows the measured
        cost of a batch, :class:`~realtime.loop.scheduler.BatchCost`: large batches where they are
        cheap, e.g. on a GPU; smaller on a busy CPU). Every window waiting when a batch starts and
        fitting the budget goes into it: a window costs less in a bigger batch (MI on the 2-core VM,
        one thread: ~4 ms alone, ~2.5 ms each in a batch of 64), so under load the loop catches up
        instead of classifying a few windows at a time at the single-window cost. The budget bounds
        how long newly arrived samples wait to be preprocessed.
    max_batch : int, at most this many windows per batch
    prime_lead_s : float | None, prime a model idle for 0.05 s this many seconds (plus the
        priming's own measured duration) before its next window is due
        (:meth:`ProfilePipeline.due`): the held chunks of the pipelines due go through preprocessing
        and the model classifies one window of zeros, result discarded
        (:meth:`~realtime.loop.scheduler.Scheduler.prime`). Costs one extra inference per window
        while the model is otherwise idle (with many streams it never is). ``None``: off.
    switch_interval_s : float | None, Python's thread switch interval while :meth:`run` runs
        (default 0.5 ms instead of Python's 5 ms; :func:`realtime.loop.runtime.switch_interval`).
        ``None``: leave Python's.
    per_stream_names : bool | None, name outputs ``<profile>@<stream key>`` (and put the stream's
        name and source id in every decision and outlet description) rather than ``<profile>``;
        ``None``: when the pipelines name several streams. A session that serves a changing set of
        streams passes True, so that names do not change as streams come and go.
    """

    def __init__(self, acquisition: Acquisition, engine: InferenceEngine,
                 pipelines: list[ProfilePipeline], log: DecisionLog | None = None,
                 ground_truth: dict[int, GroundTruth] | None = None,
                 on_decision: Callable[[Decision], None] | None = None,
                 on_timing: Callable[[StageTimes], None] | None = None,
                 batch_budget_s: float = 0.06, max_batch: int = 64,
                 prime_lead_s: float | None = 0.003,
                 switch_interval_s: float | None = 0.0005,
                 per_stream_names: bool | None = None) -> None:
        self.acquisition, self.engine, self.log = acquisition, engine, log
        self.scheduler = Scheduler(batch_budget_s, max_batch, prime_lead_s)
        self.on_decision, self.on_timing = on_decision, on_timing
        streams = {p.stream_key for p in pipelines}
        inlet_keys = {i.key for i in acquisition.inlets}
        if not streams <= inlet_keys:
            raise ValueError(f"pipelines name streams {sorted(streams - inlet_keys)} not acquired")
        many = len(streams) > 1 if per_stream_names is None else per_stream_names
        self.served = ServedStreams(many, lambda k: engine.models[k].class_names, log)
        self._inlets = acquisition.inlets
        self._inlet_of = {i.key: i for i in self._inlets}
        truth = ground_truth or {}
        self.served.register([self.served.make(p, truth.get(i), self._identity(p.stream_key))
                              for i, p in enumerate(pipelines)])
        self.latency = LatencyTracker()
        self.round = 0  # scored decisions are tallied per round (advanced by new_round, swap_model)
        self.n_stream_resets = 0
        self.t_start = self.last_step = time.monotonic()
        self.switch_interval_s = switch_interval_s

    # ------------------------------------------------------------------ outputs
    @property
    def outputs(self) -> list[Output]:
        """One per pipeline, in the order served."""
        return self.served.outputs

    @property
    def taps(self) -> dict[str, list[Tap]]:
        """Stream key → callables ``tap(chunks, hold)`` (:attr:`ServedStreams.taps`)."""
        return self.served.taps

    @property
    def per_stream_names(self) -> bool:
        return self.served.per_stream_names

    def output_name(self, profile: str, stream_key: str) -> str:
        """Outlet base name: ``<profile>``, or ``<profile>@<stream key>`` with per-stream names."""
        return self.served.name(profile, stream_key)

    def _identity(self, stream_key: str) -> StreamIdentity | None:
        inlet = self._inlet_of.get(stream_key)
        if not self.per_stream_names or inlet is None:
            return None
        return StreamIdentity(inlet.info.name(), inlet.source_id, inlet.info.hostname())

    def attach(self, pipelines: list[ProfilePipeline], *, stream: StreamIdentity | None = None,
               taps: list[Tap] = (), truths: list[GroundTruth | None] | None = None) -> list[str]:
        """Serve one more stream (any thread; its outlets are made here): ``pipelines`` all name its
        stream key, ``taps`` see its chunks (as :attr:`taps`). Call *before* adding its inlet to
        the acquisition: the loop takes the stream's outputs in at its next step, and never drains
        an inlet it has no outputs for while some are joining. ``truths``: per pipeline, what
        scores its decisions (a cue stream's timeline). Returns the output names."""
        return self.served.attach(pipelines, stream, taps, truths)

    def detach(self, stream_key: str) -> None:
        """Undo :meth:`attach` for a stream whose inlet could not be added (any thread)."""
        self.served.detach(stream_key)

    # ------------------------------------------------------------------ running
    @property
    def n_waiting(self) -> int:
        """Windows complete but not classified yet (at most one per pipeline)."""
        return self.scheduler.n_waiting

    @property
    def n_primed(self) -> int:
        """Times an idle model was primed (:meth:`Scheduler.prime`)."""
        return self.scheduler.n_primed

    @property
    def prime_lead_s(self) -> float | None:
        return self.scheduler.prime_lead_s

    @property
    def batch_budget_s(self) -> float:
        return self.scheduler.batch_budget_s

    def step(self) -> int:
        """Take in what arrived, classify one batch of the oldest waiting windows, publish; return
        the number of decisions."""
        clock = pylsl.local_clock
        woke = clock()
        self.last_step = time.monotonic()  # the loop's heartbeat (a supervisor spots a hung worker)
        self.served.join()
        inlets = self.acquisition.inlets
        if inlets is not self._inlets:  # a stream was added (copy-on-write tuple)
            self._inlets, self._inlet_of = inlets, {i.key: i for i in inlets}
        for inlet in inlets:
            # the heartbeat follows progress, not whole steps: under overload one step may drain
            # many streams' backlogs for seconds, which is slow, not hung (a supervisor killed such
            # a worker at 128 streams on 2 cores and lost 10 s of decisions)
            self.last_step = time.monotonic()
            outputs = self.served.by_stream.get(inlet.key)
            if not outputs:
                self.served.join()  # attached between the _join above and the inlet's add
                outputs = self.served.by_stream.get(inlet.key)
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
                        self.scheduler.wait(p)
        items = self.scheduler.next_batch()
        if not items:
            return 0
        key = items[0].pipeline.model_key
        self.last_step = time.monotonic()
        t0 = clock()
        probs = self.engine.infer(key, np.stack([p.window.data for p in items]))
        inferred = clock()
        self.scheduler.classified(items, t0, inferred)
        for p, pr in zip(items, probs):
            self._publish(self.served.output_of[id(p.pipeline)], p, pr, woke, inferred, len(items))
        return len(items)

    @staticmethod
    def _hold(inlet: Inlet, outputs: list[Output]) -> str | None:
        """The inlet's hold reason; switches its pipelines to an accepted measured rate first."""
        rate = inlet.accepted_srate
        if rate is not None:
            for o in outputs:
                if o.pipeline.pre.in_sfreq != rate:
                    o.pipeline.set_input_rate(rate)
                    o.smoother.reset()
        return inlet.hold

    def _watch_loss(self, inlet: Inlet, outputs: list[Output]) -> None:
        """A lost stream restarts its decision smoothing. Its pipelines go on: when samples come
        back the timestamp model reports the hole as a break with them, and the windowing rule drops
        the windows holding both sides (``gap``); a stream that only paused and then delivered
        its backlog (a burst) loses no window."""
        lost = inlet.state == "lost"
        if lost and not self.served.lost[inlet.key]:
            for o in outputs:
                o.smoother.reset()
            self.n_stream_resets += 1
        self.served.lost[inlet.key] = lost

    def _publish(self, o: Output, p: PendingWindow, probs: np.ndarray, woke: float,
                 inferred: float, batch: int) -> None:
        idx, smoothed = o.smoother(probs)
        now = pylsl.local_clock()
        latency_ms = (now - p.arrival) * 1000.0
        version = self.engine.models[p.pipeline.model_key].version
        s = o.stream
        d = Decision(o.name, o.classes[idx], dict(zip(o.classes, map(float, smoothed))),
                     p.window.t_start, p.window.t_end, latency_ms, o.seq, version,
                     None if s is None else s.name, None if s is None else s.source_id)
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
        o.score.score(p.window.t_start, p.window.t_end, d.label, self.round)
        if self.on_decision is not None:
            self.on_decision(d)

    def run(self, duration_s: float | None = None, should_stop: Callable[[], bool] | None = None,
            check_every_s: float = 0.05) -> None:
        """Step whenever data arrive, until ``duration_s`` elapsed or ``should_stop()`` (checked at
        least every ``check_every_s`` seconds while no data arrive)."""
        freeze_gc()
        end = None if duration_s is None else time.monotonic() + duration_s
        with switch_interval(self.switch_interval_s):
            while not (should_stop and should_stop()):
                wait = check_every_s
                if end is not None:
                    wait = min(wait, end - time.monotonic())
                    if wait <= 0:
                        break
                if not self.scheduler.n_waiting:  # windows waiting: go on with the next batch at once
                    self.acquisition.wait_for_data(self._prime(wait))
                self.step()  # also on a timeout: a lost stream must reset its pipelines

    def _prime(self, wait: float) -> float:
        """Warm idle models up before their next window is due (:meth:`Scheduler.prime`); return
        how long to wait for data."""
        return self.scheduler.prime(self.served.pipelines_by_model, wait, pylsl.local_clock,
                                    self._flush, self._warm)

    def _flush(self, pipeline: ProfilePipeline) -> list[PendingWindow]:
        key = pipeline.stream_key
        hold = self._hold(self._inlet_of[key], self.served.by_stream[key])
        return pipeline.flush(pylsl.local_clock, hold=hold)

    def _warm(self, model_key: str) -> None:
        m = self.engine.models[model_key]
        self.engine.infer(model_key, np.zeros((1, m.n_chans, m.n_times), np.float32))

    # ------------------------------------------------------------------ models and rounds
    def new_round(self) -> int:
        """Tally scored decisions under a new round from now on (a calibration's data ended, a
        model was swapped); returns it."""
        self.round += 1
        return self.round

    def swap_model(self, model_key: str, model, metadata: dict) -> int:
        """Let ``model`` (a loaded torch module of the same task and shapes) decide from the next
        batch on in place of the model under ``model_key``; starts a new round. Call on the loop's
        thread (a tap, or ``should_stop``), so that a decision is made entirely by one model.
        Returns the new model version (decisions carry it)."""
        version = self.engine.replace(model_key, model, metadata).version
        self.new_round()
        return version

    def close(self) -> None:
        """Close the outlets; windows still waiting are counted as dropped (``shutdown``)."""
        self.served.join()
        self.scheduler.shutdown()
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
                accuracy=o.score.accuracy, n_scored=o.score.n_scored,
                latency=o.latency.snapshot(), drops=dict(o.pipeline.all_drops()),
                truth_history=tuple(o.score.history), confusion=dict(o.score.confusion),
                scored=o.score.truth is not None,
                model_version=self.engine.models[o.pipeline.model_key].version,
                accuracy_by_round=o.score.by_round(),
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

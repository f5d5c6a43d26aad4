"""ONE acquisition loop for all LSL inlets, with per-stream health (drift, gaps, loss, reconnects).

Design, from measurements on this 2-core machine (64-channel float64 streams at 160 Hz, chunks of
10, pylsl 1.18.6 / liblsl 1.18):

- A waiting mne-lsl ``StreamLSL`` spends ~18 % of a core per stream on its own polling thread
  (issue 5). One Python thread polling pylsl inlets with ``pull_chunk(timeout=0)`` then sleeping
  ``poll_interval_s`` costs ~5 % of a core for 1 stream and ~29 % for 64 streams at 2 ms
  (43 % at 1 ms, 14 % at 5 ms); it adds at most one poll interval of latency. End to end
  (``benchmarks/bench_latency_peers.py``, 16 replayed streams, 4-s windows every 0.5 s, no processing,
  machine shared with other jobs, load ~6): a ``StreamLSL`` per stream gave p50 44 / p99 138 ms at
  97 % process CPU; this loop p50 2.3 / p99 5.1 ms at 24 %.
- Polling, measured again with ``benchmarks/bench_latency.py``'s replay (64 ch @ 160 Hz, chunks of 10,
  machine loaded ~4-8): an empty ``pull_chunk(timeout=0)`` costs ~24 µs, ``samples_available()``
  ~1.5 µs, so an inlet is only pulled when it holds samples: acquisition CPU at a 2 ms interval
  drops from ~6 to ~4 % (1 stream) and from ~50 to ~32 % (64 streams). With fewer than 8 streams the
  loop sleeps half the interval (1 ms): push → arrival p50 ~1.0 ms instead of ~1.7 ms for ~2 % of
  a core more. A blocking ``pull_sample`` (one stream only) reached ~0.6 ms at ~2 % CPU but splits
  chunks that are still arriving, and cannot serve several inlets from one thread.
- The ``proc_clocksync`` flag makes a pull block while liblsl measures the clock offset (~60 ms
  per inlet, 4 s per round for 64 inlets in one thread), so inlets are opened *without*
  post-processing. For streams from another host a separate clock thread measures
  ``time_correction()`` every ``clock_refresh_s`` and the loop adds it to the timestamps; streams
  from this host share our clock and are left exact (no noisy ~10 µs corrections).
  No liblsl dejitter/monotonize either: they hide gaps and time jumps (issue 5). Instead each stream
  has a :class:`~realtime.stream.monitor.StreamMonitor`: units scaled to µV and checked, a timestamp model
  (:mod:`realtime.stream.timestamps`) that regularizes push-stamped timestamps and reports gaps and jumps
  as breaks with the chunk, and a check of the declared rate against the measured one.
- Loss is detected here, not by liblsl (which recovers silently, or never with a new source id):
  no sample for ``stall_s`` -> ``lost``; while lost, the loop looks for a new outlet matching the
  original query and re-opens the inlet on it; samples arriving after a loss count as a reconnect.
- Streams are found with one ``pylsl.ContinuousResolver`` (``resolve_byprop`` can block ~5.5 s
  when a stream appears during the call; the continuous resolver sees it in ~40 ms).

Everything an inlet holds when it is polled is pulled and handled as one chunk (a driver's backlog
pushed at once stays together, which the timestamp model needs to tell it from a gap); samples
received a second time are dropped and counted first (:mod:`realtime.stream.duplicates`).
Chunks go to a per-stream callback (called on the acquisition thread; keep it short) or a queue.
Every failure on the thread is counted and kept in the stream's health; none is swallowed.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pylsl
from pylsl.util import LostError, TimeoutError as LSLTimeoutError

from eegmamba._checks import check_positive
from realtime.stream.duplicates import DuplicateFilter
from realtime.stream.monitor import CheckConfig, Declaration, StreamCounters, StreamMonitor
from realtime.stats import StreamHealth

from realtime.stream.resolve import StreamQuery, describe_info, resolve  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AcquisitionConfig:
    """Acquisition loop settings (all seconds).

    ``stall_s`` without samples marks a stream lost; while lost, a new outlet of the same source is
    looked for every ``relocate_every_s``. ``checks``: units, timestamp and rate checks per stream.
    """

    poll_interval_s: float = 0.002
    stall_s: float = 2.0
    max_buflen_s: int = 30
    clock_refresh_s: float = 5.0
    relocate_every_s: float = 0.25
    checks: CheckConfig = field(default_factory=CheckConfig)

    def __post_init__(self) -> None:
        for name in ("poll_interval_s", "stall_s", "max_buflen_s", "clock_refresh_s", "relocate_every_s"):
            check_positive(getattr(self, name), f"AcquisitionConfig.{name}")


@dataclass(frozen=True)
class Chunk:
    """Samples pulled at once from one stream.

    samples : ndarray, shape (n_channels, n_samples), float64, µV for EEG channels (object array of
        str for string streams)
    timestamps : ndarray, shape (n_samples,), seconds on the local clock: the stream's timestamps
        regularized by its timestamp model (raw for irregular streams)
    arrival : float, ``pylsl.local_clock()`` when the chunk was pulled
    raw_timestamps : ndarray, shape (n_samples,), the timestamps as received (clock-corrected)
    breaks : tuple of ``(i, reason)``: the timeline breaks (``gap``: samples missing; ``jump``: the
        source clock jumped) before ``samples[:, i]``
    """

    key: str
    samples: np.ndarray
    timestamps: np.ndarray
    arrival: float
    raw_timestamps: np.ndarray | None = None
    breaks: tuple = ()


class Inlet:
    """One acquired stream: its description, its chunks (queue or callback) and its health."""

    def __init__(self, key: str, query: StreamQuery, info: pylsl.StreamInfo, config: AcquisitionConfig,
                 on_chunk: Callable[[Chunk], None] | None, *, units: str | None = None,
                 accept_measured_rate: bool = False) -> None:
        self.key, self.query, self._config = key, query, config
        self._on_chunk = on_chunk
        self._queue: queue.SimpleQueue[Chunk] = queue.SimpleQueue()
        self._on_queued: Callable[[], None] | None = None  # Acquisition.data_ready.set
        self._lock = threading.Lock()
        self._inlet, self.info = self._open(info)
        self._uid = info.uid()
        self.source_id = info.source_id()
        self.sfreq = info.nominal_srate()
        self.n_channels = info.channel_count()
        self.is_string = info.channel_format() == pylsl.cf_string
        self.ch_names = self.info.get_channel_labels() or [f"ch{i}" for i in range(self.n_channels)]
        self.time_correction = 0.0
        self.local = info.hostname() == socket.gethostname()  # same clock: no correction needed
        self.closed = False
        self.monitor = StreamMonitor(Declaration.from_info(self.info), config.checks, units=units,
                                     accept_measured_rate=accept_measured_rate)
        self._health = StreamCounters(self.monitor.decl.nominal_srate, config.stall_s)
        self._max_samples = max(64, int(self.sfreq * 0.5)) if self.sfreq > 0 else 256
        # re-sent samples (same stamps, same values) are dropped and counted, not taken for a jump
        self._dedup = None if self.sfreq <= 0 or self.is_string else \
            DuplicateFilter(self.n_channels, max(256, int(2 * self.sfreq)))
        self._last_relocate = 0.0
        # a block the timestamp model deferred: (samples, raw stamps, arrival, when deferred)
        self._pending: tuple[np.ndarray, np.ndarray, float, float] | None = None

    def _open(self, info: pylsl.StreamInfo) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo]:
        inlet = pylsl.StreamInlet(info, max_buflen=self._config.max_buflen_s, recover=True)
        full = inlet.info(timeout=5.0)  # with the description (channel labels)
        inlet.open_stream(timeout=5.0)
        return inlet, full

    def get(self, timeout: float | None = None) -> Chunk | None:
        """Next queued chunk, or ``None`` after ``timeout`` seconds (only without a callback)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[Chunk]:
        """All queued chunks, oldest first."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    @property
    def state(self) -> str:
        """``"waiting"``, ``"ok"`` or ``"lost"`` — the cheap part of :meth:`health`, for hot loops."""
        return self._health.state

    @property
    def hold(self) -> str | None:
        """Why no decision may be taken on this stream now (``unverified``, ``units``,
        ``rate_mismatch``), or None — cheap, for hot loops."""
        return self.monitor.hold

    @property
    def accepted_srate(self) -> float | None:
        """The measured rate (Hz) to process this stream at, when it was accepted instead of the
        declared one (``accept_measured_rate``); else None."""
        return self.monitor.accepted_srate

    def health(self) -> StreamHealth:
        h, m = self._health, self.monitor
        with self._lock:
            age = None if h.last_arrival is None else pylsl.local_clock() - h.last_arrival
            model = m.timestamps
            jitter = None if model is None else model.jitter_p95()
            return StreamHealth(
                key=self.key, name=self.info.name(), source_id=self.source_id, stype=self.info.type(),
                n_channels=self.n_channels, nominal_srate=self.sfreq, state=h.state,
                measured_srate=None if model is None else model.measured, last_sample_age_s=age,
                n_samples=h.n_samples, n_chunks=h.n_chunks,
                n_gaps=0 if model is None else model.n_gaps, gap_s=0.0 if model is None else model.gap_s,
                n_backwards=h.n_backwards, n_losses=h.n_losses, n_reconnects=h.n_reconnects,
                n_recreated=h.n_recreated, n_errors=h.n_errors, last_error=h.last_error,
                time_correction_s=self.time_correction, expected_srate=m.decl.expected_srate,
                n_jumps=0 if model is None else model.n_jumps, n_duplicates=h.n_duplicates,
                jitter_p95_ms=None if jitter is None else 1000.0 * jitter, units=m.unit_label,
                hold=m.hold, message=m.message, rate_settled=model is not None and model.settled,
            )

    # -- called on the acquisition thread only ------------------------------------------------
    def _poll(self, resolver: pylsl.ContinuousResolver) -> None:
        parts, stamps = [], []
        while True:  # everything the inlet holds now, as one chunk
            # pulling an empty inlet costs ~16x more than asking it (module docstring)
            if self._inlet.samples_available() == 0:
                break
            data, ts = self._inlet.pull_chunk(
                timeout=0.0, max_samples=self._max_samples, as_numpy=not self.is_string
            )
            if len(ts):
                parts.append(data)
                stamps.append(np.asarray(ts, dtype=np.float64))
            if len(ts) < self._max_samples:
                break
        now = pylsl.local_clock()
        pending = self._pending
        if not stamps:
            if pending is not None and now - pending[3] > self._config.checks.timestamps.defer_s:
                self._pending = None
                self._release(pending[0], pending[1], pending[2], now, may_defer=False)
                return
            with self._lock:
                lost = self._health.check_stall(now)
            if lost and now - self._last_relocate > self._config.relocate_every_s:
                self._last_relocate = now
                self._relocate(resolver)
            return
        raw = stamps[0] if len(stamps) == 1 else np.concatenate(stamps)
        if self.is_string:
            rows = [r for part in parts for r in part]
            samples = np.array(rows, dtype=object).reshape(len(raw), self.n_channels).T
        else:
            block = parts[0] if len(parts) == 1 else np.concatenate(parts)
            samples = np.array(block.T, dtype=np.float64, order="C")
        if self._dedup is not None:  # on the sender's stamps, before any clock correction
            samples, raw, n_dup = self._dedup(samples, raw)
            if n_dup:
                with self._lock:
                    self._health.duplicates(n_dup, now)
                if raw.size == 0:
                    return
        raw = raw + self.time_correction
        with self._lock:
            self._health.update(raw, now)
        if pending is None:
            self._release(samples, raw, now, now, may_defer=True)
        else:  # a deferred block and the next one: decided together
            self._pending = None
            self._release(np.concatenate([pending[0], samples], axis=1),
                          np.concatenate([pending[1], raw]), pending[2], now, may_defer=False)

    def _release(self, samples, raw, arrival, now, *, may_defer) -> None:
        """Scale, model the timestamps and hand the chunk on (or keep it back, deferred)."""
        with self._lock:
            res = self.monitor.on_block(samples, raw, arrival, may_defer=may_defer)
        if res is None:
            self._pending = (samples, raw, arrival, now)
            return
        samples, ts, breaks = res
        chunk = Chunk(self.key, samples, ts, now, raw, tuple(breaks))
        if self._on_chunk is None:
            self._queue.put(chunk)
            if self._on_queued is not None:
                self._on_queued()
        else:
            try:
                self._on_chunk(chunk)
            except Exception as exc:  # counted and shown; the loop goes on for other streams
                self._record_error(exc)
                logger.exception("stream %r: chunk callback failed", self.key)

    def _relocate(self, resolver: pylsl.ContinuousResolver) -> None:
        """While lost: re-open the inlet on a new outlet of the same source, if one is visible."""
        found = [i for i in resolver.results() if self.query.matches(i) and i.uid() != self._uid]
        same = [i for i in found if i.source_id() == self.source_id] or found
        if not same:
            return
        info = max(same, key=lambda i: i.created_at())
        if info.channel_count() != self.n_channels or info.nominal_srate() != self.sfreq:
            self._record_error(RuntimeError(
                f"stream came back with {info.channel_count()} ch @ {info.nominal_srate():g} Hz, "
                f"expected {self.n_channels} ch @ {self.sfreq:g} Hz; not reconnected"))
            self._uid = info.uid()  # report once per outlet
            return
        old = self._inlet
        self._inlet, _ = self._open(info)
        self._uid, self.source_id = info.uid(), info.source_id()
        old.close_stream()
        with self._lock:
            self._health.n_recreated += 1
        logger.info("stream %r: re-opened on a new outlet (%s)", self.key, describe_info(info))

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._health.error(exc)


class Acquisition:
    """One background thread pulling every added stream; start/stop or use as a context manager."""

    def __init__(self, config: AcquisitionConfig | None = None) -> None:
        self.config = config or AcquisitionConfig()
        self._resolver = pylsl.ContinuousResolver(forget_after=2.0)
        self._inlets: tuple[Inlet, ...] = ()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # set by the acquisition thread each time it queues a chunk: consumers wake on data
        self.data_ready = threading.Event()
        self.n_errors = 0
        self.last_error: str | None = None

    @property
    def inlets(self) -> tuple[Inlet, ...]:
        return self._inlets

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def add(self, query: StreamQuery, *, key: str | None = None, timeout: float = 5.0,
            on_chunk: Callable[[Chunk], None] | None = None, units: str | None = None,
            accept_measured_rate: bool = False, info: pylsl.StreamInfo | None = None) -> Inlet:
        """Resolve ``query`` (waiting up to ``timeout`` s), open an inlet and acquire it from now on.
        ``info``: the stream, already resolved (``query`` then only re-finds it after a loss).

        ``units``: the unit (``V``, ``mV``, ``uV``, ``nV``) of the stream's EEG channels, overriding
        what it declares; ``accept_measured_rate``: process the stream at its measured rate when it
        differs from the declared one (see :mod:`realtime.stream.monitor`).
        """
        info = info if info is not None else resolve(query, timeout, resolver=self._resolver)
        key = key or info.name()
        if any(i.key == key for i in self._inlets):
            raise ValueError(f"a stream with key {key!r} is already acquired")
        inlet = Inlet(key, query, info, self.config, on_chunk, units=units,
                      accept_measured_rate=accept_measured_rate)
        inlet._on_queued = self.data_ready.set
        if not inlet.local:
            inlet.time_correction = self._time_correction(inlet, 2.0)
        self._inlets = self._inlets + (inlet,)  # copy-on-write: the loop iterates a snapshot
        return inlet

    def health(self) -> tuple[StreamHealth, ...]:
        return tuple(i.health() for i in self._inlets)

    def wait_for_data(self, timeout: float) -> bool:
        """Block until a chunk was queued (on any inlet without a callback) since the previous call,
        or ``timeout`` seconds passed; True if data came. Drain the inlets after it returns."""
        ready = self.data_ready.wait(timeout)
        self.data_ready.clear()  # before the caller drains: a chunk queued from now on sets it again
        return ready

    def start(self) -> "Acquisition":
        if self.running:
            raise RuntimeError("acquisition already started")
        if any(i.closed for i in self._inlets):
            raise RuntimeError("acquisition was stopped (inlets closed); create a new Acquisition")
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._guard, args=(fn,), name=name, daemon=True)
            for fn, name in ((self._loop, "lsl-acquisition"), (self._clock_loop, "lsl-clock"))
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop the threads and close every inlet; health and queued chunks stay readable."""
        self._stop.set()
        for t in self._threads:
            t.join(5.0)
        self._threads = []
        for inlet in self._inlets:
            if not inlet.closed:
                inlet._inlet.close_stream()
                inlet.closed = True

    def __enter__(self) -> "Acquisition":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception as exc:  # a dead thread must show: counted, kept, logged
            self.n_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("acquisition thread failed")

    def _loop(self) -> None:
        while not self._stop.is_set():
            inlets = self._inlets
            for inlet in inlets:
                try:
                    inlet._poll(self._resolver)
                except Exception as exc:
                    inlet._record_error(exc)
                    self.n_errors += 1
                    self.last_error = f"{inlet.key}: {type(exc).__name__}: {exc}"
                    logger.exception("stream %r: pull failed", inlet.key)
            few = len(inlets) < 8  # cheap to poll: halve the latency it adds (module docstring)
            self._stop.wait(self.config.poll_interval_s / 2 if few else self.config.poll_interval_s)

    def _clock_loop(self) -> None:
        while not self._stop.wait(self.config.clock_refresh_s):
            for inlet in self._inlets:
                if inlet._health.state == "ok" and not inlet.local and not inlet.closed:
                    inlet.time_correction = self._time_correction(inlet, 1.0)

    @staticmethod
    def _time_correction(inlet: Inlet, timeout: float) -> float:
        try:
            return float(inlet._inlet.time_correction(timeout=timeout))
        except (LSLTimeoutError, LostError):  # keep the last estimate while unreachable
            return inlet.time_correction

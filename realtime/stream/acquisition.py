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

Each stream is an :class:`~realtime.stream.inlet.Inlet` (:mod:`realtime.stream.inlet`).
Everything an inlet holds when it is polled is pulled and handled as one chunk (a driver's backlog
pushed at once stays together, which the timestamp model needs to tell it from a gap); samples
received a second time are dropped and counted first (:mod:`realtime.stream.duplicates`).
Chunks go to a per-stream callback (called on the acquisition thread; keep it short) or a queue.
Every failure on the thread is counted and kept in the stream's health; none is swallowed.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import pylsl
from pylsl.util import LostError, TimeoutError as LSLTimeoutError

from realtime.stats import StreamHealth
from realtime.stream.inlet import AcquisitionConfig, Chunk, Inlet
from realtime.stream.resolve import StreamQuery, describe_info, resolve  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)


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

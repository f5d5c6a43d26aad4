"""One acquired LSL stream: :class:`Inlet` (pull, deduplicate, check, regularize, hand on), the
:class:`Chunk` it hands on and the :class:`AcquisitionConfig` of the loop that polls it.

The loop that polls every inlet from one thread, and why it is built the way it is (polling
costs, no liblsl post-processing, loss and relocation), is :mod:`realtime.stream.acquisition`.
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

from eegmamba._checks import check_positive
from realtime.stream.duplicates import DuplicateFilter
from realtime.stream.monitor import CheckConfig, Declaration, StreamCounters, StreamMonitor
from realtime.stream.resolve import StreamQuery, describe_info
from realtime.stats import StreamHealth

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

"""A scripted pylsl outlet that streams a recording with faults, as real streams and drivers have them.

Used by the loopback fault tests (``tests/realtime/test_faults.py``) and ``benchmarks/fault_matrix.py``.
The outlet pushes ``data`` in chunks at the real pace from a thread. Faults:

- units: ``scale`` multiplies the µV data (1e-6: volts), ``unit`` is what the description declares
  (``None``: no unit);
- rate: ``declared_rate`` is the nominal rate in the description, ``true_rate`` the rate samples
  really come at (and are stamped at); ``speed`` > 1 streams faster than real time and says so in
  the description (``desc/replay/speed``) as ``eegmamba-replay`` does;
- stamping: ``"exact"`` stamps sample k at its true time; ``"push"`` is a naive driver: each chunk is
  pushed after a random latency in ``[0, push_jitter_s]`` and stamped with the push time, the
  samples back-dated by one period each. The stamp is the scheduled push time (due + the latency
  drawn), so the stamps carry exactly the scripted jitter even when a loaded machine runs the
  pusher thread late (that delay is in the arrival only, as a network's would be);
- timeline ``events`` (by sample index, applied in order): :class:`Jump` (the stamps jump by
  ``dt`` s, samples keep coming on time), :class:`Gap` (``n`` samples are lost: real time passes),
  :class:`Burst` (nothing is pushed for ``pause_s``, then the backlog at once, stamps exact),
  :class:`Recreate` (the outlet is destroyed, ``pause_s`` later a new one appears, with the same or
  a new source id; samples meanwhile are lost), :class:`Resend` (the last ``n`` samples pushed are
  pushed again, same values and timestamps, as some wireless drivers do on reconnect).

Data faults (flat-lines, rails, NaN) are written into ``data`` by the caller. ``times`` records the
true local time of every sample pushed, so a test can tell which decisions cover a fault.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
import pylsl


@dataclass(frozen=True)
class Jump:
    at: int
    dt: float


@dataclass(frozen=True)
class Gap:
    at: int
    n: int


@dataclass(frozen=True)
class Burst:
    at: int
    pause_s: float


@dataclass(frozen=True)
class Recreate:
    at: int
    pause_s: float
    same_source: bool = True


@dataclass(frozen=True)
class Resend:
    at: int
    n: int


class FaultyOutlet:
    """See module docstring. ``data``: shape (n_times, n_channels), µV; loops over it forever."""

    def __init__(self, name: str, data: np.ndarray, ch_names: list[str], sfreq: float, *,
                 unit: str | None = "microvolts", scale: float = 1.0, declared_rate: float | None = None,
                 true_rate: float | None = None, stamping: str = "exact", push_jitter_s: float = 0.0,
                 chunk: int = 10, events=(), source_id: str | None = None, seed: int = 0,
                 speed: float = 1.0) -> None:
        if stamping not in ("exact", "push"):
            raise ValueError(f"stamping must be 'exact' or 'push', got {stamping!r}")
        self.name, self.data, self.ch_names = name, np.asarray(data, np.float64) * scale, list(ch_names)
        self.unit = unit
        self.declared_rate = float(declared_rate or sfreq)
        self.true_rate = float(true_rate or sfreq)
        self.speed = float(speed)
        self.stamping, self.push_jitter_s, self.chunk = stamping, push_jitter_s, chunk
        self.events = sorted(events, key=lambda e: e.at)
        self.source_id = source_id or f"fault-{name}"
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outlet = self._make_outlet(self.source_id)
        self.n_pushed = 0  # samples pushed
        self.k = 0  # next sample index
        self.times: dict[int, float] = {}  # sample index -> true local time (pushed samples)
        self.event_times: list[tuple[object, float, float]] = []  # (event, start, end) local times
        self.error: BaseException | None = None
        self.n_resent = 0  # samples pushed a second time (Resend)
        self._sent: deque[tuple[np.ndarray, list[float]]] = deque(maxlen=64)  # last pushes

    def _make_outlet(self, source_id: str) -> pylsl.StreamOutlet:
        info = pylsl.StreamInfo(self.name, "EEG", len(self.ch_names), self.declared_rate, "double64",
                                source_id)
        info.set_channel_labels(self.ch_names)
        info.set_channel_types(["eeg"] * len(self.ch_names))
        if self.unit is not None:
            info.set_channel_units([self.unit] * len(self.ch_names))
        if self.speed != 1.0:  # declared the way eegmamba-replay declares it
            info.desc().append_child("replay").append_child_value("speed", repr(self.speed))
        return pylsl.StreamOutlet(info, self.chunk)

    def start(self, wait_for_consumer_s: float = 10.0) -> "FaultyOutlet":
        self.outlet.wait_for_consumers(wait_for_consumer_s)
        self._thread = threading.Thread(target=self._guard, name=f"fault-{self.name}", daemon=True)
        self._thread.start()
        return self

    def halt(self) -> None:
        """Stop pushing; the outlet stays (what it sent still reaches its consumers)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def stop(self) -> None:
        self.halt()
        self.outlet = None
        if self.error is not None:
            raise RuntimeError(f"fault outlet {self.name!r} failed: {self.error}") from self.error

    def _guard(self) -> None:
        try:
            self._run()
        except Exception as exc:  # kept and re-raised by stop(): a test must not pass on a dead pusher
            self.error = exc

    def _sleep_until(self, t: float) -> bool:
        delay = t - pylsl.local_clock()
        return delay > 0 and self._stop.wait(delay)

    def _run(self) -> None:
        period = 1.0 / (self.true_rate * self.speed)
        t0 = pylsl.local_clock()
        offset = 0.0  # clock jumps so far
        pending = list(self.events)
        n = self.data.shape[0]
        while not self._stop.is_set():
            k_end = self.k + self.chunk
            ev = pending[0] if pending and pending[0].at < k_end else None
            if ev is not None:
                k_end = ev.at
            if k_end > self.k:
                idx = np.arange(self.k, k_end)
                true = t0 + idx * period
                if self._sleep_until(true[-1]):
                    return
                rows = self.data[idx % n]
                if self.stamping == "exact":
                    stamps = (true + offset).tolist()
                else:  # stamped with the scheduled push time (see module docstring)
                    push_at = true[-1] + (self._rng.uniform(0, self.push_jitter_s)
                                          if self.push_jitter_s > 0 else 0.0)
                    if self._sleep_until(push_at):
                        return
                    stamps = (push_at + offset - (idx[-1] - idx) * period).tolist()
                self.outlet.push_chunk(rows, stamps)
                self._sent.append((rows, stamps))
                self.times.update(zip(idx.tolist(), true.tolist()))
                self.n_pushed += idx.size
                self.k = k_end
            if ev is not None:
                pending.pop(0)
                start = t0 + self.k * period
                if isinstance(ev, Jump):
                    offset += ev.dt
                    self.event_times.append((ev, start, start))
                elif isinstance(ev, Gap):
                    self.k += ev.n
                    self.event_times.append((ev, start, t0 + self.k * period))
                elif isinstance(ev, Burst):
                    # nothing for pause_s, then everything due by then at once (exact stamps)
                    self.event_times.append((ev, start, start + ev.pause_s))
                    if self._sleep_until(start + ev.pause_s):
                        return
                    k_due = int((pylsl.local_clock() - t0) / period)
                    idx = np.arange(self.k, k_due)
                    self.outlet.push_chunk(self.data[idx % n], (t0 + idx * period + offset).tolist())
                    self.times.update(zip(idx.tolist(), (t0 + idx * period).tolist()))
                    self.n_pushed += idx.size
                    self.k = k_due
                elif isinstance(ev, Resend):  # the last n samples again, as they were sent
                    rows = np.concatenate([r for r, _ in self._sent])[-ev.n:]
                    stamps = [t for _, ts in self._sent for t in ts][-ev.n:]
                    self.outlet.push_chunk(rows, stamps)
                    self.n_resent += len(stamps)
                    self.event_times.append((ev, start, start))
                elif isinstance(ev, Recreate):
                    self.outlet = None  # destroyed: the stream disappears
                    if self._sleep_until(start + ev.pause_s):
                        return
                    sid = self.source_id if ev.same_source else f"{self.source_id}-new"
                    self.outlet = self._make_outlet(sid)
                    self.k = int((pylsl.local_clock() - t0) / period)
                    self.event_times.append((ev, start, t0 + self.k * period))

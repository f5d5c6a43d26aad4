"""Stats snapshots for the live loop: stream health, per-profile state, latency percentiles, drops.

Everything here is a frozen dataclass (a value taken at one instant) or a small thread-safe
accumulator that produces one. The dashboard and the final summary render snapshots only; they
never touch a stream.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class StreamHealth:
    """Health of one acquired LSL stream at one instant.

    ``state`` is ``"waiting"`` (no sample yet), ``"ok"`` or ``"lost"`` (no sample for longer than
    the stall limit). Rates are in Hz; ``measured_srate`` is the rate fitted by the stream's
    timestamp model (``None`` until it spans 0.2 s; ``rate_settled`` once it is stable);
    ``expected_srate`` the nominal rate times a replay's declared speed. ``last_sample_age_s`` is
    the local time since the last chunk arrived. ``n_gaps`` / ``gap_s`` count the timeline breaks
    where samples were missing (and their total length in seconds), ``n_jumps`` those where the
    source clock jumped (either way), ``n_backwards`` raw timestamps not after the previous one
    (overlapping push-stamped chunks make many), ``jitter_p95_ms`` the 95th percentile of
    |raw - regularized timestamp|; ``n_duplicates`` samples received a second time (same
    timestamp, same values: a driver re-sending a chunk), dropped; ``n_losses`` stalls beyond the
    limit, ``n_reconnects`` resumptions after a loss, ``n_recreated`` inlets re-opened on a new
    outlet of the same source.
    ``units``: the EEG channels' unit as declared or assumed; ``hold``: why no decision may be
    taken on the stream now (``unverified``, ``units``, ``rate_mismatch``) with ``message``, one
    line saying what to do. ``n_errors``/``last_error``: failures of the acquisition thread for
    this stream (callback or pull errors).
    """

    key: str
    name: str
    source_id: str
    stype: str
    n_channels: int
    nominal_srate: float
    state: str = "waiting"
    measured_srate: float | None = None
    last_sample_age_s: float | None = None
    n_samples: int = 0
    n_chunks: int = 0
    n_gaps: int = 0
    gap_s: float = 0.0
    n_backwards: int = 0
    n_losses: int = 0
    n_reconnects: int = 0
    n_recreated: int = 0
    n_errors: int = 0
    last_error: str | None = None
    time_correction_s: float = 0.0
    expected_srate: float | None = None
    n_jumps: int = 0
    jitter_p95_ms: float | None = None
    units: str = "-"
    hold: str | None = None
    message: str | None = None
    rate_settled: bool = False
    n_duplicates: int = 0

    @property
    def drift(self) -> float | None:
        """Relative rate error ``measured / expected - 1`` (``None`` when not measurable)."""
        expected = self.expected_srate or self.nominal_srate
        if self.measured_srate is None or expected <= 0:
            return None
        return self.measured_srate / expected - 1.0


@dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles in milliseconds over the last ``n`` values (all ``None`` when empty)."""

    n: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @classmethod
    def from_values(cls, values_ms: Iterable[float]) -> "LatencyStats":
        v = np.asarray(list(values_ms), dtype=float)
        if v.size == 0:
            return cls()
        p50, p95, p99 = np.percentile(v, [50, 95, 99])
        return cls(int(v.size), float(p50), float(p95), float(p99), float(v.max()))


class LatencyTracker:
    """Thread-safe ring of the last ``maxlen`` latencies (ms) with percentile snapshots."""

    def __init__(self, maxlen: int = 5000) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self._values: deque[float] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.total = 0

    def add(self, latency_ms: float) -> None:
        with self._lock:
            self._values.append(float(latency_ms))
            self.total += 1

    def snapshot(self) -> LatencyStats:
        with self._lock:
            values = list(self._values)
        return LatencyStats.from_values(values)


@dataclass(frozen=True)
class ProfileStats:
    """State of one profile's decisions at one instant.

    ``classes`` gives the order of ``probs`` (current smoothed probabilities); ``history`` the most
    recent labels, oldest first; ``accuracy`` is the fraction of ``n_scored`` decisions whose label
    equals the replayed annotation at the window (``None`` without annotations).
    ``truth_history``: the true class of each ``history`` decision (None: not scored);
    ``confusion``: (true class, decided class) -> decisions; ``scored``: truth is known for this
    profile; ``model_version``: of the model deciding now; ``accuracy_by_round``: calibration
    round (0 before the first model swap of the session, 1 after it, ...) -> (accuracy, scored).
    ``alignment``: the Euclidean-alignment reference's age (``EuclideanReference.age``: seconds of
    signal, seconds since its last update, ready, warm-up), None when the profile does not align.
    """

    name: str
    classes: tuple[str, ...]
    label: str | None = None
    probs: tuple[float, ...] = ()
    history: tuple[str, ...] = ()
    smoothing: str = "none"
    n_windows: int = 0
    n_decisions: int = 0
    accuracy: float | None = None
    n_scored: int = 0
    latency: LatencyStats = field(default_factory=LatencyStats)
    drops: Mapping[str, int] = field(default_factory=dict)
    truth_history: tuple[str | None, ...] = ()
    confusion: Mapping[tuple[str, str], int] = field(default_factory=dict)
    scored: bool = False
    model_version: int = 0
    accuracy_by_round: Mapping[int, tuple[float, int]] = field(default_factory=dict)
    alignment: Mapping | None = None

    def __post_init__(self) -> None:
        if self.probs and len(self.probs) != len(self.classes):
            raise ValueError(
                f"profile {self.name!r}: {len(self.probs)} probabilities for {len(self.classes)} classes"
            )


@dataclass(frozen=True)
class ChannelQuality:
    """One required channel over the last second of raw input: ``state`` is ``ok``, ``flat``,
    ``railed``, ``NaN`` or ``high-amplitude`` (the profile's quality rules); ``rms_uv`` its RMS
    around the mean (µV; None without data)."""

    name: str
    state: str = "waiting"
    rms_uv: float | None = None


@dataclass(frozen=True)
class SignalStats:
    """The channels one profile needs from one stream (``realtime.screen.signal_quality``)."""

    name: str
    channels: tuple[ChannelQuality, ...] = ()


@dataclass(frozen=True)
class MarkerStats:
    """The marker stream giving truth/cues: markers received, the last one, cues per class and
    the clock offset applied to its timestamps (``time_correction``, s; 0 on this host)."""

    name: str
    n_markers: int = 0
    last: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    offset_s: float = 0.0
    local: bool = True


@dataclass(frozen=True)
class CollectStats:
    """Calibration data collection: complete trials and windows per class, drops by reason,
    ``progress`` (0..1) towards the stop rule ``target``."""

    trials: Mapping[str, int] = field(default_factory=dict)
    windows: Mapping[str, int] = field(default_factory=dict)
    drops: Mapping[str, int] = field(default_factory=dict)
    progress: float = 0.0
    target: str = ""
    done: bool = False


@dataclass(frozen=True)
class CalibrationStats:
    """One profile's live calibration (``realtime.calibration.calibrator``): ``phase`` is ``collecting``,
    ``fine-tuning``, ``swapped``, ``kept`` or ``failed``; ``before``/``after`` the held-out metrics
    of the current and the fine-tuned model; ``swaps`` one record per model swap."""

    profile: str
    phase: str
    collect: CollectStats = field(default_factory=CollectStats)
    epoch: int = 0
    max_epochs: int = 0
    last_epoch: Mapping = field(default_factory=dict)
    before: Mapping | None = None
    after: Mapping | None = None
    message: str = ""
    swaps: tuple = ()
    saved: str | None = None
    layers: str = ""


@dataclass(frozen=True)
class SkippedStream:
    """A visible stream a many-stream session selected but does not serve, and why (e.g. a profile
    channel missing; ``realtime.finder``)."""

    name: str
    source_id: str
    host: str
    reason: str


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows, taken at one instant (``uptime_s`` seconds since start)."""

    streams: tuple[StreamHealth, ...] = ()
    profiles: tuple[ProfileStats, ...] = ()
    latency: LatencyStats = field(default_factory=LatencyStats)
    drops: Mapping[str, int] = field(default_factory=dict)
    uptime_s: float = 0.0
    device: str = "cpu"
    n_errors: int = 0
    last_error: str | None = None
    title: str = "eegmamba-live"
    signals: tuple[SignalStats, ...] = ()
    markers: tuple[MarkerStats, ...] = ()
    calibrations: tuple[CalibrationStats, ...] = ()
    round_names: tuple[str, ...] = ()  # names of LiveLoop rounds (accuracy_by_round keys)
    skipped: tuple[SkippedStream, ...] = ()  # selected streams not served (many-stream session)
    selection: str | None = None  # what a many-stream session serves (None: one stream)
    # how each checkpoint runs, (level, line): "warning" an override, "info" live-only settings
    notices: tuple[tuple[str, str], ...] = ()


QUALITY_REASONS = ("rail", "flat_run", "flat", "saturated", "nonfinite")
"""Drop reasons that are about the signal itself (``eegmamba.windowing``), not the timeline."""


def quality_notes(snapshot: "Snapshot", min_windows: int = 4) -> list[str]:
    """One line per profile that has no decision yet while ``min_windows`` or more of its windows
    were dropped, all for the signal's quality: what to check (the electrodes, and the unit the
    stream is read in — a signal in volts read as µV is flat at every window)."""
    return list(quality_notes_by_profile(snapshot, min_windows).values())


def quality_notes_by_profile(snapshot: "Snapshot", min_windows: int = 4) -> dict[str, str]:
    """:func:`quality_notes` keyed by profile (output) name."""
    units = "; ".join(f"stream '{s.name}' is read as {s.units}" for s in snapshot.streams
                      if s.nominal_srate > 0)
    notes = {}
    for p in snapshot.profiles:
        bad = {r: n for r, n in p.drops.items() if r in QUALITY_REASONS and n}
        other = sum(n for r, n in p.drops.items() if r not in QUALITY_REASONS)
        if p.n_decisions or sum(bad.values()) < min_windows or other > sum(bad.values()):
            continue
        why = ", ".join(f"{r} {n}" for r, n in sorted(bad.items(), key=lambda kv: -kv[1]))
        notes[p.name] = (f"{p.name}: no decision, every window dropped for signal quality ({why}): "
                         f"check the electrodes and the units ({units or 'no stream'}); if the "
                         "samples are in another unit, rerun with --units V|mV|uV|nV")
    return notes

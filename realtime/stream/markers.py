"""Cues from an LSL marker stream: which class a stretch of EEG belongs to, on the EEG's clock.

A stimulus program, an ``eegmamba-replay`` (``<name>-markers``) or a LabRecorder replay publishes
markers (type ``Markers``, one string per sample). mne-lsl's ``PlayerLSL(..., annotations=True)``
publishes ``<name>-annotations`` (type ``annotations``) one-hot instead: float64, one channel per
annotation description (the channel label), each sample non-zero on the channel of its annotation,
the value its duration in seconds (-1 for none); such a stream is read as the label of that channel
with that duration. ``MarkerMap`` turns a marker string into one of
a profile's classes with the profile's label rules (annotation descriptions → class), the class
names themselves, and ``--marker-map TEXT=CLASS`` overrides. ``CueTimeline`` keeps the cues;
the acquisition thread feeds it (``on_chunk``), the live loop and the calibration read it.

Timing: the acquisition adds each inlet's ``time_correction`` (for streams from another host), so
marker and EEG timestamps are both on this machine's LSL clock; the offsets are on the dashboard.
A cue lasts its duration when the marker carries one (a second channel labelled ``duration_s``,
as ``eegmamba-replay`` publishes), else until the next marker (of any kind), capped at
``max_cue_s`` when given.

A window takes a cue's class only when it lies wholly inside the cue: the rule of the offline
dataset (``eegmamba.data.dataset.window_label``), so live accuracy scores the windows an offline
evaluation scores.
"""

from __future__ import annotations

import bisect
import copy
import math
import threading
from collections import Counter
from dataclasses import dataclass

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.profiles import IGNORE, Profile


def parse_marker_map(items: list[str]) -> dict[str, str]:
    """``["T1=left_fist", ...]`` → ``{"T1": "left_fist"}``; bad items are a user error."""
    out = {}
    for item in items:
        text, sep, cls = item.rpartition("=")
        if not sep or not text.strip() or not cls.strip():
            raise UserInputError(f"--marker-map expects MARKER=CLASS (or MARKER=ignore), got {item!r}")
        out[text.strip()] = cls.strip()
    return out


class MarkerMap:
    """Marker string → class name, ``"ignore"`` (labels nothing, ends the previous cue) or None
    (unknown: ends the previous cue, counted).

    The profile's rules apply whatever their ``runs`` unless ``run`` is given (then only the
    rules of that run); a string the rules map to different classes in different runs (the
    5-class EEGMMIDB profile's ``T1``) must be resolved with ``overrides`` or ``run``.
    """

    def __init__(self, profile: Profile, overrides: dict[str, str] | None = None,
                 run: int | None = None) -> None:
        self.profile_name, self.classes = profile.name, tuple(profile.classes)
        table: dict[str, str] = {}
        meanings: dict[str, dict[str, list]] = {}
        for rule in profile.labels:
            if run is not None and rule.runs is not None and run not in rule.runs:
                continue
            for d in rule.descriptions:
                meanings.setdefault(d, {}).setdefault(rule.cls, []).extend(rule.runs or ["any"])
                table.setdefault(d, rule.cls)
        for c in self.classes:
            table.setdefault(c, c)
        overrides = dict(overrides or {})
        for text, cls in overrides.items():
            if cls not in (*self.classes, IGNORE):
                raise UserInputError(f"--marker-map {text}={cls}: {cls!r} is not a class of profile "
                                     f"{profile.name!r} ({', '.join(self.classes)}) nor 'ignore'")
            table[text] = cls
        ambiguous = {d: m for d, m in meanings.items() if len(m) > 1 and d not in overrides}
        if ambiguous:
            d, m = next(iter(ambiguous.items()))
            alts = " or ".join(f"{c} (runs {', '.join(map(str, r))})" for c, r in m.items())
            raise UserInputError(
                f"marker {d!r} means {alts} in profile {profile.name!r}: say which with "
                f"--marker-map {d}=CLASS (or --marker-run N)")
        self.table = table

    def __call__(self, text: str) -> str | None:
        return self.table.get(text.strip())

    def describe(self) -> str:
        return ", ".join(f"{k}→{v}" for k, v in sorted(self.table.items()) if k != v)


@dataclass(frozen=True)
class Cue:
    """One marker: ``onset`` (LSL s, local clock), ``end`` (s; inf while open), its text and class."""

    onset: float
    end: float
    text: str
    cls: str | None

    @property
    def trial(self) -> str:
        return f"{self.text}@{self.onset:.4f}"


class CueTimeline:
    """Thread-safe list of cues, in onset order.

    ``add_chunk(samples, timestamps)`` takes an acquisition chunk of a marker stream (samples
    ``(n_channels, n)`` of str; a channel named ``duration_s`` gives durations), or with
    ``one_hot`` (the channel labels) of a one-hot numeric stream (module docstring).
    """

    def __init__(self, markers: MarkerMap, max_cue_s: float | None = None,
                 duration_channel: int | None = None, tolerance_s: float = 0.0,
                 one_hot: list[str] | None = None) -> None:
        if max_cue_s is not None and not max_cue_s > 0:
            raise UserInputError(f"--cue-s must be > 0 seconds, got {max_cue_s}")
        self.map, self.max_cue_s, self.duration_channel = markers, max_cue_s, duration_channel
        self.one_hot = None if one_hot is None else list(one_hot)
        # window edges and marker stamps are the same EEG samples' times computed by different
        # float arithmetic (dejittered stamps vs the marker's own): within half a sample period
        # they are the same sample, as the offline labels (sample indices) see it
        self.tolerance_s = float(tolerance_s)
        self._lock = threading.Lock()
        self._onsets: list[float] = []
        self._cues: list[Cue] = []
        self.counts: Counter = Counter()  # per class (or "ignore" / "unknown")
        self.last: Cue | None = None
        self.n_markers = 0

    def add(self, text: str, t: float, duration: float | None = None) -> Cue:
        cls = self.map(text)
        with self._lock:
            k = bisect.bisect_right(self._onsets, t)
            if k > 0:  # the previous open cue ends here
                prev = self._cues[k - 1]
                if math.isinf(prev.end) or prev.end > t:
                    self._cues[k - 1] = Cue(prev.onset, t, prev.text, prev.cls)
            end = math.inf
            if duration is not None and duration > 0:
                end = t + duration
            elif self.max_cue_s is not None:
                end = t + self.max_cue_s
            if k < len(self._onsets):
                end = min(end, self._onsets[k])
            cue = Cue(t, end, text, cls)
            self._onsets.insert(k, t)
            self._cues.insert(k, cue)
            self.counts[cls if cls is not None else "unknown"] += 1
            self.n_markers += 1
            self.last = cue
        return cue

    def add_chunk(self, samples: np.ndarray, timestamps: np.ndarray) -> None:
        if self.one_hot is not None:
            for j, t in enumerate(timestamps):
                for i in np.flatnonzero(np.nan_to_num(samples[:, j]) != 0):
                    value = float(samples[i, j])
                    self.add(self.one_hot[i], float(t), value if value > 0 else None)
            return
        for j, t in enumerate(timestamps):
            duration = None
            if self.duration_channel is not None:
                try:
                    duration = float(samples[self.duration_channel, j])
                except (TypeError, ValueError):
                    duration = None
            self.add(str(samples[0, j]), float(t), duration)

    def view(self, tolerance_s: float) -> "CueTimeline":
        """The same cues (shared, growing as this timeline is fed) judged with another tolerance:
        one cue stream scoring EEG streams of different rates (half a sample period of each)."""
        v = copy.copy(self)  # shares the lock, the cue lists and the counts
        v.tolerance_s = float(tolerance_s)
        return v

    def cues(self) -> list[Cue]:
        with self._lock:
            return list(self._cues)

    def cue_at(self, t_start: float, t_end: float) -> tuple[Cue | None, str | None]:
        """``(cue, None)`` when ``[t_start, t_end]`` lies wholly in one cue of a class, else
        ``(None, reason)``: ``unlabelled``, ``partly_unlabelled``, ``straddles_label_change``."""
        tol = self.tolerance_s
        t_start, t_end = t_start + tol, t_end - tol
        with self._lock:
            k = bisect.bisect_right(self._onsets, t_start) - 1
            j = bisect.bisect_right(self._onsets, t_end)
            over = [c for c in self._cues[max(k, 0):j] if c.end > t_start and c.onset <= t_end]
        classes = {c.cls for c in over if c.cls not in (None, IGNORE)}
        if not classes:
            return None, "unlabelled"
        if len(classes) > 1:
            return None, "straddles_label_change"
        inside = [c for c in over if c.onset <= t_start and t_end < c.end and c.cls in classes]
        if not inside:
            return None, "partly_unlabelled"
        return inside[0], None

    def truth(self, t_start: float, t_end: float) -> str | None:
        """The class of a decided window (the ``GroundTruth`` of the live loop), or None."""
        cue, _ = self.cue_at(t_start, t_end)
        return None if cue is None else cue.cls


def duration_channel_of(ch_names: list[str]) -> int | None:
    """Index of a ``duration_s`` channel (as ``eegmamba-replay`` publishes), or None."""
    for i, n in enumerate(ch_names):
        if n.strip().lower() in ("duration_s", "duration"):
            return i
    return None


def marker_maps(profiles: list[Profile], overrides: dict[str, str], run: int | None = None
                ) -> list[MarkerMap]:
    """One ``MarkerMap`` per profile, each with the overrides naming its classes; an override
    naming no class of any profile is a user error (as are ambiguous markers, ``MarkerMap``)."""
    maps = [MarkerMap(p, {k: v for k, v in overrides.items() if v in (*p.classes, IGNORE)}, run)
            for p in profiles]
    unknown = {k: v for k, v in overrides.items()
               if not any(v in (*p.classes, IGNORE) for p in profiles)}
    if unknown:
        k, v = next(iter(unknown.items()))
        raise UserInputError(f"--marker-map {k}={v}: {v!r} is not a class of any profile run here")
    return maps


def subscribe(acquisition, name: str, profiles: list[Profile], overrides: dict[str, str],
              run: int | None = None, max_cue_s: float | None = None, timeout: float = 10.0,
              eeg_sfreq: float = 0.0, source_id: str | None = None, info=None,
              key: str | None = None):
    """Acquire the marker stream ``name`` (and ``source_id`` when given: an in-process replay's own
    markers) and feed one ``CueTimeline`` per profile from the acquisition thread. Returns
    ``(inlet, timelines)``; a stream that is not a marker stream (a regular rate) is a user error.
    ``eeg_sfreq`` (Hz): the EEG stream's rate; window edges within half of its sample period of a
    cue's onset/end count as that sample. ``info``: the stream, already resolved (a many-stream
    session's cue streams, ``realtime.stream.pairing``); ``key``: its acquisition key (default
    ``<name> (markers)``)."""
    from realtime.stream.acquisition import StreamQuery

    maps = marker_maps(profiles, overrides, run)
    timelines: list[CueTimeline] = []

    def on_chunk(chunk) -> None:
        for tl in timelines:
            tl.add_chunk(chunk.samples, chunk.timestamps)

    inlet = acquisition.add(StreamQuery(name=name, source_id=source_id),
                            key=key or f"{name} (markers)", timeout=timeout, on_chunk=on_chunk,
                            info=info)
    if inlet.sfreq > 0:
        raise UserInputError(f"--markers {name}: stream {name!r} is sampled at {inlet.sfreq:g} Hz "
                             "(a signal, not a marker stream); give the stimulus program's "
                             "Markers stream (see eegmamba-live --list)")
    dur = duration_channel_of(inlet.ch_names)
    tol = 0.5 / eeg_sfreq if eeg_sfreq > 0 else 0.0
    # mne-lsl's one-hot annotations: numeric, type "annotations" (other numeric marker streams keep
    # their values as text)
    one_hot = inlet.ch_names if not inlet.is_string and inlet.info.type().lower() == "annotations" \
        else None
    timelines.extend(CueTimeline(m, max_cue_s, dur, tol, one_hot) for m in maps)
    return inlet, timelines

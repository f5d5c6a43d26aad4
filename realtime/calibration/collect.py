"""Labelled calibration windows from the live EEG stream.

The stream's chunks (tapped from the live loop, on its thread) go through the *same* objects the
offline dataset uses (``eegmamba.data.dataset.build_windows`` → ``windowing.window_recording``): a
``Preprocessor`` and a ``Windower`` on the profile's training hop (``window.train_hop_s``). Each
window waits until the cue timeline can tell its class for good (the marker after it arrived, or
the cue's end is known), then is kept with its trial (the cue) or counted as dropped with the
dataset's reasons (``unlabelled``, ``partly_unlabelled``, ``straddles_label_change``, and the
windower's ``gap``, ``flat``...).

Collection stops when ``trials`` cues of the profile's classes are complete (their cue ended),
or when the EEG has run ``seconds`` since the first sample (windows ending later are not used).
"""

from __future__ import annotations

import math
from collections import Counter, deque

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import Profile
from eegmamba.windowing import Window, Windower
from realtime.stream.markers import CueTimeline
from realtime.stats import CollectStats

_MAX_PENDING_S = 60.0  # windows waiting longer than this for a marker are dropped (no_marker)


class Collector:
    """Collect labelled windows for one profile from one stream.

    Parameters
    ----------
    profile : Profile; picks : indices of the profile's channels in the stream (the live pipeline's)
    in_sfreq : float, Hz, the stream's nominal rate; timeline : CueTimeline of the marker stream
    trials : int | None, stop after this many complete trials; seconds : float | None, or after
        this many seconds of EEG (at least one of the two)
    """

    def __init__(self, profile: Profile, picks: np.ndarray, in_sfreq: float, timeline: CueTimeline,
                 trials: int | None = None, seconds: float | None = None) -> None:
        if trials is None and seconds is None:
            raise UserInputError("calibration needs --calib-trials N or --calib-seconds S")
        if trials is not None and trials < 2:
            raise UserInputError(f"--calib-trials must be >= 2, got {trials}")
        if seconds is not None and not seconds > 0:
            raise UserInputError(f"--calib-seconds must be > 0, got {seconds}")
        self.profile, self.picks, self.timeline = profile, np.asarray(picks), timeline
        self.trials_target, self.seconds = trials, seconds
        hop = profile.window.train_hop_s
        self.pre = Preprocessor(profile, in_sfreq, len(self.picks))
        self.windower = Windower.from_profile(profile, hop, in_sfreq=in_sfreq)
        self.max_pending = int(math.ceil(_MAX_PENDING_S / hop))
        self.pending: deque[Window] = deque()
        self.X: list[np.ndarray] = []
        self.y: list[int] = []
        self.groups: list[str] = []
        self.t_start: list[float] = []
        self.trial_end: dict[str, float] = {}
        self.label_drops: Counter = Counter()
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.done = False

    # ------------------------------------------------------------------ feeding
    def push(self, chunks: list[tuple], hold: str | None = None) -> None:
        """Feed the stream's chunks ``(samples (C_stream, n), timestamps (n,), arrival[, breaks])``
        (``breaks``: ``(i, reason)`` timeline breaks before sample i of the chunk, as the live
        pipeline gets them). ``hold``: the stream is not what it claims now (``Inlet.hold``): the
        windows these samples complete are counted under that reason, never collected."""
        if self.done:
            return
        chunks = [c for c in chunks if c[0].shape[1]]
        if not chunks:
            return
        x = np.concatenate([c[0][self.picks] for c in chunks], axis=1).astype(np.float64)
        ts = np.concatenate([c[1] for c in chunks])
        breaks, offset = [], 0
        for c in chunks:
            breaks += [(offset + i, reason) for i, reason in (c[3] if len(c) > 3 else ())]
            offset += c[0].shape[1]
        if self.t_first is None:
            self.t_first = float(ts[0])
        self.t_last = float(ts[-1])
        self.windower.push_input(x, breaks)
        y, ty = self.pre.push(x, ts)
        if y.shape[1]:
            windows = self.windower.push(y, ty)
            if hold is not None:
                self.label_drops[hold] += len(windows)
            else:
                self.pending.extend(windows)
        while len(self.pending) > self.max_pending:
            self.pending.popleft()
            self.label_drops["no_marker"] += 1
        self._resolve()
        self._check_done()

    def _known_until(self) -> float:
        cues = self.timeline.cues()
        if not cues:
            return -math.inf
        last = cues[-1]
        return last.end if math.isfinite(last.end) else last.onset

    def _resolve(self) -> None:
        known = self._known_until()
        cutoff = math.inf if self.seconds is None else self.t_first + self.seconds
        while self.pending and self.pending[0].t_end <= known:
            w = self.pending.popleft()
            if w.t_end > cutoff:
                self.label_drops["after_calibration"] += 1
                continue
            cue, reason = self.timeline.cue_at(w.t_start, w.t_end)
            if cue is None:
                self.label_drops[reason] += 1
                continue
            self.X.append(w.data)
            self.y.append(self.profile.classes.index(cue.cls))
            self.groups.append(cue.trial)
            self.t_start.append(w.t_start)
            self.trial_end[cue.trial] = cue.end

    def _complete_trials(self) -> list[str]:
        known = self._known_until()
        return [t for t, end in self.trial_end.items() if end <= known]

    def _check_done(self) -> None:
        if self.trials_target is not None and len(self._complete_trials()) >= self.trials_target:
            self.done = True
        if (self.seconds is not None and self.t_last is not None
                and self.t_last - self.t_first >= self.seconds):
            self.done = True
        if self.done:
            self._resolve()

    # ------------------------------------------------------------------ results
    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(X (N, C, T) float32, y (N,), groups (N,) str, t_start (N,))`` of the complete trials."""
        keep = set(self._complete_trials()) if self.trials_target is not None else set(self.groups)
        idx = [i for i, g in enumerate(self.groups) if g in keep]
        if not idx:
            return (np.zeros((0, self.profile.n_channels, self.profile.window_samples), np.float32),
                    np.zeros(0, np.int64), np.zeros(0, str), np.zeros(0))
        return (np.stack([self.X[i] for i in idx]).astype(np.float32),
                np.asarray([self.y[i] for i in idx], np.int64),
                np.asarray([self.groups[i] for i in idx]),
                np.asarray([self.t_start[i] for i in idx], np.float64))

    def stats(self) -> CollectStats:
        classes = self.profile.classes
        complete = set(self._complete_trials())
        trial_cls: dict[str, int] = {}
        for g, k in zip(self.groups, self.y):
            trial_cls.setdefault(g, k)
        trials = {c: sum(1 for g, k in trial_cls.items() if k == i and g in complete)
                  for i, c in enumerate(classes)}
        windows = {c: int(sum(1 for k in self.y if k == i)) for i, c in enumerate(classes)}
        parts = []
        if self.trials_target is not None:
            parts.append(sum(trials.values()) / self.trials_target)
        if self.seconds is not None and self.t_last is not None:
            parts.append((self.t_last - self.t_first) / self.seconds)
        target = " or ".join(
            ([f"{self.trials_target} trials"] if self.trials_target is not None else [])
            + ([f"{self.seconds:g} s"] if self.seconds is not None else []))
        drops = dict(self.label_drops + self.windower.drops)
        return CollectStats(trials, windows, drops, min(1.0, max(parts, default=0.0)), target,
                            self.done)

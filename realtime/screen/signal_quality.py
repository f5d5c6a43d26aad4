"""Per-channel signal quality for the dashboard: a loose electrode shows before the classifier sees it.

For each channel a profile needs, over the last second of *raw* input (µV, as the stream sends it,
before any filter), with the profile's quality rules (``QualitySpec``):

- ``NaN``: a non-finite sample;
- ``railed``: |x| >= ``rail_uv`` for ``rail_run_s`` in a row (the amplifier's rail);
- ``flat``: consecutive samples within ``flat_run_uv`` for ``flat_run_s`` in a row, or an RMS below
  ``flat_std_uv`` (a disconnected or shorted electrode);
- ``high-amplitude``: a peak |x - mean| >= ``saturation_uv`` (movement, a popping electrode);
- ``ok`` otherwise. RMS is around the mean of that second (µV).

The live loop's thread only appends chunks to a ring buffer (``tap``); the figures are computed
when the dashboard asks (``stats``), on its thread.
"""

from __future__ import annotations

import threading

import numpy as np

from eegmamba.profiles import Profile
from realtime.stats import ChannelQuality, SignalStats


def _longest_run(mask: np.ndarray) -> int:
    """Longest run of True along the last axis, per row."""
    if mask.shape[-1] == 0:
        return np.zeros(mask.shape[:-1], int)
    padded = np.concatenate([np.zeros((*mask.shape[:-1], 1), bool), mask,
                             np.zeros((*mask.shape[:-1], 1), bool)], axis=-1).astype(np.int8)
    d = np.diff(padded, axis=-1)
    out = np.zeros(mask.shape[:-1], int)
    for i in range(mask.shape[0]):
        starts, ends = np.flatnonzero(d[i] == 1), np.flatnonzero(d[i] == -1)
        if starts.size:
            out[i] = int((ends - starts).max())
    return out


def channel_states(x: np.ndarray, sfreq: float, profile: Profile) -> list[tuple[str, float | None]]:
    """``(state, rms µV)`` per row of ``x`` (C, n) µV raw input (see module docstring)."""
    q = profile.quality
    out = []
    finite = np.isfinite(x)
    for i in range(x.shape[0]):
        row = x[i]
        if row.size == 0:
            out.append(("waiting", None))
            continue
        if not finite[i].all():
            good = row[finite[i]]
            rms = float(np.std(good)) if good.size else None
            out.append(("NaN", rms))
            continue
        centred = row - row.mean()
        rms = float(np.sqrt(np.mean(centred ** 2)))
        run = lambda m: int(_longest_run(m[None])[0])  # noqa: E731
        if q.rail_uv is not None and run(np.abs(row) >= q.rail_uv) >= q.rail_run_s * sfreq:
            state = "railed"
        elif ((q.flat_run_s is not None and row.size > 1
               and run(np.abs(np.diff(row)) <= q.flat_run_uv) + 1 >= q.flat_run_s * sfreq)
              or rms < q.flat_std_uv):
            state = "flat"
        elif np.abs(centred).max() >= q.saturation_uv:
            state = "high-amplitude"
        else:
            state = "ok"
        out.append((state, rms))
    return out


class SignalMonitor:
    """The last ``seconds`` of a profile's channels on one stream, for ``stats()``."""

    def __init__(self, name: str, profile: Profile, picks: np.ndarray, sfreq: float,
                 seconds: float = 1.0) -> None:
        self.name, self.profile, self.picks, self.sfreq = name, profile, np.asarray(picks), sfreq
        self.n = max(2, int(round(seconds * sfreq)))
        self._buf = np.zeros((len(self.picks), 0))
        self._lock = threading.Lock()

    def tap(self, chunks: list, hold: str | None = None) -> None:
        """Live-loop tap: ``chunks`` of ``(samples (C_stream, n), timestamps, arrival[, breaks])``;
        the signal panel shows the signal whatever the stream's ``hold``."""
        parts = [c[0][self.picks] for c in chunks if c[0].shape[1]]
        if not parts:
            return
        with self._lock:
            self._buf = np.concatenate([self._buf, *parts], axis=1)[:, -self.n:]

    def stats(self) -> SignalStats:
        with self._lock:
            x = np.asarray(self._buf, dtype=np.float64)
        names = self.profile.channels.names
        if x.shape[1] == 0:
            return SignalStats(self.name, tuple(ChannelQuality(n) for n in names))
        states = channel_states(x, self.sfreq, self.profile)
        return SignalStats(self.name, tuple(ChannelQuality(n, s, r) for n, (s, r) in zip(names, states)))

"""Runs of bad raw samples (flat-lines, rail) and timeline breaks, tracked by input sample index.

Part of the windowing rule (:mod:`eegmamba.windowing`): the windower cuts preprocessed 200 Hz
samples, but a partial dropout (a channel stuck at one value for a while) or a channel sitting on the
amplifier's rail is seen best in the raw input, before the band-pass turns a step into a slow decay.
:class:`InputMarks` follows the raw samples chunk by chunk (state carried, chunk-invariant) and keeps

- runs ``(first, last, reason)``, input sample indices counted from the first sample pushed:
  ``flat_run`` (consecutive samples differing by at most ``flat_run_uv``) and ``rail``
  (|x| >= ``rail_uv``), only those long enough to matter, per channel (runs on different channels
  are never merged);
- breaks ``(index, reason)``: the timeline breaks between input samples ``index - 1`` and ``index``
  (``gap``: samples missing; ``jump``: the clock jumped), as reported by the acquisition.

:meth:`InputMarks.verdict` answers for a window covering input samples ``[lo, hi]``.
"""

from __future__ import annotations

import math

import numpy as np

from eegmamba.profiles import QualitySpec


def _runs(flags: np.ndarray, base: int, open_start: int) -> tuple[list[tuple[int, int]], int]:
    """Runs of True in ``flags`` (elements ``base ..``), continuing a run open since ``open_start``
    (-1: none). Returns the closed runs ``(first, last)`` and the start of the run still open."""
    arr = np.concatenate([[open_start >= 0], flags, [False]]).astype(np.int8)
    d = np.diff(arr)
    starts = list(base + np.flatnonzero(d == 1))
    ends = list(base + np.flatnonzero(d == -1) - 1)
    if open_start >= 0:
        starts.insert(0, open_start)
    still_open = -1
    if flags.size and flags[-1]:
        still_open = starts.pop()
        ends.pop()
    return list(zip(starts, ends)), still_open


class InputMarks:
    """Flat-line / rail runs and timeline breaks of one input signal (see module docstring).

    Parameters
    ----------
    quality : QualitySpec
    in_sfreq : float, Hz, the input rate (run lengths in seconds become sample counts here)
    n_channels : int
    """

    def __init__(self, quality: QualitySpec, in_sfreq: float, n_channels: int) -> None:
        self.quality = quality
        self.n_channels = int(n_channels)
        q = quality
        # a run of n samples lasts n / in_sfreq seconds
        self.min_flat = None if q.flat_run_s is None else max(2, math.ceil(q.flat_run_s * in_sfreq - 1e-9))
        self.min_rail = None if q.rail_uv is None else max(1, math.ceil(q.rail_run_s * in_sfreq - 1e-9))
        self.reset()

    def reset(self) -> None:
        """Forget everything; the next sample pushed is input sample 0."""
        self.n_in = 0
        self._prev = np.full(self.n_channels, np.nan)
        self._open = {"flat_run": np.full(self.n_channels, -1), "rail": np.full(self.n_channels, -1)}
        self.runs: list[tuple[int, int, str]] = []
        self.breaks: list[tuple[int, str]] = []

    def push(self, x: np.ndarray, breaks=()) -> None:
        """Follow the raw samples ``x`` (shape (C, n), µV); ``breaks``: ``(i, reason)`` pairs, the
        timeline breaks before ``x[:, i]``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(f"x must have shape ({self.n_channels}, n), got {x.shape}")
        n = x.shape[1]
        for i, reason in breaks:
            if not 0 <= i < max(n, 1):
                raise ValueError(f"break index {i} outside the chunk of {n} samples")
            self.breaks.append((self.n_in + int(i), str(reason)))
        if n == 0:
            return
        if self.min_rail is not None:
            with np.errstate(invalid="ignore"):
                self._track("rail", np.abs(x) >= self.quality.rail_uv, 0, self.min_rail)
        if self.min_flat is not None:
            # pair j links samples n_in + j - 1 and n_in + j; a run of pairs [p, q] is samples [p - 1, q]
            steps = np.abs(np.diff(np.concatenate([self._prev[:, None], x], axis=1), axis=1))
            with np.errstate(invalid="ignore"):
                self._track("flat_run", steps <= self.quality.flat_run_uv, -1, self.min_flat)
        self._prev = x[:, -1].copy()
        self.n_in += n

    def _track(self, reason: str, flags: np.ndarray, shift: int, min_len: int) -> None:
        """:func:`_runs` on every channel at once (one pass, no per-channel Python loop: the live
        pipeline calls this for every stream at every hop). Same runs, same order."""
        open_ = self._open[reason]
        C, n = flags.shape
        is_open = open_ >= 0
        arr = np.zeros((C, n + 2), np.int8)
        arr[:, 0] = is_open
        arr[:, 1:n + 1] = flags
        d = np.diff(arr, axis=1)  # d[c, j] = arr[c, j + 1] - arr[c, j], j = 0 .. n
        sc, sj = np.nonzero(d == 1)  # a run starts at element j (sample n_in + j)
        ec, ej = np.nonzero(d == -1)  # a run ends at element j - 1 (j == n: still open)
        oc = np.flatnonzero(is_open)  # runs open since an earlier chunk start before this one
        starts_c = np.concatenate([oc, sc])
        starts = np.concatenate([open_[oc] - shift, self.n_in + sj])  # stored as sample index
        order = np.lexsort((np.concatenate([np.full(oc.size, -1), sj]), starts_c))
        starts_c, starts = starts_c[order], starts[order]
        # every run is closed by the appended 0: starts and ends pair up channel by channel
        ends = self.n_in + ej - 1
        closed = ej < n
        keep = closed & (ends - (starts + shift) + 1 >= min_len)
        for a, z in zip((starts[keep] + shift).tolist(), ends[keep].tolist()):
            self.runs.append((a, z, reason))
        open_[:] = -1
        still = ~closed
        open_[ec[still]] = starts[still] + shift

    def _open_runs(self):
        last = self.n_in - 1
        for reason, open_ in self._open.items():
            for start in open_[open_ >= 0]:
                yield int(start), last, reason

    def verdict(self, lo: int, hi: int) -> tuple[str | None, frozenset]:
        """For a window holding input samples ``[lo, hi]``: ``(break reason or None, run reasons)``.

        A break counts when the window has samples on both sides of it; a run when at least the
        minimum length of it lies inside the window.
        """
        brk = next((r for b, r in self.breaks if lo < b <= hi), None)
        bad = set()
        for a, z, reason in list(self.runs) + list(self._open_runs()):
            need = self.min_flat if reason == "flat_run" else self.min_rail
            if min(z, hi) - max(a, lo) + 1 >= need:
                bad.add(reason)
        return brk, frozenset(bad)

    def forget_before(self, lo: int) -> None:
        """Drop what no window starting at input sample ``lo`` or later can hold."""
        self.runs = [r for r in self.runs if r[1] >= lo]
        self.breaks = [b for b in self.breaks if b[0] > lo]

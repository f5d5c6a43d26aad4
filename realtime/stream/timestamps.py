"""Regular timestamps from raw LSL timestamps, per stream, with gaps and clock jumps found.

Many devices' LSL apps stamp each chunk with the time of the push and back-date its samples by
1/rate, so raw timestamps jitter by the push latency (tens of ms) and chunks overlap. LSL's own
answer is the ``proc_dejitter`` post-processing: a recursive least-squares line through
(sample index, timestamp) with a 90-s half-life. It never looks for holes, so a gap (samples
missing) or a jump of the source clock is smeared into the line for minutes (mne-lsl's
``processing_flags='all'`` was measured to turn a gap into a slowly oscillating timestamp error of up
to the gap's length). :class:`TimestampModel` keeps the line and also finds the holes:

- **Line** (rate and offset): an exponentially weighted least-squares fit of raw timestamp vs sample
  index (half-life ``halftime_s``), its slope held toward the expected period by a prior worth
  ``prior_s`` seconds of data (a few jittered chunks cannot tilt it). Late-stamped samples of a
  block that caught up with the line (below) are left out of the fit.
- **Output**: sample n is stamped on the line, through a slew limit: consecutive output stamps differ
  from the fitted period by at most ``slew`` of it, so the windower sees a regular timeline while the
  fit moves.
- **Breaks**: a step between consecutive raw stamps that misses the fitted period by more than the
  threshold, *and* leaves the newest stamp of the pulled block displaced by more than the threshold
  from the line (the same way), is a break there. A late chunk followed by its catch-up (a driver's
  backlog) leaves the newest stamp on the line and is no break. A break is a ``jump`` when time went
  backwards, or forwards while the samples kept arriving on time (the clock jumped); a ``gap`` when
  the local arrival also paused for at least half the step (samples missing: real time passed). After
  a break the line continues shifted by the step (the rate is kept) and the output jumps with it.
- **Threshold**: ``0.5 period + tolerance_s`` (the old rule: a step over 1.5 periods is a gap) plus
  ``jitter_factor`` × the 95th percentile of the recent per-block step errors; while fewer than
  ``warmup_blocks`` blocks were seen, at least ``warmup_floor_s``. A hole shorter than the threshold
  (e.g. ~0.12 s under 40 ms of push jitter) cannot be told from jitter and is absorbed by the line.

Synchronous, no I/O: ``push(raw_timestamps, arrival) -> (timestamps, breaks)``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from eegmamba._checks import check_positive


def percentile_linear(a: np.ndarray, q: float) -> float:
    """``np.percentile(a, q)`` (its default linear method, same value) by a partial sort: called for
    every pulled block of every stream, where ``np.percentile``'s generality cost ~70 µs of ~175."""
    pos = q / 100.0 * (a.size - 1)
    lo = int(pos)
    hi = min(lo + 1, a.size - 1)
    part = np.partition(a, (lo, hi))
    x0, x1, t = float(part[lo]), float(part[hi]), pos - lo
    d = x1 - x0
    return x1 - d * (1.0 - t) if t >= 0.5 else x0 + d * t  # numpy's _lerp


def steps_after(raw: np.ndarray, last: float) -> np.ndarray:
    """``np.diff(raw, prepend=last)`` without its concatenation (per pulled block, ~4x faster)."""
    steps = np.empty(raw.size)
    steps[0] = raw[0] - last
    np.subtract(raw[1:], raw[:-1], out=steps[1:])
    return steps


@dataclass(frozen=True)
class TimestampConfig:
    """Timestamp model settings (seconds unless said otherwise; see the module docstring)."""

    halftime_s: float = 30.0
    prior_s: float = 0.5
    slew: float = 0.05
    tolerance_s: float = 0.005
    jitter_factor: float = 4.0
    warmup_blocks: int = 16
    warmup_floor_s: float = 0.1
    settle_s: float = 2.0
    settle_tol: float = 0.005
    defer_s: float = 0.25

    def __post_init__(self) -> None:
        for name in ("halftime_s", "prior_s", "slew", "jitter_factor", "warmup_blocks", "settle_s",
                     "settle_tol", "defer_s"):
            check_positive(getattr(self, name), f"TimestampConfig.{name}")
        for name in ("tolerance_s", "warmup_floor_s"):
            check_positive(getattr(self, name), f"TimestampConfig.{name}", strict=False)


class TimestampModel:
    """Regular timestamps for one regularly sampled stream (see module docstring).

    Parameters
    ----------
    expected_srate : float, Hz, the rate the stream should deliver (nominal × replay speed)
    config : TimestampConfig, optional
    """

    def __init__(self, expected_srate: float, config: TimestampConfig | None = None) -> None:
        self.config = config or TimestampConfig()
        self.p0 = 1.0 / float(check_positive(expected_srate, "expected_srate"))
        n_half = self.config.halftime_s / self.p0
        self._decay = 0.5 ** (1.0 / n_half)
        n_prior = self.config.prior_s / self.p0
        self._prior = n_prior ** 3 / 12.0  # centered Σx² of prior_s seconds of evenly spaced samples
        self._res = np.zeros(2048)  # ring of recent raw - output residuals, seconds
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next block starts a new timeline at the expected rate."""
        self.n = 0  # samples pushed
        self.period = self.p0
        self._w = self._sx = self._sy = self._sxx = self._sxy = 0.0
        self._x0 = 0  # index the sums' x are relative to
        self._y0 = 0.0  # value the sums' y are relative to
        self._shift = 0.0  # total step of the breaks so far (raw = line + shift)
        self._first: int | None = None  # index of the first sample fitted
        self._x_last = 0  # index of the last sample fitted
        self._span = 0  # samples from the first fitted to the last
        self._last_raw: float | None = None
        self._last_out: float | None = None
        self._last_arrival: float | None = None
        self._steps = np.zeros(256)  # ring of the last blocks' largest |step error|, seconds
        self._n_steps = 0
        self._rates: deque[tuple[int, float]] = deque()  # (span, fitted rate) after each block
        self._n_res = 0
        self.n_gaps = self.n_jumps = 0
        self.gap_s = 0.0

    # ------------------------------------------------------------------ estimates
    @property
    def rate(self) -> float:
        """Fitted sampling rate, Hz (the expected one until data came)."""
        return 1.0 / self.period

    @property
    def measured(self) -> float | None:
        """Fitted rate, Hz, once the fit spans 0.2 s (None before)."""
        return self.rate if self._span * self.period >= 0.2 else None

    @property
    def settled(self) -> bool:
        """True once ``settle_s`` seconds were fitted and the fitted rate moved by less than
        ``settle_tol`` (relative) over the last ``settle_s`` seconds."""
        h = self._rates
        if self._span * self.period < self.config.settle_s or not h:
            return False
        window = [r for n, r in h if self._span - n <= self.config.settle_s / self.period]
        return h[0][0] <= self._span - self.config.settle_s / self.period and \
            (max(window) - min(window)) / self.rate < self.config.settle_tol

    def jitter_rms(self) -> float:
        r = self._recent_residuals()
        return float(np.sqrt(np.mean((r - np.median(r)) ** 2))) if r.size else 0.0

    def jitter_p95(self) -> float | None:
        """95th percentile of |raw - output| over the recent samples, seconds (centered)."""
        r = self._recent_residuals()
        return float(np.percentile(np.abs(r - np.median(r)), 95)) if r.size else None

    def threshold(self) -> float:
        """Step error (seconds) above which a raw step can be a break."""
        c = self.config
        n = min(self._n_steps, self._steps.size)
        jit = percentile_linear(self._steps[:n], 95.0) if n else 0.0
        thr = 0.5 * self.period + c.tolerance_s + c.jitter_factor * jit
        if n < c.warmup_blocks:
            thr = max(thr, c.warmup_floor_s)
        return thr

    def _recent_residuals(self) -> np.ndarray:
        return self._res[: min(self._n_res, self._res.size)]

    def _line(self, idx: np.ndarray) -> np.ndarray:
        """The fitted line at sample indices ``idx`` (raw timeline, breaks included)."""
        if self._w <= 0:
            return np.full(idx.shape, np.nan)
        a = (self._sy - self._slope() * self._sx) / self._w  # at x = 0 (index _x0)
        return self._y0 + self._shift + a + self.period * (idx - self._x0)

    def _slope(self) -> float:
        sxx = self._sxx - self._sx ** 2 / self._w
        sxy = self._sxy - self._sx * self._sy / self._w
        return (sxy + self._prior * self.p0) / (sxx + self._prior)

    # ------------------------------------------------------------------ stepping
    def push(self, raw: np.ndarray, arrival: float, *, may_defer: bool = False
             ) -> tuple[np.ndarray, list[tuple[int, str]]] | None:
        """Model a pulled block.

        raw : ndarray, shape (n,), raw timestamps (seconds) of consecutive samples
        arrival : float, local clock when the block was pulled
        may_defer : bool: the caller can hold the block back. Then a block that ends ahead of the
            line with a step up (a gap, a forward jump — or one late chunk whose successors will
            land back on the line) is not decided: ``None`` is returned, nothing changes, and the
            caller pushes it again together with the next block (or alone, ``may_defer=False``,
            after ``defer_s``). A latency spike then costs a little delay instead of a false break.

        Returns ``(timestamps (n,), breaks)``, breaks as ``(i, "gap" | "jump")``: the timeline breaks
        before sample ``i`` of the block.
        """
        raw = np.asarray(raw, dtype=np.float64)
        n = raw.size
        if n == 0:
            return raw.copy(), []
        if self._last_raw is None:  # the line starts at the first sample, at the expected rate
            self._fit(np.array([self.n]), raw[:1])
            self._keep_residuals(np.zeros(1))
            self.n += 1
            self._last_raw = self._last_out = float(raw[0])
            self._last_arrival = arrival
            out, breaks = self.push(raw[1:], arrival)  # the start of a stream is never deferred
            return np.concatenate([raw[:1], out]), [(i + 1, r) for i, r in breaks]
        idx = self.n + np.arange(n)
        breaks: list[tuple[int, str]] = []
        thr = self.threshold()
        step_err = steps_after(raw, self._last_raw) - self.period
        cand = np.abs(step_err) > thr
        line = self._line(idx)
        shifts = np.zeros(n)  # line shift in force at each sample of the block
        steps: list[float] = []
        at = 0
        while at < n:
            brk = self._find_break(step_err[at:], raw[at:] - line[at:] - shifts[at:], cand[at:], thr)
            if brk is None:
                break
            i, step = at + brk[0], brk[1]
            if may_defer and step > 0:
                return None  # undecided: ahead of the line; the next block tells (see above)
            reason = "jump" if step < 0 or arrival - self._last_arrival < 0.5 * step else "gap"
            breaks.append((i, reason))
            steps.append(step)
            nxt = np.flatnonzero(cand[i + 1:])
            end = i + 1 + int(nxt[0]) if nxt.size else n  # samples up to the next candidate step
            shifts[i:] += float(np.median(raw[i:end] - line[i:end] - shifts[i:end]))
            at = i + 1
        for (_, reason), step in zip(breaks, steps):
            if reason == "gap":
                self.n_gaps += 1
                self.gap_s += step
            else:
                self.n_jumps += 1
        resid = raw - line - shifts
        fit = np.ones(n, dtype=bool)
        if not breaks:
            self._steps[self._n_steps % self._steps.size] = np.abs(step_err).max()
            self._n_steps += 1
            if cand.any():  # late-stamped samples that caught up: keep them out of the fit
                fit = np.abs(resid) <= thr
        out = self._outputs(line + shifts, [b[0] for b in breaks])
        self._shift += shifts[-1]
        if fit.any():
            self._fit(idx[fit], raw[fit] - self._shift + (shifts[-1] - shifts[fit]))
        self._keep_residuals(raw - out)
        self.n += n
        self._last_raw, self._last_out, self._last_arrival = float(raw[-1]), float(out[-1]), arrival
        return out, breaks

    @staticmethod
    def _find_break(step_err, resid, cand, thr) -> tuple[int, float] | None:
        """``(i, step)``: when the newest sample is displaced from the line by more than ``thr``,
        the first candidate step the same way; else None."""
        tail = resid[-1]
        if abs(tail) <= thr:
            return None  # whatever happened inside the block, it ends on the line
        same = np.flatnonzero(cand & (np.sign(step_err) == np.sign(tail)))
        if same.size == 0:
            return None  # a slow drift away from the line: the fit follows it
        return int(same[0]), float(step_err[same[0]])

    def _outputs(self, target: np.ndarray, breaks: list[int]) -> np.ndarray:
        """Output stamps for a block whose line values are ``target``: up to the first break, from
        the last output on, one fitted period per sample corrected toward the line by at most
        ``slew`` of a period; from a break on, the line itself."""
        first = breaks[0] if breaks else target.size
        out = target.copy()
        if self._last_out is not None and first > 0:
            j = np.arange(1, first + 1)
            d = target[0] - (self._last_out + self.period)  # constant: both advance a period a sample
            lim = self.config.slew * self.period
            out[:first] = self._last_out + j * self.period + np.sign(d) * np.minimum(j * lim, abs(d))
        return out

    def _fit(self, idx: np.ndarray, y: np.ndarray) -> None:
        """Add samples (raw minus the breaks' shift; indices increasing) to the weighted fit."""
        n = idx.size
        # re-center on this block's first sample and value: the sums stay small numbers
        c, d = float(idx[0] - self._x0), float(y[0] - self._y0)
        self._sxx += -2 * c * self._sx + c * c * self._w
        self._sxy += -c * self._sy - d * self._sx + c * d * self._w
        self._sx -= c * self._w
        self._sy -= d * self._w
        self._x0, self._y0 = int(idx[0]), float(y[0])
        x = (idx - idx[0]).astype(np.float64)
        decay_all = self._decay ** float(idx[-1] - self._x_last)
        w = self._decay ** (x[-1] - x)
        yy = y - self._y0
        self._w = self._w * decay_all + w.sum()
        self._sx = self._sx * decay_all + (w * x).sum()
        self._sy = self._sy * decay_all + (w * yy).sum()
        self._sxx = self._sxx * decay_all + (w * x * x).sum()
        self._sxy = self._sxy * decay_all + (w * x * yy).sum()
        if self._first is None:
            self._first = int(idx[0])
        self._x_last = int(idx[-1])
        self._span = self._x_last - self._first + 1
        self.period = self._slope()
        self._rates.append((self._span, self.rate))
        keep = 2 * self.config.settle_s / self.period
        while len(self._rates) > 2 and self._span - self._rates[1][0] > keep:
            self._rates.popleft()

    def _keep_residuals(self, r: np.ndarray) -> None:
        size = self._res.size
        r = r[-size:]
        pos = self._n_res % size
        first = min(r.size, size - pos)
        self._res[pos:pos + first] = r[:first]
        self._res[: r.size - first] = r[first:]
        self._n_res += r.size

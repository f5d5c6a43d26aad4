"""The windowing rule, shared by training and the live loop.

Window k covers output samples ``[k*hop, k*hop + length)`` of the preprocessed (200 Hz) signal,
counted from the first sample pushed into the ``Windower`` (after ``reset()``, from the first sample
pushed after it). Output sample j sits at input position ``j * down / up`` (the resampling ratio), so
the window holds input samples ``[floor(k*hop*down/up), floor((k*hop + length - 1)*down/up)]``.
Every window index k is either emitted or counted in ``drops`` with the first reason that applies:

- ``gap`` / ``jump``: the window spans a timeline break reported with the raw input
  (:meth:`Windower.push_input`: samples missing, or the clock jumped either way), or consecutive
  timestamps inside it differ by more than ``gap_factor / sfreq`` (``gap``) or do not increase
  (``jump``);
- ``nonfinite``: NaN/inf in the window (the preprocessor writes NaN where the input was non-finite);
- ``rail``: a required channel's raw input sits at |x| >= ``rail_uv`` for ``rail_run_s`` or longer
  inside the window; ``flat_run``: a channel's raw input changes by at most ``flat_run_uv`` per sample
  for ``flat_run_s`` or longer inside it (a partial dropout; :mod:`eegmamba.quality`);
- ``flat``: a channel's std < ``flat_std_uv``; ``saturated``: a channel's peak |x| >= ``saturation_uv``.

The last four are channel problems: with ``on_bad: flag`` the window is kept with ``Window.flags``
set and counted in ``flagged``. The raw-input rules need the raw samples: callers push them with
:meth:`Windower.push_input` (the windower is built with the input rate) before pushing the outputs
they produce; :func:`window_recording` and the live pipeline both do.

Emitted data are normalized per the profile and cast to float32:

- ``zscore``: per window, per channel, ``(x - mean) / std`` over the window's samples (a flat
  channel becomes zeros). Removes the window's absolute amplitude.
- ``recording``: per window, per channel, ``(x - mean) / s`` with ``s`` the channel's running RMS
  of the preprocessed signal over every finite sample pushed since the start (``reset()``) up to
  and including the window's last sample; samples are clipped at ``quality.saturation_uv`` before
  squaring, so an artefact cannot inflate the scale for the rest of the recording. Causal: live
  and offline (the same object fed the whole recording) compute the same scale, and window k never
  sees a later sample. Keeps the amplitude of a window relative to the recording so far (sleep N3
  slow waves, seizures); the first windows of a stream have a scale from little data.
- ``none``: µV as preprocessed.

With ``alignment.method: euclidean`` a window that passed the checks is first aligned (its µV
signal times ``R^{-1/2}``, :mod:`eegmamba.alignment`), then normalized; while a causal reference
is warming up the window is dropped as ``alignment_warmup``. :meth:`Windower.from_profile` builds
the causal (live) reference; :func:`window_recording` uses the profile's ``offline_reference``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from eegmamba._checks import check_option, check_positive
from eegmamba.alignment import EuclideanReference, reference_for
from eegmamba.preprocessing import Preprocessor, resample_ratio
from eegmamba.profiles import Profile, QualitySpec
from eegmamba.quality import InputMarks

_STD_FLOOR = 1e-6  # µV; below this a channel's z-score would be noise amplification
_CHANNEL_REASONS = ("rail", "flat_run", "flat", "saturated")  # counted by the first that applies
NORMALIZATIONS = ("zscore", "recording", "none")


@dataclass(frozen=True)
class Window:
    """One window of preprocessed signal.

    data : ndarray, shape (C, length), float32, normalized per profile
    t_start, t_end : float, seconds, source timestamps of the first and last sample
    index : int, window number k
    sample_start : int, first output sample (k * hop)
    flags : frozenset of str, quality problems kept with ``on_bad: flag``
    """

    data: np.ndarray
    t_start: float
    t_end: float
    index: int
    sample_start: int
    flags: frozenset = field(default_factory=frozenset)


class Windower:
    """Cut windows of ``length_samples`` every ``hop_samples`` from a pushed signal (see module doc).

    Parameters
    ----------
    length_samples, hop_samples : int, samples at ``sfreq``
    sfreq : float, Hz
    quality : QualitySpec, optional (default: ``QualitySpec()``)
    normalization : ``"zscore"``, ``"recording"`` or ``"none"`` (module docstring)
    in_sfreq : float, Hz, optional: the rate of the raw input, needed for :meth:`push_input`
    reference : EuclideanReference, optional: align windows before normalizing them (module doc);
        kept across :meth:`reset` (a break in the stream is the same person)
    """

    def __init__(self, length_samples: int, hop_samples: int, sfreq: float, *,
                 quality: QualitySpec | None = None, normalization: str = "zscore",
                 in_sfreq: float | None = None, reference: EuclideanReference | None = None):
        for name, v in (("length_samples", length_samples), ("hop_samples", hop_samples)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        self.length = int(length_samples)
        self.hop = int(hop_samples)
        self.sfreq = float(check_positive(sfreq, "sfreq"))
        self.quality = quality or QualitySpec()
        self.normalization = check_option(normalization, NORMALIZATIONS, "normalization")
        self.in_sfreq = None if in_sfreq is None else float(check_positive(in_sfreq, "in_sfreq"))
        self._up, self._down = (1, 1) if in_sfreq is None else resample_ratio(in_sfreq, sfreq)
        self._marks: InputMarks | None = None
        self._breaks_reported = False
        self.reference = reference
        self.reset()

    @classmethod
    def from_profile(cls, profile: Profile, hop_s: float | None = None,
                     in_sfreq: float | None = None,
                     reference: EuclideanReference | None | str = "causal") -> "Windower":
        """A windower with the profile's length, rate, quality, alignment and normalization;
        ``hop_s`` defaults to the live ``window.hop_s`` (pass ``profile.window.train_hop_s`` for
        training); ``in_sfreq``: the raw input rate (enables :meth:`push_input`); ``reference``: a
        reference to use, or a mode for a new one as the profile's ``alignment`` declares (none for
        ``method: none``)."""
        if isinstance(reference, str):
            reference = reference_for(profile, mode=reference)
        return cls(profile.window_samples, profile.hop_samples(hop_s), profile.sfreq,
                   quality=profile.quality, normalization=profile.normalization, in_sfreq=in_sfreq,
                   reference=reference)

    def reset(self) -> None:
        """Start over: the next sample pushed is output sample 0, the next window is index 0."""
        self.drops: collections.Counter = collections.Counter()
        self.flagged: collections.Counter = collections.Counter()
        self.n_emitted = 0
        self._next_k = 0
        self._buf_start = 0  # output-sample index of _buf[:, 0]
        self._buf = None
        self._buf_t = np.zeros(0)
        # normalization "recording": running sums of clipped squares and finite-sample counts,
        # cumulative from the start, one column per buffered sample; _last_* after the newest one
        self._buf_ss = self._buf_n = None
        self._last_ss = self._last_n = None
        if self._marks is not None:
            self._marks.reset()
        if self.reference is not None:
            self.reference.new_timeline()

    def push_input(self, x: np.ndarray, breaks=None) -> None:
        """Follow the raw input (shape (C_in, n), µV, exactly what goes into the preprocessor)
        before pushing the outputs it produces. Needs ``in_sfreq``.

        ``breaks``: ``None`` when the timestamps are all there is (a recording: gaps and jumps are
        found from the timestamp steps inside each window); else the ``(i, reason)`` timeline breaks
        (``gap``/``jump``) before ``x[:, i]`` found by the caller's timeline model, whose regular
        timestamps are then not checked again (the resampler's stamps right after a break
        extrapolate across it and would drop the first window after it as well)."""
        if self.in_sfreq is None:
            raise RuntimeError("push_input needs a Windower built with in_sfreq")
        if breaks is not None:
            self._breaks_reported = True
        x = np.asarray(x)
        if self._marks is None:
            self._marks = InputMarks(self.quality, self.in_sfreq, x.shape[0])
        self._marks.push(x, breaks or ())

    @property
    def samples_needed(self) -> int:
        """Output samples (from the reset) that must have been pushed to complete the next window."""
        return self._next_k * self.hop + self.length

    def n_started(self, n_out: int) -> int:
        """Windows begun but not complete once ``n_out`` output samples (from the reset) exist: what
        a reset now (a stream lost) leaves uncut, for the caller to count."""
        return max(0, -(-n_out // self.hop) - self._next_k)

    @property
    def n_samples_seen(self) -> int:
        """Output samples pushed so far."""
        return self._buf_start + self._buf_t.size

    def push(self, x: np.ndarray, ts: np.ndarray) -> list[Window]:
        """Append samples; return the windows completed by them (in index order).

        x : ndarray, shape (C, n), µV (preprocessed); ts : ndarray, shape (n,), seconds
        """
        return list(self.push_iter(x, ts))

    def push_iter(self, x: np.ndarray, ts: np.ndarray) -> Iterator[Window]:
        """As ``push`` but yields windows one by one (saves memory on whole recordings). The
        samples are appended at once; drops are counted as the iteration reaches each window."""
        x = np.asarray(x, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        if x.ndim != 2 or ts.shape != (x.shape[1],):
            raise ValueError(f"x must be (C, n) with ts (n,), got {x.shape} and {ts.shape}")
        if self._buf is None:
            self._buf = np.zeros((x.shape[0], 0))
        elif x.shape[0] != self._buf.shape[0]:
            raise ValueError(f"x has {x.shape[0]} channels, earlier pushes had {self._buf.shape[0]}")
        self._buf = np.concatenate([self._buf, x], axis=1)
        self._buf_t = np.concatenate([self._buf_t, ts])
        if self.normalization == "recording":
            self._accumulate(x)
        return self._drain()

    def _accumulate(self, x: np.ndarray) -> None:
        """Extend the running sums of squares / counts (normalization ``recording``) by ``x``."""
        if self._last_ss is None:
            self._last_ss, self._last_n = np.zeros(x.shape[0]), np.zeros(x.shape[0])
            self._buf_ss, self._buf_n = np.zeros((x.shape[0], 0)), np.zeros((x.shape[0], 0))
        finite = np.isfinite(x)
        cap = self.quality.saturation_uv
        sq = np.where(finite, np.minimum(np.square(np.where(finite, x, 0.0)), cap * cap), 0.0)
        ss = self._last_ss[:, None] + np.cumsum(sq, axis=1)
        n = self._last_n[:, None] + np.cumsum(finite, axis=1)
        if x.shape[1]:
            self._last_ss, self._last_n = ss[:, -1].copy(), n[:, -1].copy()
        self._buf_ss = np.concatenate([self._buf_ss, ss], axis=1)
        self._buf_n = np.concatenate([self._buf_n, n], axis=1)

    def _recording_scale(self, last: int) -> np.ndarray:
        """Running RMS per channel up to buffered sample ``last`` (normalization ``recording``)."""
        return np.sqrt(self._buf_ss[:, last] / np.maximum(self._buf_n[:, last], 1.0))

    def _drain(self) -> Iterator[Window]:
        while True:
            start = self._next_k * self.hop
            a = start - self._buf_start
            if a + self.length > self._buf_t.size:
                break
            k = self._next_k
            self._next_k += 1
            scale = (self._recording_scale(a + self.length - 1)
                     if self.normalization == "recording" else None)
            win = self._make(k, start, self._buf[:, a:a + self.length], self._buf_t[a:a + self.length],
                             scale)
            if win is not None:
                self.n_emitted += 1
                yield win
        # keep only what future windows need
        keep_from = self._next_k * self.hop - self._buf_start
        if keep_from > 0:
            keep_from = min(keep_from, self._buf_t.size)
            self._buf = self._buf[:, keep_from:]
            self._buf_t = self._buf_t[keep_from:]
            if self._buf_ss is not None:
                self._buf_ss, self._buf_n = self._buf_ss[:, keep_from:], self._buf_n[:, keep_from:]
            self._buf_start += keep_from

    def _make(self, k: int, start: int, seg: np.ndarray, t: np.ndarray,
              scale: np.ndarray | None = None) -> Window | None:
        brk, runs = None, frozenset()
        if self._marks is not None:
            lo = start * self._down // self._up
            brk, runs = self._marks.verdict(lo, (start + self.length - 1) * self._down // self._up)
            self._marks.forget_before((start + self.hop) * self._down // self._up)
        if brk is None and not self._breaks_reported:  # else the caller's timeline model reports them
            dt = np.diff(t)
            if np.any(dt <= 0):
                brk = "jump"
            elif np.any(dt > self.quality.gap_factor / self.sfreq):
                brk = "gap"
        if brk is not None:
            self.drops[brk] += 1
            return None
        if not np.all(np.isfinite(seg)):
            self.drops["nonfinite"] += 1
            return None
        std = seg.std(axis=1)
        flags = set(runs)
        if np.any(std < self.quality.flat_std_uv):
            flags.add("flat")
        if np.any(np.abs(seg).max(axis=1) >= self.quality.saturation_uv):
            flags.add("saturated")
        if flags:
            if self.quality.on_bad == "skip":
                self.drops[next(r for r in _CHANNEL_REASONS if r in flags)] += 1
                return None
            self.flagged.update(flags)
        if self.reference is not None:
            seg = self.reference.process(seg, start, float(t[-1]), clean=not flags)
            if seg is None:
                self.drops["alignment_warmup"] += 1
                return None
            std = seg.std(axis=1)
        if self.normalization == "zscore":
            data = (seg - seg.mean(axis=1, keepdims=True)) / np.maximum(std, _STD_FLOOR)[:, None]
        elif self.normalization == "recording":
            data = (seg - seg.mean(axis=1, keepdims=True)) / np.maximum(scale, _STD_FLOOR)[:, None]
        else:
            data = seg
        return Window(data.astype(np.float32), float(t[0]), float(t[-1]), k, start, frozenset(flags))


def stack_windows(windows: list[Window]) -> tuple[np.ndarray, np.ndarray]:
    """``(X, t_start)``: X shape (N, C, T) float32, t_start shape (N,) seconds."""
    if not windows:
        return np.zeros((0, 0, 0), np.float32), np.zeros(0)
    return np.stack([w.data for w in windows]), np.array([w.t_start for w in windows])


def window_recording(data: np.ndarray, sfreq: float, timestamps: np.ndarray | None,
                     profile: Profile, hop_s: float | None = None,
                     keep=None) -> tuple[list[Window], collections.Counter]:
    """Run ``Preprocessor`` + ``Windower`` over a whole recording (the offline path, one chunk).

    Parameters
    ----------
    data : ndarray, shape (C, n), µV, channels in profile order
    sfreq : float, Hz, the recording's rate
    timestamps : ndarray, shape (n,), seconds, or None (= ``arange(n) / sfreq``)
    hop_s : float, seconds, optional; default the profile's live ``window.hop_s``
    keep : callable(Window) -> bool, optional; windows it rejects are not returned (the caller
        counts them); used by the dataset builder to keep memory down

    Returns
    -------
    windows : list[Window]; drops : Counter of dropped windows by reason
    """
    data = np.asarray(data, dtype=np.float64)
    if timestamps is None:
        timestamps = np.arange(data.shape[1]) / float(sfreq)
    pre = Preprocessor(profile, sfreq, data.shape[0])
    y, ty = pre.push(data, timestamps)
    ref: EuclideanReference | None | str = "causal"
    if profile.alignment.enabled and profile.alignment.offline_reference == "recording":
        # first pass: the recording's clean windows make the reference (module doc of alignment)
        ref = reference_for(profile, data.shape[0], mode="collect")
        first = Windower.from_profile(profile, hop_s, in_sfreq=sfreq, reference=ref)
        first.push_input(data)
        first.push(y, ty)
        ref.freeze()
    win = Windower.from_profile(profile, hop_s, in_sfreq=sfreq, reference=ref)
    win.push_input(data)
    windows = [w for w in win.push_iter(y, ty) if keep is None or keep(w)]
    return windows, win.drops

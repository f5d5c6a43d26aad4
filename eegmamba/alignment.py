"""Euclidean alignment (He & Wu 2020), the step of the one preprocessing path between the windowing
rule's quality checks and the per-window normalization (:mod:`eegmamba.windowing`).

A person's window ``X (C, L)`` (band-passed µV at the profile rate) becomes ``R^{-1/2} X``, with
``R`` the mean spatial covariance ``(X - mean)(X - mean)^T / L`` of that person's *clean* windows
(emitted without a quality flag). Nothing is learned from labels. The reference is this module's
:class:`EuclideanReference`, in one of three modes:

- ``causal`` (live, and offline with ``alignment.offline_reference: causal``): each clean window
  first updates ``R`` and is then aligned with it. ``R`` is the plain mean of the window covariances
  until it holds ``warmup_s`` seconds of signal (distinct samples covered by its windows), then a
  running mean whose weights halve every ``halflife_s`` seconds of signal. **Before the reference
  holds ``warmup_s`` seconds, windows are not decided: the windower drops them, counted as
  ``alignment_warmup``** (they still feed the reference). Why drop rather than decide unaligned: a
  model trained on aligned windows has never seen unaligned ones, so its decisions on them are
  guesses the user would take for the model's skill; a visible, counted wait of ``warmup_s`` (the
  dashboard shows the reference's age) is the honest choice. Flagged windows (``on_bad: flag``) are
  aligned but never update ``R`` (an artefact would bend it for minutes).
- ``collect`` then ``frozen`` (offline, ``offline_reference: recording``, the default for
  training and evaluation windows): a first pass over the recording collects the plain mean of all
  its clean windows' covariances (that person's own unlabelled data of that recording: rest,
  cues and between-cue time alike), then every window of the recording is aligned with that one
  ``R``; no window waits. A recording is one file (EEGMMIDB: one 2-minute run).

Chunk invariance: the windower emits the same windows in the same order however the stream is
chunked, and the reference changes only per window, so the object fed a whole recording offline
computes exactly the windows it computes live (``tests/test_alignment.py``).
:meth:`EuclideanReference.state_dict` is JSON-able, for a calibrated checkpoint.
"""

from __future__ import annotations

import numpy as np

MODES = ("causal", "collect", "frozen")
_EIG_FLOOR = 1e-10  # relative to the largest eigenvalue: a rank-deficient (re-referenced) montage


def inverse_sqrt(r: np.ndarray) -> np.ndarray:
    """``R^{-1/2}`` of a symmetric positive (semi-)definite ``(C, C)`` matrix (eigenvalues floored at
    ``1e-10`` × the largest, so an average-referenced montage's null direction is not blown up)."""
    w, v = np.linalg.eigh((r + r.T) / 2)
    w = np.maximum(w, _EIG_FLOOR * max(w.max(), np.finfo(float).tiny))
    return (v / np.sqrt(w)) @ v.T


def window_covariance(seg: np.ndarray) -> np.ndarray:
    """Spatial covariance ``(C, C)`` of one window ``(C, L)`` (per-channel mean removed), µV²."""
    seg = np.asarray(seg, dtype=np.float64)
    d = seg - seg.mean(axis=1, keepdims=True)
    return d @ d.T / seg.shape[1]


class EuclideanReference:
    """The reference ``R`` of one person's stream, and the alignment it gives (module docstring).

    Parameters
    ----------
    n_channels : int
    sfreq : float, Hz, the windows' rate
    warmup_s : float, seconds of signal before a causal reference aligns anything
    halflife_s : float, seconds of signal over which a causal reference's weights halve
    mode : ``"causal"``, ``"collect"`` or ``"frozen"``
    """

    def __init__(self, n_channels: int, sfreq: float, warmup_s: float = 20.0,
                 halflife_s: float = 120.0, mode: str = "causal") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.n_channels, self.sfreq = int(n_channels), float(sfreq)
        self.warmup_s, self.halflife_s, self.mode = float(warmup_s), float(halflife_s), mode
        self.ref = np.zeros((self.n_channels, self.n_channels))
        self.n_windows = 0
        self.n_samples = 0  # distinct samples covered by the windows in the reference
        self.updated_at: float | None = None  # source timestamp of the last window that updated it
        self._last_end: int | None = None  # output sample after the last window's end (timeline)
        self._w: np.ndarray | None = None

    # --- state -------------------------------------------------------------------------------
    @property
    def seconds(self) -> float:
        """Seconds of signal in the reference."""
        return self.n_samples / self.sfreq

    @property
    def ready(self) -> bool:
        """True when windows get aligned: causal after ``warmup_s`` seconds, frozen with any data."""
        if self.mode == "collect" or self.n_windows == 0:
            return False
        return self.mode == "frozen" or self.seconds >= self.warmup_s

    def age(self, now: float | None = None) -> dict:
        """For the dashboard: ``seconds`` of signal in it, ``since_update_s`` (``now`` minus the source
        time of the last window that updated it; None without either), ``ready``, ``mode``."""
        since = None if now is None or self.updated_at is None else max(0.0, now - self.updated_at)
        return {"seconds": self.seconds, "since_update_s": since, "ready": self.ready,
                "mode": self.mode, "warmup_s": self.warmup_s}

    def new_timeline(self) -> None:
        """The windower restarted its sample count (a reset after a break): same person, keep ``R``."""
        self._last_end = None

    def freeze(self) -> "EuclideanReference":
        """Stop updating (``collect`` → ``frozen``); returns self."""
        self.mode = "frozen"
        return self

    def state_dict(self) -> dict:
        """JSON-able state (a calibrated checkpoint stores it); :meth:`from_state` inverts it."""
        return {"method": "euclidean", "n_channels": self.n_channels, "sfreq": self.sfreq,
                "warmup_s": self.warmup_s, "halflife_s": self.halflife_s, "mode": self.mode,
                "reference": self.ref.tolist(), "n_windows": self.n_windows,
                "n_samples": self.n_samples, "updated_at": self.updated_at}

    @classmethod
    def from_state(cls, d: dict) -> "EuclideanReference":
        out = cls(d["n_channels"], d["sfreq"], d["warmup_s"], d["halflife_s"], d["mode"])
        out.ref = np.asarray(d["reference"], dtype=np.float64).reshape(out.n_channels, out.n_channels)
        out.n_windows, out.n_samples, out.updated_at = d["n_windows"], d["n_samples"], d["updated_at"]
        return out

    # --- per window --------------------------------------------------------------------------
    def update(self, seg: np.ndarray, start: int, t_end: float | None = None) -> None:
        """Add window ``seg (C, L)`` starting at output sample ``start`` (no-op when frozen)."""
        if self.mode == "frozen":
            return
        end = start + seg.shape[1]
        new = seg.shape[1] if self._last_end is None else max(0, end - max(self._last_end, start))
        self._last_end = end if self._last_end is None else max(self._last_end, end)
        self.n_windows += 1
        self.n_samples += new
        a = 1.0 / self.n_windows
        if self.mode == "causal" and self.seconds >= self.warmup_s:
            a = max(a, 1.0 - 0.5 ** (new / self.sfreq / self.halflife_s))
        self.ref += a * (window_covariance(seg) - self.ref)
        self.updated_at = t_end
        self._w = None

    def align(self, seg: np.ndarray) -> np.ndarray:
        """``R^{-1/2} seg`` (shape (C, L)); only when :attr:`ready`."""
        if self._w is None:
            self._w = inverse_sqrt(self.ref)
        return self._w @ seg

    def process(self, seg: np.ndarray, start: int, t_end: float | None, clean: bool) -> np.ndarray | None:
        """The windower's step: update with a clean window, then its aligned signal, or ``None``
        while the reference is not ready (the windower counts it as ``alignment_warmup``)."""
        if clean:
            self.update(seg, start, t_end)
        return self.align(seg) if self.ready else None


def reference_for(profile, n_channels: int | None = None, mode: str = "causal") -> EuclideanReference | None:
    """A reference as ``profile.alignment`` declares it (``None`` for ``method: none``)."""
    a = profile.alignment
    if not a.enabled:
        return None
    return EuclideanReference(n_channels or profile.n_channels, profile.sfreq, a.warmup_s,
                              a.halflife_s, mode)


def align_windows(X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Offline Euclidean alignment of windows already cut: ``X (N, C, L)`` → each group's windows
    (``groups (N,)``: a person or recording per window; None = one group) times the inverse square
    root of that group's mean window covariance. For peers fed a :class:`~eegmamba.data.dataset.
    WindowSet` built without the profile's alignment (e.g. EEGNet with/without EA on the same
    windows); returns float64."""
    X = np.asarray(X, dtype=np.float64)
    groups = np.zeros(len(X), dtype=int) if groups is None else np.asarray(groups)
    if groups.shape != (len(X),):
        raise ValueError(f"groups must have shape ({len(X)},), got {groups.shape}")
    out = np.empty_like(X)
    for gname in np.unique(groups):
        idx = np.flatnonzero(groups == gname)
        d = X[idx] - X[idx].mean(axis=2, keepdims=True)
        ref = np.einsum("ncl,ndl->cd", d, d) / (len(idx) * X.shape[2])
        out[idx] = np.einsum("cd,ndl->ncl", inverse_sqrt(ref), X[idx])
    return out

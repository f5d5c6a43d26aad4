"""The ONE preprocessing step, shared by training and the live loop: causal band-pass (+ notch), then
resampling to the profile rate (200 Hz), all with carried state.

``Preprocessor.push(samples, timestamps)`` may be called with chunks of any size; the output is the
same (to float rounding) as pushing the whole recording at once. Offline = this object fed one chunk.

Filter: Butterworth band-pass as SOS (``order`` per edge) and optional IIR notch (as SOS), run with
``sosfilt`` and carried ``zi``. The state starts at the steady state for a constant input equal to the
first sample (``sosfilt_zi`` × first sample), so a DC offset does not ring at start.
Where the input rate is too low for the low-pass edge (``h_freq >= 0.45 × in_sfreq``) the low-pass is
left out (the resampler's anti-alias filter still band-limits); likewise a notch at or above
0.45 × in_sfreq. What was actually applied is in ``to_dict()['effective']``.

Resampling: rational ratio up/down (160→200 = 5/4, 128→200 = 25/16, 256→200 = 25/32, 100→200,
50→200 …; 200→200 is the identity) with a causal minimum-phase polyphase FIR designed for the
band-passed signal (flat to the low-pass edge, ≥ 60 dB stop band; :mod:`eegmamba.resampling`),
evaluated from a carried input history. **No look-ahead**: output sample k sits at input position
``p = k·down/up`` and is computed from input samples ``<= floor(p)`` only, so it is emitted in the
very push that delivers input sample ``floor(p)`` (``lookahead_samples`` = 0; the one exception is
the first input sample after a reset: outputs between it and the second one wait for the second,
whose timestamp they need). A window is therefore complete the moment its last input sample has been
pushed. The price is a group delay (a shift of the signal's content, not a wait) of 8.0–9.6 ms over
1–40 Hz at 160 Hz (1.5 input samples), 11.9–16.7 ms at 128 Hz, 6.3–7.0 ms at 256 Hz
(``group_delay_ms``), instead of the 32.5 / 65 / 18 ms look-ahead of the linear-phase FIR it
replaced. Output timestamps are not delay-compensated: output k is stamped with the time of
position p, ``t[j] + frac·(t[j] - t[j-1])`` (``j = floor(p)``, extrapolated from the last input
interval since ``t[j+1]`` has not arrived; at ``j = 0``: ``t[0] + frac·(t[1] - t[0])``).
The IIR band-pass delay is not compensated either (it is frequency dependent: ~6–9 ms at 5–30 Hz,
16 ms at 2 Hz, 14 ms at 40 Hz for the 0.1–50 Hz Butterworth at 160 Hz; same online and offline).

Non-finite input: a NaN/inf sample is replaced by the channel's last finite value before filtering,
so the IIR state is never poisoned; every output sample whose FIR support touches a replaced input
sample is set to NaN on that channel, so the windower drops windows covering it (reason
``nonfinite``). After the span the filter continues from the held value (a short transient).

The path after this object: the windowing rule (:mod:`eegmamba.windowing`: windows, quality
checks), then, with the profile's ``alignment.method: euclidean``, Euclidean alignment of each
window against the person's reference (:mod:`eegmamba.alignment`: causal and chunk-invariant
live, the recording's own mean offline; windows before a live reference is ready are dropped as
``alignment_warmup``), then the per-window normalization.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from eegmamba._checks import check_positive
from eegmamba.alignment import EuclideanReference  # the step after windowing (module docstring)
from eegmamba.profiles import FilterSpec, Profile
from eegmamba.resampling import (DESIGN, GROUP_DELAY_BAND_HZ, band_edges, filter_response,
                                 resample_filter, resample_ratio)

__all__ = ["EuclideanReference", "Preprocessor", "resample_filter", "resample_ratio"]


class Preprocessor:
    """Causal band-pass (+ notch) and resampling to the target rate, with carried state.

    Parameters
    ----------
    profile_or_filter : Profile | FilterSpec
        A profile (its ``filter`` and ``sfreq`` are used) or a bare ``FilterSpec``.
    in_sfreq : float, Hz
        Nominal input rate.
    n_channels : int
    out_sfreq : float, Hz, optional
        Target rate; defaults to the profile's ``sfreq`` (or 200 Hz with a bare ``FilterSpec``).
    """

    def __init__(self, profile_or_filter: Profile | FilterSpec, in_sfreq: float, n_channels: int,
                 out_sfreq: float | None = None):
        if isinstance(profile_or_filter, Profile):
            spec = profile_or_filter.filter
            out_sfreq = profile_or_filter.sfreq if out_sfreq is None else out_sfreq
        elif isinstance(profile_or_filter, FilterSpec):
            spec = profile_or_filter
            out_sfreq = 200.0 if out_sfreq is None else out_sfreq
        else:
            raise TypeError(f"profile_or_filter must be Profile or FilterSpec, got "
                            f"{type(profile_or_filter).__name__}")
        self.spec = spec
        self.in_sfreq = float(check_positive(in_sfreq, "in_sfreq"))
        self.out_sfreq = float(check_positive(out_sfreq, "out_sfreq"))
        if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
            raise ValueError(f"n_channels must be an integer >= 1, got {n_channels!r}")
        self.n_channels = int(n_channels)
        self.up, self.down = resample_ratio(self.in_sfreq, self.out_sfreq)

        nyq_in = self.in_sfreq / 2
        self._h_eff = spec.h_freq if spec.h_freq is not None and spec.h_freq < 0.9 * nyq_in else None
        self._l_eff = spec.l_freq if spec.l_freq is not None and spec.l_freq < 0.9 * nyq_in else None
        self._notch_eff = (spec.notch_hz if spec.notch_hz is not None and spec.notch_hz < 0.9 * nyq_in
                           else None)
        sections = []
        if self._l_eff is not None and self._h_eff is not None:
            sections.append(signal.butter(spec.order, [self._l_eff, self._h_eff], "bandpass",
                                          fs=self.in_sfreq, output="sos"))
        elif self._l_eff is not None:
            sections.append(signal.butter(spec.order, self._l_eff, "highpass", fs=self.in_sfreq,
                                          output="sos"))
        elif self._h_eff is not None:
            sections.append(signal.butter(spec.order, self._h_eff, "lowpass", fs=self.in_sfreq,
                                          output="sos"))
        if self._notch_eff is not None:
            b, a = signal.iirnotch(self._notch_eff, Q=30.0, fs=self.in_sfreq)
            sections.append(signal.tf2sos(b, a))
        self._sos = np.concatenate(sections) if sections else None

        h = resample_filter(self.up, self.down, self.in_sfreq, self._h_eff)
        self._h = h
        n_taps = -(-len(h) // self.up)  # taps per phase
        poly = np.zeros(self.up * n_taps)
        poly[: len(h)] = h
        # _poly[p, m] = h[p + m*up]: output at upsampled index n uses x[n//up - m] with phase n%up
        self._poly = poly.reshape(n_taps, self.up).T.copy()
        self._n_taps = n_taps
        self.reset()

    def reset(self) -> None:
        """Forget all state: the next push starts a new recording (output sample 0)."""
        self._zi = None
        self._last_finite = np.zeros(self.n_channels)
        self._n_in = 0  # input samples pushed so far
        self._n_out = 0  # output samples emitted so far
        hist = self._n_taps + 1
        self._hist_x = np.zeros((self.n_channels, hist))  # filtered input, most recent last
        self._hist_bad = np.zeros((self.n_channels, hist), dtype=bool)
        self._hist_t = np.full(hist, np.nan)

    lookahead_samples = 0
    """Input samples an output waits for beyond the newest one it represents (none: causal FIR)."""

    @property
    def group_delay_ms(self) -> tuple[float, float]:
        """``(min, max)`` group delay (ms) of the resampling filter over 1–40 Hz (0 at 200 Hz in)."""
        if self.up == self.down == 1:
            return (0.0, 0.0)
        f_pass, f_stop = band_edges(self.up, self.down, self.in_sfreq, self._h_eff)
        resp = filter_response(self._h / self.up, self.in_sfreq * self.up, f_pass, f_stop)
        return resp["group_delay_ms"]

    @property
    def n_in(self) -> int:
        """Input samples pushed since the last reset."""
        return self._n_in

    def inputs_needed(self, n_out: int) -> int:
        """Fewest input samples (from a reset) after which ``n_out`` outputs have been emitted."""
        if n_out <= 1:
            return max(n_out, 0)
        return max(2, (n_out - 1) * self.down // self.up + 1)

    def n_outputs(self, n_in: int) -> int:
        """Output samples emitted after ``n_in`` input samples (from a reset): every k with
        ``floor(k·down/up) <= n_in - 1`` (only output 0 while a single input sample is in)."""
        if n_in <= 1:
            return max(n_in, 0)
        return -(-n_in * self.up // self.down)

    def push(self, samples: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter and resample one chunk.

        Parameters
        ----------
        samples : ndarray, shape (n_channels, n), µV
        timestamps : ndarray, shape (n,), seconds (source clock)

        Returns
        -------
        out : ndarray, shape (n_channels, m), float64, µV at ``out_sfreq`` (NaN where the input was
            non-finite, see module docstring)
        out_timestamps : ndarray, shape (m,), seconds
        """
        x = np.asarray(samples, dtype=np.float64)
        t = np.asarray(timestamps, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_channels:
            raise ValueError(f"samples must have shape ({self.n_channels}, n), got {x.shape}")
        if t.shape != (x.shape[1],):
            raise ValueError(f"timestamps must have shape ({x.shape[1]},), got {t.shape}")
        if x.shape[1] == 0:
            return np.zeros((self.n_channels, 0)), np.zeros(0)
        if not np.all(np.isfinite(t)):
            raise ValueError("timestamps must be finite")

        bad = ~np.isfinite(x)
        if bad.any():
            x = self._hold_last_finite(x, bad)
        else:
            self._last_finite = x[:, -1].copy()
        if self._sos is not None:
            if self._zi is None:
                zi0 = signal.sosfilt_zi(self._sos)  # (n_sections, 2)
                self._zi = zi0[:, None, :] * x[None, :, 0, None]  # (n_sections, C, 2)
            x, self._zi = signal.sosfilt(self._sos, x, axis=1, zi=self._zi)

        n_hist = self._hist_x.shape[1]
        buf_x = np.concatenate([self._hist_x, x], axis=1)
        buf_bad = np.concatenate([self._hist_bad, bad], axis=1)
        buf_t = np.concatenate([self._hist_t, t])
        base = self._n_in - n_hist  # global input index of buf[:, 0]
        self._n_in += x.shape[1]
        self._hist_x, self._hist_bad, self._hist_t = (
            buf_x[:, -n_hist:], buf_bad[:, -n_hist:], buf_t[-n_hist:])

        # output k is ready once input floor(k*down/up) has arrived (n_outputs)
        n_ready = self.n_outputs(self._n_in)
        ks = np.arange(self._n_out, max(n_ready, self._n_out))
        self._n_out += len(ks)
        if len(ks) == 0:
            return np.zeros((self.n_channels, 0)), np.zeros(0)
        return self._resample(ks, buf_x, buf_bad, buf_t, base)

    def _hold_last_finite(self, x: np.ndarray, bad: np.ndarray) -> np.ndarray:
        x = x.copy()
        for c in np.flatnonzero(bad.any(axis=1)):
            row = x[c]
            good = ~bad[c]
            idx = np.where(good, np.arange(row.size), -1)
            np.maximum.accumulate(idx, out=idx)
            held = np.where(idx >= 0, row[np.maximum(idx, 0)], self._last_finite[c])
            x[c] = held
        self._last_finite = x[:, -1].copy()
        return x

    def _resample(self, ks, buf_x, buf_bad, buf_t, base):
        if self.up == self.down == 1:
            i = ks - base
            out = buf_x[:, i].copy()
            out[buf_bad[:, i]] = np.nan
            return out, buf_t[i].copy()
        n = ks * self.down  # upsampled index of output k
        phase = n % self.up
        i0 = n // self.up - base  # buffer index of the newest input used: floor(k*down/up)
        m = np.arange(self._n_taps)
        out = np.empty((self.n_channels, len(ks)))
        bad_out = np.zeros((self.n_channels, len(ks)), dtype=bool)
        any_bad = buf_bad.any()
        step = max(1, 2_000_000 // (self._n_taps * self.n_channels))  # bound gather memory
        for s in range(0, len(ks), step):
            sl = slice(s, s + step)
            idx = i0[sl, None] - m[None, :]  # (k, taps)
            taps = self._poly[phase[sl]]  # (k, taps)
            out[:, sl] = np.einsum("ckm,km->ck", buf_x[:, idx], taps)
            if any_bad:
                bad_out[:, sl] = (buf_bad[:, idx] & (taps != 0)[None]).any(axis=2)
        out[bad_out] = np.nan
        # timestamp at fractional input position k*down/up, from inputs <= floor of it (module doc)
        frac = phase / self.up
        first = i0 + base == 0  # the first input sample: no earlier interval, use the next one
        prev = np.where(first, i0, i0 - 1)
        nxt = np.minimum(np.where(first, i0 + 1, i0), len(buf_t) - 1)  # frac = 0 when clipped
        ts = buf_t[i0] + frac * (buf_t[nxt] - buf_t[prev])
        return out, ts

    def to_dict(self) -> dict:
        """Parameters (JSON-able) for checkpoint metadata."""
        return {
            "l_freq": self.spec.l_freq, "h_freq": self.spec.h_freq, "order": self.spec.order,
            "notch_hz": self.spec.notch_hz, "in_sfreq": self.in_sfreq, "out_sfreq": self.out_sfreq,
            "resample": {"up": self.up, "down": self.down, "fir_taps": int(len(self._h)),
                         "design": DESIGN, "lookahead_samples": self.lookahead_samples,
                         "group_delay_ms": [round(v, 3) for v in self.group_delay_ms],
                         "group_delay_band_hz": list(GROUP_DELAY_BAND_HZ)},
            "effective": {"l_freq": self._l_eff, "h_freq": self._h_eff, "notch_hz": self._notch_eff},
            "causal": True, "nonfinite": "hold-last-finite; output NaN over the FIR support",
        }

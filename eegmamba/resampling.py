"""The resampler's anti-alias / anti-image filter: a causal minimum-phase FIR with no look-ahead.

Used by :class:`eegmamba.preprocessing.Preprocessor` (the ONE preprocessing step, offline and live).
The paper resamples every dataset to 200 Hz but says nothing about the filter; we choose one that a
live system can run without waiting for future samples.

Design, for a rational ratio ``up/down`` (``resample_ratio``) at the upsampled rate ``in × up``:

- what must pass: the band-passed EEG, flat to ``f_pass = min(h_freq, 0.4 × min(in, out))`` (50 Hz
  for the profiles' 0.1–50 Hz band-pass); what must go: everything at or above
  ``f_stop = min(in, out) - f_pass`` (the lowest frequency that folds back below ``f_pass``), at least
  60 dB down;
- a Kaiser linear-phase prototype for twice the attenuation, turned minimum-phase by
  ``scipy.signal.minimum_phase`` (homomorphic; it keeps ~the square root of the prototype's magnitude,
  hence the doubled attenuation). The attenuation is raised in 1-dB steps until the *measured*
  stop band of the minimum-phase filter is ≥ 60 dB; DC gain is normalised to exactly 1.

Why not the linear-phase FIR used before: its delay is half its length (5 input samples = 33 ms at
160 Hz) and a causal system can only emit an output once that much future input has arrived. Why not
an elliptic IIR at the upsampled rate: measured for the same pass/stop targets its group delay over
1–40 Hz is larger and less flat (160 Hz: 9.4–13.4 ms, 128 Hz: 11.5–38 ms; this FIR: 8.0–9.6 ms and
11.9–16.7 ms) and it would need a recursive state at the upsampled rate.

Measured (``filter_response``), group delay over 1–40 Hz (1–min(40, f_pass) Hz):

====== ====== ====== ========= ============ =================== ==================
in Hz  up/dn  taps   taps/ph.  stop band    pass ripple (0–50)  group delay 1–40 Hz
====== ====== ====== ========= ============ =================== ==================
160    5/4    57     12        60.6 dB      0.0007 dB           8.0–9.6 ms (1.5 in. samples)
128    25/16  479    20        60.1 dB      0.0012 dB           11.9–16.7 ms
250    4/5    43     11        60.1 dB      0.0015 dB           6.0–6.7 ms
256    25/32  269    11        60.0 dB      0.0012 dB           6.3–7.0 ms
====== ====== ====== ========= ============ =================== ==================

(The linear-phase FIR it replaces: 32.5 ms at 160 Hz, 65.3 ms at 128 Hz, 18.4 ms at 256 Hz — as a
look-ahead.) The group delay is a shift of the signal's content, not a wait: output sample k is
computed from input samples at or before its position ``k·down/up`` only (look-ahead 0).
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
from scipy import signal

_MAX_DENOM = 1000  # rates must have a rational ratio to the target with a denominator <= this
STOP_DB = 60.0  # required stop-band attenuation
DESIGN = ("minimum-phase FIR (scipy.signal.minimum_phase, homomorphic) of a Kaiser lowpass; flat to "
          "min(h_freq, 0.4 min(in, out)), >= 60 dB from min(in, out) - pass edge; causal, no look-ahead")
GROUP_DELAY_BAND_HZ = (1.0, 40.0)


def resample_ratio(in_sfreq: float, out_sfreq: float) -> tuple[int, int]:
    """``(up, down)`` with ``out/in == up/down`` exactly (coprime). ValueError if not rational enough."""
    frac = Fraction(out_sfreq / in_sfreq).limit_denominator(_MAX_DENOM)
    if abs(in_sfreq * frac.numerator / frac.denominator - out_sfreq) > 1e-9 * out_sfreq:
        raise ValueError(
            f"cannot resample {in_sfreq:g} Hz to {out_sfreq:g} Hz with a rational ratio "
            f"(denominator <= {_MAX_DENOM}); use the stream's nominal rate"
        )
    return frac.numerator, frac.denominator


def band_edges(up: int, down: int, in_sfreq: float, pass_hz: float | None) -> tuple[float, float]:
    """``(f_pass, f_stop)`` in Hz for resampling ``in_sfreq`` by ``up/down`` (module docstring)."""
    low = min(in_sfreq, in_sfreq * up / down)
    f_pass = min(pass_hz if pass_hz is not None else np.inf, 0.4 * low)
    return f_pass, low - f_pass


def resample_filter(up: int, down: int, in_sfreq: float, pass_hz: float | None = None) -> np.ndarray:
    """The causal polyphase filter for ``up/down`` at ``in_sfreq`` (gain ``up``; ``[1]`` for 1/1).

    Parameters
    ----------
    up, down : int, the resampling ratio (``resample_ratio``)
    in_sfreq : float, Hz, input rate
    pass_hz : float | None, Hz, the band-pass's low-pass edge (the signal holds nothing above it)

    Returns
    -------
    h : ndarray, shape (n_taps,), float64, at the upsampled rate ``in_sfreq × up``, minimum phase
    """
    if up == down == 1:
        return np.ones(1)
    return np.array(_design(int(up), int(down), float(in_sfreq),
                            None if pass_hz is None else float(pass_hz))) * up


@functools.lru_cache(maxsize=64)
def _design(up: int, down: int, in_sfreq: float, pass_hz: float | None) -> tuple[float, ...]:
    fs_up = in_sfreq * up
    f_pass, f_stop = band_edges(up, down, in_sfreq, pass_hz)
    width = (f_stop - f_pass) / (fs_up / 2)
    for att in np.arange(STOP_DB + 3.0, STOP_DB + 40.0, 1.0):
        numtaps, beta = signal.kaiserord(2 * att, width)
        proto = signal.firwin(numtaps | 1, (f_pass + f_stop) / 2, window=("kaiser", beta), fs=fs_up)
        h = signal.minimum_phase(proto, method="homomorphic")
        h = h / h.sum()
        if filter_response(h, fs_up, f_pass, f_stop)["stop_band_db"] >= STOP_DB:
            return tuple(h)
    raise RuntimeError(f"no minimum-phase resampling filter for {in_sfreq:g} Hz × {up}/{down}")


def filter_response(h: np.ndarray, fs: float, f_pass: float, f_stop: float,
                    band_hz: tuple[float, float] = GROUP_DELAY_BAND_HZ) -> dict:
    """Measured response of FIR ``h`` at rate ``fs`` (Hz), normalised to its DC gain.

    Returns ``pass_ripple_db`` (peak-to-peak over 0–``f_pass``), ``stop_band_db`` (minimum
    attenuation at or above ``f_stop``) and ``group_delay_ms`` ``(min, max)`` over ``band_hz``
    (capped at ``f_pass``).
    """
    w, resp = signal.freqz(h, worN=1 << 15, fs=fs)
    mag = 20 * np.log10(np.maximum(np.abs(resp / resp[0]), 1e-300))
    f = np.linspace(band_hz[0], min(band_hz[1], f_pass), 79)
    _, gd = signal.group_delay((h, [1.0]), w=f, fs=fs)
    pb = mag[w <= f_pass]
    return {"pass_ripple_db": float(pb.max() - pb.min()), "stop_band_db": float(-mag[w >= f_stop].max()),
            "group_delay_ms": (float(gd.min() / fs * 1e3), float(gd.max() / fs * 1e3))}


def resampler_metadata(pass_hz: float | None, out_sfreq: float = 200.0,
                       rates: tuple[float, ...] = (128.0, 160.0, 250.0, 256.0, 500.0, 512.0, 1000.0)
                       ) -> dict:
    """The resampler as checkpoint metadata: design, look-ahead (0) and the group delay it adds at
    common input ``rates`` (ms over 1–40 Hz), for a signal low-passed at ``pass_hz``."""
    delays = {}
    for rate in rates:
        up, down = resample_ratio(rate, out_sfreq)
        if up == down == 1:
            delays[f"{rate:g}"] = [0.0, 0.0]
            continue
        p = pass_hz if pass_hz is not None and pass_hz < 0.45 * rate else None
        f_pass, f_stop = band_edges(up, down, rate, p)
        h = resample_filter(up, down, rate, p) / up
        gd = filter_response(h, rate * up, f_pass, f_stop)["group_delay_ms"]
        delays[f"{rate:g}"] = [round(gd[0], 2), round(gd[1], 2)]
    return {"design": DESIGN, "stop_band_db": STOP_DB, "lookahead_samples": 0,
            "group_delay_ms_by_input_rate": delays, "group_delay_band_hz": list(GROUP_DELAY_BAND_HZ)}

"""Signal units: declared unit strings → scale to µV, and a plausibility check of EEG amplitudes.

ONE rule for recording files (``eegmamba.data.readers``), the replay and live LSL streams
(``realtime.stream.acquisition``): each channel's declared unit (LSL ``desc/channels/channel/unit``, an
EDF/FIF channel unit) is converted to microvolts; ``microvolts``, ``µV``, ``uV``, ``millivolts``,
``mV``, ``volts``, ``V``, ``nanovolts``, ``nV`` … are understood, case-insensitively (so ``MV`` is
millivolts: no EEG is in megavolts). mne-lsl (``PlayerLSL``, ``StreamInfo.set_channel_info``) writes
the unit the MNE way instead: an integer, the power of ten of the channel type's SI unit (MNE's
``unit_mul``): on a voltage channel (``eeg``, ``eog``, ``ecg``, ``emg``, ``seeg``, ``ecog``, ``dbs``,
``bio``, or no type declared) ``0`` is volts, ``-3`` millivolts, ``-6`` µV, ``-9`` nV — so a
``PlayerLSL`` playing a recording read with MNE declares ``0``: volts. An integer on a channel of
another declared type (``misc``, ``stim``, ``annotations`` ...) is not a voltage. mne-lsl's other
per-channel fields (``kind``, ``coil_type``, ``range_cal``, ``loc``) describe the channel for
rebuilding an ``mne.Info``; the samples it pushes are already calibrated (``range_cal`` is not to be
applied again) and are ignored here.

Where no unit is declared the data are assumed to be µV, and :func:`check_amplitude` says whether
that is plausible: scalp EEG in µV has a robust spread (1.4826 × median absolute deviation) of a few
to a few hundred µV; the same signal in volts has ~1e-5, in millivolts ~1e-2, in nanovolts
~1e4–1e5. The check looks at the spread, not at ``median |x|``, so a
DC offset (common on DC-coupled amplifiers) does not hide volts.

Why a spread of 0.2 µV as the lower limit: amplifier noise alone is ~0.5–1 µV rms over 0.1–50 Hz,
and the 90 recordings in ``shared/data`` (EEGMMIDB, CHB-MIT, DREAMS) have per-file median robust
spreads of 10.8–214 µV and no channel below 5.9 µV. The upper limit, 5e3 µV, is 23 × the largest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

UV_PER = {"V": 1e6, "mV": 1e3, "uV": 1.0, "nV": 1e-3}
"""Microvolts per unit, for the canonical unit names (the values of ``--units``)."""

_PREFIX = {"": "V", "m": "mV", "milli": "mV", "u": "uV", "µ": "uV", "μ": "uV", "micro": "uV",
           "n": "nV", "nano": "nV"}
_UNIT_RX = re.compile(r"^(micro|milli|nano|[mµμun]?)\s*(v|volt|volts)$")
_UNIT_MUL = {0: "V", -3: "mV", -6: "uV", -9: "nV"}  # mne-lsl's integer units (module docstring)
_INT_RX = re.compile(r"^[+-]?\d+$")
VOLTAGE_TYPES = frozenset({"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio"})
"""Channel types (lower case, MNE's names) whose values are voltages: where mne-lsl's integer units
are powers of ten of volts."""
_NO_UNIT = {"", "n/a", "na", "none", "unknown", "?", "-", "au", "a.u.", "arbitrary"}
FIFF_UNIT_V = 107  # MNE's channel unit code for volts (``mne.io.constants.FIFF.FIFF_UNIT_V``)

PLAUSIBLE_SPREAD_UV = (0.2, 5e3)
"""Robust spread (µV) of EEG channels outside which a µV assumption is implausible."""
TYPICAL_SPREAD_UV = 30.0  # geometric middle of what real recordings show (module docstring)


def canonical_unit(unit: str | None, ch_type: str | None = None) -> str | None:
    """``"microvolts"``/``"µV"``/``"uv"`` → ``"uV"`` (likewise ``V``, ``mV``, ``nV``); ``None`` for an
    undeclared unit (empty, ``n/a``, ``unknown``, ``a.u.`` …); the stripped string itself when it is
    not a voltage (``"samples"``). An integer is mne-lsl's power of ten of volts (``"0"`` → ``"V"``,
    ``"-6"`` → ``"uV"``) on a channel whose ``ch_type`` is a voltage type or not declared; on other
    channel types, or for another power, it is returned as it is (not a voltage)."""
    if unit is None:
        return None
    text = str(unit).strip()
    if text.lower() in _NO_UNIT:
        return None
    if _INT_RX.match(text):
        voltage = not (ch_type or "").strip() or ch_type.strip().lower() in VOLTAGE_TYPES
        return _UNIT_MUL.get(int(text), text) if voltage else text
    m = _UNIT_RX.match(text.lower().replace("μ", "µ"))
    if m is None:
        return text
    return _PREFIX[m.group(1)]


def scale_to_uv(unit: str | None, ch_type: str | None = None) -> float | None:
    """Factor that converts values in ``unit`` (of a channel of type ``ch_type``, see
    :func:`canonical_unit`) to µV; ``None`` when ``unit`` is not a voltage or not declared (the
    caller decides: assume µV and check, or leave the channel alone)."""
    return UV_PER.get(canonical_unit(unit, ch_type) or "")


def mne_scale_to_uv(ch: dict) -> float | None:
    """µV per value of ``raw.get_data()`` for one MNE channel (``raw.info["chs"][i]``): 1e6 for a
    channel in volts (MNE converts every voltage it reads to volts), ``None`` for any other unit."""
    return 1e6 if ch.get("unit") == FIFF_UNIT_V else None


def parse_units_option(text: str) -> str:
    """The ``--units`` value (``V``, ``mV``, ``uV``/``µV``, ``nV``, any spelling above) → canonical."""
    unit = canonical_unit(text)
    if unit not in UV_PER:
        raise ValueError(f"--units must be one of V, mV, uV, nV (or spelled out: volts, ...), got {text!r}")
    return unit


@dataclass(frozen=True)
class AmplitudeCheck:
    """Verdict of :func:`check_amplitude` on data taken to be µV.

    ``ok``: plausible (or undecidable: every channel flat); ``spread_uv``: median over the
    non-flat channels of the robust spread (µV; ``None`` when all are flat); ``likely_unit``: the
    unit that would bring the spread into the plausible range (``None`` if none does);
    ``message``: one line saying what is wrong and what to do (empty when ``ok``).
    """

    ok: bool
    spread_uv: float | None
    likely_unit: str | None = None
    message: str = ""


def robust_spread(x: np.ndarray) -> np.ndarray:
    """Per channel 1.4826 × median |x - median(x)| (the std of a normal signal), shape (C,)."""
    x = np.asarray(x, dtype=np.float64)
    med = np.nanmedian(x, axis=1, keepdims=True)
    return 1.4826 * np.nanmedian(np.abs(x - med), axis=1)


def check_amplitude(x_uv: np.ndarray, what: str = "the data", declared: str | None = None,
                    option: str | None = "--units") -> AmplitudeCheck:
    """Is ``x_uv`` (shape (C, n), taken to be µV) plausibly EEG in µV?

    ``what`` names the source in the message (``"stream 'X'"``, a file path); ``declared`` the
    unit it declared (``None``: none); ``option`` the command-line option that overrides the unit
    (``None``: there is none, the message says which unit the data look like).
    """
    x = np.asarray(x_uv, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x_uv must have shape (C, n), got {x.shape}")
    finite = np.isfinite(x)
    if not finite.any():
        return AmplitudeCheck(True, None)
    spread = robust_spread(np.where(finite, x, np.nan))
    spread = spread[np.isfinite(spread) & (spread > 0)]
    if spread.size == 0:  # all flat: the flat rules speak for it
        return AmplitudeCheck(True, None)
    s = float(np.median(spread))
    lo, hi = PLAUSIBLE_SPREAD_UV
    if lo <= s <= hi:
        return AmplitudeCheck(True, s)
    fits = [u for u, k in UV_PER.items() if u != "uV" and lo <= s * k <= hi]
    # several may fit (20 µV in mV ×1e6 is still "plausible"): the one nearest a typical spread
    likely = min(fits, key=lambda u: abs(np.log10(s * UV_PER[u] / TYPICAL_SPREAD_UV)), default=None)
    claim = f"declares {declared}" if declared else "declares no unit (µV assumed)"
    size = "small" if s < lo else "large"
    if option is None:
        guess = f" — looks like {likely}; fix the channel units" if likely else ""
    elif likely:
        guess = f" — looks like {likely}; rerun with {option} {likely}"
    else:
        guess = f"; if the unit is known, give it with {option}"
    return AmplitudeCheck(False, s, likely,
                          f"{what} {claim} but its EEG amplitude is implausibly {size} for µV "
                          f"(median robust spread {s:.3g} µV){guess}")

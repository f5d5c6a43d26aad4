"""Per-stream checks and health counters, fed by the acquisition thread: is the stream what it claims?

:class:`StreamMonitor` sees every pulled block of one stream (synchronous, no I/O) and keeps

- **format**: a stream of strings (``cf_string``) used as a signal (a regular rate, or channels typed
  ``EEG``) is held (``format``) with one line saying so; its samples are never read as numbers
  (they reach the pipelines as NaN, counted there as held windows).
- **units** (:mod:`eegmamba.units`, which also reads mne-lsl's integer units: ``0`` = volts): each
  channel's declared unit becomes a µV factor applied to the samples; undeclared units are taken as
  µV. The EEG channels are those typed ``EEG`` (whatever unit they declare; one not understood is
  assumed µV), or all voltage/undeclared channels when no type says EEG. Their first
  ``units_check_s`` seconds are checked for a plausible µV amplitude. A ``--units`` override
  replaces the declaration of those channels (of every channel when none is EEG by that rule) and
  is trusted (no check).
- **timestamps** (:mod:`realtime.stream.timestamps`): regular stamps for the windower, breaks (``gap`` /
  ``jump``) where samples are missing or the clock jumped; raw stamps kept for jitter and drift.
- **rate**: once the fitted rate has settled, a rate further than ``rate_tolerance`` from the
  expected one (nominal × the speed a replay declares in ``desc/replay/speed``) is a mismatch;
  with ``accept_measured_rate`` the measured rate, rounded to whole Hz, is offered instead
  (:attr:`StreamMonitor.accepted_srate`).
- **hold**: the reason no decision may be taken on this stream now: ``unverified`` (units or rate
  not checked yet), ``format``, ``units``, ``rate_mismatch``; with a one-line :attr:`message` the
  user can act on. The live loop counts the windows of a held stream as dropped with that reason.

:class:`StreamCounters` keeps the plain counters (state ok/lost, samples, losses, reconnects, errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pylsl

from eegmamba.units import UV_PER, canonical_unit, check_amplitude
from realtime.stream.timestamps import TimestampConfig, TimestampModel, steps_after

logger = logging.getLogger(__name__)

_EEG_TYPES = {"eeg"}


@dataclass(frozen=True)
class CheckConfig:
    """Stream checks: ``rate_tolerance`` (relative), ``units_check_s`` (seconds of data at the
    nominal rate); ``timestamps.settle_s`` also counts in the stream's seconds (nominal rate)."""

    rate_tolerance: float = 0.05
    units_check_s: float = 2.0
    timestamps: TimestampConfig = field(default_factory=TimestampConfig)


@dataclass(frozen=True)
class Declaration:
    """What a stream says about itself (from its LSL description)."""

    name: str
    nominal_srate: float
    units: tuple[str | None, ...]
    types: tuple[str | None, ...] = ()
    speed: float = 1.0  # a replay's declared speed factor (desc/replay/speed)
    is_string: bool = False  # channel format cf_string
    stype: str = ""  # the stream's type

    @property
    def expected_srate(self) -> float:
        return self.nominal_srate * self.speed

    @classmethod
    def from_info(cls, info) -> "Declaration":
        """From a full ``pylsl.StreamInfo`` (with its description)."""
        n = info.channel_count()
        units = info.get_channel_units() or [None] * n
        types = info.get_channel_types() or [None] * n
        speed_text = info.desc().child("replay").child_value("speed")
        try:
            speed = float(speed_text) if speed_text else 1.0
        except ValueError:
            speed = 1.0
        return cls(info.name(), info.nominal_srate(), tuple(units), tuple(types),
                   speed if speed > 0 else 1.0, info.channel_format() == pylsl.cf_string, info.type())


def strings_message(name: str) -> str:
    """The one line for a stream of strings offered as EEG (live and ``--list``)."""
    return (f"stream '{name}' sends strings; an EEG stream must send numbers (choose the "
            "amplifier's numeric stream: eegmamba-live --list)")


class StreamMonitor:
    """Checks and counters of one stream (see module docstring). Thread use: the acquisition thread
    calls :meth:`on_block`; readers take :meth:`state` under the inlet's lock."""

    def __init__(self, decl: Declaration, config: CheckConfig | None = None, *,
                 units: str | None = None, accept_measured_rate: bool = False) -> None:
        self.decl, self.config = decl, config or CheckConfig()
        self.override = units
        self.accept_measured_rate = accept_measured_rate
        n = len(decl.units)
        types = [(t or "").strip().lower() for t in (decl.types or (None,) * n)]
        canon = [canonical_unit(u, t) for u, t in zip(decl.units, types)]
        voltage = [c is None or c in UV_PER for c in canon]
        typed_eeg = [t in _EEG_TYPES for t in types]
        # a channel typed EEG is EEG whatever unit it declares (before, one declaring a unit not
        # understood, e.g. mne-lsl's "0", was left unscaled, unchecked and out of --units' reach)
        self.eeg = np.array(typed_eeg if any(typed_eeg) else voltage, dtype=bool)
        if units is not None and not self.eeg.any():
            self.eeg[:] = True  # the user says what the channels are in
        self._canon = canon
        scale = np.ones(n)
        for i, c in enumerate(canon):
            unit = units if (units is not None and self.eeg[i]) else c
            scale[i] = UV_PER.get(unit or "uV", 1.0)  # EEG in a unit not understood: µV, checked
        self.scale = scale
        self.identity = bool(np.all(scale == 1.0))
        self.unit_label = self._unit_label(canon)
        regular = decl.nominal_srate > 0
        self.format_message: str | None = None
        if decl.is_string and (regular or any(typed_eeg) or decl.stype.strip().lower() == "eeg"):
            self.format_message = strings_message(decl.name)
            logger.warning("%s", self.format_message)
        # settle_s counts in the stream's own seconds (a replay at 8x settles in 1/8 of the wall time)
        tcfg = replace(self.config.timestamps, settle_s=self.config.timestamps.settle_s / decl.speed)
        self.timestamps = TimestampModel(decl.expected_srate, tcfg) if regular else None
        self._check_buf: list[np.ndarray] = []
        self._check_n = 0
        self.units_ok: bool | None = None if (regular and units is None and self.eeg.any()
                                              and self.format_message is None) else True
        self._units_tried = False  # a check found every channel flat: undecided, but no hold
        self.units_message: str | None = None
        self.rate_ok: bool | None = None if regular else True
        self.accepted_srate: float | None = None
        self.rate_message: str | None = None

    def _unit_label(self, canon) -> str:
        eeg = [c for c, e in zip(canon, self.eeg) if e]
        if self.override is not None:
            return f"{self.override} (--units)"
        declared = sorted({c for c in eeg if c in UV_PER})
        odd = sorted({c for c in eeg if c is not None and c not in UV_PER})
        if odd:  # typed EEG, unit not understood: taken as µV (and checked)
            return f"µV (assumed; declares {', '.join(odd)})"
        if not declared:
            return "µV (assumed)" if eeg else "-"
        return "/".join("µV" if d == "uV" else d for d in declared) + (
            " (some assumed µV)" if None in eeg else "")

    # ------------------------------------------------------------------ per block
    def on_block(self, samples: np.ndarray, raw_ts: np.ndarray, arrival: float, *,
                 may_defer: bool = False) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]] | None:
        """Model ``raw_ts`` and scale ``samples`` (C, n) to µV (in place); returns ``(samples,
        timestamps, breaks)``, or None when the timestamp model defers the block (``may_defer``:
        push it again with the next one; see :meth:`TimestampModel.push`)."""
        if self.timestamps is None:
            ts, breaks = raw_ts, []
        else:
            res = self.timestamps.push(raw_ts, arrival, may_defer=may_defer)
            if res is None:
                return None
            ts, breaks = res
        if self.format_message is not None:  # text is never read as numbers
            samples = np.full(samples.shape, np.nan)
        elif not self.identity:
            samples *= self.scale[:, None]
        if self.timestamps is None:
            return samples, ts, breaks
        if self.units_ok is None:
            self._check_units(samples)
        self._check_rate()
        return samples, ts, breaks

    def _check_units(self, samples: np.ndarray) -> None:
        self._check_buf.append(samples[self.eeg])
        self._check_n += samples.shape[1]
        if self._check_n < self.config.units_check_s * self.decl.nominal_srate:
            return
        data = np.concatenate(self._check_buf, axis=1)
        self._check_buf = []
        declared = sorted({c for c, e in zip(self._canon, self.eeg) if e} - {None})
        check = check_amplitude(data, f"stream '{self.decl.name}'", "/".join(declared) or None)
        if check.spread_uv is None:  # every channel flat so far: look again later
            self._check_n = 0
            self._units_tried = True
            return
        self.units_ok = check.ok
        if not check.ok:
            self.units_message = check.message
            logger.warning("%s", check.message)

    def _check_rate(self) -> None:
        model = self.timestamps
        if not model.settled:
            return
        measured = model.rate
        expected = self.decl.expected_srate if self.accepted_srate is None else \
            self.accepted_srate * self.decl.speed
        off = measured / expected - 1.0
        mismatch = abs(off) > self.config.rate_tolerance
        if mismatch and self.accept_measured_rate:
            if self.accepted_srate is None:
                # whole Hz: any rate up to 1000 Hz then resamples to 200 Hz with a rational ratio
                self.accepted_srate = float(round(measured / self.decl.speed))
                logger.warning("stream '%s' declares %g Hz, delivers %.1f Hz: accepted "
                               "(--accept-measured-rate), processed as %g Hz", self.decl.name,
                               self.decl.nominal_srate, measured / self.decl.speed, self.accepted_srate)
            mismatch = False
        was = self.rate_ok
        self.rate_ok = not mismatch
        if mismatch:
            self.rate_message = (
                f"stream '{self.decl.name}' declares {expected:g} Hz, delivers {measured:.1f} Hz "
                f"({100 * off:+.0f} %): no decisions (windows and frequencies would be off); if the "
                "device really samples at that rate, rerun with --accept-measured-rate")
            if was is not False:
                logger.warning("%s", self.rate_message)
        elif was is False:
            logger.info("stream '%s': rate back within %.0f %% of %g Hz", self.decl.name,
                        100 * self.config.rate_tolerance, expected)

    # ------------------------------------------------------------------ state
    @property
    def hold(self) -> str | None:
        """Why no decision may be taken on this stream now, or None."""
        if self.format_message is not None:
            return "format"
        if self.units_ok is False:
            return "units"
        if self.rate_ok is False:
            return "rate_mismatch"
        if (self.units_ok is None and not self._units_tried) or self.rate_ok is None:
            return "unverified"
        return None

    @property
    def message(self) -> str | None:
        """One line for the dashboard and the summary, or None when all is well."""
        if self.format_message is not None:
            return self.format_message
        if self.units_ok is False:
            return self.units_message
        if self.rate_ok is False:
            return self.rate_message
        if self.accepted_srate is not None:
            return (f"stream '{self.decl.name}' declares {self.decl.nominal_srate:g} Hz, processed at "
                    f"the measured {self.accepted_srate:g} Hz (--accept-measured-rate)")
        model = self.timestamps
        if self.rate_ok is None and model is not None and model.n * model.period > 30.0:
            jit = model.jitter_p95()
            return (f"stream '{self.decl.name}': its sampling rate has not settled after "
                    f"{model.n * model.period:.0f} s (timestamp jitter p95 "
                    f"{1000 * (jit or 0):.0f} ms): no decisions yet")
        return None


class StreamCounters:
    """Mutable health counters of one stream (state, samples, losses, errors); updated by the
    acquisition thread only."""

    def __init__(self, nominal_srate: float, stall_s: float) -> None:
        self.nominal, self.stall_s = nominal_srate, stall_s
        self.state = "waiting"
        self.last_raw: float | None = None
        self.last_arrival: float | None = None
        self.n_samples = self.n_chunks = self.n_backwards = 0
        self.n_losses = self.n_reconnects = self.n_recreated = self.n_errors = 0
        self.n_duplicates = 0  # re-sent samples dropped (realtime.stream.duplicates)
        self.last_error: str | None = None

    def update(self, raw: np.ndarray, now: float) -> None:
        steps = steps_after(raw, self.last_raw) if self.last_raw is not None else np.diff(raw)
        # equal stamps are legitimate on irregular streams (two markers at one instant)
        backwards = steps <= 0 if self.nominal > 0 else steps < 0
        self.n_backwards += int(backwards.sum())
        if self.state == "lost":
            self.n_reconnects += 1
        self.state = "ok"
        self.n_samples += len(raw)
        self.n_chunks += 1
        self.last_raw, self.last_arrival = float(raw[-1]), now

    def duplicates(self, n: int, now: float) -> None:
        """``n`` re-sent samples arrived (and were dropped): counted; the stream is alive."""
        self.n_duplicates += n
        if self.state == "lost":
            self.n_reconnects += 1
        if self.last_arrival is not None:
            self.state, self.last_arrival = "ok", now

    def check_stall(self, now: float) -> bool:
        """Mark the stream lost after ``stall_s`` without samples; True while lost.

        Irregular-rate streams (markers) are silent by nature and never marked lost.
        """
        if self.state == "ok" and self.nominal > 0 and now - self.last_arrival > self.stall_s:
            self.state = "lost"
            self.n_losses += 1
        return self.state == "lost"

    def error(self, exc: BaseException) -> None:
        self.n_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

"""Read LabRecorder XDF files (``.xdf``, ``.xdfz``) with pyxdf, the XDF project's own reader.

pyxdf is used rather than our own parser because it implements what LabRecorder files need and is
easy to get wrong: the ClockOffset chunks (streams recorded from other hosts are put on the
recorder's clock, ``synchronize_clocks``), clock resets, and the dejittering of regularly sampled
streams (timestamps refitted per segment between breaks, ``dejitter_timestamps``) — the file's
timestamps are honoured as the XDF reference implementation reads them, with one setting of ours:
a break is a step over ``BREAK_S`` (0.5 s) instead of pyxdf's max(1 s, 500 samples).

What is taken from a file:

- the EEG stream: by name (``--xdf-eeg NAME``), else the only stream of type ``EEG``; with several,
  the one that has the profile's channels; its channel labels, units and types
  (``desc/channels/channel/{label,unit,type}``, converted to µV by ``eegmamba.units``: an integer
  unit, mne-lsl's power of ten of volts, only on a voltage-type channel or one with no type);
- the timestamps of its samples (seconds from its first sample: a step over ``BREAK_S`` is a break,
  kept as a gap, so a window over it is dropped by the windowing rule and no label spans it; a
  segment whose rate is not the nominal one is warned about: ``check_segments``);
- the labels: a marker stream of the same file (``--xdf-markers NAME``, else the only ``Markers``
  stream; with several, the one whose markers the profile's label rules know) becomes the
  annotations — one per marker at its (synchronised) timestamp (put on a sample when within 1 % of
  a sample period of one: ``snap_onsets``), lasting the value of a
  ``duration_s`` channel when the stream has one (as ``eegmamba-replay`` and
  ``eegmamba/testing/xdf_writer.py`` write), else until the next marker, the last one until the end of the EEG.
  Markers outside the EEG's time span (a recorder started before the amplifier, or stopped after
  it; the XDF project's ``minimal.xdf`` has one after its EEG) are counted and warned about in one
  line; one before the EEG whose cue reaches into it is kept, cut at the EEG's first sample.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.data.recording import Recording, subject_and_run

XDF_SUFFIXES = (".xdf", ".xdfz")


@dataclass(frozen=True)
class XdfSelection:
    """Which streams of an XDF file to read: EEG and markers by name (None: by type)."""

    eeg: str | None = None
    markers: str | None = None


_selection = XdfSelection()


def select_streams(eeg: str | None = None, markers: str | None = None) -> None:
    """Set the streams the readers take from XDF files for this process (the ``--xdf-eeg`` /
    ``--xdf-markers`` options of the commands; the readers' call chains stay path-based)."""
    global _selection
    _selection = XdfSelection(eeg, markers)


def is_xdf(path: str | Path) -> bool:
    return str(path).lower().endswith(XDF_SUFFIXES)


BREAK_S = 0.5
"""A step of more than this between two timestamps is a break (a gap kept as a gap; the segments on
either side are dejittered apart). pyxdf's default, max(1 s, 500 samples), would fit one line
through a 3-s loss at 160 Hz and shift every later sample by up to half of it; shorter losses are
within the fit of their segment, which ``read_xdf`` reports (effective rate vs nominal)."""
RATE_TOLERANCE = 1e-3  # relative; more than this between a segment's and the nominal rate: warned


def load_streams(path: str | Path) -> list[dict]:
    """All streams of the file, clock-synchronised and dejittered (pyxdf), breaks over ``BREAK_S``."""
    import pyxdf

    logging.getLogger("pyxdf").setLevel(logging.ERROR)  # e.g. "segments and clock-segments differ"
    try:
        streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=True,
                                    handle_clock_resets=True, jitter_break_threshold_seconds=BREAK_S,
                                    jitter_break_threshold_samples=0)
    except Exception as exc:  # pyxdf raises many types for a bad file; all mean "cannot read this"
        raise UserInputError(f"cannot read XDF file {path}: {type(exc).__name__}: {exc}") from exc
    return streams


def _field(stream: dict, key: str, default: str = "") -> str:
    value = stream["info"].get(key, [default])
    return str(value[0]) if value else default


def describe(stream: dict) -> str:
    return (f"'{_field(stream, 'name')}' ({_field(stream, 'type') or 'no type'}, "
            f"{_field(stream, 'channel_count')} ch @ {_field(stream, 'nominal_srate')} Hz)")


def _channel_descs(stream: dict) -> list[dict]:
    """One dict per channel (``desc/channels/channel``; ``{}`` where the description has none)."""
    n = int(_field(stream, "channel_count", "0"))
    try:
        chans = stream["info"]["desc"][0]["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        chans = []
    return [chans[i] if i < len(chans) and isinstance(chans[i], dict) else {} for i in range(n)]


def channels(stream: dict) -> tuple[list[str], list[str | None]]:
    """Channel labels and units from the stream description (``ch<i>`` / None where missing)."""
    descs = _channel_descs(stream)
    labels = [str(c.get("label", [f"ch{i}"])[0]) for i, c in enumerate(descs)]
    return labels, [_text(c, "unit") for c in descs]


def _text(desc: dict, key: str) -> str | None:
    """A channel field's text (pyxdf: a one-item list; an empty element reads as ``[None]``)."""
    value = (desc.get(key) or [None])[0]
    return None if value is None or not str(value).strip() else str(value)


def channel_scales(stream: dict) -> list[float | None]:
    """µV per value of each channel (``eegmamba.units.scale_to_uv`` of its declared unit and
    type: mne-lsl's integer units are powers of ten of volts only on voltage-type channels or
    channels with no type); ``None`` where the unit is not a voltage or not declared."""
    from eegmamba.units import scale_to_uv

    _, units = channels(stream)
    types = [_text(c, "type") for c in _channel_descs(stream)]
    return [scale_to_uv(u, t) for u, t in zip(units, types)]


def pick_eeg(streams: list[dict], path, profile=None) -> dict:
    from eegmamba.channels import match_channels

    listing = "; ".join(describe(s) for s in streams) or "none"
    if _selection.eeg is not None:
        found = [s for s in streams if _field(s, "name") == _selection.eeg]
        if not found:
            raise UserInputError(f"{path}: no stream named {_selection.eeg!r} (streams: {listing})")
        return found[0]
    found = [s for s in streams if _field(s, "type").lower() == "eeg"
             and float(_field(s, "nominal_srate", "0")) > 0]
    if len(found) > 1 and profile is not None:
        fits = []
        for s in found:
            try:
                match_channels(channels(s)[0], profile.channels.names, profile.channels.aliases)
                fits.append(s)
            except UserInputError:
                pass
        found = fits or found
    if len(found) != 1:
        what = "no" if not found else "several"
        raise UserInputError(f"{path}: {what} EEG stream(s) to read (streams: {listing}); "
                             "choose one with --xdf-eeg NAME")
    return found[0]


def pick_markers(streams: list[dict], path, profile=None) -> dict | None:
    if _selection.markers is not None:
        found = [s for s in streams if _field(s, "name") == _selection.markers]
        if not found:
            listing = "; ".join(describe(s) for s in streams)
            raise UserInputError(f"{path}: no stream named {_selection.markers!r} (streams: {listing})")
        return found[0]
    found = [s for s in streams if _field(s, "type").lower() == "markers"
             or _field(s, "channel_format") == "string"]
    if len(found) > 1 and profile is not None:
        known = {d for r in profile.labels for d in r.descriptions} | set(profile.classes)
        found = [s for s in found if any(str(v[0]).strip() in known for v in s["time_series"])] or found
    if len(found) > 1:
        names = ", ".join(_field(s, "name") for s in found)
        raise UserInputError(f"{path}: several marker streams ({names}); choose with --xdf-markers NAME")
    return found[0] if found else None


def annotations(markers: dict | None, t0: float, t_end: float) -> tuple[tuple[float, float, str], ...]:
    """``(onset s from t0, duration s, text)`` per marker (module docstring for the durations)."""
    if markers is None or len(markers["time_stamps"]) == 0:
        return ()
    labels, _ = channels(markers)
    dur_ch = next((i for i, lab in enumerate(labels) if lab.lower() in ("duration_s", "duration")),
                  None)
    ts = np.asarray(markers["time_stamps"], dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    out = []
    for j, k in enumerate(order):
        value = markers["time_series"][k]
        nxt = ts[order[j + 1]] if j + 1 < len(order) else t_end
        duration = nxt - ts[k]
        if dur_ch is not None:
            try:
                duration = float(value[dur_ch])
            except (TypeError, ValueError, IndexError):
                pass
        out.append((float(ts[k] - t0), float(duration), str(value[0]).strip()))
    return tuple(out)


def within_span(ann, span_s: float, path, tol_s: float = 0.0) -> tuple[tuple[float, float, str], ...]:
    """The annotations (onset s, duration s, text) that overlap the EEG's span ``[0, span_s)`` by
    more than ``tol_s``, cut to it; the others are counted in one warning (never an error: the EEG
    is still usable)."""
    kept, before, after = [], 0, 0
    for onset, duration, text in ann:
        end = onset + max(duration, 0.0)
        if onset >= span_s - tol_s:
            after += 1
        elif onset < 0 and end <= tol_s:
            before += 1
        else:
            start = max(onset, 0.0)
            kept.append((start, min(end, span_s) - start, text))
    if before or after:
        warnings.warn(f"{path}: {before + after} marker(s) outside the EEG stream's time span "
                      f"({before} before its first sample, {after} after its last) are not used",
                      stacklevel=3)
    return tuple(kept)


def snap_onsets(ann, t: np.ndarray, sfreq: float, tol: float = 0.01):
    """Put an onset within ``tol`` sample periods of a sample's timestamp on that sample: a marker
    sent with a sample is stamped with it, and dejittering (a line fitted to jittered timestamps)
    moves the EEG's timestamps by microseconds, which must not shift a label by a sample."""
    if not ann or len(t) == 0:
        return ann
    out = []
    for onset, duration, text in ann:
        k = int(np.clip(np.searchsorted(t, onset), 1, len(t) - 1))
        k = k if abs(t[k] - onset) < abs(t[k - 1] - onset) else k - 1
        if abs(t[k] - onset) < tol / sfreq:
            onset = float(t[k])
        out.append((onset, duration, text))
    return tuple(out)


def check_segments(stream: dict, ts: np.ndarray, sfreq: float, path) -> None:
    """Warn where a dejittered segment's rate is not the nominal one: samples were lost (or are
    extra) within it, and dejittering spread the difference over the segment."""
    for a, b in stream["info"].get("segments") or [(0, len(ts) - 1)]:
        if b - a < 2 or ts[b] <= ts[a]:
            continue
        rate = (b - a) / (ts[b] - ts[a])
        if abs(rate / sfreq - 1) > RATE_TOLERANCE:
            warnings.warn(f"{path}: stream {describe(stream)} runs at {rate:.3f} Hz in samples "
                          f"{a}-{b} ({ts[b] - ts[a]:.1f} s), not {sfreq:g} Hz: roughly "
                          f"{abs((ts[b] - ts[a]) * sfreq - (b - a)):.0f} samples missing or extra "
                          f"(a loss under {BREAK_S:g} s is spread over its segment)", stacklevel=3)


def read_xdf(path: str | Path, profile):
    """The profile's channels of the file's EEG stream as a ``Recording`` (µV, with timestamps)."""
    from eegmamba.channels import match_channels
    from eegmamba.units import check_amplitude

    path = Path(path)
    streams = load_streams(path)
    eeg = pick_eeg(streams, path, profile)
    labels, units = channels(eeg)
    try:
        picks = match_channels(labels, profile.channels.names, profile.channels.aliases)
    except UserInputError as exc:
        raise UserInputError(f"{path} (stream {describe(eeg)}): {exc}") from exc
    x, ts, sfreq = _samples(eeg, path)
    all_scales = channel_scales(eeg)
    scales = [all_scales[i] for i in picks]
    data = x[:, picks].T * np.array([1.0 if s is None else s for s in scales])[:, None]
    declared = units[picks[0]] if all(s is not None for s in scales) else None
    check = check_amplitude(data, f"recording {path}", declared, option=None)
    if not check.ok:
        raise UserInputError(check.message)
    check_segments(eeg, ts, sfreq, path)
    t0, span = float(ts[0]), float(ts[-1] - ts[0]) + 1.0 / sfreq
    ann = annotations(pick_markers(streams, path, profile), t0, t0 + span)
    ann = within_span(snap_onsets(ann, ts - t0, sfreq), span, path, 0.01 / sfreq)
    subject, run = subject_and_run(path, profile.subject_aliases)
    return Recording(
        data=np.ascontiguousarray(data), sfreq=sfreq, ch_names=tuple(profile.channels.names),
        source_ch_names=tuple(labels[i] for i in picks), annotations=ann, subject=subject, run=run,
        path=path, timestamps=ts - t0)


def xdf_channel_names(path: str | Path) -> list[str]:
    """Channel labels of the file's EEG stream (no data conversion)."""
    return channels(pick_eeg(load_streams(path), path))[0]


def xdf_as_raw(path: str | Path):
    """The EEG stream (every channel, voltages in V as MNE keeps them) as an ``mne.io.RawArray``
    with the marker stream as annotations, and the number of timestamp breaks in it (a replay
    streams at the nominal rate, so breaks are not reproduced)."""
    import mne

    streams = load_streams(path)
    eeg = pick_eeg(streams, path)
    labels, _ = channels(eeg)
    x, ts, sfreq = _samples(eeg, path)
    scales = np.array([1.0 if s is None else s for s in channel_scales(eeg)])
    info = mne.create_info(labels, sfreq, ch_types="eeg")
    raw = mne.io.RawArray(x.T * scales[:, None] * 1e-6, info, verbose="error")
    span = float(ts[-1] - ts[0]) + 1.0 / sfreq
    ann = annotations(pick_markers(streams, path), float(ts[0]), float(ts[0]) + span)
    ann = within_span(ann, span, path, 0.01 / sfreq)
    if ann:
        with warnings.catch_warnings():  # a last cue reaching past the data is cut there: fine
            warnings.simplefilter("ignore", RuntimeWarning)
            raw.set_annotations(mne.Annotations([a[0] for a in ann], [a[1] for a in ann],
                                                [a[2] for a in ann]))
    breaks = int(np.sum(np.diff(ts) > 1.5 / sfreq)) if len(ts) > 1 else 0
    return raw, breaks


def _samples(eeg: dict, path) -> tuple[np.ndarray, np.ndarray, float]:
    """The EEG stream's samples (n, C) as float64, timestamps (n,) and nominal rate; a stream with
    no samples or no regular rate is a user error."""
    x = np.asarray(eeg["time_series"], dtype=np.float64)
    ts = np.asarray(eeg["time_stamps"], dtype=np.float64)
    sfreq = float(_field(eeg, "nominal_srate", "0"))
    if x.ndim != 2 or len(ts) == 0 or x.shape[0] != len(ts):
        raise UserInputError(f"{path}: EEG stream {describe(eeg)} has no samples")
    if not sfreq > 0:
        raise UserInputError(f"{path}: stream {describe(eeg)} has no regular sampling rate: "
                             "not an EEG stream (choose one with --xdf-eeg NAME)")
    return x, ts, sfreq


def add_xdf_options(parser) -> None:
    """``--xdf-eeg NAME`` / ``--xdf-markers NAME`` for the commands that read recordings."""
    g = parser.add_argument_group("XDF files (LabRecorder)")
    g.add_argument("--xdf-eeg", metavar="NAME", default=None,
                   help="EEG stream to read from .xdf files (default: the only stream of type EEG)")
    g.add_argument("--xdf-markers", metavar="NAME", default=None,
                   help="marker stream giving the labels (default: the only Markers stream)")


def apply_xdf_options(args) -> None:
    select_streams(getattr(args, "xdf_eeg", None), getattr(args, "xdf_markers", None))

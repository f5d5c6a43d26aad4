"""Replay a recording as a real-time LSL EEG stream, with its annotations as a ``Markers`` stream.

Why our own pylsl pusher and not mne-lsl's ``PlayerLSL`` (checked against mne-lsl 1.14):

- ``PlayerLSL`` stamps each chunk's last sample one chunk period in the *future* (its target time
  is bumped before the push), so latencies computed from sample timestamps come out flattering or
  negative; it has no ``speed`` option; its annotation outlet has type ``annotations`` (not
  ``Markers``), stamps each annotation one sample before its onset sample and pushes it ahead of
  the data it belongs to.
- Here every sample ``k`` (counted across repeats) is stamped ``t0 + k / (sfreq * speed)`` and a
  chunk is pushed as soon as its last sample is due, so the last sample's timestamp is its push
  time (to within the thread's wake-up jitter, measured in ``late_chunks``). Each annotation is
  pushed right after the chunk holding its onset sample, stamped with that sample's timestamp.

``speed`` > 1 replays faster than real time: timestamps are emission times, so a consumer sees a
measured rate of ``speed * sfreq`` while the declared nominal rate stays the file's ``sfreq`` (the
rate of the signal, which is what filters need).

Data are pushed as float64; channels stored in volts by MNE are pushed in microvolts (unit
``microvolts`` in the stream description, :mod:`eegmamba.units`), as EEG amplifiers on LSL do. Other
channels (e.g. a sample-index ``misc`` channel) are pushed unchanged, with no unit declared. ``index_channel=True`` appends a channel
``SAMPLE_INDEX`` holding the global sample index ``k`` so tests can trace every sample.

The markers stream ``<name>-markers`` (type ``Markers``, irregular rate, 2 string channels
``description`` and ``duration_s``) carries one sample per annotation; ``duration_s`` is on the
stream's clock (the file's duration / ``speed``), like the timestamps.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import numpy as np
import pylsl

from eegmamba._checks import UserInputError, check_file, check_positive, check_type
from eegmamba.units import mne_scale_to_uv

logger = logging.getLogger(__name__)

def load_recording(path: str | Path):
    """Read any MNE-readable recording (or an XDF file's EEG stream, with its marker stream as
    annotations) into memory; raise ``UserInputError`` when it cannot."""
    import mne

    p = check_file(path, "recording")
    from eegmamba.data.xdf import is_xdf, xdf_as_raw

    if is_xdf(p):  # the EEG stream (µV → V as MNE keeps them) and its markers as annotations
        raw, breaks = xdf_as_raw(p)
        if breaks:
            logger.warning("%s: %d break(s) in the EEG timestamps are not reproduced: the replay "
                           "streams at the nominal rate", p, breaks)
        return raw
    try:
        raw = mne.io.read_raw(p, preload=True, verbose="error")
    except Exception as exc:  # MNE raises many types for unreadable files; all are user errors
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(f"cannot read recording {p}: {msg}") from exc
    if raw.n_times == 0 or raw.info["sfreq"] <= 0:
        raise UserInputError(f"recording {p} has no samples")
    return raw


class Replay:
    """Stream a recording on LSL at its real rate (or ``speed`` times faster) from a thread.

    Parameters
    ----------
    path : str | Path | list of them
        Any file ``mne.io.read_raw`` reads (EDF, BDF, GDF, FIF, ...). Several files (same channels
        and rate) are replayed back to back as one stream, their annotations shifted to match
        (``file_starts``: the first sample of each file).
    name : str | None
        LSL stream name; default the file stem. Markers go to ``<name>-markers``.
    source_id : str | None
        LSL source id; default ``eegmamba-replay:<name>``. Markers use ``<source_id>-markers``.
    repeat : int | float
        Number of passes over the file (``math.inf`` loops until ``stop()``).
    speed : float
        Replay speed factor (> 0); 1 is real time.
    chunk_size : int
        Samples per push.
    index_channel : bool
        Append a ``SAMPLE_INDEX`` channel holding the global sample index.
    markers : bool
        Publish the annotations as a ``Markers`` stream (ignored if the file has none).
    wait_for_consumer_s : float
        Before the first sample, wait up to this long (seconds) for an inlet on the EEG stream
        so that a consumer sees the recording from its first sample.
    wait_for_markers : bool
        Also wait (within the same time limit) for an inlet on the markers stream; off by default
        since most consumers (a classifier) never read it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        source_id: str | None = None,
        repeat: int | float = 1,
        speed: float = 1.0,
        chunk_size: int = 10,
        index_channel: bool = False,
        markers: bool = True,
        wait_for_consumer_s: float = 0.0,
        wait_for_markers: bool = False,
    ) -> None:
        check_positive(wait_for_consumer_s, "wait_for_consumer_s", strict=False)
        check_positive(speed, "speed")
        check_type(chunk_size, int, "chunk_size")
        check_positive(chunk_size, "chunk_size")
        if not (repeat == math.inf or (isinstance(repeat, int) and repeat >= 1)):
            raise ValueError(f"repeat must be an integer >= 1 or inf, got {repeat!r}")
        paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
        if not paths:
            raise UserInputError("nothing to replay: no file given")
        raw = _concatenate([load_recording(p) for p in paths], paths)
        self.paths = paths
        self.path = paths[0]
        self.name = name or self.path.stem
        self.source_id = source_id or f"eegmamba-replay:{self.name}"
        self.sfreq = float(raw.info["sfreq"])
        self.speed = float(speed)
        self.repeat = repeat
        self.chunk_size = chunk_size
        self.n_times = int(raw.n_times)
        self.file_starts = list(raw.file_starts)
        scales = [mne_scale_to_uv(ch) for ch in raw.info["chs"]]
        scale = np.array([1.0 if s is None else s for s in scales])
        # (n_times, n_channels), C-contiguous rows so a chunk is a cheap slice.
        self._data = np.ascontiguousarray((raw.get_data() * scale[:, None]).T)
        self.ch_names = list(raw.ch_names) + (["SAMPLE_INDEX"] if index_channel else [])
        self.ch_types = list(raw.get_channel_types()) + (["misc"] if index_channel else [])
        # a channel MNE does not read as a voltage is pushed as it is, with no unit declared
        units = ["microvolts" if s is not None else "" for s in scales]
        self.ch_units = units + (["samples"] if index_channel else [])
        self.index_channel = index_channel
        self.wait_for_consumer_s = float(wait_for_consumer_s)
        self.wait_for_markers = bool(wait_for_markers)
        self.marker_onsets, self.marker_labels, self.marker_durations = _annotation_samples(raw)
        self.has_markers = markers and len(self.marker_onsets) > 0
        self.n_samples_pushed = 0
        self.n_markers_pushed = 0
        self.n_chunks_pushed = 0
        self.late_chunks = 0  # chunks pushed more than one chunk period after they were due
        self.t0: float | None = None  # LSL timestamp of sample 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outlet: pylsl.StreamOutlet | None = None
        self._marker_outlet: pylsl.StreamOutlet | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def n_samples_total(self) -> float:
        """Samples this replay will push in all (``inf`` when looping forever)."""
        return self.n_times * self.repeat

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def marker_name(self) -> str:
        return f"{self.name}-markers"

    def start(self) -> "Replay":
        """Create the outlets and start pushing from a background thread."""
        if self._thread is not None:
            raise RuntimeError(f"replay {self.name!r} already started")
        self._outlet = pylsl.StreamOutlet(self._stream_info(), self.chunk_size)
        if self.has_markers:
            self._marker_outlet = pylsl.StreamOutlet(self._marker_info())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"replay-{self.name}", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the replay has pushed everything (or ``timeout``); True when finished."""
        if self._thread is None:
            raise RuntimeError(f"replay {self.name!r} not started")
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop pushing and close the outlets; re-raise a failure of the pushing thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        # Dropping the last reference destroys the liblsl outlet (the stream disappears).
        self._outlet = None
        self._marker_outlet = None
        if self.error is not None:
            err, self.error = self.error, None
            raise RuntimeError(f"replay {self.name!r} failed: {err}") from err

    def __enter__(self) -> "Replay":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.stop()
        else:  # do not mask the exception in flight
            try:
                self.stop()
            except RuntimeError:
                logger.exception("replay failed while handling another error")

    def sample_timestamp(self, k: int | np.ndarray) -> float | np.ndarray:
        """LSL timestamp of global sample index ``k`` (valid once started)."""
        if self.t0 is None:
            raise RuntimeError(f"replay {self.name!r} not started")
        return self.t0 + np.asarray(k) / (self.sfreq * self.speed)

    # ------------------------------------------------------------------ internals
    def _stream_info(self) -> pylsl.StreamInfo:
        n_ch = len(self.ch_names)
        info = pylsl.StreamInfo(self.name, "EEG", n_ch, self.sfreq, "double64", self.source_id)
        info.set_channel_labels(self.ch_names)
        info.set_channel_types(self.ch_types)
        info.set_channel_units(self.ch_units)
        info.desc().append_child("replay").append_child_value("file", self.path.name).append_child_value(
            "speed", repr(self.speed)
        )
        return info

    def _marker_info(self) -> pylsl.StreamInfo:
        info = pylsl.StreamInfo(
            self.marker_name, "Markers", 2, pylsl.IRREGULAR_RATE, "string", f"{self.source_id}-markers"
        )
        info.set_channel_labels(["description", "duration_s"])
        return info

    def _run(self) -> None:
        try:
            self._push_loop()
        except Exception as exc:  # never silent: kept, logged, re-raised by stop()
            self.error = exc
            logger.exception("replay %r stopped by an error", self.name)

    def _push_loop(self) -> None:
        self._wait_for_consumers()
        period = 1.0 / (self.sfreq * self.speed)
        total = self.n_samples_total
        chunk_s = self.chunk_size * period
        self.t0 = pylsl.local_clock()
        k = 0
        while k < total and not self._stop.is_set():
            k_end = int(min(k + self.chunk_size, total))
            due = self.t0 + (k_end - 1) * period
            delay = due - pylsl.local_clock()
            if delay > 0 and self._stop.wait(delay):
                break
            if pylsl.local_clock() - due > chunk_s:
                self.late_chunks += 1
            idx = np.arange(k, k_end)
            rows = self._data[idx % self.n_times]
            if self.index_channel:
                rows = np.column_stack([rows, idx.astype(np.float64)])
            stamps = self.t0 + idx * period
            self._outlet.push_chunk(rows, stamps.tolist())
            self.n_samples_pushed = k_end
            self.n_chunks_pushed += 1
            if self._marker_outlet is not None:
                self._push_markers(idx, stamps)
            k = k_end

    def _wait_for_consumers(self) -> None:
        deadline = pylsl.local_clock() + self.wait_for_consumer_s
        outlets = (self._outlet, self._marker_outlet if self.wait_for_markers else None)
        for outlet in outlets:
            while outlet is not None and not self._stop.is_set():
                left = deadline - pylsl.local_clock()
                if left <= 0 or outlet.wait_for_consumers(min(left, 0.1)):
                    break

    def _push_markers(self, idx: np.ndarray, stamps: np.ndarray) -> None:
        """Push the annotations whose onset sample is in this chunk, stamped with that sample's time."""
        pos = idx % self.n_times
        for j in np.nonzero(np.isin(pos, self.marker_onsets))[0]:
            for i in np.nonzero(self.marker_onsets == pos[j])[0]:
                # on the stream's clock, like the timestamps: a 4.1 s cue at speed 2 lasts 2.05 s
                sample = [self.marker_labels[i], repr(float(self.marker_durations[i]) / self.speed)]
                self._marker_outlet.push_sample(sample, float(stamps[j]))
                self.n_markers_pushed += 1


def _concatenate(raws: list, paths: list[Path]):
    """One recording from several (back to back); ``file_starts`` holds each file's first sample."""
    first = raws[0]
    for r, p in zip(raws[1:], paths[1:]):
        if r.ch_names != first.ch_names or r.info["sfreq"] != first.info["sfreq"]:
            raise UserInputError(f"cannot replay {p} after {paths[0]}: channels or rate differ "
                                 f"({len(r.ch_names)} ch @ {r.info['sfreq']:g} Hz vs "
                                 f"{len(first.ch_names)} ch @ {first.info['sfreq']:g} Hz)")
    starts = np.cumsum([0] + [r.n_times for r in raws[:-1]]).tolist()
    if len(raws) > 1:
        import mne

        for r in raws:  # keep every annotation; the concatenation shifts their onsets
            r.set_meas_date(None)
        first = mne.concatenate_raws([r.copy() for r in raws], verbose="error")
        keep = [i for i, d in enumerate(first.annotations.description)
                if not d.upper().startswith(("BAD BOUNDARY", "EDGE BOUNDARY"))]
        first.set_annotations(first.annotations[keep])
    first.file_starts = starts
    return first


def _annotation_samples(raw) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Annotation onsets as sample indices from the first sample, with labels and durations (s)."""
    ann = raw.annotations
    if len(ann) == 0:
        return np.zeros(0, dtype=np.int64), [], np.zeros(0)
    offset = raw.first_time if ann.orig_time is not None else 0.0
    onsets = np.round((ann.onset - offset) * raw.info["sfreq"]).astype(np.int64)
    keep = (onsets >= 0) & (onsets < raw.n_times)
    if not keep.all():
        logger.warning("%d annotation(s) lie outside the recording and are not replayed", (~keep).sum())
    return onsets[keep], [str(d) for d in ann.description[keep]], np.asarray(ann.duration[keep], float)

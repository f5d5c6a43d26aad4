"""Decision outputs per profile: an LSL marker stream (JSON), a probability stream and a JSON-lines log.

Marker stream ``eegmamba-<profile>``: type ``Markers``, irregular rate, one string channel; one JSON
object per decision (``profile, label, probs {class: p}, t_start, t_end, latency_ms, seq,
model_version``),
stamped with ``t_end`` (the source LSL time of the window's last sample) so that a recorder aligns
the decision with the EEG it describes.

Probability stream ``eegmamba-<profile>-probs``: type ``Probabilities``, irregular rate, float32,
one channel per class (channel labels = class names, in class order), same timestamp.

A session serving several EEG streams names each stream's outputs ``<profile>@<stream>``
(``eegmamba-motor_imagery@S001``, ``...@S001-probs``); the JSON then also carries ``stream`` and
``stream_source_id`` (the EEG stream's name and source id), and both outlets' descriptions hold a
``stream`` element (``name``, ``source_id``, ``hostname``) so a client can tell them apart.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pylsl

from eegmamba._checks import UserInputError
from realtime.stats import quality_notes_by_profile

_PROFILE_RE = re.compile(r"^[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?$")


@dataclass(frozen=True)
class Decision:
    """One published decision.

    probs : mapping class -> probability, in class order
    t_start, t_end : float, source LSL seconds of the window's first and last sample
    latency_ms : float, from the arrival of the window's last sample to the push
    seq : int, decision counter per profile, from 0
    model_version : int, 0 for the loaded checkpoint, +1 for every calibrated model swapped in
    stream, stream_source_id : str | None, the EEG stream's name and source id (set when a session
        serves several streams; left out of the JSON when None)
    """

    profile: str
    label: str
    probs: Mapping[str, float]
    t_start: float
    t_end: float
    latency_ms: float
    seq: int
    model_version: int = 0
    stream: str | None = None
    stream_source_id: str | None = None

    def to_json(self) -> str:
        d = asdict(self)
        d["probs"] = {k: float(v) for k, v in self.probs.items()}
        for k in ("stream", "stream_source_id"):
            if d[k] is None:
                del d[k]
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Decision":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class StreamIdentity:
    """The EEG stream a session's outputs decide on: LSL name, source id (may be empty), host."""

    name: str
    source_id: str = ""
    host: str = ""


def default_source_id(profile: str, stream: StreamIdentity | None) -> str:
    """Base LSL source id of a profile's outlets (``-markers`` / ``-probs`` are appended).

    Deciding on a known EEG stream (``stream``; several streams, workers, shards): derived from that
    stream's identity only, ``eegmamba-<profile>@<its source id, or name@host>``, so outlets re-made
    after a restart (a worker killed and replaced, the command started again) keep their source id,
    and a client's open pylsl inlet recovers onto them by itself (liblsl recovers an inlet only onto
    an outlet with the same source id). Otherwise ``eegmamba-<profile>@<hostname>:<pid>``: one
    process's own outlets, which several runs on one host must not share."""
    if stream is not None:
        ident = stream.source_id or f"{stream.name}@{stream.host}"
        return f"eegmamba-{profile.split('@')[0]}@{ident}"
    return f"eegmamba-{profile}@{socket.gethostname()}:{os.getpid()}"


class DecisionLog:
    """Write decisions as JSON lines (one object per line, flushed at once) to ``path``, and notes
    the user must read (:meth:`note`: lines with a ``note`` field, never a decision's)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise UserInputError(f"log directory does not exist: {self.path.parent}")
        try:
            self._fh = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise UserInputError(f"cannot write log file {self.path}: {exc.strerror}") from exc
        self._lock = threading.Lock()
        self.n_written = 0
        self._noted: set[str] = set()

    def write(self, decision: Decision) -> None:
        with self._lock:
            if self._fh is None:
                raise RuntimeError(f"decision log {self.path} is closed")
            self._fh.write(decision.to_json() + "\n")
            self._fh.flush()
            self.n_written += 1

    def note(self, key: str, message: str) -> bool:
        """Write ``{"note": key, "message": message}`` once per ``key`` (e.g. ``quality
        motor_imagery``); False when ``key`` was written before or the log is closed."""
        with self._lock:
            if self._fh is None or key in self._noted:
                return False
            self._noted.add(key)
            self._fh.write(json.dumps({"note": key, "message": message}) + "\n")
            self._fh.flush()
            return True

    def note_quality(self, snapshot) -> None:
        """Note each profile's quality line (:func:`realtime.stats.quality_notes`, what the
        dashboard and the summary show) once: call it with every snapshot taken."""
        for name, text in quality_notes_by_profile(snapshot).items():
            self.note(f"quality {name}", text)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class DecisionOutlets:
    """The marker and probability outlets of one profile (and optionally a shared log).

    Parameters
    ----------
    profile : str
        Output name: a profile name (letters, digits, ``_.-``), or ``<profile>@<stream>`` with
        several streams; streams are ``eegmamba-<profile>[-probs]``.
    classes : sequence of str
        Class names in model output order.
    source_id : str | None
        Base LSL source id; default :func:`default_source_id`.
    log : DecisionLog | None
        Also write every decision there (not closed by ``close()``: it may be shared).
    stream : StreamIdentity | None
        The EEG stream decided on, written into both outlets' descriptions (``stream`` element).
    """

    def __init__(self, profile: str, classes: Sequence[str], *, source_id: str | None = None,
                 log: DecisionLog | None = None, stream: StreamIdentity | None = None) -> None:
        if not isinstance(profile, str) or not _PROFILE_RE.match(profile):
            raise ValueError(f"profile name must be letters, digits, '_', '.' or '-' (then "
                             f"optionally @ and a stream key of the same), got {profile!r}")
        classes = tuple(classes)
        if not classes or not all(isinstance(c, str) and c for c in classes):
            raise ValueError(f"classes must be non-empty strings, got {classes!r}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"class names must be unique, got {classes!r}")
        self.profile, self.classes, self.log = profile, classes, log
        self.marker_name = f"eegmamba-{profile}"
        self.probs_name = f"eegmamba-{profile}-probs"
        base = self.source_id = source_id or default_source_id(profile, stream)
        minfo = pylsl.StreamInfo(
            self.marker_name, "Markers", 1, pylsl.IRREGULAR_RATE, "string", f"{base}-markers"
        )
        minfo.set_channel_labels(["decision"])
        pinfo = pylsl.StreamInfo(self.probs_name, "Probabilities", len(classes), pylsl.IRREGULAR_RATE,
                                 "float32", f"{base}-probs")
        pinfo.set_channel_labels(list(classes))
        pinfo.set_channel_units(["probability"] * len(classes))
        pinfo.desc().append_child_value("profile", profile)
        if stream is not None:
            for info in (minfo, pinfo):
                el = info.desc().append_child("stream")
                for k, v in (("name", stream.name), ("source_id", stream.source_id),
                             ("hostname", stream.host)):
                    el.append_child_value(k, v)
        self._markers: pylsl.StreamOutlet | None = pylsl.StreamOutlet(minfo)
        self._probs: pylsl.StreamOutlet | None = pylsl.StreamOutlet(pinfo)
        self.n_pushed = 0

    def push(self, decision: Decision) -> None:
        """Publish ``decision`` on both outlets (and the log), stamped with ``decision.t_end``."""
        if self._markers is None:
            raise RuntimeError(f"outlets of profile {self.profile!r} are closed")
        if decision.profile != self.profile:
            raise ValueError(f"decision of profile {decision.profile!r} pushed to {self.profile!r}")
        if tuple(decision.probs) != self.classes:
            raise ValueError(f"decision probs keys {tuple(decision.probs)} != classes {self.classes}")
        if decision.label not in self.classes:
            raise ValueError(f"decision label {decision.label!r} is not one of {self.classes}")
        if not math.isfinite(decision.t_end):
            raise ValueError(f"decision t_end must be finite, got {decision.t_end!r}")
        self._markers.push_sample([decision.to_json()], decision.t_end)
        self._probs.push_sample([float(decision.probs[c]) for c in self.classes], decision.t_end)
        if self.log is not None:
            self.log.write(decision)
        self.n_pushed += 1

    def close(self) -> None:
        """Destroy both outlets (the streams disappear from the network)."""
        self._markers = None
        self._probs = None

    def __enter__(self) -> "DecisionOutlets":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Which cue (marker) stream scores which EEG stream when a session serves several headsets.

``eegmamba-live --markers`` (repeatable) says it three ways:

- ``--markers auto``: each EEG stream's own cue stream, by the convention of the tools that publish
  a recording's annotations beside it: ``<eeg name>-markers`` (``eegmamba-replay``, a stimulus
  program following it) or ``<eeg name>-annotations`` (mne-lsl's ``PlayerLSL``), with an irregular
  rate. Where several such streams are visible, the one whose source id starts with the EEG
  stream's source id (``eegmamba-replay`` publishes ``<source_id>-markers``) wins, then one on the
  EEG stream's host, then the newest.
- ``--markers EEG=MARKERS`` (repeatable): the EEG stream named ``EEG`` is scored against the cue
  stream ``MARKERS`` (one on the EEG stream's host preferred); may be combined with ``auto``, which
  then pairs the EEG streams no pair names. An EEG stream no pair names (and no ``auto``) is served
  unscored.
- ``--markers NAME`` (one, without ``=``): ONE cue stream for every EEG stream — one stimulus
  program cueing a whole BCI class at once; every stream's decisions are scored against the same
  cues (on this machine's LSL clock; each EEG stream's windows by its own timestamps).

A pairing is a plain value in ``SessionOptions`` (``markers``, ``marker_pairs``), so it travels to
every worker process and shard: each one subscribes only to the cue streams of the EEG streams it
owns (:class:`CueRouter`, used by ``realtime.finder``), and the cue stream goes to the worker that
owns the EEG stream. A cue stream that is not visible yet is looked for at every scan of the stream
finder; its EEG stream is served meanwhile, its decisions unscored until the cues arrive.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Sequence

import pylsl

from eegmamba._checks import UserInputError
from eegmamba.profiles import Profile
from realtime.stats import MarkerStats
from realtime.stream.resolve import describe_info, stream_key

logger = logging.getLogger(__name__)

AUTO = "auto"
SUFFIXES = ("-markers", "-annotations")


def parse_markers(items: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """``--markers`` values → ``(markers, marker_pairs)`` of ``SessionOptions``: ``markers`` is
    ``"auto"``, one cue stream's name or None; ``marker_pairs`` maps EEG names to cue names."""
    single, pairs = [], {}
    for item in items or ():
        eeg, sep, cue = item.partition("=")
        if not sep:
            single.append(item.strip())
            continue
        if not eeg.strip() or not cue.strip():
            raise UserInputError(f"--markers expects NAME, auto or EEG=MARKERS, got {item!r}")
        if eeg.strip() in pairs:
            raise UserInputError(f"--markers pairs EEG stream {eeg.strip()!r} twice")
        pairs[eeg.strip()] = cue.strip()
    if len(set(single)) > 1 or (single and single[0] != AUTO and pairs):
        raise UserInputError("--markers NAME gives one cue stream for every EEG stream: give it "
                             "once, or pair streams with --markers EEG=MARKERS (and/or auto)")
    return (single[0] if single else None), pairs


@dataclass(frozen=True)
class CuePairing:
    """``--markers`` as parsed (module docstring): ``auto``, ``pairs`` (EEG name, cue name), or
    ``shared`` (one cue stream for all)."""

    auto: bool = False
    pairs: tuple[tuple[str, str], ...] = ()
    shared: str | None = None

    @classmethod
    def of(cls, markers: str | None, pairs: dict[str, str] | None) -> "CuePairing | None":
        """From ``SessionOptions.markers`` / ``marker_pairs``; None when no cues are wanted."""
        if markers is None and not pairs:
            return None
        auto = markers == AUTO
        return cls(auto, tuple(sorted((pairs or {}).items())), None if auto else markers)

    def wanted(self, eeg: "pylsl.StreamInfo | str") -> tuple[str, ...]:
        """The cue stream names that may score ``eeg`` (its info or name; empty: it is served
        unscored), in order of preference."""
        name = eeg if isinstance(eeg, str) else eeg.name()
        if self.shared is not None:
            return (self.shared,)
        named = dict(self.pairs).get(name)
        if named is not None:
            return (named,)
        return tuple(name + s for s in SUFFIXES) if self.auto else ()

    def resolve(self, eeg: pylsl.StreamInfo, timeout: float) -> str | None:
        """One EEG stream (a one-stream session): the name of its cue stream, waiting up to
        ``timeout`` s for it to be visible; None when the pairing names none for it."""
        import time

        if not self.wanted(eeg):
            return None
        resolver = pylsl.ContinuousResolver(forget_after=2.0)
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(0.1)
            found = self.find(eeg, resolver.results())
            if found is not None:
                return found.name()
            if time.monotonic() > deadline:
                raise UserInputError(
                    f"--markers: no cue stream {' or '.join(map(repr, self.wanted(eeg)))} "
                    f"(irregular rate) for EEG stream {eeg.name()!r} within {timeout:g} s; give the stimulus "
                    "program's marker stream with --markers NAME (see eegmamba-live --list)")

    def find(self, eeg: pylsl.StreamInfo, visible: Sequence[pylsl.StreamInfo]
             ) -> pylsl.StreamInfo | None:
        """The visible cue stream for ``eeg`` (module docstring's ranking), or None."""
        names = self.wanted(eeg)
        found = [i for i in visible
                 if i.name() in names and i.nominal_srate() == pylsl.IRREGULAR_RATE]
        if not found:
            return None
        sid = eeg.source_id()

        def rank(i: pylsl.StreamInfo):
            return (bool(sid) and i.source_id().startswith(sid), i.hostname() == eeg.hostname(),
                    i.created_at())

        return max(found, key=rank)


class PendingTruth:
    """The ground truth of one output, bound to its cue timeline once the cue stream is subscribed
    (None for every window until then). Also the calibration's timeline (``cues``, ``cue_at``,
    ``n_markers``): empty until bound."""

    def __init__(self) -> None:
        self.timeline = None  # a view at the EEG stream's tolerance (CueTimeline.view)
        self.root = None  # the timeline the cue stream feeds (its counters)

    def __call__(self, t_start: float, t_end: float) -> str | None:
        tl = self.timeline
        return None if tl is None else tl.truth(t_start, t_end)

    def cues(self) -> list:
        tl = self.timeline
        return [] if tl is None else tl.cues()

    def cue_at(self, t_start: float, t_end: float):
        tl = self.timeline
        return (None, "unlabelled") if tl is None else tl.cue_at(t_start, t_end)

    @property
    def n_markers(self) -> int:
        return 0 if self.root is None else self.root.n_markers


class _Subscription:
    """One subscribed cue stream: its inlet and one timeline per profile of the session."""

    def __init__(self, inlet, timelines) -> None:
        self.inlet, self.timelines = inlet, timelines


class CueRouter:
    """The cue streams of one many-stream session (module docstring).

    :meth:`truths` is called by the stream finder for each EEG stream it serves, before the EEG
    inlet opens (so its cue inlet is there first); :meth:`scan` binds the outputs still waiting for
    a cue stream that became visible. ``marker_map``, ``marker_run``, ``cue_s``: as for one stream
    (``realtime.stream.markers.subscribe``).
    """

    def __init__(self, acquisition, pairing: CuePairing, profiles: Sequence[Profile],
                 marker_map: dict[str, str] | None = None, marker_run: int | None = None,
                 cue_s: float | None = None, timeout: float = 2.0) -> None:
        self.acquisition, self.pairing, self.profiles = acquisition, pairing, list(profiles)
        self.marker_map, self.marker_run, self.cue_s = dict(marker_map or {}), marker_run, cue_s
        self.timeout = timeout
        from realtime.stream.markers import marker_maps

        marker_maps(self.profiles, self.marker_map, marker_run)  # a wrong --marker-map: now
        self._refused: set[str] = set()  # cue stream uids refused (said once)
        self.subs: dict[str, _Subscription] = {}  # cue stream_key -> subscription
        self.paired: dict[str, str] = {}  # EEG stream key (acquisition) -> cue stream_key
        self._pending: dict[str, tuple] = {}  # EEG key -> (eeg info, sfreq, [(profile i, truth)])
        self._lock = threading.Lock()

    def truths(self, eeg: pylsl.StreamInfo, key: str, sfreq: float, profile_names: Sequence[str],
               visible: Sequence[pylsl.StreamInfo]) -> list[PendingTruth] | None:
        """Per pipeline (its profile's name) of the EEG stream ``key``: its ground truth, bound now
        when the cue stream is visible, else when :meth:`scan` finds it. None: no cues wanted."""
        if not self.pairing.wanted(eeg):
            return None
        index = {p.name: i for i, p in enumerate(self.profiles)}
        bound = [(index[n], PendingTruth()) for n in profile_names]
        with self._lock:
            self._pending[key] = (eeg, sfreq, bound)
            self._bind(key, visible)
        return [t for _, t in bound]

    def forget(self, key: str) -> None:
        """The EEG stream ``key`` was not served after all (its inlet could not be opened)."""
        with self._lock:
            self._pending.pop(key, None)
            self.paired.pop(key, None)

    def scan(self, visible: Sequence[pylsl.StreamInfo]) -> None:
        """Bind the EEG streams still waiting for their cue stream to it where it is visible."""
        with self._lock:
            for key in list(self._pending):
                self._bind(key, visible)

    def _bind(self, key: str, visible) -> None:
        eeg, sfreq, bound = self._pending[key]
        cue = self.pairing.find(eeg, visible)
        if cue is None:
            return
        ck = stream_key(cue)
        sub = self.subs.get(ck)
        if sub is None:
            try:
                sub = self._subscribe(cue)
            except UserInputError as exc:  # e.g. not a marker stream: this pairing waits
                if cue.uid() not in self._refused:
                    self._refused.add(cue.uid())
                    logger.warning("cues for %s: %s", key, exc)
                return
            except Exception as exc:  # noqa: BLE001 - gone again: looked for at the next scan
                logger.warning("cues for %s: %s not opened (%s)", key, describe_info(cue), exc)
                return
            self.subs[ck] = sub
        tol = 0.5 / sfreq if sfreq > 0 else 0.0
        for i, truth in bound:
            truth.root = sub.timelines[i]
            truth.timeline = sub.timelines[i].view(tol)
        self.paired[key] = ck
        del self._pending[key]
        logger.info("cues for %s from %s", key, describe_info(cue))

    def _subscribe(self, cue: pylsl.StreamInfo) -> _Subscription:
        from realtime.stream.markers import subscribe

        taken = {i.key for i in self.acquisition.inlets}
        key = f"{cue.name()} (markers)"
        if key in taken:  # the same name from another host or source
            key = f"{cue.name()}@{stream_key(cue)} (markers)"
        inlet, timelines = subscribe(self.acquisition, cue.name(), self.profiles, self.marker_map,
                                     self.marker_run, self.cue_s, self.timeout, info=cue, key=key)
        return _Subscription(inlet, timelines)

    def stats(self) -> tuple[MarkerStats, ...]:
        """One line per cue stream (its first profile's timeline) and per cue stream awaited."""
        out = []
        for sub in list(self.subs.values()):
            tl, inlet = sub.timelines[0], sub.inlet
            last = None if tl.last is None else f"{tl.last.text} → {tl.last.cls or 'unknown'}"
            out.append(MarkerStats(inlet.info.name(), tl.n_markers, last, dict(tl.counts),
                                   inlet.time_correction, inlet.local))
        with self._lock:
            waiting = sorted({" or ".join(self.pairing.wanted(e)) for e, _, _ in
                              self._pending.values()})
        out.extend(MarkerStats(w, 0, "(not visible yet)") for w in waiting)
        return tuple(out)

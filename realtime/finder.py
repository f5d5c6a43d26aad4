"""Serving several headsets from one session: find every stream a selection picks, check that it
fits the profiles, and join it to the running loop — those visible at the start and those that
appear later (a background resolve every ``rescan_s``).

Flow per new stream: ``StreamSelection.matches`` (type / name / source id, and a worker's or
shard's ``accept``) → its channel labels (a short-lived inlet) → one ``ProfilePipeline`` per profile
that fits (a profile that does not is noted with its reason; a stream no profile fits is skipped,
listed with the reasons, never fatal) → ``LiveLoop.attach`` (its outputs, named
``eegmamba-<profile>@<stream>``) → ``Acquisition.add`` (the inlet; after the attach, so that the
loop knows the stream before its first chunk arrives). A served stream that goes away and comes
back is the acquisition's to re-open (same name and source id); it is never served twice.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Callable, Sequence

import pylsl

from eegmamba._checks import UserInputError
from eegmamba.profiles import Profile
from realtime.loop.live import LiveLoop
from realtime.loop.outlets import StreamIdentity
from realtime.loop.pipeline import ProfilePipeline
from realtime.screen.signal_quality import SignalMonitor
from realtime.stats import SkippedStream
from realtime.stream.acquisition import Acquisition
from realtime.stream.monitor import strings_message
from realtime.stream.resolve import StreamQuery, StreamSelection, describe_info, stream_key

if TYPE_CHECKING:
    from realtime.stream.pairing import CueRouter

logger = logging.getLogger(__name__)


def fit(profiles: Sequence[Profile], model_keys: Sequence[str], key: str, ch_names: list[str],
        srate: float, channel_map: dict[str, str] | None = None,
        alignment_states: Sequence[dict | None] | None = None, strings: bool = False,
        ) -> tuple[list[ProfilePipeline], list[str]]:
    """The pipelines of the profiles that fit a stream (``key``, its channel labels and nominal
    rate; ``strings``: its samples are text) and, for those that do not, the reasons (one line
    each). ``alignment_states``: per profile, its checkpoint's stored alignment reference."""
    if strings:
        return [], [strings_message(key)]
    pipelines, reasons = [], []
    states = alignment_states or [None] * len(profiles)
    for profile, model_key, state in zip(profiles, model_keys, states):
        try:
            pipelines.append(ProfilePipeline(profile, key, ch_names, srate, model_key, channel_map,
                                             state))
        except (UserInputError, ValueError) as exc:
            reasons.append(_short(str(exc)))
    return pipelines, reasons


def _short(reason: str, limit: int = 120) -> str:
    """A misfit reason on one short line: the problem, without the list of what is available."""
    reason = reason.split("; available")[0].split("; or map names")[0]
    return reason if len(reason) <= limit else reason[:limit - 1] + "…"


def would_take(entries, selection: StreamSelection, profiles: Sequence[Profile],
               channel_map: dict[str, str] | None = None) -> dict[int, str]:
    """For ``eegmamba-live --list``: what ``--all`` does with each listed stream
    (``realtime.screen.listing.StreamEntry`` with its ``info``), by index: ``takes`` (and the
    profiles) or ``skips: <reason>``; streams the selection does not pick are left out."""
    out = {}
    for i, e in enumerate(entries):
        if e.info is None or not selection.matches(e.info):
            continue
        pipelines, reasons = fit(profiles, [""] * len(profiles), e.name, e.ch_names, e.srate,
                                 channel_map, strings=e.fmt == "string")
        out[i] = (f"takes ({', '.join(p.profile.name for p in pipelines)})" if pipelines
                  else "skips: " + "; ".join(reasons))
    return out


class StreamFinder:
    """Join every stream ``selection`` picks and the profiles fit to ``loop`` (see module doc).

    Parameters
    ----------
    acquisition, loop : the session's (the loop made with ``per_stream_names=True``)
    selection : StreamSelection
    profiles, model_keys : the profiles and the engine key of each one's model, in order
    channel_map, units, accept_measured_rate : as ``eegmamba-live``'s options, for every stream
    alignment_states : per profile, the alignment reference its checkpoint stores (or None)
    rescan_s : seconds between two looks for new streams once :meth:`start` ran
    info_timeout_s : seconds a stream may take to send its description (channel labels)
    cues : the session's cue streams (``--markers``; ``realtime.stream.pairing``): each served
        stream's cue stream is subscribed before its EEG inlet opens, or when it appears later
    own_models : each stream's pipelines decide with a model of their own (an engine alias
        ``<model key>@<stream key>``: a live calibration swaps one stream's model, not every one's)
    on_attach : called as ``on_attach(key, info, pipelines, names, truths)`` once a stream's
        outputs are attached, before its inlet opens (the session's calibrations start there)
    """

    def __init__(self, acquisition: Acquisition, loop: LiveLoop, selection: StreamSelection,
                 profiles: Sequence[Profile], model_keys: Sequence[str], *,
                 channel_map: dict[str, str] | None = None, units: str | None = None,
                 accept_measured_rate: bool = False, rescan_s: float = 1.0,
                 info_timeout_s: float = 2.0,
                 alignment_states: Sequence[dict | None] | None = None,
                 cues: "CueRouter | None" = None, own_models: bool = False,
                 on_attach: Callable | None = None) -> None:
        self.acquisition, self.loop, self.selection = acquisition, loop, selection
        self.profiles, self.model_keys = list(profiles), list(model_keys)
        self.alignment_states = list(alignment_states or [None] * len(self.profiles))
        self.channel_map = dict(channel_map or {})
        self.units, self.accept_measured_rate = units, accept_measured_rate
        self.rescan_s, self.info_timeout_s = rescan_s, info_timeout_s
        self.cues, self.own_models, self.on_attach = cues, own_models, on_attach
        self.resolver = pylsl.ContinuousResolver(forget_after=2.0)
        self.served: dict[str, str] = {}  # stream_key -> acquisition key
        self.skipped: dict[str, SkippedStream] = {}  # outlet uid -> why not served
        self.monitors: list[SignalMonitor] = []
        self.n_errors, self.last_error = 0, None
        self._unanswered: set[str] = set()  # outlet uids that did not send their description
        self._lock = threading.Lock()  # one scan at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ finding
    def scan(self) -> list[str]:
        """One look at the visible streams: serve the new ones that are selected and fit, list
        those that do not fit. Returns the acquisition keys of the streams served by this look."""
        new = []
        with self._lock:
            visible = self.resolver.results()
            if self.cues is not None:  # cue streams awaited by streams already served
                self.cues.scan(visible)
            for info in sorted(visible, key=lambda i: i.created_at()):
                if (stream_key(info) in self.served or info.uid() in self.skipped
                        or not self.selection.matches(info)):
                    continue
                key = self._take(info, visible)
                if key is not None:
                    new.append(key)
        return new

    def wait_for(self, queries: Sequence[StreamQuery], timeout: float) -> None:
        """Scan until every query matched a stream (served or skipped) or ``timeout`` seconds
        passed; a query still unmatched then is a user error naming what is visible."""
        deadline = time.monotonic() + timeout
        while True:
            self.scan()
            missing = [q for q in queries if not self._matched(q)]
            if not missing:
                return
            if time.monotonic() >= deadline:
                visible = "; ".join(sorted(describe_info(i) for i in self.resolver.results())) or "none"
                raise UserInputError(
                    f"no LSL stream with {' / '.join(str(q) for q in missing)} found within "
                    f"{timeout:g} s; visible streams: {visible}")
            time.sleep(0.05)

    def settle(self, seconds: float) -> None:
        """Let the resolver look for ``seconds`` (it needs a moment to see every outlet of a busy
        lab), then scan. Nothing is taken before: a stream taken at the first sight, before its
        same-named twin is seen, would keep an outlet name another worker also publishes."""
        time.sleep(max(0.0, seconds))
        self.scan()

    def _matched(self, q: StreamQuery) -> bool:
        infos = [i for i in self.resolver.results() if q.matches(i)]
        return any(stream_key(i) in self.served or i.uid() in self.skipped for i in infos)

    def _take(self, info: pylsl.StreamInfo, visible: Sequence[pylsl.StreamInfo] = ()
              ) -> str | None:
        """Serve ``info`` if a profile fits it (returns its acquisition key), else list it."""
        try:
            full = pylsl.StreamInlet(info).info(timeout=self.info_timeout_s)
        except Exception as exc:  # noqa: BLE001 - not answering now: tried again next scan
            if info.uid() not in self._unanswered:  # said once per outlet
                self._unanswered.add(info.uid())
                self._error(f"{describe_info(info)}: no description ({type(exc).__name__})")
            return None
        ch_names = full.get_channel_labels() or [f"ch{i}" for i in range(info.channel_count())]
        key = self._key(info, visible)
        pipelines, reasons = fit(self.profiles, self.model_keys, key, ch_names,
                                 info.nominal_srate(), self.channel_map, self.alignment_states,
                                 strings=info.channel_format() == pylsl.cf_string)
        if not pipelines:
            self._skip(info, "; ".join(reasons))
            return None
        for r in reasons:  # some profiles fit, others not: served by those that fit
            logger.info("%s", r)
        identity = StreamIdentity(info.name(), info.source_id(), info.hostname())
        monitors = [SignalMonitor(self.loop.output_name(p.profile.name, key), p.profile, p.picks,
                                  info.nominal_srate()) for p in pipelines]
        truths = None
        if self.cues is not None:  # its cue inlet first: no cue of its first windows is missed
            truths = self.cues.truths(info, key, info.nominal_srate(),
                                      [p.profile.name for p in pipelines], visible)
        if self.own_models:
            for p in pipelines:
                p.model_key = self.loop.engine.alias(p.model_key, f"{p.model_key}@{key}").key
        names = self.loop.attach(pipelines, stream=identity, taps=[m.tap for m in monitors],
                                 truths=truths)
        if self.on_attach is not None:
            self.on_attach(key, info, pipelines, names, truths)
        query = StreamQuery(name=info.name() or None, source_id=info.source_id() or None)
        try:
            self.acquisition.add(query, key=key, info=info, timeout=self.info_timeout_s,
                                 units=self.units, accept_measured_rate=self.accept_measured_rate)
        except Exception as exc:  # noqa: BLE001 - e.g. gone again: tried again as a new outlet
            self.loop.detach(key)
            if self.cues is not None:
                self.cues.forget(key)
            self._error(f"{describe_info(info)}: not opened ({type(exc).__name__}: {exc})")
            self._skip(info, f"could not be opened: {type(exc).__name__}: {exc}")
            return None
        self.served[stream_key(info)] = key
        self.monitors.extend(monitors)
        logger.info("serving %s as %r", describe_info(info), key)
        return key

    def _key(self, info: pylsl.StreamInfo, visible: Sequence[pylsl.StreamInfo] = ()) -> str:
        """The acquisition key (and outlet suffix): the stream's name, made unique with its source
        id (or host) when another served stream has that name, or another visible EEG stream does
        (served by another worker or shard, or not yet: each process decides alike from what it
        sees, so two workers never publish the same outlet name)."""
        taken = {i.key for i in self.acquisition.inlets} | set(self.served.values())
        key = info.name() or "stream"
        twin = any(v.name() == info.name() and stream_key(v) != stream_key(info)
                   and v.type().lower() == info.type().lower() for v in visible)
        if key in taken or twin:
            key = f"{key}.{re.sub(r'[^A-Za-z0-9_.-]', '_', info.source_id() or info.hostname())}"
        base, n = key, 2
        while key in taken:
            key, n = f"{base}.{n}", n + 1
        return key

    def _skip(self, info: pylsl.StreamInfo, reason: str) -> None:
        self.skipped[info.uid()] = SkippedStream(info.name(), info.source_id(), info.hostname(),
                                                 reason)
        logger.info("not serving %s: %s", describe_info(info), reason)

    def _error(self, message: str) -> None:
        self.n_errors += 1
        self.last_error = message
        logger.warning("%s", message)

    # ------------------------------------------------------------------ background
    def start(self) -> "StreamFinder":
        """Look for new streams every ``rescan_s`` seconds from a background thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stream-finder", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.rescan_s):
            try:
                self.scan()
            except Exception as exc:  # noqa: BLE001 - counted and shown; the next scan tries again
                self._error(f"stream scan failed: {type(exc).__name__}: {exc}")
                logger.exception("stream scan failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def skipped_streams(self) -> tuple[SkippedStream, ...]:
        return tuple(self.skipped.values())

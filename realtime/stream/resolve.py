"""Finding LSL streams: the query users give (name / type / source id), a resolver with a timeout,
the selection a many-stream session serves and the identity a stream is shared out by.

``pylsl.resolve_byprop(..., timeout=0.5)`` can block ~5.5 s when the stream appears during the call;
a ``pylsl.ContinuousResolver`` sees it in ~40 ms, so resolution polls one of those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pylsl

from eegmamba._checks import UserInputError, check_positive


@dataclass(frozen=True)
class StreamQuery:
    """Which stream to acquire: every given field must match (LSL ``name``, ``type``, ``source_id``)."""

    name: str | None = None
    stype: str | None = None
    source_id: str | None = None

    def __post_init__(self) -> None:
        if self.name is None and self.stype is None and self.source_id is None:
            raise UserInputError("give a stream name, type or source id to look for")
        for field_name in ("name", "stype", "source_id"):
            value = getattr(self, field_name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UserInputError(f"stream {field_name} must be a non-empty string, got {value!r}")

    def matches(self, info: pylsl.StreamInfo) -> bool:
        return (
            (self.name is None or info.name() == self.name)
            and (self.stype is None or info.type() == self.stype)
            and (self.source_id is None or info.source_id() == self.source_id)
        )

    def __str__(self) -> str:
        parts = (("name", self.name), ("type", self.stype), ("source_id", self.source_id))
        return " and ".join(f"{k}={v!r}" for k, v in parts if v is not None)


def describe_info(info: pylsl.StreamInfo) -> str:
    """One-line description of a stream: ``'name' (EEG, 64 ch @ 160 Hz, source_id 'x')``."""
    rate = f"{info.nominal_srate():g} Hz" if info.nominal_srate() > 0 else "irregular"
    kind = info.type() or "no type"
    n_ch, sid = info.channel_count(), info.source_id()
    return f"'{info.name()}' ({kind}, {n_ch} ch @ {rate}, source_id '{sid}')"


def resolve(
    query: StreamQuery, timeout: float = 5.0, *, resolver: pylsl.ContinuousResolver | None = None
) -> pylsl.StreamInfo:
    """Wait up to ``timeout`` seconds for one stream matching ``query``.

    Several outlets of the same source (a restarted one still listed) -> the newest. Matches from
    different sources -> ``UserInputError`` listing them. None -> ``UserInputError`` listing the
    visible streams.
    """
    check_positive(timeout, "timeout", strict=False)
    resolver = resolver or pylsl.ContinuousResolver(forget_after=2.0)
    deadline = time.monotonic() + timeout
    while True:
        visible = resolver.results()
        found = [i for i in visible if query.matches(i)]
        if found:
            sources = {(i.source_id(), i.hostname()) for i in found}
            if len(sources) > 1:
                listing = "; ".join(describe_info(i) for i in found)
                raise UserInputError(
                    f"several LSL streams match {query}: {listing}; give --source-id to pick one"
                )
            return max(found, key=lambda i: i.created_at())
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    listing = "; ".join(sorted(describe_info(i) for i in visible)) or "none"
    raise UserInputError(
        f"no LSL stream with {query} found within {timeout:g} s; visible streams: {listing}"
    )


def stream_key(info: pylsl.StreamInfo) -> str:
    """A stream's identity across outlets and restarts, for sharing streams out (a stable hash of
    it picks the worker or shard): its ``source_id``, or ``name@hostname`` when it has none."""
    sid = info.source_id()
    return sid if sid else f"{info.name()}@{info.hostname()}"


@dataclass(frozen=True)
class StreamSelection:
    """Which of the visible streams a multi-stream session serves.

    ``queries``: a stream matching any of them (empty: every stream of type ``EEG``); ``accept``:
    a further predicate on the stream's info (the worker / shard split keeps only its own streams).
    Whether a selected stream *fits* the profiles is checked after, on its channel labels.
    """

    queries: tuple[StreamQuery, ...] = ()
    accept: Callable[[pylsl.StreamInfo], bool] | None = None

    def matches(self, info: pylsl.StreamInfo) -> bool:
        queries = self.queries or (StreamQuery(stype="EEG"),)
        return (any(q.matches(info) for q in queries)
                and (self.accept is None or bool(self.accept(info))))

    def __str__(self) -> str:
        return " or ".join(f"({q})" for q in self.queries) if self.queries else "type='EEG'"

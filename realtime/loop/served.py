"""What a live loop serves: one :class:`Output` per (stream, profile) pipeline, indexed by stream
and by model, and the streams that join (or leave) while it runs.

:meth:`ServedStreams.attach` / :meth:`detach` may be called from any thread (a session's stream
finder); the loop's thread takes the changes in with :meth:`join` at the start of each step, so its
indexes only ever change on that thread. ``outputs`` is replaced, never changed in place: a reader
on another thread (the dashboard) always iterates a consistent list.
"""

from __future__ import annotations

import queue
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from realtime.loop.outlets import DecisionLog, DecisionOutlets, StreamIdentity
from realtime.loop.pipeline import ProfilePipeline
from realtime.loop.smoothing import Smoother
from realtime.loop.truth import GroundTruth, TruthScore
from realtime.stats import LatencyTracker

Tap = Callable[[list, "str | None"], None]


@dataclass
class Output:
    """What one pipeline publishes, with its running state."""

    pipeline: ProfilePipeline
    name: str
    classes: tuple[str, ...]
    outlets: DecisionOutlets
    smoother: Smoother
    score: TruthScore = field(default_factory=TruthScore)
    stream: StreamIdentity | None = None  # set with per-stream names
    seq: int = 0
    label: str | None = None
    probs: tuple[float, ...] = ()
    history: deque = field(default_factory=lambda: deque(maxlen=40))
    latency: LatencyTracker = field(default_factory=LatencyTracker)
    processing: LatencyTracker = field(default_factory=LatencyTracker)

    @property
    def ground_truth(self) -> GroundTruth | None:
        return self.score.truth


class ServedStreams:
    """The outputs of a loop and their indexes (see module docstring).

    ``per_stream_names``: outputs are ``<profile>@<stream key>`` rather than ``<profile>``;
    ``classes_of``: model key → class names; ``log``: every output's outlets also write there.
    """

    def __init__(self, per_stream_names: bool, classes_of: Callable[[str], tuple[str, ...]],
                 log: DecisionLog | None = None) -> None:
        self.per_stream_names, self._classes_of, self.log = per_stream_names, classes_of, log
        self.outputs: list[Output] = []
        self.by_stream: dict[str, list[Output]] = {}
        self.lost: dict[str, bool] = {}  # stream key -> lost at the last step
        self.output_of: dict[int, Output] = {}  # id(pipeline) -> its output
        self.pipelines_by_model: dict[str, list[ProfilePipeline]] = {}
        # stream key -> callables tap(chunks, hold) given every chunk list of that stream and its
        # hold reason, on the loop's thread, before inference (the calibration collects labelled
        # windows and swaps models there; the signal panel keeps the last second)
        self.taps: dict[str, list[Tap]] = {}
        self._joining: queue.SimpleQueue = queue.SimpleQueue()

    def name(self, profile: str, stream_key: str) -> str:
        """Outlet base name: ``<profile>``, or ``<profile>@<stream key>`` with per-stream names."""
        if not self.per_stream_names:
            return profile
        return f"{profile}@{re.sub(r'[^A-Za-z0-9_.-]', '_', stream_key)}"

    def make(self, p: ProfilePipeline, truth: GroundTruth | None = None,
             stream: StreamIdentity | None = None) -> Output:
        """A new output for ``p`` with its outlets (they appear on the network now)."""
        name = self.name(p.profile.name, p.stream_key)
        classes = self._classes_of(p.model_key)
        outlets = DecisionOutlets(name, classes, log=self.log, stream=stream)
        return Output(p, name, classes, outlets, Smoother(p.profile.smoothing), TruthScore(truth),
                      stream=stream)

    def register(self, outputs: list[Output]) -> None:
        """Serve ``outputs`` (the loop's thread)."""
        for o in outputs:
            key = o.pipeline.stream_key
            self.by_stream.setdefault(key, []).append(o)
            self.lost.setdefault(key, False)
            self.output_of[id(o.pipeline)] = o
            self.pipelines_by_model.setdefault(o.pipeline.model_key, []).append(o.pipeline)
        self.outputs = self.outputs + list(outputs)

    def attach(self, pipelines: list[ProfilePipeline], stream: StreamIdentity | None = None,
               taps: list[Tap] = ()) -> list[str]:
        """Outputs for one more stream's pipelines, made here, served from the next :meth:`join`;
        returns their names."""
        keys = {p.stream_key for p in pipelines}
        if len(keys) != 1:
            raise ValueError(f"attach takes the pipelines of one stream, got streams {sorted(keys)}")
        outputs = [self.make(p, None, stream) for p in pipelines]
        self._joining.put((outputs, list(taps)))
        return [o.name for o in outputs]

    def detach(self, stream_key: str) -> None:
        """Undo :meth:`attach` for a stream that produced nothing (its inlet could not be added):
        its outputs leave at the next :meth:`join` and their outlets close."""
        self._joining.put((stream_key, None))

    def join(self) -> None:
        """Take in what was attached or detached since the last call (the loop's thread)."""
        while True:
            try:
                outputs, taps = self._joining.get_nowait()
            except queue.Empty:
                return
            if taps is None:
                self._unregister(outputs)
                continue
            self.register(outputs)
            self.taps.setdefault(outputs[0].pipeline.stream_key, []).extend(taps)

    def _unregister(self, stream_key: str) -> None:
        gone = self.by_stream.pop(stream_key, [])
        self.lost.pop(stream_key, None)
        self.taps.pop(stream_key, None)
        for o in gone:
            del self.output_of[id(o.pipeline)]
            self.pipelines_by_model[o.pipeline.model_key].remove(o.pipeline)
            o.outlets.close()
        self.outputs = [o for o in self.outputs if o.pipeline.stream_key != stream_key]

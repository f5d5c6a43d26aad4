"""One worker process of ``eegmamba-live --workers N``: one :class:`~realtime.session.Session`
(its own acquisition, pipelines, inference and outlets) serving the streams of its share.

Life of a worker (messages on its duplex pipe to the supervisor, ``realtime.serve.supervisor``):

1. start-up: imports, then each checkpoint is loaded and warmed up once (numba's kernels, the
   model's code and weights), so that a worker kept in reserve takes over a dead one's streams
   within about a second; sends ``("ready", pid)``;
2. waits for ``("serve", index, share, changes)`` (or ``("stop",)``), builds the Session with
   ``accept`` = its :class:`~realtime.serve.sharding.Share` and the option ``changes``, sends
   ``("started", index, outputs)``;
3. runs the live loop; a reporter thread sends ``("report", snapshot, decisions, outputs)`` every
   ``decision_every_s`` (the decisions since the last message, for the supervisor's ``--log`` and
   its latency figures), with the session's snapshot and outputs every ``snapshot_every_s`` (0.5 s;
   ``None`` in between);
4. on ``("stop",)`` (or SIGTERM to this process, or the supervisor's end of the pipe closing)
   finishes the current step, closes the loop (windows waiting are counted as ``shutdown``), sends
   ``("final", snapshot, decisions, outputs)`` and exits 0.

A failure is sent as ``("error", message, user_error)`` before the process exits 1. Ctrl-C is
ignored here: it reaches the whole process group, and the supervisor stops its workers in order.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass



@dataclass(frozen=True)
class OutputInfo:
    """One decision output of a worker: its name (``ProfileStats.name``), the stream it reads and
    the profile's hop (s: one window per hop per stream)."""

    name: str
    stream: str
    hop_s: float


class _Channel:
    """The worker's end of the pipe: sends from several threads, one at a time."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, *msg) -> bool:
        with self._lock:
            try:
                self.conn.send(msg)
                return True
            except (OSError, EOFError, BrokenPipeError):  # the supervisor is gone
                return False


def _preload(opts) -> None:
    """Pay the first-call costs before any stream is assigned: imports, checkpoint reads, numba's
    kernels and the model's warm-up (a Session built afterwards in this process starts in a
    fraction of the time). Errors are left for the Session to report properly."""
    from realtime.loop.inference import InferenceEngine
    from realtime.session import DEMO_CHECKPOINT

    try:
        engine = InferenceEngine(opts.device, threads=opts.threads)
        for ckpt in opts.checkpoints or [str(DEMO_CHECKPOINT)]:
            engine.load(ckpt)
        engine.warm_up()
    except Exception:  # noqa: BLE001 - reported by Session(opts) with its proper message
        pass


class _Reporter(threading.Thread):
    """Sends the decisions every ``decision_every_s`` and a snapshot every ``snapshot_every_s``;
    every report also says how long ago the live loop last stepped (its own thread: a loop stuck
    in a call shows as a growing age while the reports go on)."""

    def __init__(self, channel: _Channel, session, decision_every_s: float = 0.1,
                 snapshot_every_s: float = 0.5) -> None:
        super().__init__(name="eegmamba-worker-reporter", daemon=True)
        self.channel, self.session = channel, session
        self.decisions: deque = deque()  # appended by the loop thread (deque.append is atomic)
        self.decision_every_s, self.snapshot_every_s = decision_every_s, snapshot_every_s
        self.halt = threading.Event()

    def drain(self) -> list:
        out = []
        while self.decisions:
            out.append(self.decisions.popleft())
        return out

    def run(self) -> None:
        next_snap = time.monotonic()
        while not self.halt.wait(self.decision_every_s):
            snap = outputs = None
            if time.monotonic() >= next_snap:
                next_snap += self.snapshot_every_s
                snap, outputs = self.session.snapshot(), outputs_of(self.session)
            loop_age = time.monotonic() - self.session.loop.last_step  # since the loop's last progress
            if not self.channel.send("report", snap, self.drain(), outputs, loop_age):
                return


def outputs_of(session) -> list[OutputInfo]:
    return [OutputInfo(o.name, o.pipeline.stream_key, o.pipeline.profile.window.hop_s)
            for o in session.loop.outputs]


def serve(conn, opts) -> int:
    """Worker process entry point (``multiprocessing`` target): ``opts`` is the run's
    ``SessionOptions`` without its share; returns the exit code."""
    from realtime.stream.lsl_config import quiet_liblsl

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_liblsl()  # before any LSL call, as the command-line entry points do
    channel = _Channel(conn)
    try:
        _preload(opts)
        channel.send("ready", os.getpid())
        msg = conn.recv()
        if msg[0] != "serve":
            return 0
        _, index, share, changes = msg
        return _run(conn, channel, dataclasses.replace(opts, accept=share, log=None, **changes),
                    index)
    except (EOFError, OSError):
        return 0  # the supervisor went away before we were needed
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the supervisor
        from eegmamba._checks import UserInputError

        user = isinstance(exc, (UserInputError, ValueError, TypeError, FileNotFoundError))
        text = str(exc).splitlines()[0] if user and str(exc) else traceback.format_exc()
        channel.send("error", text, user)
        return 1


def _run(conn, channel: _Channel, opts, index: int) -> int:
    from eegmamba._interrupt import StopFlag
    from realtime.session import Session

    stop = threading.Event()

    def listen() -> None:  # ("stop",) or the pipe closing ends the loop
        try:
            while conn.recv()[0] != "stop":
                pass
        except (EOFError, OSError):
            pass
        stop.set()

    with StopFlag((signal.SIGTERM,)) as term:
        session = Session(opts)
        try:
            reporter = _Reporter(channel, session)
            session.loop.on_decision = reporter.decisions.append
            channel.send("started", index, outputs_of(session))
            threading.Thread(target=listen, name="eegmamba-worker-control", daemon=True).start()
            reporter.start()
            session.loop.run(None, should_stop=lambda: stop.is_set() or term.requested
                             or session.finished())
            reporter.halt.set()
            reporter.join(2.0)
            session.loop.close()  # windows still waiting: counted as shutdown
            channel.send("final", session.snapshot(), reporter.drain(), outputs_of(session))
        finally:
            session.close()
    return 0


def main(conn, opts) -> None:
    """``multiprocessing.Process`` target: exit with :func:`serve`'s code."""
    code = serve(conn, opts)
    try:
        conn.close()
    finally:
        os._exit(code)  # no atexit/finalizer surprises from liblsl threads in a child

"""``eegmamba-live --workers N``: a supervisor process and N worker processes.

Each worker (``realtime.serve.worker``) is one :class:`~realtime.session.Session` with its own
acquisition, pipelines, inference and outlets, serving the streams of its
:class:`~realtime.serve.sharding.Share`: a stream belongs to the worker its stable hash names, so
every worker (and every replacement of a dead one) finds its own streams, later streams included,
and a stream never runs in two workers. The supervisor only watches: it merges the workers' stats
(``realtime.serve.merge``) for the dashboard and the summary and writes the one ``--log`` file from
the decisions they forward.

A worker that hangs (no report for ``hang_s`` seconds: stopped, or stuck holding the GIL; or a live
loop that has made no progress for that long: no stream taken in and no batch started) is killed and
then handled as a dead one, with that reason. A dead worker is noticed at once (its process
sentinel; the loop waits at most ``tick_s``), logged with its exit reason and replaced by the
reserve worker, which has its checkpoints loaded and warm already, so the streams resume within
about a second; a new reserve then starts. A worker that fails while starting stops the run with its
error (a wrong option fails the same way in every worker), as does one that keeps dying
(``max_restarts`` within ``restart_window_s``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import time
from multiprocessing.connection import wait
from typing import Callable

from eegmamba._checks import UserInputError
from realtime.serve.merge import Merger
from realtime.serve.sharding import Share
from realtime.serve.worker import OutputInfo, main as worker_main


def exit_reason(code: int | None) -> str:
    """``Process.exitcode`` in words: ``killed by SIGKILL``, ``exit code 1``..."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Proc:
    """One worker process and what the supervisor knows of it."""

    def __init__(self, ctx, opts) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, opts), daemon=True,
                                   name="eegmamba-worker")
        # a worker ignores Ctrl-C from its first instruction (an ignored SIGINT is inherited and
        # Python keeps it so): the terminal sends it to every process, the supervisor stops them
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.process.start()
        finally:
            signal.signal(signal.SIGINT, old)
        child.close()
        self.index: int | None = None
        self.outputs: list[OutputInfo] = []
        self.started = False
        self.final = False
        self.error: tuple[str, bool] | None = None
        self.t_assigned = 0.0
        self.t_heard = time.monotonic()  # last message from it
        self.loop_age = 0.0  # seconds since its live loop made progress, as its last report said
        self.hung: str | None = None  # why it was killed as hung

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def assign(self, index: int, share: Share, **changes) -> None:
        """Serve ``share`` as worker ``index``, with these ``SessionOptions`` changed."""
        self.index, self.t_assigned = index, time.monotonic()
        self.conn.send(("serve", index, share, changes))

    def send_stop(self) -> None:
        try:
            self.conn.send(("stop",))
        except (OSError, BrokenPipeError):
            pass


class Supervisor:
    """Runs ``n_workers`` workers on ``opts`` (shares of ``share``) until :meth:`stop`.

    ``on_event(text)``: worker starts, deaths and restarts, as they happen; ``on_decision(d)``:
    every forwarded decision (after it was logged); ``log``: the ``DecisionLog`` of ``--log``.
    """

    def __init__(self, opts, n_workers: int, share: Share = Share(), *,
                 on_event: Callable[[str], None] = print, on_decision=None, log=None,
                 tick_s: float = 0.05, max_restarts: int = 5, restart_window_s: float = 60.0,
                 start_timeout_s: float = 300.0, replacement_settle_s: float = 0.3,
                 hang_s: float = 5.0) -> None:
        # named streams were checked by the supervisor; each worker keeps those of its share,
        # found at the start or later (a worker's share may miss some names: no error there)
        self.opts = dataclasses.replace(opts, log=None, accept=None, all_streams=True)
        if opts.calibrate is not None and opts.calibrate.out is None:  # one folder for all workers
            from realtime.calibration.calibrator import default_out

            self.opts.calibrate = dataclasses.replace(opts.calibrate,
                                                      out=default_out(opts.calibrate))
        self.n_workers, self.share = n_workers, share
        self.on_event, self.on_decision, self.log = on_event, on_decision, log
        self.tick_s, self.hang_s = tick_s, hang_s
        self.max_restarts, self.restart_window_s = max_restarts, restart_window_s
        self.start_timeout_s, self.replacement_settle_s = start_timeout_s, replacement_settle_s
        self._ctx = mp.get_context("spawn")
        self.workers: dict[int, _Proc] = {}
        self.spare: _Proc | None = None
        self.restarts: list[dict] = []
        extra = f", {share}" if share.n_shards > 1 else ""
        self.merger = Merger(f"eegmamba-live · {n_workers} workers{extra}")
        self._pending: dict[int, float] = {}  # index -> when its worker died (until back)
        self._spare_deaths = 0

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the workers and wait until each has built its session (raises its error)."""
        for i in range(self.n_workers):
            p = _Proc(self._ctx, self.opts)
            p.assign(i, self.share.with_worker(i, self.n_workers))
            self.workers[i] = p
        deadline = time.monotonic() + self.start_timeout_s
        while not all(p.started for p in self.workers.values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start within {self.start_timeout_s:g} s")
            self.poll(starting=True)
        for i, p in sorted(self.workers.items()):
            self.on_event(f"worker {i + 1}/{self.n_workers} (pid {p.pid}): "
                          + (", ".join(sorted({o.stream for o in p.outputs})) or "no stream yet"))
        self.spare = _Proc(self._ctx, self.opts)

    def poll(self, starting: bool = False) -> None:
        """Wait up to ``tick_s`` for messages or deaths and handle them."""
        procs = [*self.workers.values(), *([self.spare] if self.spare else [])]
        by_conn = {p.conn: p for p in procs}
        by_sentinel = {p.process.sentinel: p for p in procs}
        for ready in wait([*by_conn, *by_sentinel], timeout=self.tick_s):
            if ready in by_conn:
                self._drain(by_conn[ready])
        if not starting:
            self._check_hung()
        for p in procs:  # while running, any exit is a death (one SIGTERMed by someone else too)
            if not p.process.is_alive():
                self._drain(p)
                p.process.join(0.5)
                self._died(p, starting)

    def _drain(self, p: _Proc) -> None:
        try:
            while p.conn.poll():
                self._handle(p, p.conn.recv())
                p.t_heard = time.monotonic()
        except (EOFError, OSError):
            pass

    def _check_hung(self) -> None:
        """Kill a serving worker that has sent nothing for ``hang_s`` seconds (stopped, or stuck
        with the GIL held) or whose live loop has made no progress for that long (stuck in a call;
        a slow step under overload still progresses stream by stream):
        the death is then handled as any other, with this reason."""
        now = time.monotonic()
        for p in self.workers.values():
            if not p.started or p.hung is not None or not p.process.is_alive():
                continue
            silent = now - p.t_heard
            if silent > self.hang_s:
                p.hung = f"hung: no report for {silent:.1f} s"
            elif p.loop_age > self.hang_s:
                p.hung = f"hung: its live loop has made no progress for {p.loop_age:.1f} s"
            if p.hung is not None:
                self.on_event(f"worker {p.index + 1} (pid {p.pid}) {p.hung}; killing it")
                p.process.kill()

    def _handle(self, p: _Proc, msg: tuple) -> None:
        kind = msg[0]
        if kind in ("report", "final"):
            snap, decisions, outputs = msg[1:4]
            if len(msg) > 4:
                p.loop_age = msg[4]
            if outputs is not None:  # streams found later: their outputs too
                p.outputs = outputs
                self.merger.started(p.index, outputs)
            for d in decisions:
                if self.log is not None:
                    self.log.write(d)
                if self.on_decision is not None:
                    self.on_decision(d)
            self.merger.report(p.index, snap, decisions)
            p.final = p.final or kind == "final"
        elif kind == "started":
            _, index, outputs = msg
            p.started, p.outputs = True, outputs
            self.merger.started(index, outputs)
            if index in self._pending:
                down = time.monotonic() - self._pending.pop(index)
                self.restarts[-1]["back_s"] = round(down, 2)
                self.on_event(f"worker {index + 1} back (pid {p.pid}) {down:.2f} s after it died")
        elif kind == "ready" and p is self.spare:
            self.on_event(f"reserve worker ready (pid {p.pid})")
        elif kind == "error":
            p.error = (msg[1], msg[2])

    def _died(self, p: _Proc, starting: bool) -> None:
        if p is self.spare:  # no stream lost; replacements start cold until a reserve stays up
            self.spare = None
            self._spare_deaths += 1
            code = p.process.exitcode
            text = p.error[0].strip().splitlines()[-1] if p.error else exit_reason(code)
            again = self._spare_deaths < 3
            self.on_event(f"the reserve worker (pid {p.pid}) died ({text})"
                          + ("; starting another" if again else "; running without one"))
            if again:
                self.spare = _Proc(self._ctx, self.opts)
            return
        reason = p.hung or exit_reason(p.process.exitcode)
        if p.error and not p.error[1]:
            reason += ": " + p.error[0].strip().splitlines()[-1]
        if starting or not p.started:
            if p.error:
                raise _failure(p.error)
            raise RuntimeError(f"worker {p.index + 1} died while starting ({reason})")
        index = p.index
        now = time.monotonic()
        self.merger.died(index, p.outputs)
        recent = [r for r in self.restarts
                  if r["index"] == index and now - r["t"] < self.restart_window_s]
        self.restarts.append({"index": index, "pid": p.pid, "reason": reason, "t": now,
                              "uptime_s": round(now - self.merger.t_start, 1), "back_s": None})
        self.on_event(f"worker {index + 1} (pid {p.pid}) died ({reason}); restarting it")
        if len(recent) >= self.max_restarts:
            raise RuntimeError(f"worker {index + 1} died {len(recent) + 1} times within "
                               f"{self.restart_window_s:g} s, last: {reason}")
        nxt = self.spare or _Proc(self._ctx, self.opts)
        # its streams are known to exist: a short first look (--all scans that long before the
        # session starts); a stream it misses joins at the finder's next scan
        nxt.assign(index, self.share.with_worker(index, self.n_workers),
                   resolve_timeout_s=min(self.opts.resolve_timeout_s, self.replacement_settle_s))
        self.workers[index] = nxt
        self._pending[index] = now
        self.spare = _Proc(self._ctx, self.opts) if self._spare_deaths < 3 else None

    def run(self, duration_s: float | None, should_stop: Callable[[], bool]) -> None:
        end = None if duration_s is None else time.monotonic() + duration_s
        while not should_stop() and (end is None or time.monotonic() < end):
            self.poll()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop every worker cleanly (windows still waiting: ``shutdown``), collect their final
        stats, then count the windows of streams still waiting for a replacement."""
        import pylsl

        procs = [*self.workers.values(), *([self.spare] if self.spare else [])]
        for p in procs:
            p.send_stop()
        deadline = time.monotonic() + timeout_s
        while any(p.process.is_alive() for p in procs) and time.monotonic() < deadline:
            ready = wait([p.process.sentinel for p in procs] + [p.conn for p in procs], timeout=0.1)
            for p in procs:
                if p.conn in ready:
                    self._drain(p)
        for p in procs:
            self._drain(p)
            if p.process.is_alive():
                self.on_event(f"worker (pid {p.pid}) did not stop within {timeout_s:g} s: killed")
                p.process.kill()
            p.process.join(2.0)
            if p is not self.spare and p.started and not p.final:
                self.merger.died(p.index, p.outputs)
        self.merger.finish(pylsl.local_clock())

    def snapshot(self):
        snap = self.merger.snapshot()
        if self.log is not None:  # the dashboard's / summary's quality line, logged once
            self.log.note_quality(snap)
        return snap


def _failure(error: tuple[str, bool]) -> Exception:
    text, user = error
    return UserInputError(text) if user else RuntimeError(f"a worker failed:\n{text}")


def default_workers(n_streams: int, device: str) -> int:
    """``--workers`` default: one per core, at most one per stream (all cores while no stream is
    visible yet: ``--all`` takes later ones); 1 on CUDA, where one process batches every stream's
    windows on the GPU."""
    if device == "cuda" or (device == "auto" and _cuda()):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, n_streams if n_streams > 0 else cores or 1))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()

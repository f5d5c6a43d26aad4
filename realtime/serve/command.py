"""``eegmamba-live --workers N`` / ``--shard K/N``: how many processes, which streams, and the run
with its dashboard, decision lines, ``--log`` file and one merged summary."""

from __future__ import annotations

import dataclasses
import time

from eegmamba._checks import UserInputError
from realtime.serve.sharding import Share, parse_shard


def count_streams(opts, share: Share, wait_s: float = 1.0) -> int:
    """How many visible streams the options select within ``share`` (the profiles' fit is not
    checked: a stream that does not fit only makes the default one worker larger). Each named
    ``--stream`` must be visible within ``opts.resolve_timeout_s``, as in one process: the workers
    then look for every selected stream (``all_streams``), each keeping its own."""
    import pylsl

    from realtime.stream.resolve import StreamSelection, describe_info, stream_key

    queries = tuple(opts.streams)
    selection = StreamSelection(queries, share if share.n_shards > 1 else None)
    resolver = pylsl.ContinuousResolver(forget_after=2.0)
    start = time.monotonic()
    while True:
        time.sleep(0.1)
        infos = resolver.results()
        missing = [q for q in queries if not any(q.matches(i) for i in infos)]
        waited = time.monotonic() - start
        if (not missing and waited >= wait_s) or waited >= max(wait_s, opts.resolve_timeout_s):
            break
    if missing and not opts.all_streams:
        visible = "; ".join(sorted(describe_info(i) for i in infos)) or "none"
        raise UserInputError(f"no LSL stream with {' / '.join(map(str, missing))} found within "
                             f"{opts.resolve_timeout_s:g} s; visible streams: {visible}")
    return len({stream_key(i) for i in infos if selection.matches(i)})


def plan(opts, workers: int | None, shard: str | None) -> tuple[int, Share]:
    """``(worker processes, share of this process)`` for the options; 1 worker = no supervisor.
    The default looks at the visible streams only when several may be served (``--all``, several
    ``--stream``): one stream needs one process."""
    from realtime.serve.supervisor import default_workers

    share = Share()
    if shard is not None:
        k, n = parse_shard(shard)
        share = Share(k - 1, n)
    local = opts.replay is not None or opts.demo
    if local and (shard is not None or (workers or 1) > 1):
        raise UserInputError("--replay/--demo classify one stream in this process; --workers and "
                             "--shard share live streams (replay files with eegmamba-replay)")
    if workers is not None and workers < 1:
        raise UserInputError(f"--workers must be >= 1, got {workers}")
    several = getattr(opts, "many", False)  # --all or several --stream
    if shard is not None and not several:
        raise UserInputError("--shard shares several streams out: add --all (or several --stream)")
    if not several:
        return 1, share  # one stream: one process (at most one worker per stream)
    n_streams = count_streams(opts, share)
    if workers is None:
        workers = default_workers(n_streams, opts.device)
    return workers, share


def run_supervised(args, opts, n_workers: int, share: Share, console, stop) -> int:
    """Run the supervisor until ``--duration``, Ctrl-C or SIGTERM; print one merged summary."""
    from realtime.cli_live import decision_line, print_summary
    from realtime.loop.outlets import DecisionLog
    from realtime.serve.supervisor import Supervisor

    log = DecisionLog(opts.log) if opts.log else None
    phases: dict = {}

    def on_decision(d) -> None:
        print(decision_line(d), flush=True)

    def on_event(text: str) -> None:
        console.print(f"[workers] {text}", markup=False, highlight=False)

    sup = Supervisor(opts, n_workers, share, on_event=on_event, log=log,
                     on_decision=on_decision if args.no_dashboard else None)
    try:  # a worker failing to start (a wrong option fails in every worker): its error, no summary
        with console.status(f"eegmamba-live: starting {n_workers} workers ({share})…",
                            spinner="dots"):
            sup.start()
    except BaseException:
        sup.stop(timeout_s=5.0)
        if log is not None:
            log.close()
        raise
    stop.abort = False
    dashboard = None
    try:
        if not args.no_dashboard:
            from realtime.screen.dashboard import Dashboard

            dashboard = Dashboard(sup.snapshot, console=console).start()

        def should_stop() -> bool:
            if args.no_dashboard:  # one line per calibration phase change, as in one process
                for c in (c for s in list(sup.merger.snaps.values()) for c in s.calibrations):
                    if phases.get(c.profile) != c.phase:
                        phases[c.profile] = c.phase
                        print(f"calibration {c.profile}: {c.phase}; {c.message}", flush=True)
            return stop.requested

        try:
            sup.run(args.duration, should_stop)
        except KeyboardInterrupt:
            stop.signal_name = stop.signal_name or "SIGINT"
        if stop.signal_name:
            name = "Ctrl-C" if stop.signal_name == "SIGINT" else stop.signal_name
            console.print(f"stopping ({name})")
    finally:
        sup.stop()
        if dashboard is not None:
            dashboard.stop()
        print_summary(sup, console)
        if args.summary_json:
            leds = sup.merger.ledgers
            workers = {n: led.worker + 1 for n, led in leds.items() if led.worker is not None}
            write_summary_json(args.summary_json, sup.snapshot(),
                               {n: led.stream for n, led in leds.items()}, workers, sup.restarts)
        for r in sup.restarts:
            back = "not back" if r["back_s"] is None else f"back in {r['back_s']:.2f} s"
            console.print(f"worker {r['index'] + 1} (pid {r['pid']}) died at {r['uptime_s']:.1f} s "
                          f"({r['reason']}), {back}", highlight=False)
        if log is not None:
            log.close()
    return 0


def with_share(opts, share: Share):
    """The options of a single process serving ``share`` (``--shard`` with ``--workers 1``): the
    named streams were checked (:func:`count_streams`); it serves those of its shard."""
    if share.n_shards == 1:
        return opts
    return dataclasses.replace(opts, accept=share, all_streams=True)


def write_summary_json(path, snap, streams: dict[str, str], workers: dict[str, int] | None = None,
                       restarts: list[dict] | None = None) -> None:
    """The final summary as JSON: per output its stream, worker (1-based; None in one process),
    windows (emitted by the windowing rule), decisions, drops by reason (windowing rule, ``stale``,
    ``shutdown``, ``worker_restart``...) and latency percentiles (ms); per stream its counters."""
    import json
    from pathlib import Path

    def lat(s):
        return {"n": s.n, "p50": s.p50_ms, "p95": s.p95_ms, "p99": s.p99_ms, "max": s.max_ms}

    out = {
        "uptime_s": round(snap.uptime_s, 3), "device": snap.device,
        "outputs": [{"name": p.name, "stream": streams.get(p.name),
                     "worker": (workers or {}).get(p.name), "windows": p.n_windows,
                     "decisions": p.n_decisions, "drops": dict(p.drops),
                     "latency_ms": lat(p.latency), "accuracy": p.accuracy, "n_scored": p.n_scored}
                    for p in snap.profiles],
        "streams": [{"name": s.name, "source_id": s.source_id, "n_samples": s.n_samples,
                     "n_gaps": s.n_gaps, "n_losses": s.n_losses, "n_errors": s.n_errors}
                    for s in snap.streams],
        "latency_ms": lat(snap.latency), "restarts": [
            {k: v for k, v in r.items() if k != "t"} for r in restarts or []],
    }
    Path(path).write_text(json.dumps(out, indent=1))

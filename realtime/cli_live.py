"""``eegmamba-live``: classify a live LSL EEG stream with one or more task profiles."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rich.console import Console
from rich.table import Table

from eegmamba.cli_common import run_cli
from realtime.lsl_config import quiet_liblsl
from realtime.session import Session, SessionOptions, parse_channel_map


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eegmamba-live",
        description="Classify a live LSL EEG stream with EEGMamba and publish the decisions on LSL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--list", action="store_true",
                   help="list the visible LSL streams (name, type, channels, rate, source_id, host) "
                        "and the profiles/checkpoints that fit each, then exit")
    p.add_argument("--profile", action="append", default=[],
                   help="task profile name or YAML path; repeat to run several profiles on one stream")
    p.add_argument("--checkpoint", action="append", default=[],
                   help="checkpoint folder per --profile, in the same order (default for motor_imagery: "
                        "the bundled demo checkpoint)")
    src = p.add_argument_group("stream selection (default: the first stream of type EEG)")
    src.add_argument("--stream", help="LSL stream name to classify")
    src.add_argument("--type", dest="stype", help="LSL stream type to look for")
    src.add_argument("--source-id", help="LSL source id to look for")
    src.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the stream")
    p.add_argument("--channel-map", action="append", default=[], metavar="PROFILE_CH=STREAM_CH",
                   help="map a profile channel to a differently named stream channel (repeatable)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="inference device")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for CPU inference (1 keeps latency lowest beside the acquisition thread)")
    p.add_argument("--replay", metavar="FILE", help="replay this recording in-process and classify it")
    p.add_argument("--demo", action="store_true",
                   help="replay the bundled motor-imagery recording with the bundled checkpoint")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor (with --replay/--demo)")
    p.add_argument("--no-dashboard", action="store_true", help="print one line per decision instead")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--log", metavar="FILE", help="also write every decision as a JSON line to FILE")
    p.add_argument("--inference-delay-ms", type=float, default=0.0,
                   help="add this delay to every inference batch (to test the drop policy)")
    return p


def print_summary(session: Session, console: Console) -> None:
    snap = session.loop.snapshot()
    console.print()
    table = Table(title=f"eegmamba-live summary ({snap.uptime_s:.1f} s, device {snap.device})")
    for col in ("profile", "windows", "decisions", "dropped", "p50 ms", "p95 ms", "p99 ms", "accuracy"):
        table.add_column(col)
    for p in snap.profiles:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(p.drops.items())) or "0"
        lat = p.latency
        fmt = (lambda v: "-" if v is None else f"{v:.1f}")
        acc = "-" if p.accuracy is None else f"{p.accuracy:.1%} of {p.n_scored}"
        table.add_row(p.name, str(p.n_windows), str(p.n_decisions), drops, fmt(lat.p50_ms),
                      fmt(lat.p95_ms), fmt(lat.p99_ms), acc)
    console.print(table)
    for s in snap.streams:
        console.print(
            f"stream {s.name!r}: {s.n_samples} samples, {s.n_gaps} gaps, {s.n_losses} losses, "
            f"{s.n_reconnects} reconnects, {s.n_errors} errors"
        )


def _list(args) -> int:
    from realtime.listing import list_streams, render_listing

    wait = min(args.timeout, 2.0)
    console = Console()
    if not console.is_terminal:  # piped: one line per stream rather than 80-column wrapping
        console = Console(width=400)
    console.print(render_listing(list_streams(wait, args.checkpoint), wait))
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        return _list(args)
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be > 0 seconds, got {args.duration}")
    opts = SessionOptions(
        profiles=args.profile, checkpoints=args.checkpoint, stream=args.stream, stype=args.stype,
        source_id=args.source_id, device=args.device, replay=args.replay, demo=args.demo,
        speed=args.speed, log=args.log, channel_map=parse_channel_map(args.channel_map),
        resolve_timeout_s=args.timeout, inference_delay_s=args.inference_delay_ms / 1000.0,
        threads=args.threads,
    )
    console = Console(stderr=False)
    session = Session(opts)
    dashboard = None
    try:
        if args.no_dashboard:
            session.loop.on_decision = lambda d: print(
                f"{d.profile} #{d.seq} {d.label:<12} p={max(d.probs.values()):.2f} "
                f"t={d.t_end:.3f} latency={d.latency_ms:.1f} ms", flush=True)
        else:
            from realtime.dashboard import Dashboard

            dashboard = Dashboard(session.loop.snapshot, console=console).start()
        try:
            session.loop.run(args.duration, should_stop=session.finished)
        except KeyboardInterrupt:
            console.print("stopping (Ctrl-C)")
    finally:
        if dashboard is not None:
            dashboard.stop()
        print_summary(session, console)
        session.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    quiet_liblsl()  # before any LSL call: liblsl's INFO lines must not land on the dashboard
    return run_cli(_main, argv, prog="eegmamba-live")


if __name__ == "__main__":
    sys.exit(main())

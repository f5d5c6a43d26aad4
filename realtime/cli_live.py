"""``eegmamba-live``: classify live LSL EEG streams (one, several, or every one that fits) with one or
more task profiles."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Sequence

from rich.console import Console
from rich.table import Table

from eegmamba._interrupt import StopFlag
from eegmamba._checks import UserInputError
from eegmamba.cli_common import run_cli
from eegmamba.units import parse_units_option
from realtime.screen.panels import round_name
from realtime.stream.lsl_config import quiet_liblsl
from realtime.stream.markers import parse_marker_map
from realtime.stream.pairing import parse_markers
from realtime.stream.resolve import StreamQuery
from realtime.session import Session, SessionOptions, parse_channel_map
from realtime.stats import quality_notes


def _units(text: str) -> str:
    try:
        return parse_units_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--units ")) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eegmamba-live",
        description="Classify live LSL EEG streams (one, several, or --all) with EEGMamba and "
                    "publish the decisions on LSL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--list", action="store_true",
                   help="list the visible LSL streams (name, type, channels, rate, source_id, host) "
                        "and the profiles/checkpoints that fit each, then exit")
    p.add_argument("--profile", action="append", default=[],
                   help="task profile name or YAML path, one per --checkpoint in the same order "
                        "(without --checkpoint, motor_imagery runs the bundled checkpoint); it must "
                        "agree with the checkpoint's stored profile but in live-only settings (hop, "
                        "smoothing, labels, aliases)")
    p.add_argument("--checkpoint", action="append", default=[],
                   help="checkpoint folder; alone it runs with the profile stored in it (channels, "
                        "rate, filter, window, normalisation, quality rules, classes); repeat to run "
                        "several on one stream")
    p.add_argument("--profile-over-checkpoint", action="store_true",
                   help="run --profile's settings where they differ from the checkpoint's stored "
                        "profile (the differences are logged and shown on the dashboard)")
    src = p.add_argument_group(
        "stream selection (default: the first stream of type EEG; several --stream / --source-id, "
        "or --all: one process serves each stream, outlets eegmamba-<profile>@<stream>)")
    src.add_argument("--all", action="store_true", dest="all_streams",
                     help="serve every visible stream the profiles fit (type EEG, or --type; "
                          "filtered by --stream / --source-id), also those that appear later; "
                          "--list shows which it takes")
    src.add_argument("--stream", action="append", default=[], metavar="NAME",
                     help="LSL stream name to classify (repeat for several)")
    src.add_argument("--type", dest="stype", action="append", default=[], metavar="TYPE",
                     help="LSL stream type to look for (repeatable)")
    src.add_argument("--source-id", action="append", default=[], metavar="ID",
                     help="LSL source id to look for (repeat for several)")
    src.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the stream")
    truth = p.add_argument_group("truth and cues from a marker stream")
    truth.add_argument("--markers", action="append", default=[], metavar="NAME",
                       help="LSL marker stream whose cues give live accuracy (and calibration "
                            "labels): a stimulus program's, or eegmamba-replay's <name>-markers. "
                            "Several headsets: 'auto' (each stream's <name>-markers or "
                            "<name>-annotations), EEG=MARKERS pairs (repeatable), or one NAME "
                            "cueing every stream")
    truth.add_argument("--marker-map", action="append", default=[], metavar="MARKER=CLASS",
                       help="map a marker string to a profile class or 'ignore' (repeatable; "
                            "default: the profile's label rules and the class names)")
    truth.add_argument("--marker-run", type=int, default=None, metavar="N",
                       help="apply the profile's label rules of this run number (EEGMMIDB runs "
                            "give T1/T2 different meanings)")
    truth.add_argument("--cue-s", type=float, default=None, metavar="S",
                       help="a cue without a duration lasts at most S seconds (default: until "
                            "the next marker)")
    cal = p.add_argument_group("calibration (cues from --markers; with --demo: the bundled S019 runs)")
    cal.add_argument("--calibrate", action="store_true",
                     help="collect cue-labelled windows, fine-tune the model in a background "
                          "process, swap it in when it beats the current one on held-out trials, "
                          "save it (--calib-out)")
    cal.add_argument("--calib-trials", type=int, default=None, metavar="N",
                     help="stop collecting after N complete cues (default 40 unless "
                          "--calib-seconds; --demo: the two calibration runs)")
    cal.add_argument("--calib-seconds", type=float, default=None, metavar="S",
                     help="stop collecting after S seconds of EEG")
    cal.add_argument("--calib-layers", choices=("head", "last", "all"), default="last",
                     help="what fine-tunes: the classifier head, the last BiMamba block + head, or all")
    cal.add_argument("--calib-out", metavar="DIR", help="folder for the calibrated checkpoint "
                     "(default ./eegmamba-calibration/<subject>-<time>); start the next session "
                     "from it with --checkpoint DIR")
    cal.add_argument("--subject", help="subject id recorded in the calibrated checkpoint")
    cal.add_argument("--session-id", help="session id recorded in the calibrated checkpoint")
    cal.add_argument("--calib-compare", action="store_true",
                     help="keep the uncalibrated model deciding beside the calibrated one "
                          "(<profile>-uncalibrated; on by default with --demo)")
    cal.add_argument("--calib-threads", type=int, default=1, metavar="N",
                     help="torch threads of the fine-tuning process")
    cal.add_argument("--calib-nice", type=int, default=10, metavar="N",
                     help="CPU priority decrease of the fine-tuning process (0..19)")
    p.add_argument("--channel-map", action="append", default=[], metavar="PROFILE_CH=STREAM_CH",
                   help="map a profile channel to a differently named stream channel (repeatable)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="inference device")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for CPU inference (1 keeps latency lowest beside the acquisition thread)")
    p.add_argument("--no-prime", action="store_true",
                   help="do not warm an idle model up just before its next window is due (saves ~1%% "
                        "of a core per stream; with few streams each decision then comes ~3-5 ms later)")
    p.add_argument("--replay", metavar="FILE", help="replay this recording in-process and classify it")
    p.add_argument("--demo", action="store_true",
                   help="replay the bundled motor-imagery recording with the bundled checkpoint")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor (with --replay/--demo)")
    p.add_argument("--no-dashboard", action="store_true", help="print one line per decision instead")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--log", metavar="FILE", help="also write every decision as a JSON line to FILE")
    p.add_argument("--summary-json", metavar="FILE",
                   help="also write the final summary (per output: windows, decisions, drops by "
                        "reason, latency) as JSON to FILE")
    many = p.add_argument_group("many streams: processes and machines (realtime/serve)")
    many.add_argument("--workers", type=int, default=None, metavar="N",
                      help="worker processes sharing out the streams by a stable hash of their "
                           "source id (default: one per core, at most one per stream; 1 on CUDA "
                           "and with --replay/--demo; 1 = this process alone)")
    many.add_argument("--shard", metavar="K/N",
                      help="serve only the streams whose hash falls to shard K of N (run one "
                           "process per machine with K = 1..N; no broker needed)")
    p.add_argument("--inference-delay-ms", type=float, default=0.0,
                   help="add this delay to every inference batch (to test the drop policy)")
    chk = p.add_argument_group("stream checks (a stream that is not what it claims gets no decisions)")
    chk.add_argument("--units", type=_units, default=None, metavar="{V,mV,uV,nV}",
                     help="unit of the stream's EEG channels, overriding its description; "
                          "%(default)s = the declared unit (none declared: µV, checked for a "
                          "plausible amplitude)")
    chk.add_argument("--accept-measured-rate", action="store_true",
                     help="process a stream whose measured sampling rate is more than 5%% off its "
                          "declared one at the measured rate; %(default)s = pause its decisions")
    return p


def _print_notices(notices, console: Console) -> None:
    """How each checkpoint runs (``Session.notices``): an override in yellow, info plain; unwrapped."""
    for level, line in notices:
        console.print(line, style="yellow" if level == "warning" else None, highlight=False,
                      soft_wrap=True)


def decision_line(d) -> str:
    """The line ``--no-dashboard`` prints for one decision."""
    return (f"{d.profile} #{d.seq} {d.label:<12} p={max(d.probs.values()):.2f} "
            f"t={d.t_end:.3f} latency={d.latency_ms:.1f} ms v{d.model_version}")


def stream_line(s) -> str:
    """A stream's summary line (``StreamHealth``); a stream of irregular rate (a cue / marker
    stream) has no expected rate, jitter or units to report, only its counts."""
    counts = (f"stream {s.name!r}: {s.n_samples} samples, {s.n_duplicates} duplicate samples "
              f"dropped, {s.n_gaps} gaps, {s.n_jumps} jumps, {s.n_losses} losses, "
              f"{s.n_reconnects} reconnects, {s.n_errors} errors; ")
    expected = s.expected_srate or s.nominal_srate
    if not expected:
        return counts + "irregular rate (markers)"
    rate = "-" if s.measured_srate is None else f"{s.measured_srate:.1f}"
    jitter = "-" if s.jitter_p95_ms is None else f"{s.jitter_p95_ms:.1f}"
    return counts + (f"{expected:g} Hz expected, {rate} Hz measured, timestamp jitter p95 {jitter} "
                     f"ms, units {s.units}")


def print_summary(session, console: Console) -> None:
    """The summary table of ``session`` (anything with ``snapshot()``: a Session, a Supervisor)."""
    snap = session.snapshot()
    console.print()
    table = Table(title=f"eegmamba-live summary ({snap.uptime_s:.1f} s, device {snap.device})")
    # 80 columns hold it: decisions / windows in one column (as the dashboard writes them), the three
    # latency percentiles in one; long names fold instead of ending in "…" (with many headsets the
    # output names differ at the end, motor_imagery@headset-07 / -08)
    table.add_column("profile", overflow="fold")
    table.add_column("decided / windows", overflow="fold")
    table.add_column("dropped", overflow="fold")
    table.add_column("p50 / p95 / p99 ms", overflow="fold")
    table.add_column("accuracy", overflow="fold")
    fmt = (lambda v: "-" if v is None else f"{v:.1f}")
    for p in snap.profiles:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(p.drops.items())) or "0"
        lat = p.latency
        acc = "-" if p.accuracy is None else f"{p.accuracy:.1%} of {p.n_scored}"
        if len(p.accuracy_by_round) > 1 or (snap.round_names and p.accuracy_by_round):
            acc += "".join(f"\n{round_name(r, snap.round_names)}: {a:.1%} of {n}"
                           for r, (a, n) in p.accuracy_by_round.items())
        table.add_row(p.name, f"{p.n_decisions} / {p.n_windows}", drops,
                      " / ".join(fmt(v) for v in (lat.p50_ms, lat.p95_ms, lat.p99_ms)), acc)
    console.print(table)
    _print_notices(snap.notices, console)
    for c in snap.calibrations:
        console.print(f"calibration {c.profile}: {c.phase}; {c.message}", highlight=False)
        for sw in c.swaps:
            console.print(f"  swap at {sw['time']} to model v{sw['version']}: {sw['summary']}",
                          highlight=False)
    for s in snap.streams:
        console.print(stream_line(s))
        if s.message:
            console.print(s.message, style="bold red" if s.hold not in (None, "unverified") else "yellow")
    for k in snap.skipped:
        console.print(f"not served: stream {k.name!r} (source_id {k.source_id!r}, host {k.host}): "
                      f"{k.reason}", highlight=False)
    for note in quality_notes(snap):
        console.print(note, style="bold red", highlight=False)


def _stream_queries(args) -> list[StreamQuery]:
    """The ``--stream`` / ``--source-id`` / ``--type`` options as the queries of a many-stream
    session: one per name and per source id (each with each ``--type``), else one per type; empty
    for a one-stream session (each given at most once, no ``--all``)."""
    names, sids, types = args.stream, args.source_id, args.stype
    if not args.all_streams and len(names) <= 1 and len(sids) <= 1 and len(types) <= 1:
        return []
    ids = [StreamQuery(name=n) for n in names] + [StreamQuery(source_id=s) for s in sids]
    if not ids:
        return [StreamQuery(stype=t) for t in types]
    return [StreamQuery(q.name, t, q.source_id) for q in ids for t in (types or [None])]


def _all_queries(args) -> list[StreamQuery]:
    """The queries ``--all`` would use with the given filters."""
    return _stream_queries(argparse.Namespace(**{**vars(args), "all_streams": True}))


def _starting(args) -> str:
    """What the first screen says while the session is being built."""
    if args.demo:
        what = ("the bundled demo: EEGMMIDB subject S019 (imagined left/right fist), a person "
                "the model never saw")
        if args.calibrate:
            what += "; calibration runs R04 + R08, then the feedback run R12"
        return f"eegmamba-live: starting {what}; loading the model…"
    if args.all_streams:
        return "eegmamba-live: loading the model, then serving every stream that fits…"
    source = (args.replay or ", ".join(args.stream + args.source_id + args.stype)
              or "the first EEG stream")
    return f"eegmamba-live: connecting to {source} and loading the model…"


def _list(args) -> int:
    from realtime.screen.listing import list_streams, render_listing

    wait = min(args.timeout, 2.0)
    console = Console()
    if not console.is_terminal:  # piped: one line per stream rather than 80-column wrapping
        console = Console(width=400)
    entries = list_streams(wait, args.checkpoint)
    takes = None
    if args.profile:  # what --all would take with these profiles (and --stream/--type filters)
        from eegmamba.profiles import load_profile
        from realtime.finder import would_take
        from realtime.stream.resolve import StreamSelection

        takes = would_take(entries, StreamSelection(tuple(_all_queries(args))),
                           [load_profile(n) for n in args.profile],
                           parse_channel_map(args.channel_map))
    console.print(render_listing(entries, wait, takes))
    if takes is None and args.all_streams:
        console.print("give --profile NAME to see which streams --all takes", highlight=False)
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        return _list(args)
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be > 0 seconds, got {args.duration}")
    calibrate = None
    if args.calibrate:
        from realtime.calibration.calibrator import CalibrationOptions

        trials = args.calib_trials
        if trials is None and args.calib_seconds is None and not args.demo:
            trials = 40
        calibrate = CalibrationOptions(
            layers=args.calib_layers, trials=trials, seconds=args.calib_seconds, out=args.calib_out,
            subject=args.subject, session=args.session_id, threads=args.calib_threads,
            nice=args.calib_nice)
    elif any(v is not None for v in (args.calib_trials, args.calib_seconds, args.calib_out)):
        raise UserInputError("--calib-* options need --calibrate")
    streams = _stream_queries(args)
    markers, marker_pairs = parse_markers(args.markers)
    one = (lambda v: v[0] if v and not streams else None)  # one-stream session: today's options
    opts = SessionOptions(
        profiles=args.profile, checkpoints=args.checkpoint, stream=one(args.stream),
        stype=one(args.stype), source_id=one(args.source_id), streams=streams,
        all_streams=args.all_streams, device=args.device, replay=args.replay, demo=args.demo,
        speed=args.speed, log=args.log, channel_map=parse_channel_map(args.channel_map),
        resolve_timeout_s=args.timeout, inference_delay_s=args.inference_delay_ms / 1000.0,
        threads=args.threads, prime=not args.no_prime, units=args.units,
        accept_measured_rate=args.accept_measured_rate,
        markers=markers, marker_pairs=marker_pairs,
        marker_map=parse_marker_map(args.marker_map),
        marker_run=args.marker_run, cue_s=args.cue_s, calibrate=calibrate,
        calib_compare=args.calib_compare, profile_over_checkpoint=args.profile_over_checkpoint,
    )
    from realtime.serve.command import plan, run_supervised, with_share

    n_workers, share = plan(opts, args.workers, args.shard)
    opts = with_share(opts, share)
    console = Console(stderr=False)
    # SIGTERM (systemd, Docker, supervisors) stops like Ctrl-C: the loop ends at its next step,
    # outlets close, the log is flushed, the summary printed, exit 0. A second one exits at once.
    with StopFlag((signal.SIGINT, signal.SIGTERM), second="exit") as stop:
        stop.abort = True  # while starting there is nothing to finish: stop right away
        if n_workers > 1:
            return run_supervised(args, opts, n_workers, share, console, stop)
        with console.status(_starting(args), spinner="dots"):  # imports, model load, warm-up
            session = Session(opts)
        stop.abort = False
        _print_notices(session.notices, console)  # also on the dashboard and in the summary
        return _run(args, session, console, stop)


def _run(args, session: Session, console: Console, stop: StopFlag) -> int:
    dashboard = None
    try:
        if args.no_dashboard:
            phases = {}

            def line(d) -> None:
                for c in session.calibrations:  # one line per calibration phase change
                    if phases.get(c.profile.name) != c.phase:
                        phases[c.profile.name] = c.phase
                        print(f"calibration {c.profile.name}: {c.phase}; {c.message}", flush=True)
                print(decision_line(d), flush=True)

            session.loop.on_decision = line
        else:
            from realtime.screen.dashboard import Dashboard

            dashboard = Dashboard(session.snapshot, console=console).start()
        try:
            session.loop.run(args.duration, should_stop=lambda: stop.requested or session.finished())
        except KeyboardInterrupt:
            stop.signal_name = stop.signal_name or "SIGINT"
        if stop.signal_name:
            console.print(f"stopping ({'Ctrl-C' if stop.signal_name == 'SIGINT' else stop.signal_name})")
    finally:
        if dashboard is not None:
            dashboard.stop()
        session.loop.close()  # windows still waiting are counted (shutdown) before the summary
        print_summary(session, console)
        if args.summary_json:
            from realtime.serve.command import write_summary_json

            write_summary_json(args.summary_json, session.snapshot(), {
                o.name: o.pipeline.stream_key for o in session.loop.outputs})
        session.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    quiet_liblsl()  # before any LSL call: liblsl's INFO lines must not land on the dashboard
    return run_cli(_main, argv, prog="eegmamba-live")


if __name__ == "__main__":
    sys.exit(main())

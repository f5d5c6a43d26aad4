"""``eegmamba-replay FILE``: stream a recording on LSL at its real rate, annotations as markers."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from typing import Sequence

from eegmamba.cli_common import run_cli
from eegmamba.data.xdf import add_xdf_options, apply_xdf_options
from realtime.stream.lsl_config import quiet_liblsl
from realtime.replay.player import Replay


def _repeat(text: str) -> int | float:
    if text.lower() in ("inf", "infinite", "forever"):
        return math.inf
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'inf', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'inf', got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eegmamba-replay",
        description="Stream a recording (any MNE-readable file, or an XDF file's EEG stream with "
        "its marker stream) as an LSL EEG stream at its real rate, with its annotations as an LSL "
        "Markers stream '<name>-markers', until stopped (Ctrl-C).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("file", help="recording to replay (EDF, BDF, GDF, FIF, XDF, ...)")
    p.add_argument("--name", default=None, help="LSL stream name (default: the file name stem)")
    p.add_argument("--source-id", default=None, help="LSL source id (default: eegmamba-replay:<name>)")
    p.add_argument("--repeat", type=_repeat, default=math.inf, help="passes over the file: N or inf")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor (2 = twice real time)")
    p.add_argument("--chunk-size", type=int, default=10, help="samples per LSL push")
    p.add_argument("--index-channel", action="store_true", help="append a SAMPLE_INDEX channel")
    p.add_argument("--no-markers", action="store_true", help="do not publish the annotations")
    add_xdf_options(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    apply_xdf_options(args)
    replay = Replay(
        args.file,
        name=args.name,
        source_id=args.source_id,
        repeat=args.repeat,
        speed=args.speed,
        chunk_size=args.chunk_size,
        index_channel=args.index_channel,
        markers=not args.no_markers,
    )
    markers = (
        f" + markers '{replay.marker_name}' ({len(replay.marker_onsets)} annotations)"
        if replay.has_markers
        else " (no markers)"
    )
    print(
        f"streaming '{replay.name}' (source_id '{replay.source_id}', {len(replay.ch_names)} ch @ "
        f"{replay.sfreq:g} Hz, speed {replay.speed:g}x, repeat {args.repeat}){markers}; Ctrl-C to stop",
        flush=True,
    )
    try:
        replay.start()
        while not replay.wait(0.2):
            pass
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr, flush=True)
    finally:
        replay.stop()
    print(
        f"pushed {replay.n_samples_pushed} samples in {replay.n_chunks_pushed} chunks, "
        f"{replay.n_markers_pushed} markers ({replay.late_chunks} chunks pushed late)",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # "Ctrl-C to stop" holds even when started with SIGINT ignored (a script's background job, a
    # parent that ignored it while spawning): Python leaves an inherited SIG_IGN in place
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    quiet_liblsl()  # before any LSL call (see realtime.stream.lsl_config)
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

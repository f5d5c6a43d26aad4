"""Rich console dashboard: ``render(snapshot)`` and a ``Dashboard`` refreshing from its own thread.

The dashboard only ever calls a snapshot function and renders the returned ``Snapshot``; it never
touches a stream, so the live loop is never blocked by it and it can be tested by rendering into
``rich.console.Console(record=True)``.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from eegmamba._checks import check_positive
from realtime.screen.panels import (calibration_panel, fmt, markers_line, outputs_panel,
                                    profile_panel, signal_panel, skipped_panel)
from realtime.stats import LatencyStats, Snapshot, StreamHealth, quality_notes

logger = logging.getLogger(__name__)

_STATE_STYLE = {"ok": "green", "lost": "bold red", "waiting": "yellow"}
COMPACT_OVER = 4  # more outputs than this (or a many-stream session): one row per output


_STREAM_COLUMNS = ("state", "ch", "Hz nom/meas", "drift", "jit", "age s", "samples", "dup", "gaps",
                   "jmp", "bwd", "lost", "rec", "err", "clk ms")
_NARROW_DROPS = ("bwd", "rec", "jit", "jmp", "dup")  # below 110 columns: the stream name keeps room


class _StreamsTable:
    """The streams table, with fewer columns on a narrow console (a long name wraps, never cut)."""

    def __init__(self, streams: tuple[StreamHealth, ...]) -> None:
        self.streams = streams

    def __rich_console__(self, console, options):
        narrow = options.max_width < 110
        drop = set(_NARROW_DROPS) if narrow else set()
        if narrow and not any(s.time_correction_s for s in self.streams):
            drop.add("clk ms")  # all on this host's clock: nothing to show
        cols = [c for c in _STREAM_COLUMNS if c not in drop]
        table = Table(expand=True, box=None, pad_edge=False, collapse_padding=True)
        table.add_column("stream", overflow="fold", min_width=10, ratio=1)  # long names wrap
        for col in cols:
            table.add_column(col, justify="left" if col == "state" else "right", no_wrap=True)
        for s in self.streams:
            nominal = f"{s.nominal_srate:g}" if s.nominal_srate > 0 else "irreg"
            state = Text(s.state, style=_STATE_STYLE.get(s.state, ""))
            if s.hold is not None and s.state == "ok":  # not classified: not what it claims / unchecked
                state = Text("held" if s.hold != "unverified" else "check",
                             style="bold red" if s.hold != "unverified" else "yellow")
            cells = {
                "state": state, "ch": str(s.n_channels),
                "Hz nom/meas": f"{nominal}/{fmt(s.measured_srate, '.1f')}",
                "drift": "-" if s.drift is None else f"{100 * s.drift:+.1f}%",
                "jit": fmt(s.jitter_p95_ms, ".0f"), "jmp": str(s.n_jumps),
                "age s": fmt(s.last_sample_age_s, ".2f"), "samples": str(s.n_samples),
                "gaps": f"{s.n_gaps}/{s.gap_s:.2g}s" if s.n_gaps else "0",
                "bwd": str(s.n_backwards), "dup": str(s.n_duplicates), "lost": str(s.n_losses),
                "rec": str(s.n_reconnects),
                "err": Text(str(s.n_errors), style="red" if s.n_errors else ""),
                "clk ms": f"{1000 * s.time_correction_s:+.1f}",
            }
            table.add_row(s.name, *(cells[c] for c in cols))
        if not self.streams:
            table.add_row("(no stream)", *[""] * len(cols))
        yield table


def _streams_panel(streams: tuple[StreamHealth, ...]) -> Panel:
    # one line per stream that is not what it claims (units, rate): what is wrong, what to do
    notes = [Text(s.message, style="bold red" if s.hold not in (None, "unverified") else "yellow")
             for s in streams if s.message]
    table = _StreamsTable(streams)
    return Panel(Group(table, *notes) if notes else table,
                 title="Streams (clk ms: clock offset applied)", border_style="blue")


def _latency_panel(lat: LatencyStats) -> Panel:
    table = Table(box=None)
    for col in ("n", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right")
    table.add_row(str(lat.n), fmt(lat.p50_ms), fmt(lat.p95_ms), fmt(lat.p99_ms), fmt(lat.max_ms))
    return Panel(table, title="Latency", border_style="green")


def _drops_panel(drops) -> Panel:
    table = Table(box=None)
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, n in sorted(drops.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(reason, str(n))
    if not drops:
        table.add_row("(none)", "0")
    return Panel(table, title="Drops", border_style="yellow")


def render(snapshot: Snapshot) -> RenderableType:
    """Render a stats snapshot: streams (and the marker stream), calibration, one panel per
    profile (decisions and truth strips, accuracy, confusion), the signal panel per profile,
    latency, drops, errors. A many-stream session (or more than ``COMPACT_OVER`` outputs) shows
    one row per output instead of the profile and signal panels, and the streams not served."""
    header = Text(
        f"{snapshot.title}  ·  device {snapshot.device}  ·  up {snapshot.uptime_s:.0f} s", style="bold"
    )
    lower = Table.grid(expand=True, padding=(0, 1))
    lower.add_column(ratio=1)
    lower.add_column(ratio=1)
    lower.add_row(_latency_panel(snapshot.latency), _drops_panel(snapshot.drops))
    parts: list[RenderableType] = [header]
    # how each checkpoint runs: an override of its profile (warning), live-only settings (info)
    parts += [Text(line, style="bold yellow" if level == "warning" else "dim")
              for level, line in snapshot.notices]
    parts.append(_streams_panel(snapshot.streams))
    parts += [Text(n, style="bold red") for n in quality_notes(snapshot)]
    parts += [markers_line(m) for m in snapshot.markers]
    parts += [calibration_panel(c) for c in snapshot.calibrations]
    if snapshot.selection is None and len(snapshot.profiles) <= COMPACT_OVER:
        parts += [profile_panel(p, snapshot.round_names) for p in snapshot.profiles]
        parts += [signal_panel(sig) for sig in snapshot.signals]
    else:  # several streams: one row per output
        n = len({s.key for s in snapshot.streams})
        title = f"Decisions · {n} stream(s)" + (f" of {snapshot.selection}" if snapshot.selection
                                               else "")
        parts.append(outputs_panel(snapshot.profiles, snapshot.signals, title))
    if snapshot.skipped:
        parts.append(skipped_panel(snapshot.skipped))
    parts.append(lower)
    if snapshot.n_errors:
        msg = Text(f"{snapshot.n_errors} error(s); last: {snapshot.last_error}", style="red")
        parts.append(Panel(msg, title="Errors", border_style="red"))
    return Group(*parts)


class Dashboard:
    """Refresh ``render(snapshot_fn())`` with ``rich.live.Live`` from a background thread.

    A failing ``snapshot_fn`` is counted (``n_errors``, ``last_error``) and shown instead of the
    dashboard; the thread keeps going.
    """

    def __init__(self, snapshot_fn: Callable[[], Snapshot], *, refresh_hz: float = 4.0,
                 console: Console | None = None) -> None:
        check_positive(refresh_hz, "refresh_hz")
        self._snapshot_fn = snapshot_fn
        self._period = 1.0 / refresh_hz
        self.console = console or Console()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.n_frames = 0
        self.n_errors = 0
        self.last_error: str | None = None

    def _frame(self) -> RenderableType:
        try:
            return render(self._snapshot_fn())
        except Exception as exc:  # counted and shown; never kills the thread
            self.n_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("dashboard snapshot failed")
            return Panel(Text(f"snapshot failed ({self.n_errors}): {self.last_error}", style="red"),
                         title="Dashboard error", border_style="red")

    def _run(self) -> None:
        try:
            self._live_loop()
        except Exception as exc:  # e.g. the terminal went away: counted, kept, logged
            self.n_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("dashboard thread stopped")

    def _live_loop(self) -> None:
        with Live(self._frame(), console=self.console, auto_refresh=False, transient=False) as live:
            while not self._stop.wait(self._period):
                live.update(self._frame(), refresh=True)
                self.n_frames += 1
            live.update(self._frame(), refresh=True)

    def start(self) -> "Dashboard":
        if self._thread is not None:
            raise RuntimeError("dashboard already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> "Dashboard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

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
from realtime.stats import LatencyStats, ProfileStats, Snapshot, StreamHealth

logger = logging.getLogger(__name__)

_STATE_STYLE = {"ok": "green", "lost": "bold red", "waiting": "yellow"}
_CLASS_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_white", "bright_cyan")


def _fmt(value: float | None, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _streams_panel(streams: tuple[StreamHealth, ...]) -> Panel:
    table = Table(expand=True, box=None, pad_edge=False, collapse_padding=True)
    table.add_column("stream", no_wrap=True, min_width=10, ratio=1)
    for col in ("state", "ch", "Hz nom/meas", "drift", "jit", "age s", "samples", "gaps", "jmp",
                "lost", "err"):
        table.add_column(col, justify="left" if col == "state" else "right", no_wrap=True)
    for s in streams:
        drift = "-" if s.drift is None else f"{100 * s.drift:+.1f}%"
        state = Text(s.state, style=_STATE_STYLE.get(s.state, ""))
        if s.hold is not None and s.state == "ok":
            state = Text("held" if s.hold != "unverified" else "check",
                         style="bold red" if s.hold != "unverified" else "yellow")
        table.add_row(
            s.name, state, str(s.n_channels),
            f"{s.nominal_srate:g}/{_fmt(s.measured_srate, '.1f')}", drift,
            _fmt(s.jitter_p95_ms, ".0f"), _fmt(s.last_sample_age_s, ".2f"),
            str(s.n_samples), f"{s.n_gaps}/{s.gap_s:.2g}s" if s.n_gaps else "0", str(s.n_jumps),
            f"{s.n_losses}/{s.n_reconnects}" if s.n_losses else "0",  # losses / reconnects
            Text(str(s.n_errors), style="red" if s.n_errors else ""),
        )
    if not streams:
        table.add_row("(no stream)", *[""] * 11)
    # one line per stream that is not what it claims (units, rate): what is wrong, what to do
    notes = [Text(s.message, style="bold red" if s.hold not in (None, "unverified") else "yellow")
             for s in streams if s.message]
    return Panel(Group(table, *notes) if notes else table, title="Streams", border_style="blue")


def _bar(p: float, width: int = 24) -> str:
    p = min(max(p, 0.0), 1.0)
    full = int(round(p * width))
    return "█" * full + "·" * (width - full)


def _profile_panel(p: ProfileStats) -> Panel:
    body = Table.grid(padding=(0, 1))
    body.add_column(justify="right")
    body.add_column()
    body.add_column(justify="right")
    style = {c: _CLASS_STYLES[i % len(_CLASS_STYLES)] for i, c in enumerate(p.classes)}
    label = Text(p.label or "(waiting)", style=f"bold {style.get(p.label, '')}".strip())
    body.add_row("label", label, "")
    for c, prob in zip(p.classes, p.probs or (None,) * len(p.classes)):
        body.add_row(c, Text(_bar(prob or 0.0), style=style[c]), _fmt(prob, ".2f"))
    # one character per decision: the class initial, or its index when initials collide
    initials = [c[0] for c in p.classes]
    if len(set(initials)) != len(initials):
        initials = [str(i) for i in range(len(p.classes))]
    mark = dict(zip(p.classes, initials))
    history = Text()
    for h in p.history:
        history.append(mark.get(h, "?"), style=style.get(h, "dim"))
    body.add_row("history", history if p.history else Text("-"), "")
    body.add_row("smoothing", p.smoothing, "")
    acc = "-" if p.accuracy is None else f"{100 * p.accuracy:.1f}% of {p.n_scored}"
    body.add_row("accuracy", acc, "")
    body.add_row("decisions", f"{p.n_decisions} / {p.n_windows} windows", "")
    body.add_row("latency", f"p50 {_fmt(p.latency.p50_ms)}  p99 {_fmt(p.latency.p99_ms)} ms", "")
    dropped = sum(p.drops.values())
    drops = ", ".join(f"{k} {v}" for k, v in sorted(p.drops.items())) if dropped else "0"
    body.add_row("dropped", drops, "")
    return Panel(body, title=f"Profile {p.name}", border_style="magenta")


def _latency_panel(lat: LatencyStats) -> Panel:
    table = Table(box=None)
    for col in ("n", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right")
    table.add_row(str(lat.n), _fmt(lat.p50_ms), _fmt(lat.p95_ms), _fmt(lat.p99_ms), _fmt(lat.max_ms))
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
    """Render a stats snapshot: streams, one panel per profile, latency, drops, errors."""
    header = Text(
        f"{snapshot.title}  ·  device {snapshot.device}  ·  up {snapshot.uptime_s:.0f} s", style="bold"
    )
    lower = Table.grid(expand=True, padding=(0, 1))
    lower.add_column(ratio=1)
    lower.add_column(ratio=1)
    lower.add_row(_latency_panel(snapshot.latency), _drops_panel(snapshot.drops))
    parts: list[RenderableType] = [header, _streams_panel(snapshot.streams)]
    parts += [_profile_panel(p) for p in snapshot.profiles]
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

"""The dashboard's panels, each a pure function of a stats value (``realtime.stats``) → rich renderable.

Colours carry the class of a decision; so that a text capture (or a colour-blind reader) loses
nothing, every cell also carries the class's letter (its initial, or its index when initials
collide), and the legend maps letters to classes.
"""

from __future__ import annotations

from typing import Mapping

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from realtime.stats import (CalibrationStats, MarkerStats, ProfileStats, SignalStats,
                            SkippedStream)

CLASS_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_white", "bright_cyan")
QUALITY_STYLE = {"ok": "green", "flat": "bold yellow", "railed": "bold red", "NaN": "bold red",
                 "high-amplitude": "bold magenta", "waiting": "dim"}
PHASE_STYLE = {"collecting": "cyan", "fine-tuning": "yellow", "swapped": "bold green",
               "kept": "yellow", "failed": "bold red"}


def fmt(value: float | None, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def bar(p: float, width: int = 24) -> str:
    p = min(max(p, 0.0), 1.0)
    full = int(round(p * width))
    return "█" * full + "·" * (width - full)


def class_marks(classes: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """(class → letter, class → colour)."""
    initials = [c[0].upper() for c in classes]
    if len(set(initials)) != len(initials):
        initials = [str(i) for i in range(len(classes))]
    return (dict(zip(classes, initials)),
            {c: CLASS_STYLES[i % len(CLASS_STYLES)] for i, c in enumerate(classes)})


def strip(labels, marks: dict[str, str], styles: dict[str, str]) -> Text:
    """One coloured cell per label (None: an unscored '·')."""
    t = Text()
    for lab in labels:
        if lab is None:
            t.append("·", style="dim")
        else:
            t.append(marks.get(lab, "?"), style=f"bold black on {styles.get(lab, 'white')}")
    return t


def legend(classes, marks, styles) -> Text:
    t = Text()
    for c in classes:
        t.append(f" {marks[c]} ", style=f"bold black on {styles[c]}")
        t.append(f" {c}  ")
    return t


def round_name(r: int, names: tuple[str, ...] = ()) -> str:
    return names[r] if r < len(names) else ("before" if r == 0 else f"round {r}")


def accuracy_text(p: ProfileStats, names: tuple[str, ...] = ()) -> str:
    """Overall accuracy, then per round (calibration: during it / after its data / after a swap)."""
    if p.accuracy is None:
        return "- (no truth: give --markers NAME)" if not p.scored else "- (no scored window yet)"
    text = f"{100 * p.accuracy:.1f}% of {p.n_scored}"
    if len(p.accuracy_by_round) > 1 or (names and p.accuracy_by_round):
        text += "\n" + "\n".join(f"{round_name(r, names)}: {100 * a:.1f}% of {n}"
                                 for r, (a, n) in p.accuracy_by_round.items())
    return text


def alignment_text(a: Mapping) -> str:
    """``EA 142 s, updated 0.5 s ago`` or ``EA warming up 12/20 s (windows wait)``."""
    if not a["ready"]:
        return f"EA warming up {a['seconds']:.0f}/{a['warmup_s']:.0f} s (windows wait)"
    since = a.get("since_update_s")
    return f"EA {a['seconds']:.0f} s" + ("" if since is None else f", updated {since:.1f} s ago")


def profile_panel(p: ProfileStats, round_names: tuple[str, ...] = ()) -> Panel:
    body = Table.grid(padding=(0, 1))
    body.add_column(justify="right", no_wrap=True)
    body.add_column()
    body.add_column(justify="right")
    marks, styles = class_marks(p.classes)
    label = Text(p.label or "(waiting)", style=f"bold {styles.get(p.label, '')}".strip())
    body.add_row("label", label, f"model v{p.model_version}")
    for c, prob in zip(p.classes, p.probs or (None,) * len(p.classes)):
        body.add_row(c, Text(bar(prob or 0.0), style=styles[c]), fmt(prob, ".2f"))
    body.add_row("decided", strip(p.history, marks, styles) if p.history else Text("-"), "")
    if p.scored:
        truth = p.truth_history[-len(p.history):] if p.history else ()
        body.add_row("truth", strip(truth, marks, styles) if truth else Text("-"), "")
    body.add_row("", legend(p.classes, marks, styles), "")
    body.add_row("accuracy", accuracy_text(p, round_names), "")
    body.add_row("smoothing", p.smoothing, "")
    body.add_row("decisions", f"{p.n_decisions} / {p.n_windows} windows", "")
    body.add_row("latency", f"p50 {fmt(p.latency.p50_ms)}  p99 {fmt(p.latency.p99_ms)} ms", "")
    dropped = sum(p.drops.values())
    drops = ", ".join(f"{k} {v}" for k, v in sorted(p.drops.items())) if dropped else "0"
    body.add_row("dropped", drops, "")
    if p.alignment is not None:
        body.add_row("alignment", alignment_text(p.alignment), "")
    parts = [body]
    if p.confusion:
        parts += [Text("confusion (rows: truth, columns: decided)", style="dim"), confusion_table(p)]
    return Panel(Group(*parts), title=f"Profile {p.name}", border_style="magenta")


def confusion_table(p: ProfileStats) -> Table:
    """Counts of scored decisions: rows the true class, columns the decided class."""
    marks, styles = class_marks(p.classes)
    t = Table(box=None, padding=(0, 1))
    t.add_column("truth \\ decided", no_wrap=True)
    for c in p.classes:
        t.add_column(Text(f"{marks[c]} {c}"[:12], style=styles[c]), justify="right")
    for truth in p.classes:
        cells = []
        for dec in p.classes:
            n = p.confusion.get((truth, dec), 0)
            cells.append(Text(str(n), style=("bold green" if truth == dec else "red") if n else "dim"))
        t.add_row(Text(f"{marks[truth]} {truth}", style=styles[truth]), *cells)
    return t


_SHORT = {"high-amplitude": "hi-amp", "waiting": "-"}


def _rms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def signal_panel(sig: SignalStats) -> Panel:
    """One cell per required channel: name, quality (ok / flat / railed / NaN / hi-amp =
    high-amplitude) and RMS in µV; the cells flow to the console's width."""
    from rich.columns import Columns

    cells = []
    for ch in sig.channels:
        c = Text(f"{ch.name:>4} ")
        c.append(f"{_SHORT.get(ch.state, ch.state):<6}", style=QUALITY_STYLE.get(ch.state, ""))
        c.append(f"{_rms(ch.rms_uv):>7}", style="dim" if ch.rms_uv is None else "")
        cells.append(c)
    bad = [ch.name for ch in sig.channels if ch.state not in ("ok", "waiting")]
    title = f"Signal {sig.name} · quality, RMS µV (raw, 1 s)"
    if bad:
        title += f" · {len(bad)} bad: {', '.join(bad[:3])}{'…' if len(bad) > 3 else ''}"
    return Panel(Columns(cells, padding=(0, 2)), title=title, border_style="red" if bad else "blue")


def markers_line(m: MarkerStats) -> Text:
    t = Text("markers ", style="bold")
    t.append(f"{m.name!r}: {m.n_markers} received")
    if m.counts:
        t.append(" (" + ", ".join(f"{k} {v}" for k, v in sorted(m.counts.items())) + ")")
    if m.last:
        t.append(f", last {m.last}")
    t.append(f" · clock offset {1000 * m.offset_s:+.1f} ms"
             + (" (same host)" if m.local else " (time_correction)"), style="dim")
    return t


def calibration_panel(c: CalibrationStats) -> Panel:
    body = Table.grid(padding=(0, 1))
    body.add_column(justify="right", no_wrap=True)
    body.add_column()
    body.add_row("phase", Text(f"{c.phase}", style=PHASE_STYLE.get(c.phase, "")).append(
        f"  {c.message}", style="dim"))
    col = c.collect
    body.add_row("collected", Text(f"{bar(col.progress, 30)} {100 * col.progress:3.0f}% of {col.target}"))
    trials = ", ".join(f"{k} {v}" for k, v in col.trials.items())
    windows = sum(col.windows.values())
    body.add_row("trials", f"{trials}  ({windows} windows)")
    if col.drops:
        body.add_row("not used", ", ".join(f"{k} {v}" for k, v in sorted(col.drops.items())))
    if c.phase == "fine-tuning" or c.epoch:
        e = c.last_epoch
        loss = f" · train loss {e['train_loss']:.3f}" if "train_loss" in e else ""
        val = f" · val loss {e['val_loss']:.3f} acc {e['val_acc']:.2f}" if "val_loss" in e else ""
        body.add_row("fine-tune", f"layers {c.layers} · epoch {c.epoch}/{c.max_epochs}{loss}{val}")
    if c.before is not None and c.after is not None:
        body.add_row("held-out", f"{c.before['n_trials']} trials: balanced acc "
                                 f"{100 * c.before['balanced_acc']:.1f}% → {100 * c.after['balanced_acc']:.1f}%"
                                 f", loss {c.before['loss']:.3f} → {c.after['loss']:.3f}")
    for s in c.swaps:
        body.add_row("swap", f"{s['time']} → model v{s['version']}")
    if c.saved:
        body.add_row("saved", c.saved)
    return Panel(body, title=f"Calibration {c.profile}", border_style=PHASE_STYLE.get(c.phase, "blue"))


def outputs_panel(profiles: tuple[ProfileStats, ...], signals: tuple[SignalStats, ...] = (),
                  title: str = "Decisions") -> Panel:
    """One row per output (``<profile>@<stream>`` with several streams): the label now and its
    probability, the recent decisions, decisions / windows, latency, windows dropped (the reasons
    are in the Drops panel), accuracy and the bad channels; for many streams, where a panel per
    output would not fit a screen."""
    bad = {sig.name: [ch.name for ch in sig.channels if ch.state not in ("ok", "waiting")]
           for sig in signals}
    t = Table(box=None, expand=True, pad_edge=False, collapse_padding=True)
    width = min(max((len(p.name) for p in profiles), default=10), 32)
    t.add_column("output", overflow="fold", ratio=1, min_width=width)
    for col in ("label", "p", "recent", "dec/win", "p50/p99", "drop", "acc", "signal"):
        t.add_column(col, no_wrap=col != "signal", overflow="fold",
                     justify="right" if col in ("p", "drop", "acc") else "left")
    for p in profiles:
        marks, styles = class_marks(p.classes)
        label = Text(p.label or "-", style=f"bold {styles.get(p.label, '')}".strip())
        prob = max(p.probs) if p.probs else None
        acc = "-" if p.accuracy is None else f"{100 * p.accuracy:.0f}%"
        b = bad.get(p.name)
        sig = "-" if b is None else (Text("ok", style="green") if not b else
                                     Text(f"{len(b)} bad: {', '.join(b[:2])}", style="bold red"))
        t.add_row(p.name, label, fmt(prob, ".2f"), strip(p.history[-8:], marks, styles),
                  f"{p.n_decisions}/{p.n_windows}",
                  f"{fmt(p.latency.p50_ms, '.0f')}/{fmt(p.latency.p99_ms, '.0f')}",
                  str(sum(p.drops.values())), acc, sig)
    if not profiles:
        t.add_row("(no stream served yet)", *[""] * 8)
    return Panel(t, title=title, border_style="magenta")


def skipped_panel(skipped: tuple[SkippedStream, ...]) -> Panel:
    """The selected streams that are not served, each with why."""
    lines = [Text(f"{k.name} ({k.source_id or 'no source_id'}, {k.host}): {k.reason}", style="yellow")
             for k in skipped]
    return Panel(Group(*lines), title=f"Not served ({len(skipped)})", border_style="yellow")

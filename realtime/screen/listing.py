"""``eegmamba-live --list``: the visible LSL streams and which profiles / checkpoints fit each.

A profile fits a stream when the stream is regularly sampled at a rate the preprocessing can
resample to the profile's rate, and every profile channel is found among the stream's channel
labels (the profile's aliases apply, as in the live loop). A checkpoint fits when the profile stored
in it does (the profile it runs with alone: ``eegmamba.checkpoint.checkpoint_profile``, by the
contract check). Marker streams (irregular rate, string or type ``Markers``) are shown as usable
with ``--markers NAME``; a stream of strings with a regular rate or of type ``EEG`` fits nothing
(one line says why: text is not a signal).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pylsl

from eegmamba._checks import UserInputError
from eegmamba.channels import match_channels
from eegmamba.preprocessing import resample_ratio
from eegmamba.profiles import Profile, available_profiles, load_profile
from realtime.stream.monitor import strings_message


@dataclass
class StreamEntry:
    """One visible stream with what fits it (``fits``: names) and why others do not (``misfits``)."""

    name: str
    stype: str
    n_channels: int
    srate: float
    fmt: str
    source_id: str
    host: str
    ch_names: list[str] = field(default_factory=list)
    fits: list[str] = field(default_factory=list)
    misfits: dict[str, str] = field(default_factory=dict)
    info: object = field(default=None, repr=False, compare=False)  # its pylsl.StreamInfo

    @property
    def sends_strings_as_eeg(self) -> bool:
        return self.fmt == "string" and (self.srate > 0 or self.stype.lower() == "eeg")

    @property
    def is_markers(self) -> bool:
        return self.srate <= 0 and not self.sends_strings_as_eeg and (
            self.fmt == "string" or self.stype.lower() == "markers")


_FORMATS = {pylsl.cf_float32: "float32", pylsl.cf_double64: "double64", pylsl.cf_string: "string",
            pylsl.cf_int32: "int32", pylsl.cf_int16: "int16", pylsl.cf_int8: "int8",
            pylsl.cf_int64: "int64"}


def why_not(profile: Profile, ch_names: list[str], srate: float) -> str | None:
    """None when ``profile`` fits a stream with these channels and rate, else the reason."""
    if srate <= 0:
        return "irregular rate"
    try:
        resample_ratio(srate, profile.sfreq)
    except ValueError:
        return f"{srate:g} Hz cannot be resampled to {profile.sfreq:g} Hz"
    try:
        match_channels(ch_names, profile.channels.names, profile.channels.aliases)
    except UserInputError as exc:
        reason = str(exc).split(";")[0]
        return reason if len(reason) <= 90 else reason[:87] + "..."
    return None


def _candidates(checkpoints: list[str]) -> list[tuple[str, Profile]]:
    """(label, profile) for every shipped profile and every checkpoint (its stored profile)."""
    from eegmamba.checkpoint import checkpoint_profile, read_metadata

    from realtime.session import DEMO_CHECKPOINT

    out = [(f"profile {n}", load_profile(n)) for n in available_profiles()]
    if DEMO_CHECKPOINT.is_dir() and str(DEMO_CHECKPOINT) not in checkpoints:
        checkpoints = [*checkpoints, str(DEMO_CHECKPOINT)]
    for ck in checkpoints:
        meta = read_metadata(ck)
        label = "demo checkpoint" if Path(ck) == DEMO_CHECKPOINT else f"checkpoint {ck}"
        out.append((label, checkpoint_profile(meta, None, str(Path(ck) / "model.json"))))
    return out


def list_streams(wait_s: float = 2.0, checkpoints: list[str] | None = None,
                 info_timeout_s: float = 2.0) -> list[StreamEntry]:
    """Resolve every stream visible within ``wait_s`` seconds and check what fits it.

    Channel labels are in the stream's full description, which needs an inlet: one is opened per
    stream for at most ``info_timeout_s`` seconds (a stream that does not answer is listed without
    labels).
    """
    candidates = _candidates(list(checkpoints or []))
    resolver = pylsl.ContinuousResolver(forget_after=max(2.0, wait_s))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
    infos = {i.uid(): i for i in resolver.results()}
    entries = []
    for info in sorted(infos.values(), key=lambda i: (i.name(), i.source_id())):
        e = StreamEntry(info.name(), info.type(), info.channel_count(), info.nominal_srate(),
                        _FORMATS.get(info.channel_format(), str(info.channel_format())),
                        info.source_id(), info.hostname(), info=info)
        if e.sends_strings_as_eeg:
            e.misfits["(format)"] = strings_message(e.name)
        elif not e.is_markers and e.srate > 0:
            try:
                full = pylsl.StreamInlet(info).info(timeout=info_timeout_s)
                e.ch_names = full.get_channel_labels() or []
            except Exception as exc:  # noqa: BLE001 - an unreachable stream is listed, not fatal
                e.misfits["(description)"] = f"no answer: {type(exc).__name__}"
            for label, profile in candidates:
                reason = why_not(profile, e.ch_names, e.srate)
                if reason is None:
                    e.fits.append(label)
                else:
                    e.misfits[label] = reason
        entries.append(e)
    return entries


def render_listing(entries: list[StreamEntry], wait_s: float, takes: dict[int, str] | None = None):
    """A rich renderable: the streams table, then what fits each one. ``takes``: entry index →
    what ``eegmamba-live --all`` does with it (a column ``--all``; ``realtime.finder.would_take``)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not entries:
        return Text(f"no LSL streams visible within {wait_s:g} s (same network, firewall, "
                    "LSL api config?)")
    table = Table(title="LSL streams", title_justify="left")
    cols = ("name", "type", "ch", "rate Hz", "format", "source_id", "host", "use with")
    for col in cols + (("--all",) if takes is not None else ()):
        table.add_column(col, no_wrap=col in ("name", "source_id", "use with"), overflow="fold")
    for i, e in enumerate(entries):
        if e.is_markers:
            use = Text(f"--markers {e.name}", style="cyan")
        elif e.sends_strings_as_eeg:
            use = Text("strings: not EEG", style="red")
        elif e.fits:
            use = Text(", ".join(f.removeprefix("profile ") for f in e.fits), style="green")
        else:
            use = Text("no profile fits", style="yellow")
        rate = "irregular" if e.srate <= 0 else f"{e.srate:g}"
        row = [e.name, e.stype, str(e.n_channels), rate, e.fmt, e.source_id, e.host, use]
        if takes is not None:
            t = takes.get(i, "-")
            row.append(Text(t, style="green" if t.startswith("takes") else "yellow" if t != "-" else "dim"))
        table.add_row(*row)
    lines = []
    for e in entries:
        if e.is_markers:
            continue
        if e.sends_strings_as_eeg:
            lines.append(Text(e.misfits["(format)"], style="red"))
            continue
        for label, reason in e.misfits.items():
            lines.append(Text(f"  {e.name}: {label} does not fit: {reason}", style="dim"))
    return Group(table, *lines)

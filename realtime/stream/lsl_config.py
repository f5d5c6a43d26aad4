"""The LSL api config this package runs liblsl with: its INFO log lines kept off the dashboard, and a
port range wide enough for many outlets on one host; the user's own config wins where it sets either.

liblsl logs at INFO level to stderr by default (``Loaded default config``, its build string,
network interface notes): on a terminal they land in the middle of the dashboard. Its log level is
a setting of the LSL api config (``[log] level``; -1 = warnings and errors only).

liblsl binds each outlet's ports (TCP data, UDP service; IPv4 and IPv6: ~2-3 per outlet) from
``[ports] BasePort`` (16572) upwards within ``PortRange`` (default 32) and then at random; a
resolver that cannot use multicast (a loopback-only or unicast ``KnownPeers`` setup) asks every
port of the range, so it sees only the outlets bound inside it: with the default range, 12-13 of 40
outlets (measured on this host, resolver with ``KnownPeers = {127.0.0.1}``, machine scope). A lab
serving many headsets runs one EEG outlet per headset and two decision outlets per stream and
profile, so the range here is :data:`DEFAULT_PORT_RANGE` (~800 outlets); a continuous resolver
asking 2048 ports costs ~1 % of a core (0.07 % at 32). Outlets and resolvers must agree: every
process of the lab should use the same range (the README shows an ``lsl_api.cfg``).

We hand liblsl a config *content* built from the user's own config (the first file liblsl would
read: ``$LSLAPICFG``, ``./lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``)
with these keys added only where the user set none; no file of the user's is written. With a
pylsl that cannot pass content (before 1.17), the same text goes to a temporary file named by
``LSLAPICFG`` for this process only.

liblsl reads its config once, on first use: this must run before any stream is created or
resolved in the process, which is why the command-line entry points call it first thing.
"""

from __future__ import annotations

import atexit
import os
import re
import tempfile
from pathlib import Path

DEFAULT_LEVEL = -1  # loguru: -2 error, -1 warning, 0 info
DEFAULT_PORT_RANGE = 2048  # ports from BasePort (16572): room for ~800 outlets on one host
_configured = False


def user_config_path() -> Path | None:
    """The LSL api config file liblsl would read for this process, or None."""
    candidates = []
    env = os.environ.get("LSLAPICFG")
    if env:
        candidates.append(Path(env))
    candidates += [Path("lsl_api.cfg"), Path.home() / "lsl_api" / "lsl_api.cfg",
                   Path("/etc/lsl_api/lsl_api.cfg")]
    return next((p for p in candidates if p.is_file()), None)


def with_setting(text: str, section: str, key: str, value) -> str:
    """``text`` (an INI config) with ``[section] key = value`` unless it already sets ``key`` there
    (section and key names compare without case, as liblsl's do)."""
    current = None
    lines = text.splitlines()
    header = None
    for i, line in enumerate(lines):
        s = line.strip()
        m = re.fullmatch(r"\[(.+)\]", s)
        if m:
            current = m.group(1).strip().lower()
            if current == section.lower() and header is None:
                header = i
            continue
        if current == section.lower() and re.match(rf"{re.escape(key)}\s*=", s, re.IGNORECASE):
            return text  # the user chose a value: theirs wins
    if header is not None:
        lines.insert(header + 1, f"{key} = {value}")
        return "\n".join(lines) + "\n"
    sep = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{sep}[{section}]\n{key} = {value}\n"


def with_log_level(text: str, level: int) -> str:
    """``text`` (an INI config) with ``[log] level = <level>`` unless it already sets a level."""
    return with_setting(text, "log", "level", level)


def package_config(text: str, level: int = DEFAULT_LEVEL, port_range: int = DEFAULT_PORT_RANGE) -> str:
    """The config content liblsl gets: the user's ``text`` plus the log level and port range."""
    return with_setting(with_log_level(text, level), "ports", "PortRange", port_range)


def quiet_liblsl(level: int = DEFAULT_LEVEL, port_range: int = DEFAULT_PORT_RANGE) -> str:
    """Configure liblsl's log level and port range for this process (idempotent; a no-op once
    liblsl has read its config). Returns how: ``"content"``, ``"tempfile"`` or ``"already"``."""
    global _configured
    if _configured:
        return "already"
    _configured = True
    user = user_config_path()
    text = user.read_text(errors="replace") if user is not None else ""
    content = package_config(text, level, port_range)
    import pylsl

    try:
        pylsl.set_config_content(content)
        return "content"
    except (AttributeError, NotImplementedError):
        fd, name = tempfile.mkstemp(prefix="eegmamba-lsl-", suffix=".cfg")
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        os.environ["LSLAPICFG"] = name
        atexit.register(lambda: Path(name).unlink(missing_ok=True))
        return "tempfile"

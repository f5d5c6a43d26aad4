"""Keep liblsl's INFO log lines off the dashboard, without touching the user's own LSL config.

liblsl logs at INFO level to stderr by default (``Loaded default config``, its build string,
network interface notes): on a terminal they land in the middle of the dashboard. Its log level is
a setting of the LSL api config (``[log] level``; -1 = warnings and errors only). We hand liblsl a
config *content* built from the user's own config (the first file liblsl would read:
``$LSLAPICFG``, ``./lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``) with
``[log] level`` added only where the user set none; no file of the user's is written. With a
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


def with_log_level(text: str, level: int) -> str:
    """``text`` (an INI config) with ``[log] level = <level>`` unless it already sets a level."""
    section = None
    lines = text.splitlines()
    log_header = None
    for i, line in enumerate(lines):
        s = line.strip()
        m = re.fullmatch(r"\[(.+)\]", s)
        if m:
            section = m.group(1).strip().lower()
            if section == "log" and log_header is None:
                log_header = i
            continue
        if section == "log" and re.match(r"level\s*=", s, re.IGNORECASE):
            return text  # the user chose a level: theirs wins
    if log_header is not None:
        lines.insert(log_header + 1, f"level = {level}")
        return "\n".join(lines) + "\n"
    sep = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{sep}[log]\nlevel = {level}\n"


def quiet_liblsl(level: int = DEFAULT_LEVEL) -> str:
    """Configure liblsl's log level for this process (idempotent; a no-op once liblsl has read its
    config). Returns how: ``"content"``, ``"tempfile"`` or ``"already"``."""
    global _configured
    if _configured:
        return "already"
    _configured = True
    user = user_config_path()
    text = user.read_text(errors="replace") if user is not None else ""
    content = with_log_level(text, level)
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

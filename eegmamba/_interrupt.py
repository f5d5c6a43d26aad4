"""Stop requests for long loops: Ctrl-C (and SIGTERM where asked) finishes the current step, then stops."""

from __future__ import annotations

import os
import signal
import sys
import threading


class StopFlag:
    """Context manager: the first of ``signals`` (default SIGINT, i.e. Ctrl-C) sets ``requested``
    (and ``signal_name``): the loop stops cleanly at its next step boundary. A second one raises
    ``KeyboardInterrupt`` at once, or with ``second="exit"`` ends the process at once (exit 130,
    no cleanup: the user asked twice). While ``abort`` is true (e.g. during start-up, before there
    is anything to finish) the first signal raises ``KeyboardInterrupt`` right away. Outside the
    main thread (where signals cannot be caught) it only provides ``requested``."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT,), *, second: str = "raise") -> None:
        if second not in ("raise", "exit"):
            raise ValueError(f"second must be 'raise' or 'exit', got {second!r}")
        self.signals, self.second = tuple(signals), second
        self.requested = False
        self.signal_name: str | None = None
        self.abort = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and self.second == "exit":
            print(f"\n{signal.Signals(signum).name} again: exiting now", file=sys.stderr, flush=True)
            os._exit(130)
        if self.requested or self.abort:
            self.requested = True
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

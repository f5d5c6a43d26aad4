"""Ctrl-C handling for the training loops: finish the current step, save, then stop."""

from __future__ import annotations

import signal
import threading


class StopFlag:
    """Context manager: the first SIGINT (Ctrl-C) sets ``requested`` (the loop saves a resumable
    state at the next step boundary and stops); a second one raises ``KeyboardInterrupt`` at once.
    Outside the main thread (where signals cannot be caught) it only provides ``requested``."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

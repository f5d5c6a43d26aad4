"""Shared plumbing for the thin command modules: one-line errors and exit code 2 for user mistakes."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from eegmamba._checks import UserInputError

EXIT_USAGE = 2


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None,
            prog: str | None = None) -> int:
    """Run ``main(argv)``; turn user errors into ``prog: error: message`` and exit code 2.

    ``UserInputError``, ``ValueError``, ``TypeError`` and ``FileNotFoundError`` are user mistakes by
    the package's convention (see ``eegmamba._checks``): they are printed as one line (set
    ``EEGMAMBA_DEBUG=1`` to see the traceback). Anything else is a bug and keeps its traceback.
    Ctrl-C exits 130 without a traceback.
    """
    prog = prog or sys.argv[0].rsplit("/", 1)[-1] or "eegmamba"
    try:
        return int(main(argv) or 0)
    except (UserInputError, ValueError, TypeError, FileNotFoundError) as exc:
        if os.environ.get("EEGMAMBA_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130

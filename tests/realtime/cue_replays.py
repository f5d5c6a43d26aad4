"""Replayed headsets with their cue streams for the ``test_serve_cues`` tests: a child process (in
the test's LSL session) replays each FILE as NAME with its markers (``NAME-markers``); a replay
starts pushing only once both its EEG and its marker stream have a consumer, so a session that
subscribes to a stream's cues sees every cue of it. When its stdin closes, the child prints each
replay's first sample time ``t0`` (LSL s) as JSON: the test maps decisions back to the file."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from pathlib import Path

from tests.realtime.serve_helpers import ROOT


@contextlib.contextmanager
def cue_replays(pairs: list[tuple[Path, str]], env: dict):
    """Replay ``(file, name)`` pairs while inside; yields a dict filled with ``{name: t0}`` at
    exit (a name whose replay never started has no entry)."""
    args = [str(x) for f, n in pairs for x in (f, n)]
    proc = subprocess.Popen([sys.executable, "-m", "tests.realtime.cue_replays", *args], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    t0s: dict[str, float] = {}
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("cue replays failed to start")
        yield t0s
    finally:
        out, _ = proc.communicate("", timeout=30)
        t0s.update(json.loads(out.strip().splitlines()[-1]))


def _main(argv: list[str]) -> None:
    import mne

    from realtime.replay.player import Replay

    mne.set_log_level("WARNING")
    players = [Replay(f, name=n, repeat=math.inf, wait_for_consumer_s=600.0,
                      wait_for_markers=True).start() for f, n in zip(argv[::2], argv[1::2])]
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        t0s = {p.name: p.t0 for p in players if p.n_samples_pushed > 0}
        for p in players:
            p.stop()
        print(json.dumps(t0s), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])

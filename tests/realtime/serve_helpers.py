"""Helpers of the ``test_serve_*`` tests: ``eegmamba-live`` as a real subprocess in an LSL session
of its own (``[lab] SessionID``: ``--all`` takes only the test's streams on a shared machine),
replayed streams, the summary and log files read back."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOP_S = 0.5  # motor_imagery


def lsl_env(tmp_path: Path) -> dict:
    """The environment of a test's processes: an LSL config with a session id of its own (and the
    package's port range and log level), rich tables 400 columns wide, this checkout first."""
    from realtime.stream.lsl_config import package_config

    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text(package_config(f"[lab]\nSessionID = test-{uuid.uuid4().hex}\n", level=-2))
    return {**os.environ, "LSLAPICFG": str(cfg), "COLUMNS": "400", "PYTHONPATH": str(ROOT)}


def split_prefix(n: int, n_parts: int, owner) -> str:
    """A stream-name prefix whose ``n`` streams fall to every one of ``n_parts`` owners."""
    while True:
        prefix = f"srv-{uuid.uuid4().hex[:6]}"
        if len({owner(f"eegmamba-replay:{prefix}-{i}", n_parts) for i in range(n)}) == n_parts:
            return prefix


class Live:
    """``eegmamba-live`` as a subprocess; stdout lines collected by a thread. One a failing test
    left running is killed with its process group after the test (:func:`kill_leftovers`)."""

    running: list["Live"] = []

    def __init__(self, args: list[str], env: dict) -> None:
        # its own process group: a Ctrl-C is sent to the group, as a terminal does
        self.proc = subprocess.Popen([sys.executable, "-m", "realtime.cli_live", *args], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        Live.running.append(self)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 90.0, count: int = 1,
                 since: int = 0) -> list[re.Match]:
        """The first ``count`` lines from line ``since`` on matching ``pattern``."""
        rx, deadline = re.compile(pattern), time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for ln in self.lines[since:] if (m := rx.search(ln))]
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"no {count} x {pattern!r} in:\n" + "\n".join(self.lines[-40:])
                             + "\n" + (self.proc.stderr.read() or ""))

    def stop(self, sig=signal.SIGTERM, timeout: float = 60.0,
             group: bool = False) -> tuple[int, str]:
        """Send ``sig`` to the process (``group``: to its whole process group, as Ctrl-C in a
        terminal reaches every process of the command); return its exit code and stderr."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._t.join(5)
        return self.proc.returncode, self.proc.stderr.read()


def kill_leftovers() -> None:
    """Kill every ``eegmamba-live`` process group still running (a test failed before stopping it:
    its workers must not go on loading the machine during the next tests)."""
    for live in Live.running:
        if live.proc.poll() is None:
            try:
                os.killpg(live.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            live.proc.wait(10)
    Live.running.clear()


def summary_rows(path: Path) -> dict[str, dict]:
    return {o["name"]: o for o in json.loads(path.read_text())["outputs"]}


def log_by_output(path: Path) -> dict[str, list[dict]]:
    out = defaultdict(list)
    for line in path.read_text().splitlines():
        d = json.loads(line)  # every line whole: flushed
        if "note" not in d:  # a note (DecisionLog.note) is not a decision
            out[d["profile"]].append(d)
    return out


def between(decisions: list[dict]) -> int:
    """Windows of a stream from its first decision to its last, one per hop."""
    return round((decisions[-1]["t_end"] - decisions[0]["t_end"]) / HOP_S) + 1


def live_all(tmp_path, env, *extra) -> Live:
    return Live(["--all", "--profile", "motor_imagery", "--device", "cpu", "--no-dashboard",
                 "--log", str(tmp_path / "log.jsonl"), "--summary-json",
                 str(tmp_path / "summary.json"), *extra], env)


def worker_pids(live: Live) -> dict[int, int]:
    """worker number -> pid, from the supervisor's start lines."""
    ms = live.wait_for(r"\[workers\] worker (\d+)/2 \(pid (\d+)\)", count=2)
    return {int(m.group(1)): int(m.group(2)) for m in ms}

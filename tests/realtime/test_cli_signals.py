"""``eegmamba-live`` stopped the way supervisors and users stop it, as a real subprocess: SIGTERM and
Ctrl-C end cleanly (summary, log flushed, exit 0); a second Ctrl-C exits at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _start(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "realtime.cli_live", "--demo", "--no-dashboard", "--device", "cpu",
         "--log", str(log), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 120.0) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    proc.kill()
    raise AssertionError(f"no line starting with {prefix!r}: {''.join(lines)}")


@pytest.mark.parametrize("sig,shown", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_one_signal_stops_cleanly(tmp_path, sig, shown):
    log = tmp_path / "decisions.jsonl"
    proc = _start(log=log)
    head = _wait_for_line(proc, "motor_imagery #2 ")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    stdout = "".join(head) + out
    assert proc.returncode == 0, err
    assert f"stopping ({shown})" in stdout and "eegmamba-live summary" in stdout
    assert "Traceback" not in err
    printed = [ln for ln in stdout.splitlines() if ln.startswith("motor_imagery #")]
    logged = [json.loads(ln) for ln in log.read_text().splitlines()]  # every line whole: flushed
    assert len(logged) == len(printed) >= 3
    assert [d["seq"] for d in logged] == list(range(len(logged)))


def test_second_ctrl_c_exits_at_once(tmp_path):
    """Inference made slow (3 s per batch): the first Ctrl-C waits for the step to end, the second
    one does not wait."""
    log = tmp_path / "decisions.jsonl"
    proc = _start("--inference-delay-ms", "3000", log=log)
    _wait_for_line(proc, "motor_imagery #0 ")
    time.sleep(1.2)  # the next window (0.5 s later) is in its 3-s inference now
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 130 and "SIGINT again: exiting now" in err

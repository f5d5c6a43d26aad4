"""``benchmarks/bench_latency.py``'s driver of the documented command: N replayed streams served by
``eegmamba-live --all --workers W`` as a subprocess, markers received by another process.

- LSL traffic is kept to this run: every process of it reads an LSL config naming a session id of
  its own (liblsl ``[lab] SessionID``), so ``--all`` takes only these streams on a shared machine.
- The streams (``--serve`` child processes, 64 streams each) push from the moment ``eegmamba-live``
  opens their inlet plus ``stagger * i / N`` seconds: a stream's windows are cut from its first
  sample, so ``stagger`` spreads the windows' phases (0: all complete together, the worst case for
  a batch; 0.5 = one hop: evenly spread, as independent headsets).
- Latency = marker received by the outside client (``benchmarks/_marker_client.py``) minus the
  decision's ``t_end`` = the timestamp of the window's last sample, which the replay stamps with
  the time it is due and pushes right then (so: push of the window's last sample -> received).
- Accounting from ``--summary-json``: every window the run produced is decided or counted as
  dropped with its reason; ``uncounted`` must be 0.
- CPU: user + system time of the ``eegmamba-live`` process tree (supervisor, workers, the reserve
  worker) over the measurement, in % of one core, and that per stream.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PER_SERVER = 64  # streams per replay server process


def private_lsl_session() -> str:
    """Point this process (and its children) at an LSL config with a session id of their own,
    keeping the user's config text and liblsl quiet; returns the session id. Call before any LSL
    use in this process."""
    sid = f"eegmamba-bench-{uuid.uuid4().hex[:10]}"
    from realtime.stream.lsl_config import package_config, user_config_path

    user = user_config_path()
    text = user.read_text(errors="replace") if user is not None else ""
    fd, name = tempfile.mkstemp(prefix="eegmamba-bench-lsl-", suffix=".cfg")
    with os.fdopen(fd, "w") as fh:  # the package's port range in every process: all outlets seen
        fh.write(package_config(f"{text}\n[lab]\nSessionID = {sid}\n", level=-2))
    os.environ["LSLAPICFG"] = name
    return sid


def _serve(path: str, prefix: str, first: int, count: int, n: int, stagger: float,
           markers: bool) -> None:
    """Child process: streams ``<prefix>-<first>`` .. ``<prefix>-<first+count-1>`` until stdin closes."""
    import mne

    from realtime.replay.player import Replay

    mne.set_log_level("WARNING")

    class Delayed(Replay):
        delay_s = 0.0

        def _wait_for_consumers(self) -> None:  # the consumer's first sample comes delay_s later
            super()._wait_for_consumers()
            self._stop.wait(self.delay_s)

    players = []
    for i in range(first, first + count):
        r = Delayed(path, name=f"{prefix}-{i}", repeat=math.inf, chunk_size=10, markers=markers,
                    wait_for_consumer_s=3600.0)
        r.delay_s = stagger * i / n
        players.append(r.start())
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        for p in players:
            p.stop()


@contextlib.contextmanager
def stream_server(path: Path, prefix: str, n: int, stagger: float = 0.0, markers: bool = False,
                  env: dict | None = None):
    """``n`` replayed streams ``<prefix>-<i>`` of ``path`` (child processes, environment ``env``)
    while inside."""
    procs = []
    try:
        for first in range(0, n, PER_SERVER):
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--serve", str(path), prefix, str(first),
                 str(min(PER_SERVER, n - first)), str(n), str(stagger), str(int(markers))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env))
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("replay server failed to start")
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(OSError):
                p.stdin.close()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def live_command(workers: int, checkpoint: Path, args, summary: Path) -> list[str]:
    """The documented command, as the benchmark runs it."""
    return [sys.executable, "-m", "realtime.cli_live", "--all", "--profile", "motor_imagery",
            "--checkpoint", str(checkpoint), "--workers", str(workers), "--device", args.device,
            "--threads", str(args.threads), "--no-dashboard", "--summary-json", str(summary)]


def outlet_name(stream: str) -> str:
    """The marker outlet ``eegmamba-live --all`` publishes for the motor-imagery profile on ``stream``."""
    return f"eegmamba-motor_imagery@{stream}"


def measure_cli(n: int, checkpoint: Path, args, stagger: float, workers: int, pct) -> dict:
    """One run of the command on ``n`` fresh streams; the result row of ``bench_latency.py``."""
    import pylsl

    from benchmarks._marker_client import marker_client

    prefix = f"latcli-{uuid.uuid4().hex[:6]}"
    streams = [f"{prefix}-{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, stream_server(args.file, prefix, n, stagger):
        summary = Path(tmp) / "summary.json"
        live = subprocess.Popen(live_command(workers, checkpoint, args, summary), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            with marker_client([outlet_name(s) for s in streams], full=True,
                               timeout=args.start_timeout) as received:
                time.sleep(args.warmup)
                cpu0, t0, w0 = tree_cpu_s(live.pid), pylsl.local_clock(), time.monotonic()
                time.sleep(args.duration)
                cpu1, t1, wall = tree_cpu_s(live.pid), pylsl.local_clock(), time.monotonic() - w0
                time.sleep(0.3)  # the last markers reach the client
            live.send_signal(signal.SIGTERM)  # clean stop: the summary counts every window
            _, err = live.communicate(timeout=60)
        finally:
            if live.poll() is None:
                live.kill()
        if live.returncode != 0 or not summary.is_file():
            raise RuntimeError(f"eegmamba-live exited {live.returncode}: {err[-2000:]}")
        report = json.loads(summary.read_text())
    recs = [r for rs in received().values() for r in rs if t0 <= r[1] <= t1]
    lat = [1e3 * (r[1] - r[2]) for r in recs]
    proc_ms = [r[3] for r in recs]
    outs = report["outputs"]
    drops: dict = {}
    for o in outs:
        for k, v in o["drops"].items():
            drops[k] = drops.get(k, 0) + v
    decided = sum(o["decisions"] for o in outs)
    unclassified = sum(o["drops"].get(k, 0) for o in outs for k in ("stale", "shutdown", "worker_restart"))
    emitted = sum(o["windows"] for o in outs)
    cpu = 100 * (cpu1 - cpu0) / wall
    return {
        "streams": n, "stagger_s": stagger, "workers": workers, "mode": "cli",
        "windows": emitted + sum(drops.values()) - unclassified, "decisions": decided,
        "markers_received": len(recs), "dropped": drops, "waiting_at_end": 0,
        "uncounted": emitted - decided - unclassified,
        "decisions_per_s_per_stream": round(len(recs) / wall / n, 3),
        "stages_ms": {"push_to_received": pct(lat), "arrival_to_pushed": pct(proc_ms)},
        "push_to_received": pct(lat), "gaps": sum(s.get("n_gaps", 0) for s in report["streams"]),
        "process_cpu_pct": round(cpu, 1), "cpu_pct_per_stream": round(cpu / n, 2),
        "restarts": report.get("restarts", []),
    }


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--serve":
    sys.path.insert(0, str(REPO))
    a = sys.argv[2:]
    _serve(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), float(a[5]), bool(int(a[6])))

"""``benchmarks/bench_latency.py``'s driver of the documented command: N replayed streams served by
``eegmamba-live --all --workers W`` as a subprocess, markers received by another process.

- LSL traffic is kept to this run: every process of it reads an LSL config naming a session id of
  its own (``_latency_common.private_lsl_session``), so ``--all`` takes only these streams on a
  shared machine.
- The streams (``_latency_common.stream_server``: child processes, 64 streams each) push from the
  moment ``eegmamba-live`` opens their inlet plus ``stagger * i / N`` seconds: a stream's windows
  are cut from its first sample, so ``stagger`` spreads the windows' phases (0: all complete
  together, the worst case for a batch; 0.5 = one hop: evenly spread, as independent headsets).
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
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._latency_common import percentiles, stream_server  # noqa: E402


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


def measure_cli(n: int, checkpoint: Path, args, stagger: float, workers: int) -> dict:
    """One run of the command on ``n`` fresh streams; the result row of ``bench_latency.py``."""
    import pylsl

    from benchmarks._marker_client import marker_client

    prefix = f"latcli-{uuid.uuid4().hex[:6]}"
    streams = [f"{prefix}-{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, stream_server(args.file, prefix, n, stagger=stagger):
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
        "stages_ms": {"push_to_received": percentiles(lat),
                      "arrival_to_pushed": percentiles(proc_ms)},
        "push_to_received": percentiles(lat), "gaps": sum(s.get("n_gaps", 0) for s in report["streams"]),
        "process_cpu_pct": round(cpu, 1), "cpu_pct_per_stream": round(cpu / n, 2),
        "restarts": report.get("restarts", []),
    }

"""Sample-to-marker latency of ``eegmamba-live`` for the motor-imagery profile, 1 and N streams.

For each stream count N: N replayed EEGMMIDB streams (``S001R04``, 64 ch @ 160 Hz, chunks of 10,
served by a child process so pushing does not share our GIL) are acquired by ONE acquisition thread
and classified by ONE live loop (the real ``realtime.live.LiveLoop``: shared preprocessing, 4-s
windows every 0.5 s, newest-only scheduling, single-task EEGMamba batched across streams, marker and
probability outlets). Two latencies per decision:

- ``push``: local clock at the marker push minus the window's last sample timestamp; the replay
  stamps a chunk's last sample with its push time, so this is push-to-marker (what the peers in
  ``tools/bench_latency_peers.py`` report; it includes the resampler's ~10-sample look-ahead).
- ``arrival``: the published ``latency_ms`` (arrival of the window's last sample at our inlet).

Every window is accounted for: produced = published + dropped (by reason); ``uncounted`` must be 0.
The largest N with p99(push) ≤ 100 ms and nothing uncounted is reported.

    python tools/bench_latency.py --streams 1,8,16,32,64 --duration 20 --json latency.json
    python tools/bench_latency.py --streams 1 --peers csp,cnn   # peers in the same run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.bench_latency_peers import replay_server  # noqa: E402

DEFAULT_FILE = REPO.parent / "shared" / "data" / "motor_imagery" / "S001R04.edf"


def _checkpoint(arg: str | None, tmp: Path) -> Path:
    """The given checkpoint, else the bundled demo one, else a random-weight single-task model
    (latency does not depend on the weights)."""
    from realtime.session import DEMO_CHECKPOINT

    if arg:
        return Path(arg)
    if DEMO_CHECKPOINT.is_dir():
        return DEMO_CHECKPOINT
    import torch

    from eegmamba import TaskSpec, create_model
    from eegmamba.checkpoint import save_checkpoint
    from eegmamba.profiles import load_profile

    p = load_profile("motor_imagery")
    torch.manual_seed(0)
    spec = TaskSpec(p.task, p.n_channels, p.window_samples, len(p.classes), p.sfreq, p.channels.names,
                    p.classes)
    return save_checkpoint(tmp / "mi_random", create_model("eegmamba_single", tasks=[spec]).eval(), {})


def _measure(names: list[str], checkpoint: Path, duration: float, device: str, warmup: float,
             threads: int) -> dict:
    import pylsl

    from eegmamba.profiles import load_profile
    from realtime.acquisition import Acquisition, StreamQuery
    from realtime.inference import InferenceEngine
    from realtime.live import LiveLoop
    from realtime.pipeline import ProfilePipeline

    profile = load_profile("motor_imagery")
    acq = Acquisition()
    engine = InferenceEngine(device, threads=threads)
    model = engine.load(checkpoint)
    pipelines = []
    for n in names:
        inlet = acq.add(StreamQuery(name=n), timeout=20.0)
        pipelines.append(ProfilePipeline(profile, inlet.key, inlet.ch_names, inlet.sfreq, model.key))
    engine.warm_up()
    push_lat: list[float] = []
    arrival_lat: list[float] = []
    recording = [False]

    def record(d) -> None:
        if recording[0]:
            push_lat.append((pylsl.local_clock() - d.t_end) * 1e3)
            arrival_lat.append(d.latency_ms)

    loop = LiveLoop(acq, engine, pipelines, on_decision=record)
    with acq:
        loop.run(warmup)  # fill the 4-s windows, settle the clocks
        base_windows = sum(o.pipeline.n_windows for o in loop.outputs)
        base_pub = sum(o.seq for o in loop.outputs)
        base_drops = loop.drops()
        recording[0] = True
        cpu0, t0 = time.process_time(), time.monotonic()
        loop.run(duration)
        wall = time.monotonic() - t0
        cpu = 100 * (time.process_time() - cpu0) / wall
        health = acq.health()
    loop.close()
    windows = sum(o.pipeline.n_windows for o in loop.outputs) - base_windows
    published = sum(o.seq for o in loop.outputs) - base_pub
    drops = loop.drops() - base_drops
    p = np.percentile(push_lat, [50, 95, 99]) if push_lat else [float("nan")] * 3
    a = np.percentile(arrival_lat, [50, 99]) if arrival_lat else [float("nan")] * 2
    return {
        "streams": len(names), "windows": windows, "decisions": published,
        "dropped": dict(drops), "uncounted": windows - published - sum(drops.values()),
        "decisions_per_s_per_stream": published / wall / len(names),
        "push_p50_ms": float(p[0]), "push_p95_ms": float(p[1]), "push_p99_ms": float(p[2]),
        "push_max_ms": float(max(push_lat)) if push_lat else float("nan"),
        "arrival_p50_ms": float(a[0]), "arrival_p99_ms": float(a[1]),
        "gaps": sum(h.n_gaps for h in health), "process_cpu_pct": round(cpu, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help="recording to replay")
    ap.add_argument("--streams", default="1,8,16,32,64", help="comma-separated stream counts")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds measured per stream count")
    ap.add_argument("--warmup", type=float, default=6.0, help="seconds before measuring")
    ap.add_argument("--checkpoint", default=None, help="checkpoint (default: bundled demo)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (as eegmamba-live)")
    ap.add_argument("--peers", default="", help="also run these peers of bench_latency_peers.py "
                    "(e.g. floor,csp,cnn) on 1 stream in this run")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.streams.split(",")]
    prefix = f"latbench-{uuid.uuid4().hex[:6]}"
    results = []
    with tempfile.TemporaryDirectory() as tmp, \
            replay_server(args.file, prefix, max(counts), "eegmamba", 10):
        ckpt = _checkpoint(args.checkpoint, Path(tmp))
        for n in counts:
            res = _measure([f"{prefix}-{i}" for i in range(n)], ckpt, args.duration, args.device,
                           args.warmup, args.threads)
            results.append(res)
            print(f"eegmamba-live {n:>3} stream(s): p50 {res['push_p50_ms']:.1f} ms, "
                  f"p99 {res['push_p99_ms']:.1f} ms (push→marker); arrival p99 "
                  f"{res['arrival_p99_ms']:.1f} ms; {res['decisions_per_s_per_stream']:.2f} "
                  f"decisions/s/stream; dropped {res['dropped']}; uncounted {res['uncounted']}; "
                  f"CPU {res['process_cpu_pct']:.0f}%", flush=True)
    ok = [r["streams"] for r in results if r["push_p99_ms"] <= 100 and r["uncounted"] == 0]
    print(f"largest stream count with p99 <= 100 ms and every window counted: {max(ok) if ok else 0}")
    peers = None
    if args.peers:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "peers.json"
            subprocess.run([sys.executable, str(REPO / "tools" / "bench_latency_peers.py"),
                            "--streams", "1", "--duration", str(args.duration), "--peers", args.peers,
                            "--json", str(out)], check=True, cwd=REPO)
            peers = json.loads(out.read_text())["results"]
    report = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "device": args.device, "torch_threads": args.threads, "file": args.file.name,
        "profile": "motor_imagery (4 s windows, hop 0.5 s, 22 ch, 200 Hz)",
        "latency_from": "push time of the window's last sample (push) / its arrival (arrival)",
        "results": results, "max_streams_p99_le_100ms": max(ok) if ok else 0, "peers": peers,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

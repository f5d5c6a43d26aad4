"""Decision latency of the live loop while a calibration fine-tunes, against no fine-tuning, in one run.

One ``eegmamba-live`` session (the real ``realtime.session.Session``: acquisition thread, live loop,
the bundled motor-imagery checkpoint) classifies ``S019R12`` streamed by an ``eegmamba-replay``
child process (so pushing does not share our GIL). The run goes through phases of ``--phase-s``
seconds each; decisions are tagged with the phase they were published in:

- ``none``: no fine-tuning (the reference);
- ``worker``: the calibration worker as ``eegmamba-live --calibrate`` starts it
  (``python -m realtime.calibration.worker``, nice +10, 1 torch thread);
- ``worker-2t-nice0``: the same worker with 2 torch threads and no nice (what a default torch
  process would take on a 2-core machine);
- ``thread``: the same ``finetune`` call in a thread of the live process (1 torch thread): the
  design we did not choose (GIL and CPU shared with the loop).

The fine-tuning workload is the demo's calibration: the windows of ``S019R04`` + ``S019R08`` on the
training grid, ``--layers`` (default ``last``), epochs without end (the phase stops it). Latency is
the published ``latency_ms`` (arrival of the window's last sample → marker pushed). Printed as a
table with ratios to ``none``; ``--json`` writes the figures.

    python benchmarks/bench_calibration.py --phase-s 40 --json calib_latency.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._latency_common import percentiles, stream_server  # noqa: E402

PHASES = ("none", "worker", "worker-2t-nice0", "none-again", "thread")


def _windows(job: Path, layers: str) -> None:
    """The demo's calibration windows and an endless fine-tuning job in ``job``."""
    from eegmamba.data.dataset import build_windows
    from eegmamba.profiles import load_profile
    from eegmamba.training.calibrate import CalibConfig, window_trials
    from realtime.session import DEMO_CALIBRATION, DEMO_CHECKPOINT, DEMO_PROFILE

    profile = load_profile(DEMO_PROFILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = build_windows([str(p) for p in DEMO_CALIBRATION], profile)
    groups = window_trials(ws.files, ws.t_start, profile)
    np.savez(job / "windows.npz", X=ws.X, y=ws.y, groups=groups.astype(str), t_start=ws.t_start)
    cfg = CalibConfig(layers=layers, epochs=100000, patience=100000)
    (job / "job.json").write_text(json.dumps({
        "base_checkpoint": str(DEMO_CHECKPOINT.resolve()), "task": DEMO_PROFILE,
        "config": dataclasses.asdict(cfg), "threads": 1, "classes": list(profile.classes)}))


def _worker(job: Path, threads: int, nice: int) -> subprocess.Popen:
    spec = json.loads((job / "job.json").read_text())
    spec["threads"], spec["nice"] = threads, nice
    (job / "job.json").write_text(json.dumps(spec))
    return subprocess.Popen([sys.executable, "-m", "realtime.calibration.worker", str(job)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def _thread(job: Path, stop: threading.Event) -> threading.Thread:
    from eegmamba.checkpoint import load_checkpoint
    from eegmamba.training.calibrate import CalibConfig, finetune

    spec = json.loads((job / "job.json").read_text())
    data = np.load(job / "windows.npz")
    model, _ = load_checkpoint(spec["base_checkpoint"])
    t = threading.Thread(target=finetune, daemon=True, args=(model, data["X"], data["y"], data["groups"]),
                         kwargs={"config": CalibConfig(**spec["config"]), "should_stop": stop.is_set})
    t.start()
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase-s", type=float, default=40.0, help="seconds per phase")
    ap.add_argument("--layers", default="last", choices=("head", "last", "all"))
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset, in order")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    import torch

    from realtime.stream.lsl_config import quiet_liblsl
    from realtime.session import DEMO_CHECKPOINT, DEMO_PROFILE, DEMO_RECORDING, Session, SessionOptions

    quiet_liblsl()
    torch.set_num_threads(1)
    prefix = f"bench-calib-{uuid.uuid4().hex[:6]}"
    stack = contextlib.ExitStack()
    stack.enter_context(stream_server(DEMO_RECORDING, prefix, 1, wait_for_consumer=False))
    job = Path(tempfile.mkdtemp(prefix="bench-calib-"))
    _windows(job, args.layers)
    phases = [p for p in args.phases.split(",") if p]
    lat: dict[str, list[float]] = {p: [] for p in phases}
    current = {"phase": None}
    session = Session(SessionOptions(profiles=[DEMO_PROFILE], checkpoints=[str(DEMO_CHECKPOINT)],
                                     stream=f"{prefix}-0", device="cpu", resolve_timeout_s=20))
    session.loop.on_decision = lambda d: current["phase"] and lat[current["phase"]].append(d.latency_ms)

    def driver() -> None:
        time.sleep(5.0)  # the stream settles
        for phase in phases:
            proc, stop, th = None, threading.Event(), None
            if phase.startswith("worker"):
                proc = _worker(job, 2 if "2t" in phase else 1, 0 if "nice0" in phase else 10)
            elif phase == "thread":
                th = _thread(job, stop)
            time.sleep(min(10.0, args.phase_s / 3))  # let the worker get past its imports
            current["phase"] = phase
            time.sleep(args.phase_s)
            current["phase"] = None
            if proc is not None:
                proc.terminate()
                proc.wait(10)
            if th is not None:
                stop.set()
                th.join(60)
        done.set()

    done = threading.Event()
    threading.Thread(target=driver, daemon=True).start()
    try:
        session.loop.run(None, should_stop=done.is_set)
    finally:
        session.close()
        stack.close()
    rows = {}
    base = percentiles(lat["none"]) if lat.get("none") else None
    print(f"decision latency (ms) while fine-tuning ({args.layers}), {args.phase_s:g} s per phase, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'phase':<18}{'n':>6}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}   p50/p99 vs none")
    for p in phases:
        r = percentiles(lat[p])
        if not r["n"]:
            print(f"{p:<18}{0:>6}")
            continue
        rows[p] = r
        ratio = "" if base is None else f"{r['p50'] / base['p50']:.2f} / {r['p99'] / base['p99']:.2f}"
        print(f"{p:<18}{r['n']:>6}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}"
              f"   {ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load": os.getloadavg(), "layers": args.layers, "phase_s": args.phase_s,
            "phases": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak test: N minutes of replay through the live session ``eegmamba-live`` builds, sampled every
``--interval`` seconds: RSS, open file descriptors, threads, latency percentiles of the interval,
queue and buffer sizes, decisions and drops — a table on stdout and JSON (``--out``).

    python benchmarks/soak.py --minutes 60 --out soak.json

By default it runs the bundled demo (recording looped forever, bundled checkpoint), exactly what
``eegmamba-live --demo`` runs, in this process (so every queue can be read). Targets (issue 10):
RSS growth < 5 % after the warm-up, no latency drift (p50/p99 of the last intervals vs the first after
warm-up), and every window accounted for (decisions + drops by reason = windows the samples allow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.session import Session, SessionOptions  # noqa: E402


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _queues(session: Session) -> dict:
    """Sizes of everything that could grow: inlet queues, pipeline buffers, scheduler."""
    loop = session.loop
    out = {"waiting": len(getattr(loop, "_waiting", {}))}
    for inlet in session.acquisition.inlets:
        out[f"inlet_queue[{inlet.key}]"] = inlet._queue.qsize()
        model = inlet.monitor.timestamps
        if model is not None:
            out[f"ts_rates[{inlet.key}]"] = len(model._rates)
    for o in loop.outputs:
        p = o.pipeline
        out[f"arrivals[{o.name}]"] = len(p._arrivals)
        out[f"held[{o.name}]"] = len(getattr(p, "_held", ()))
        out[f"windower_buf[{o.name}]"] = int(p.windower._buf_t.size)
        marks = getattr(p.windower, "_marks", None)
        if marks is not None:
            out[f"marks[{o.name}]"] = len(marks.runs) + len(marks.breaks)
        out[f"history[{o.name}]"] = len(o.history)
    return out


def _accounting(session: Session) -> dict:
    """Per output: window indices the samples pushed through allow (from the windower's sample
    count; valid without a stream reset) vs decisions + drops by reason + windows still waiting."""
    rows, waiting = {}, getattr(session.loop, "_waiting", {})
    for o in session.loop.outputs:
        p = o.pipeline
        drops = dict(p.all_drops())
        pending = int(id(p) in waiting)
        accounted = o.seq + sum(drops.values()) + pending
        w = p.windower
        allowed = max(0, (w.n_samples_seen - w.length) // w.hop + 1)
        rows[o.name] = {"decisions": o.seq, "drops": drops, "waiting": pending,
                        "accounted": accounted, "allowed_by_samples": allowed,
                        "unaccounted": allowed - accounted, "stream_resets": session.loop.n_stream_resets}
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="duration")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup-minutes", type=float, default=5.0,
                    help="RSS growth and latency drift are measured from the end of this")
    ap.add_argument("--out", default="soak.json", help="JSON output")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (as eegmamba-live)")
    args = ap.parse_args(argv)

    session = Session(SessionOptions(demo=True, device="cpu", threads=args.threads))
    lat: list[float] = []
    lock = threading.Lock()

    def on_decision(d):
        with lock:
            lat.append(d.latency_ms)

    session.loop.on_decision = on_decision
    samples, t0 = [], time.monotonic()
    end = t0 + args.minutes * 60.0
    print(f"{'t min':>6} {'RSS MiB':>8} {'fds':>4} {'thr':>4} {'dec':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'drops':>30} {'max queue':>10}", flush=True)
    interrupted = False
    try:
        while time.monotonic() < end:
            session.loop.run(min(args.interval, end - time.monotonic()))
            with lock:
                v, lat[:] = np.array(lat), []
            out = session.loop.outputs[0]
            q = _queues(session)
            row = {
                "t_s": round(time.monotonic() - t0, 2), "rss_mib": round(_rss_mib(), 2),
                "fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(),
                "decisions": out.seq, "n_latency": int(v.size),
                "p50_ms": float(np.percentile(v, 50)) if v.size else None,
                "p95_ms": float(np.percentile(v, 95)) if v.size else None,
                "p99_ms": float(np.percentile(v, 99)) if v.size else None,
                "drops": dict(out.pipeline.all_drops()), "queues": q,
                "samples_received": session.acquisition.health()[0].n_samples,
                "samples_pushed": session.replay.n_samples_pushed,
                # the machine is shared: the 1-min load average tells a loaded interval from drift
                "load1": round(os.getloadavg()[0], 2),
            }
            samples.append(row)
            drops = ",".join(f"{k}={n}" for k, n in sorted(row["drops"].items())) or "-"
            print(f"{row['t_s'] / 60:6.1f} {row['rss_mib']:8.1f} {row['fds']:4d} {row['threads']:4d} "
                  f"{row['decisions']:6d} {row['p50_ms'] or float('nan'):7.1f} "
                  f"{row['p99_ms'] or float('nan'):7.1f} {drops:>30} {max(q.values()):10d}", flush=True)
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: the report of what ran is still written
        interrupted = True
    finally:
        accounting = _accounting(session)
        health = session.acquisition.health()[0]
        session.close()
    summary = summarize(samples, args.warmup_minutes * 60.0)
    summary["accounting"] = accounting
    summary["interrupted"] = interrupted
    summary["stream"] = {"n_samples": health.n_samples, "n_gaps": health.n_gaps,
                         "n_jumps": health.n_jumps, "n_losses": health.n_losses,
                         "jitter_p95_ms": health.jitter_p95_ms, "measured_srate": health.measured_srate}
    report = {"config": vars(args), "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
              "samples": samples, "summary": summary}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


def summarize(samples: list[dict], warmup_s: float) -> dict:
    """RSS growth after warm-up, latency first vs last sixth after warm-up, fd and queue ranges."""
    after = [s for s in samples if s["t_s"] >= warmup_s] or samples
    if not after:
        return {}
    k = max(1, len(after) // 6)
    first, last = after[:k], after[-k:]

    def med(rows, key):
        vals = [r[key] for r in rows if r[key] is not None]
        return float(np.median(vals)) if vals else None

    rss0, rss1 = after[0]["rss_mib"], after[-1]["rss_mib"]
    return {
        "minutes": samples[-1]["t_s"] / 60.0, "warmup_minutes": warmup_s / 60.0,
        "rss_mib_after_warmup": rss0, "rss_mib_end": rss1, "rss_mib_max": max(s["rss_mib"] for s in after),
        "rss_growth_pct": 100.0 * (rss1 / rss0 - 1.0),
        "fds_range": [min(s["fds"] for s in after), max(s["fds"] for s in after)],
        "threads_range": [min(s["threads"] for s in after), max(s["threads"] for s in after)],
        "p50_ms_first": med(first, "p50_ms"), "p50_ms_last": med(last, "p50_ms"),
        "p99_ms_first": med(first, "p99_ms"), "p99_ms_last": med(last, "p99_ms"),
        "max_queue_sizes": {k: max(s["queues"].get(k, 0) for s in samples) for k in samples[-1]["queues"]},
        "decisions": samples[-1]["decisions"], "drops": samples[-1]["drops"],
    }


if __name__ == "__main__":
    sys.exit(main())

"""Sample-to-marker latency of ``eegmamba-live`` for the motor-imagery profile, 1 and N streams, with
the hand-glued peers measured in the same run.

By default every configuration runs the documented command, ``eegmamba-live --all --workers W``,
as a subprocess on N fresh replayed streams, for each W of ``--workers`` (``1`` = one process, as
before; more = a supervisor and W worker processes), with the markers received by another process
and the accounting read from its ``--summary-json``; how, in ``benchmarks/_live_cli.py``. The whole
run keeps its LSL traffic to itself (an LSL session id of its own), so ``--all`` takes only its
streams on a shared machine. CPU: the ``eegmamba-live`` process tree's, and per stream.

``--in-process`` measures instead the loop inside this process, with the stage breakdown:
for each stream count N: N replayed EEGMMIDB streams (``S001R04``, 64 ch @ 160 Hz, chunks of 10,
served by a child process so pushing does not share our GIL) are acquired by ONE acquisition thread
and classified by ONE live loop (the real ``realtime.loop.live.LiveLoop``: shared preprocessing, the
``motor_imagery`` profile's windows (3 s every 0.5 s), newest-only scheduling, single-task EEGMamba batched across streams, marker and
probability outlets). An outside pylsl client (another child process, ``benchmarks/_marker_client.py``)
receives every marker. Latency is taken from the **push of the window's last sample** (the replay
stamps each sample with the time it is due and pushes a chunk when its last sample is due; an MI
window of whole 0.5-s hops at 160 Hz ends on the last sample of a 10-sample chunk, so the reference
is that chunk's push, as for the peers) to:

- ``recv``: the marker received by the outside client (the headline figure);
- ``pushed``: the marker pushed by the loop (what ``benchmarks/bench_latency_peers.py`` reports as the
  peers' decision time; their markers are also timed at an outside client: ``recv``).

Per stage (``LiveLoop(on_timing=...)``): push → arrival (LSL transport + the acquisition thread's
poll), arrival → preprocessed (wake-up, drain, filter, resample, window), preprocessed → inferred
(batch across streams + model), inferred → pushed (smoothing, outlets), pushed → received.

``--stagger 0`` (default) opens all inlets at once: every stream's windows complete in the same
~10 ms, the worst case for a batch; ``--stagger 0.5`` spreads the phases over one hop, as
independent headsets would be.

Every window is accounted for: produced = published + dropped (by reason: in the windower, or
``stale`` in the scheduler) + still waiting for the next batch when the measurement ends;
``uncounted`` must be 0.
The largest N with p99(recv) ≤ 100 ms and nothing uncounted is reported.

    python benchmarks/bench_latency.py --streams 1,64,128 --stagger 0,0.5 --workers 1,2 --peers cnn
    python benchmarks/bench_latency.py --in-process --streams 1,16,64 --duration 20 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._latency_common import (DEFAULT_FILE, mi_profile, percentiles,  # noqa: E402
                                        private_lsl_session, stream_server)
from benchmarks._live_cli import measure_cli  # noqa: E402
from benchmarks._marker_client import marker_client  # noqa: E402
STAGES = (("push_to_arrival", "source", "arrival"), ("arrival_to_preprocessed", "arrival", "preprocessed"),
          ("preprocessed_to_inferred", "preprocessed", "inferred"), ("inferred_to_pushed", "inferred", "pushed"),
          ("pushed_to_received", "pushed", "received"), ("push_to_pushed", "source", "pushed"),
          ("push_to_received", "source", "received"))


def _checkpoint(arg: str | None, tmp: Path, window_s: float | None) -> Path:
    """The given checkpoint, else the bundled demo one if it fits the profile, else a random-weight
    single-task model of the profile's shape (latency does not depend on the weights)."""
    from realtime.session import DEMO_CHECKPOINT

    if arg:
        return Path(arg)
    p = mi_profile(window_s)
    if DEMO_CHECKPOINT.is_dir() and p.window.length_s == mi_profile(None).window.length_s:
        return DEMO_CHECKPOINT
    import torch

    from eegmamba import TaskSpec, create_model
    from eegmamba.checkpoint import save_checkpoint

    torch.manual_seed(0)
    spec = TaskSpec(p.task, p.n_channels, p.window_samples, len(p.classes), p.sfreq, p.channels.names,
                    p.classes)
    return save_checkpoint(tmp / "mi_random", create_model("eegmamba_single", tasks=[spec]).eval(), {})


def _profile_text(window_s: float | None) -> str:
    p = mi_profile(window_s)
    return (f"motor_imagery ({p.window.length_s:g} s windows, hop {p.window.hop_s:g} s, "
            f"{p.n_channels} ch, {p.sfreq:g} Hz, classes {list(p.classes)})")


def _measure(names: list[str], checkpoint: Path, args, stagger: float) -> dict:
    from realtime.stream.acquisition import Acquisition, AcquisitionConfig, StreamQuery
    from realtime.loop.inference import InferenceEngine
    from realtime.loop.live import LiveLoop
    from realtime.loop.pipeline import ProfilePipeline

    profile = mi_profile(args.window_s)
    acq = Acquisition(AcquisitionConfig(**({"poll_interval_s": args.poll_interval}
                                           if args.poll_interval else {})))
    engine = InferenceEngine(args.device, threads=args.threads,
                             **({"batch_threads": args.batch_threads} if args.batch_threads else {}))
    model = engine.load(checkpoint)
    pipelines = []
    t_open = time.monotonic()
    for i, n in enumerate(names):
        # a stream's windows are cut from the first sample its inlet receives: spreading the opens
        # over --stagger seconds spreads the streams' window phases (independent headsets)
        time.sleep(max(0.0, t_open + stagger * i / len(names) - time.monotonic()))
        inlet = acq.add(StreamQuery(name=n), timeout=20.0)
        pipelines.append(ProfilePipeline(profile, inlet.key, inlet.ch_names, inlet.sfreq, model.key))
    engine.warm_up()
    timings: list = []
    recording = [False]

    def record(t) -> None:
        if recording[0]:
            timings.append(t)

    try:
        extra = {"batch_budget_s": args.batch_budget} if args.batch_budget is not None else {}
        if args.no_prime:
            extra["prime_lead_s"] = None
        if args.switch_interval is not None:
            extra["switch_interval_s"] = args.switch_interval or None
        loop = LiveLoop(acq, engine, pipelines, on_timing=record, **extra)
    except TypeError:  # an older LiveLoop (before/after runs): decisions only, no stage times
        def record_decision(d) -> None:
            import pylsl

            record(SimpleNamespace(output=d.profile, seq=d.seq, batch=float("nan"), source=d.t_end,
                                   arrival=None, preprocessed=None, inferred=None,
                                   pushed=pylsl.local_clock()))

        loop = LiveLoop(acq, engine, pipelines, on_decision=record_decision)
    marker_names = {o.outlets.marker_name: o.name for o in loop.outputs}
    # other processes may publish the same stream names: ours by their source ids
    ours = [f"{o.outlets.source_id}-markers" for o in loop.outputs]
    with marker_client(list(marker_names), ours) as received, acq:
        loop.run(args.warmup)  # fill the first windows, settle the clocks
        base_windows = sum(o.pipeline.n_windows for o in loop.outputs)
        base_pub = sum(o.seq for o in loop.outputs)
        base_drops = loop.drops()
        base_waiting = getattr(loop, "n_waiting", 0)
        recording[0] = True
        cpu0, t0 = time.process_time(), time.monotonic()
        loop.run(args.duration)
        recording[0] = False
        wall = time.monotonic() - t0
        cpu = 100 * (time.process_time() - cpu0) / wall
        windows = sum(o.pipeline.n_windows for o in loop.outputs) - base_windows
        published = sum(o.seq for o in loop.outputs) - base_pub
        drops = loop.drops() - base_drops
        waiting = getattr(loop, "n_waiting", 0) - base_waiting  # complete, to be classified in the next batch
        health = acq.health()
        time.sleep(0.3)  # let the last markers reach the client
    loop.close()
    got = {(marker_names[m], seq): t for m, recs in received().items() for seq, t in recs}
    rows = []
    for t in timings:
        row = {"source": t.source, "arrival": t.arrival, "preprocessed": t.preprocessed,
               "inferred": t.inferred, "pushed": t.pushed, "received": got.get((t.output, t.seq))}
        rows.append(row)
    stages = {name: percentiles([1e3 * (r[b] - r[a]) for r in rows
                                 if r[a] is not None and r[b] is not None])
              for name, a, b in STAGES}
    batches = [t.batch for t in timings if t.batch == t.batch]
    # windows = emitted by the windowers (n_windows) + dropped there (gap, nonfinite, quality);
    # emitted ones are published, replaced while waiting (stale), or still waiting at the end
    unclassified = drops["stale"] + drops["shutdown"]
    return {
        "streams": len(names), "stagger_s": stagger, "workers": 1, "mode": "in-process",
        "cpu_pct_per_stream": round(cpu / len(names), 2),
        "windows": windows + sum(drops.values()) - unclassified,
        "decisions": published, "markers_received": stages["push_to_received"]["n"],
        "dropped": dict(drops), "waiting_at_end": waiting,
        "uncounted": windows - published - unclassified - waiting,
        "decisions_per_s_per_stream": round(published / wall / len(names), 3),
        "stages_ms": stages, "batch": percentiles(batches),
        "gaps": sum(h.n_gaps for h in health), "process_cpu_pct": round(cpu, 1),
    }


def _device_name(device: str) -> str:
    if device == "cpu":
        with contextlib.suppress(OSError):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        return platform.processor() or platform.machine()
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"


def _peers(args) -> list | None:
    if not args.peers:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peers.json"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_latency_peers.py"),
                        "--file", str(args.file), "--streams", "1", "--duration", str(args.duration), "--peers", args.peers,
                        "--threads", str(args.threads), "--json", str(out)]
                       + (["--window-s", str(args.window_s)] if args.window_s else []), check=True, cwd=REPO)
        return json.loads(out.read_text())["results"]


def _table(results: list, peers: list | None) -> str:
    lines = ["| pipeline | streams | stagger s | workers | push→recv p50 | p95 | p99 | dec/s/stream | "
             "dropped | CPU % | CPU %/stream |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in peers or []:
        lines.append(f"| {p['peer']} (peer) | {p['streams']} | – | 1 | {p['recv_p50_ms']:.1f} | "
                     f"{p['recv_p95_ms']:.1f} | {p['recv_p99_ms']:.1f} | "
                     f"{p['decisions'] / p.get('duration_s', 1) / p['streams']:.2f} | "
                     f"skipped {p['skipped']} | {p['process_cpu_pct']:.0f} | "
                     f"{p['process_cpu_pct'] / p['streams']:.1f} |")
    for r in results:
        s = r["stages_ms"]["push_to_received"]
        what = "eegmamba-live" + (" (in-process loop)" if r["mode"] == "in-process" else "")
        lines.append(f"| {what} | {r['streams']} | {r['stagger_s']:g} | {r['workers']} | {s['p50']} | "
                     f"{s['p95']} | {s['p99']} | {r['decisions_per_s_per_stream']:.2f} | "
                     f"{r['dropped'] or 0} (uncounted {r['uncounted']}) | {r['process_cpu_pct']:.0f} | "
                     f"{r['cpu_pct_per_stream']:.1f} |")
    staged = [r for r in results if "batch" in r]
    if staged:
        lines += ["", "| streams | stagger s | stage | p50 ms | p95 ms | p99 ms | max ms |",
                  "|---|---|---|---|---|---|---|"]
    for r in staged:
        for name, _, _ in STAGES[:5]:
            v = r["stages_ms"][name]
            lines.append(f"| {r['streams']} | {r['stagger_s']:g} | {name.replace('_', ' ')} | {v['p50']} | "
                         f"{v['p95']} | {v['p99']} | {v['max']} |")
        lines.append(f"| {r['streams']} | {r['stagger_s']:g} | batch size | {r['batch']['p50']} | "
                     f"{r['batch']['p95']} | {r['batch']['p99']} | {r['batch']['max']} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help="recording to replay")
    ap.add_argument("--streams", default="1,16,64", help="comma-separated stream counts")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds measured per stream count")
    ap.add_argument("--warmup", type=float, default=6.0, help="seconds before measuring")
    ap.add_argument("--checkpoint", default=None, help="checkpoint (default: bundled demo)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (as eegmamba-live)")
    ap.add_argument("--batch-threads", type=int, default=None,
                    help="split a batch of >= 8 windows into this many parts classified at once "
                    "(InferenceEngine batch_threads; default 1: no split)")
    ap.add_argument("--poll-interval", type=float, default=None,
                    help="acquisition poll interval, seconds (default: AcquisitionConfig's)")
    ap.add_argument("--window-s", type=float, default=None,
                    help="window length, seconds (default: the motor_imagery profile's); another length "
                    "runs a random-weight model of that shape")
    ap.add_argument("--stagger", default="0",
                    help="comma-separated: spread the streams' window phases over this many seconds "
                    "(0: all streams' windows complete together, the worst case; 0.5 = one hop: "
                    "evenly spread, as independent headsets); each stream count runs with each")
    ap.add_argument("--no-prime", action="store_true",
                    help="LiveLoop without priming (prime_lead_s=None): no warm-up of an idle model "
                         "and its pipelines just before their next window is due")
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="LiveLoop switch_interval_s, seconds (0: leave Python's 5 ms; default: "
                         "LiveLoop's)")
    ap.add_argument("--batch-budget", type=float, default=None,
                    help="LiveLoop batch_budget_s, seconds (default: LiveLoop's)")
    ap.add_argument("--peers", default="floor,csp,cnn", help="peers of bench_latency_peers.py run "
                    "on 1 stream in this run (empty: none)")
    ap.add_argument("--workers", default=f"1,{os.cpu_count() or 1}",
                    help="comma-separated --workers values of the command; each configuration runs "
                         "with each (1 = one process)")
    ap.add_argument("--in-process", action="store_true",
                    help="measure the live loop inside this process instead of the command (stage "
                         "breakdown; one process; --workers ignored)")
    ap.add_argument("--start-timeout", type=float, default=180.0,
                    help="seconds the command may take to publish every stream's markers")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    lsl_session = private_lsl_session()  # before any LSL use here or in the children
    counts = [int(x) for x in args.streams.split(",")]
    staggers = [float(x) for x in args.stagger.split(",")]
    prefix = f"latbench-{uuid.uuid4().hex[:6]}"
    load0 = os.getloadavg()
    results = []
    peers = _peers(args)
    workers = [1] if args.in_process else [int(x) for x in args.workers.split(",")]
    configs = [(n, g, w) for n in counts for g in (staggers if n > 1 else staggers[:1])
               for w in workers if w <= max(n, 1)]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.in_process:
            stack.enter_context(stream_server(args.file, prefix, max(counts), index_channel=True,
                                              wait_for_consumer=False))
        ckpt = _checkpoint(args.checkpoint, Path(tmp), args.window_s)
        for n, stagger, w in configs:
            if args.in_process:
                res = _measure([f"{prefix}-{i}" for i in range(n)], ckpt, args, stagger)
            else:
                res = measure_cli(n, ckpt, args, stagger, w)
            results.append(res)
            s = res["stages_ms"]
            print(f"eegmamba-live {n:>3} stream(s), stagger {stagger:g} s, {w} worker(s): push→received "
                  f"p50 {s['push_to_received']['p50']} p99 {s['push_to_received']['p99']} ms; "
                  f"{res['decisions_per_s_per_stream']:.2f} decisions/s/stream; dropped "
                  f"{res['dropped']}; uncounted {res['uncounted']}; CPU {res['process_cpu_pct']:.0f}% "
                  f"({res['cpu_pct_per_stream']:.1f}% per stream)", flush=True)
    ok = [(r["streams"], r["stagger_s"], r["workers"]) for r in results
          if r["stages_ms"]["push_to_received"]["p99"] is not None
          and r["stages_ms"]["push_to_received"]["p99"] <= 100 and r["uncounted"] == 0]
    for p in peers or []:
        p["duration_s"] = args.duration
    print()
    print(_table(results, peers))
    best = {(g, w): max([n for n, sg, sw in ok if sw == w and (sg == g or n == 1)], default=0)
            for g in staggers for w in workers}
    for (g, w), n_ok in best.items():
        print(f"largest stream count with p99 <= 100 ms and every window counted, stagger {g:g} s, "
              f"{w} worker(s): {n_ok}")
    load1 = os.getloadavg()
    print(f"load average before/after: {load0[0]:.2f} / {load1[0]:.2f}")
    report = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "load_avg_1min_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "device": args.device, "device_name": _device_name(args.device),
        "mode": "in-process" if args.in_process else "cli", "lsl_session": lsl_session,
        "torch_threads": args.threads, "batch_threads": args.batch_threads, "file": args.file.name,
        "poll_interval_s": args.poll_interval, "duration_s": args.duration,
        "stagger_s": staggers, "batch_budget_s": args.batch_budget, "prime": not args.no_prime,
        "switch_interval_s": args.switch_interval,
        "profile": _profile_text(args.window_s),
        "latency_from": "timestamp (= due/push time) of the window's last input sample",
        "results": results, "peers": peers,
        "max_streams_p99_le_100ms": {f"stagger {g:g}, workers {w}": n_ok
                                     for (g, w), n_ok in best.items()},
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

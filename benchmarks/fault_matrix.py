"""Faults from the outside: a scripted pylsl outlet (``eegmamba/testing/fault_outlet.py``) streams EEGMMIDB
S001R04 with one fault per scenario into ``eegmamba-live`` run as a subprocess from ``--repo`` (any
version of this project: the one checked out, or an older export), and a pylsl client reads its
decision markers. Per scenario: decisions, drops by reason (from the summary), decisions on windows
that hold the fault, and the resume time (fault over -> first marker of a window entirely after it).

    python benchmarks/fault_matrix.py --out after.json
    git archive 72501cd | tar -x -C /tmp/before && python benchmarks/fault_matrix.py --repo /tmp/before --out before.json

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pylsl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegmamba.testing.fault_outlet import (Burst, FaultyOutlet, Gap, Jump, Recreate,  # noqa: E402
                                           Resend)

FS = 160.0
T_FAULT = 8.0  # seconds into the stream
K = int(T_FAULT * FS)


def _data_fault(kind):
    def apply(x, ch):
        x = x.copy()
        if kind == "flat":
            x[K:K + int(4 * FS)] = 0.0
            return x, (K, K + int(4 * FS))
        if kind == "rail":
            x[K:K + int(FS), ch.index("C3..")] = 6000.0
            return x, (K, K + int(FS))
        if kind == "railed":
            x[K:K + int(5 * FS), ch.index("C3..")] = 187500.0
            return x, (K, K + int(5 * FS))
        if kind == "nan":
            x[K:K + int(FS), ch.index("C3..")] = np.nan
            return x, (K, K + int(FS))
        raise ValueError(kind)
    return apply


# name -> (outlet options, data fault, extra eegmamba-live options, only on versions that have them)
SCENARIOS = {
    "clean µV": ({}, None, ()),
    "units V declared": ({"scale": 1e-6, "unit": "volts"}, None, ()),
    "units V undeclared": ({"scale": 1e-6, "unit": None}, None, ()),
    "units V undeclared + --units V": ({"scale": 1e-6, "unit": None}, None, ("--units", "V")),
    "push-stamped, 40 ms jitter": ({"stamping": "push", "push_jitter_s": 0.04}, None, ()),
    "declares 128 Hz, delivers 160": ({"declared_rate": 128.0}, None, ()),
    "declares 128, delivers 160 + --accept-measured-rate": ({"declared_rate": 128.0}, None,
                                                            ("--accept-measured-rate",)),
    "jump +5 s, later -3 s": ({"events": [Jump(K, 5.0), Jump(2 * K, -3.0)]}, None, ()),
    "partial flat-line (all ch 0 for 4 s)": ({}, _data_fault("flat"), ()),
    "partial rail (C3 at 6 mV for 1 s)": ({}, _data_fault("rail"), ()),
    "stall 10 s": ({"events": [Gap(K, int(10 * FS))]}, None, ()),
    "outlet recreated, same source_id": ({"events": [Recreate(K, 3.0, True)]}, None, ()),
    "outlet recreated, new source_id": ({"events": [Recreate(K, 3.0, False)]}, None, ()),
    "gap 2 s": ({"events": [Gap(K, int(2 * FS))]}, None, ()),
    "gap 0.5 s": ({"events": [Gap(K, int(0.5 * FS))]}, None, ()),
    "burst 5 s": ({"events": [Burst(K, 5.0)]}, None, ()),
    # 7 chunks of 10 samples (62.5 ms) sent again, as the issue-19 wireless driver did
    "7 chunks re-sent": ({"events": [Resend(K + int(s * FS), 10)
                                     for s in (0, 1, 2, 3.5, 5, 6.5, 8)]}, None, ()),
    "drift 1 %": ({"true_rate": FS * 1.01}, None, ()),
    "push jitter 20 ms": ({"stamping": "push", "push_jitter_s": 0.02}, None, ()),
    "NaN on C3 for 1 s": ({}, _data_fault("nan"), ()),
    "railed channel (C3 at 187.5 mV for 5 s)": ({}, _data_fault("railed"), ()),
}


class MarkerReader(threading.Thread):
    """Reads the decision markers (JSON) of one eegmamba-live process with their local arrival time
    (found by source id, which holds the process id: other runs on the machine do not interfere)."""

    def __init__(self, source_id: str) -> None:
        super().__init__(daemon=True)
        self.source_id, self.rows, self.stop = source_id, [], threading.Event()

    def run(self) -> None:
        inlet = None
        while not self.stop.is_set() and inlet is None:
            found = pylsl.resolve_byprop("source_id", self.source_id, timeout=0.5)
            if found:
                inlet = pylsl.StreamInlet(found[0])
                inlet.open_stream(timeout=5.0)
        while not self.stop.is_set():
            samples, _ = inlet.pull_chunk(timeout=0.2)
            now = pylsl.local_clock()
            self.rows += [(now, json.loads(s[0])) for s in samples]


def _summary_duplicates(stdout: str) -> int | None:
    """Duplicate samples dropped, from the summary's stream line (versions that count them)."""
    m = re.search(r"(\d+) duplicate samples dropped", stdout)
    return int(m.group(1)) if m else None


def _summary_drops(stdout: str) -> tuple[int | None, dict]:
    """windows and drops by reason from the summary table (one row per profile)."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        if len(cells) > 5 and cells[1].startswith("motor_imagery") and cells[2].isdigit():
            drops = {}
            for part in cells[4].split(","):
                m = re.match(r"\s*([a-z_]+) (\d+)", part)
                if m:
                    drops[m.group(1)] = int(m.group(2))
            return int(cells[2]), drops
    return None, {}


def run_scenario(name, repo: Path, seconds: float, x, ch, tag: str) -> dict:
    opts, data_fault, extra = SCENARIOS[name]
    stream = f"fm-{tag}-{abs(hash(name)) % 10**6}"
    fault_span = None
    data = x
    if data_fault is not None:
        data, fault_span = data_fault(x, ch)
    outlet = FaultyOutlet(stream, data, ch, FS, **opts)
    log = Path(f"/tmp/{stream}.jsonl")
    env = dict(os.environ, PYTHONPATH=str(repo), COLUMNS="250", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime.cli_live", "--stream", stream, "--profile", "motor_imagery",
         "--no-dashboard", "--device", "cpu", "--timeout", "60", "--duration", str(seconds + 2),
         "--log", str(log), *extra], cwd=repo, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    reader = MarkerReader(f"eegmamba-motor_imagery@{socket.gethostname()}:{proc.pid}-markers")
    reader.start()
    try:
        outlet.start(wait_for_consumer_s=120.0)
        out, err = proc.communicate(timeout=seconds + 180)
    finally:
        reader.stop.set()
        outlet.stop()
        if proc.poll() is None:
            proc.kill()
    reader.join(2)
    windows, drops = _summary_drops(out)
    rows = reader.rows
    times = outlet.times
    k_sorted = np.array(sorted(times))
    t_sorted = np.array([times[k] for k in k_sorted])
    # clock offset segments: (true start, offset) — the stamps of samples from then on are true + offset
    segments, off = [(-np.inf, 0.0)], 0.0
    for ev, t0, _ in outlet.event_times:
        if isinstance(ev, Jump):
            off += ev.dt
            segments.append((t0, off))

    def true_time(t_src: float, arrival: float) -> float:
        """Source stamp -> true local time; after a backward jump a stamp can mean two times: the
        latest one not after the marker's arrival."""
        cands = []
        for i, (t0, o) in enumerate(segments):
            t1 = segments[i + 1][0] if i + 1 < len(segments) else np.inf
            if t0 - 1e-6 <= t_src - o < t1:
                cands.append(t_src - o)
        ok = [c for c in cands if c <= arrival + 0.05]
        return max(ok) if ok else (min(cands) if cands else t_src)

    spans = [(true_time(d["t_start"], arr), true_time(d["t_end"], arr), arr) for arr, d in rows]
    bad = resume = None
    if fault_span is not None:  # data fault: a window holding >= 0.25 s of it is on the fault
        f0, f1 = times[fault_span[0]], times[fault_span[1] - 1]
        bad = sum(1 for a, b, _ in spans if min(b, f1) - max(a, f0) >= 0.25)
        after = [arr for a, _, arr in spans if a > f1]
        resume = (min(after) - f1) if after else None
    elif outlet.event_times:  # timeline fault: a window spanning a jump instant or a hole
        bad, f1 = 0, max(end for _, _, end in outlet.event_times)
        for ev, start, end in outlet.event_times:
            if isinstance(ev, Jump):
                bad += sum(1 for a, b, _ in spans if a < start < b)
            elif not isinstance(ev, (Burst, Resend)):  # nothing lost: windows over them are right
                bad += sum(1 for a, b, _ in spans if a < start and b > end)
        burst = any(isinstance(ev, (Burst, Resend)) for ev, _, _ in outlet.event_times)
        after = [arr for a, _, arr in spans if (arr > f1 if burst else a > f1)]
        resume = (min(after) - f1) if after else None
    return {"scenario": name, "decisions": len(rows), "windows": windows, "drops": drops,
            "decisions_on_fault": bad, "resume_s": resume, "returncode": proc.returncode,
            "stderr_tail": err.strip().splitlines()[-3:] if err.strip() else [],
            "samples_pushed": outlet.n_pushed, "samples_resent": outlet.n_resent,
            "duplicates_dropped": _summary_duplicates(out),
            "t_span": [float(t_sorted[0]), float(t_sorted[-1])] if t_sorted.size else None}


def _published(r: dict) -> int:
    """Decisions published, from the summary: every window cut is classified or stale/shutdown (the
    client may miss a marker at its start or the process's end under load)."""
    if r.get("windows") is None:
        return r["decisions"]
    return r["windows"] - r["drops"].get("stale", 0) - r["drops"].get("shutdown", 0)


def _cell(r: dict | None) -> str:
    if r is None:
        return "(option not in this version)"
    drops = ", ".join(f"{k} {v}" for k, v in sorted(r["drops"].items())) or "none"
    onf = "" if r["decisions_on_fault"] is None else f", {r['decisions_on_fault']} on the fault"
    resume = "" if r["resume_s"] is None else f", back after {r['resume_s']:.1f} s"
    dup = ("" if not r.get("samples_resent") else f"; {r['samples_resent']} samples re-sent, "
           f"{r.get('duplicates_dropped') if r.get('duplicates_dropped') is not None else '?'} "
           "dropped as duplicates")
    return f"{_published(r)} decisions{onf}; dropped: {drops}{resume}{dup}"


def compare(before: Path, after: Path) -> str:
    """A markdown table, one row per scenario: before vs after."""
    b = {r["scenario"]: r for r in json.loads(before.read_text())["results"]}
    a = {r["scenario"]: r for r in json.loads(after.read_text())["results"]}
    lines = ["| fault | before | after |", "|---|---|---|"]
    for name in [n for n in SCENARIOS if n in a or n in b]:
        lines.append(f"| {name} | {_cell(b.get(name))} | {_cell(a.get(name))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                    help="print a markdown table of two runs' JSON and exit")
    ap.add_argument("--repo", type=Path, default=ROOT, help="source tree of the version to run")
    ap.add_argument("--seconds", type=float, default=30.0, help="stream time per scenario")
    ap.add_argument("--only", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--skip-options", action="store_true",
                    help="skip scenarios needing options the version lacks (--units, ...)")
    ap.add_argument("--out", default="fault_matrix.json")
    args = ap.parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        return 0
    from realtime.replay.player import load_recording

    raw = load_recording(ROOT.parent / "shared" / "data" / "motor_imagery" / "S001R04.edf")
    x, ch = raw.get_data().T * 1e6, list(raw.ch_names)
    names = args.only or list(SCENARIOS)
    if args.skip_options:
        names = [n for n in names if not SCENARIOS[n][2]]
    results = []
    print(f"{'scenario':52} {'dec':>4} {'on fault':>8} {'resume s':>8}  drops", flush=True)
    for i, name in enumerate(names):
        r = run_scenario(name, args.repo.resolve(), args.seconds, x, ch, f"{i}{int(time.time()) % 1000}")
        results.append(r)
        resume = "-" if r["resume_s"] is None else f"{r['resume_s']:.1f}"
        onf = "-" if r["decisions_on_fault"] is None else str(r["decisions_on_fault"])
        drops = ", ".join(f"{k} {v}" for k, v in sorted(r["drops"].items())) or "0"
        dup = f"; duplicates {r['duplicates_dropped']}" if r["samples_resent"] else ""
        print(f"{name:52} {r['decisions']:4d} {onf:>8} {resume:>8}  {drops}{dup}", flush=True)
    Path(args.out).write_text(json.dumps({"repo": str(args.repo), "seconds": args.seconds,
                                          "load": os.getloadavg(), "results": results}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""EEGM2 pretraining cost: forward+backward time and peak memory vs window length, SSD chunk sizes,
and the chunked SSD vs the sequential scan (issue 6, "Benchmark").

Three tables, every row one measured configuration:

1. ``length``: the full EEGM2 (official sizes) on windows of 2-100 s at 200 Hz; the step is
   forward, the official loss (L1 + FFT term), backward (no optimizer step), in train mode.
2. ``chunk``: the same step at one window length for several SSD chunk sizes (exact for any size;
   a speed/memory knob).
3. ``scan``: chunked SSD vs the step-by-step sequential scan (the test oracle), for one Mamba-2
   block (d_model 64, the encoder1 block) and for the whole model at the shortest window.

Timing: ``--warmup`` untimed steps, then the median of ``--repeats`` timed steps. Peak memory: on
CUDA ``torch.cuda.max_memory_allocated`` minus what was allocated before the first step (weights
and input excluded); on CPU the growth of the resident set (``ru_maxrss`` after the steps minus
``VmRSS`` before the first one). Each row runs in its own subprocess so peaks do not leak between
rows; a crash or out-of-memory kill is recorded as an error, not silently skipped.
The default CPU lists are short (2/10/30 s); ``--full`` runs 2/10/30/60/100 s.

Examples::

    python benchmarks/bench_eegm2.py --out bench_eegm2_cpu.json          # CPU, short lists, 1 thread
    python benchmarks/bench_eegm2.py --device cuda --full --batch-size 8 --out bench_eegm2_gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as `python benchmarks/bench_eegm2.py` without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._benchutil import rss_now_kib  # noqa: E402

SFREQ = 200
CPU_SECONDS = (2, 10, 30)
FULL_SECONDS = (2, 10, 30, 60, 100)
CHUNKS = (32, 64, 128, 256)


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one configuration in this process. ``spec``: what, n_chans, n_times, batch, chunk,
    scan, device, threads, warmup, repeats."""
    import torch

    import eegmamba.eegm2  # noqa: F401  (registers the variants)
    from eegmamba.eegm2 import Mamba2, ReconLoss
    from eegmamba.registry import create_model

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    dev = torch.device(spec["device"])
    if spec["what"] == "block":  # the encoder1 Mamba-2 block, official settings
        model = Mamba2(64, d_state=16, d_conv=2, expand=8, headdim=64, chunk_size=spec["chunk"],
                       backend="ref", scan=spec["scan"]).to(dev)
        x = torch.randn(spec["batch"], spec["n_times"], 64, device=dev)

        def step() -> None:
            model(x).square().mean().backward()
    else:
        model = create_model("eegm2", n_chans=spec["n_chans"], chunk_size=spec["chunk"]).to(dev)
        for m in model.modules():
            if isinstance(m, Mamba2):
                m.scan = spec["scan"]
        x = torch.randn(spec["batch"], spec["n_chans"], spec["n_times"], device=dev)
        loss = ReconLoss()

        def step() -> None:
            loss(x, model(x))[0].backward()

    model.train()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    rss0 = rss_now_kib()
    times = []
    for i in range(spec["warmup"] + spec["repeats"]):
        model.zero_grad(set_to_none=True)
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        if i >= spec["warmup"]:
            times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {**spec, "seconds": spec["n_times"] / SFREQ, "step_s": statistics.median(times),
            "peak_mb": round(max(peak_mb, 0.0), 1)}


def _in_subprocess(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_row", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"time-out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        why = "killed (out of memory?)" if proc.returncode < 0 else tail
        return {**spec, "error": why}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parameter_counts() -> dict[str, dict[int, int]]:
    import eegmamba.eegm2  # noqa: F401
    from eegmamba.eegm2 import count_parameters
    from eegmamba.registry import create_model

    return {name: {c: count_parameters(create_model(name, n_chans=c)) for c in (16, 23, 64)}
            for name in ("eegm2", "eegm2_light")}


def _print(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("model", "window s", "T", "batch", "chunk", "scan", "fwd+bwd s", "peak MB"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        res = ([r["error"][:40], "-"] if "error" in r else [f"{r['step_s']:.3f}", f"{r['peak_mb']:.0f}"])
        table.add_row(r["what"], f"{r['n_times'] / SFREQ:g}", str(r["n_times"]), str(r["batch"]),
                      str(r["chunk"] or "auto"), r["scan"], *res)
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--n-chans", type=int, default=16, help="input channels (16 = official TUAB)")
    p.add_argument("--batch-size", type=int, default=1, help="windows per step")
    p.add_argument("--seconds", type=float, nargs="+", default=None,
                   help=f"window lengths in s at {SFREQ} Hz (default {CPU_SECONDS}; --full: {FULL_SECONDS})")
    p.add_argument("--full", action="store_true", help="all window lengths 2-100 s")
    p.add_argument("--chunks", type=int, nargs="+", default=list(CHUNKS), help="SSD chunk sizes")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="window for the chunk table")
    p.add_argument("--scan-seconds", type=float, default=10.0, help="block length for the scan table")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per row")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per row (median reported)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per row before giving up")
    p.add_argument("--out", type=Path, default=Path("bench_eegm2.json"), help="JSON results file")
    p.add_argument("--_row", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._row:
        print(json.dumps(run_row(json.loads(args._row))))
        return 0

    seconds = args.seconds or (FULL_SECONDS if args.full else CPU_SECONDS)
    common = dict(n_chans=args.n_chans, batch=args.batch_size, device=args.device,
                  threads=args.threads, warmup=args.warmup, repeats=args.repeats)
    T = lambda s: int(round(s * SFREQ))  # noqa: E731
    plan = {
        "length": [dict(what="eegm2", n_times=T(s), chunk=0, scan="chunked") for s in seconds],
        "chunk": [dict(what="eegm2", n_times=T(args.chunk_seconds), chunk=q, scan="chunked")
                  for q in args.chunks],
        "scan": [dict(what="block", n_times=T(args.scan_seconds), chunk=64, scan=s)
                 for s in ("chunked", "sequential")]
        + [dict(what="eegm2", n_times=T(min(seconds)), chunk=64, scan=s)
           for s in ("chunked", "sequential")],
    }
    results: dict[str, Any] = {
        "settings": {**vars(args), "out": str(args.out), "seconds": list(seconds), "sfreq": SFREQ},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor()},
        "parameters": parameter_counts(),
    }
    for name, rows in plan.items():
        results[name] = [_in_subprocess({**common, **r}, args.timeout) for r in rows]
        _print(results[name], f"EEGM2 {name} (device {args.device}, {args.threads} thread(s))")
        args.out.write_text(json.dumps(results, indent=2))  # partial results survive an interrupt
    print(f"parameters: {results['parameters']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training-step speed and peak memory: single-task EEGMamba vs EEG Conformer (paper Tables 9/10).

For each channel count (1 and 20, as in the paper) and sequence length (2000 ... 40000 samples) both
models run the same measured step — forward, cross-entropy, backward (no optimizer step) — on a
random batch in train mode. Reported per configuration:

* ``it/s``: timed steps / wall seconds, after warm-up steps that are not timed. On CPU the steps per
  second of process CPU time (``time.process_time``) are recorded too (``it_per_cpu_s``): on a
  shared machine wall time includes waiting for other processes, CPU time mostly does not, so the
  table's second ratio (by CPU time) is the one to trust there.
* peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (weights + activations + gradients of the
  measured steps, i.e. everything the caching allocator handed out; not the CUDA context). On CPU the
  peak resident-set growth during warm-up + timed steps: ``ru_maxrss`` at the end minus ``VmRSS``
  just before the first step (model, batch and imports already resident). Each configuration runs in
  its own subprocess, so peaks do not leak between configurations, a crash or out-of-memory kill is
  recorded as ``OOM`` and a hang as ``time-out``.

The EEG Conformer is our implementation from the paper (``eegmamba.baselines.conformer``), with
explicit attention as in the authors' code (the configuration the EEGMamba paper measured);
``--conformer-attention sdpa`` uses PyTorch's fused attention instead.
The paper does not state its batch size; the default here is 8 on CUDA and 1 on CPU
(``--batch-size``; the table header says which was used).

Examples::

    python benchmarks/bench_model.py --device cuda --out bench_gpu.json
    python benchmarks/bench_model.py --cpu-short --out bench_cpu.json     # CPU: lengths 2000-10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as `python benchmarks/bench_model.py` without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._benchutil import rss_now_kib  # noqa: E402

LENGTHS = (2000, 3000, 5000, 10000, 20000, 40000)
CPU_SHORT_LENGTHS = (2000, 3000, 5000, 10000)
CHANNELS = (1, 20)
MODELS = ("eegmamba", "conformer")
N_CLASSES = 2  # irrelevant for cost except the Conformer's flatten layer; the paper does not say


# ----------------------------------------------------------------------------- child: one config
def _build(model_name: str, n_chans: int, n_times: int, attention: str):
    if model_name == "eegmamba":
        from eegmamba import TaskSpec, create_model

        task = TaskSpec(name="bench", n_chans=n_chans, n_times=n_times, n_classes=N_CLASSES)
        return create_model("eegmamba_single", tasks=[task])
    from eegmamba.baselines import create_conformer

    return create_conformer(n_chans, n_times, N_CLASSES, attention=attention)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or "out of memory" in str(err).lower() or \
        type(err).__name__ == "OutOfMemoryError"


def run_config(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one (model, n_chans, n_times) configuration in this process; return a result dict."""
    import torch
    import torch.nn.functional as F

    device = torch.device(spec["device"])
    if device.type == "cpu":
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = _build(spec["model"], spec["n_chans"], spec["n_times"], spec["attention"]).to(device)
    model.train()
    x = torch.randn(spec["batch_size"], spec["n_chans"], spec["n_times"], device=device)
    y = torch.randint(0, N_CLASSES, (spec["batch_size"],), device=device)
    n_params = sum(p.numel() for p in model.parameters())
    backend = "-"
    if spec["model"] == "eegmamba":
        from eegmamba.ops.dispatch import resolve_backend

        backend = resolve_backend(model.config.backend, device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = rss_now_kib()
    t_start = time.perf_counter()
    try:
        for _ in range(spec["warmup"]):
            step()
        sync()
        warm_s = time.perf_counter() - t_start
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while n < spec["iters"] and (n == 0 or time.perf_counter() - t0 < spec["budget_s"]):
            step()
            sync()
            n += 1
        elapsed, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    except Exception as err:  # noqa: BLE001 - only OOM is an expected outcome; others re-raise
        if not _is_oom(err):
            raise
        return {"status": "OOM", "detail": str(err).splitlines()[0][:200]}
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {"status": "ok", "it_per_s": n / elapsed, "it_per_cpu_s": n / max(cpu_s, 1e-9),
            "timed_iters": n, "warmup_s": warm_s,
            "peak_mib": peak_mib, "n_params": n_params, "scan_backend": backend}


# ----------------------------------------------------------------------------- parent: the sweep
def _spawn(spec: dict[str, Any], hard_timeout_s: float) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=hard_timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "time-out", "detail": f"no result within {hard_timeout_s:.0f} s"}
    if proc.returncode == -signal.SIGKILL:
        return {"status": "OOM", "detail": "killed by SIGKILL (out-of-memory killer)"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"status": "error", "detail": tail[:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(r: dict[str, Any]) -> tuple[str, str]:
    if r["status"] != "ok":
        return r["status"], r["status"]
    return f"{r['it_per_s']:.2f}", f"{r['peak_mib']:.0f}"


def print_table(results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Print one row per (channels, length): it/s and peak MiB of both models, and their ratio."""
    print(f"\nfwd+bwd, batch {meta['batch_size']}, device {meta['device_name']}, "
          f"threads {meta['threads']}, memory = {meta['memory_kind']}")
    head = (f"{'C':>3} {'T':>6} | {'EEGMamba it/s':>13} {'MiB':>7} | {'Conformer it/s':>14} "
            f"{'MiB':>7} | {'speed ratio M/C':>15} | {'by CPU time':>11}")
    print(head)
    print("-" * len(head))
    by_key = {(r["model"], r["n_chans"], r["n_times"]): r for r in results}
    for c in meta["channels"]:
        for t in meta["lengths"]:
            m, k = by_key.get(("eegmamba", c, t)), by_key.get(("conformer", c, t))
            if m is None or k is None:
                continue
            (ms, mm), (ks, km) = _fmt(m), _fmt(k)
            ratio = cpu_ratio = "-"
            if m["status"] == "ok" and k["status"] == "ok":
                ratio = f"{m['it_per_s'] / k['it_per_s']:.2f}x"
                if "it_per_cpu_s" in m and "it_per_cpu_s" in k:
                    cpu_ratio = f"{m['it_per_cpu_s'] / k['it_per_cpu_s']:.2f}x"
            elif m["status"] == "ok":
                ratio = f"inf (C: {k['status']})"
            print(f"{c:>3} {t:>6} | {ms:>13} {mm:>7} | {ks:>14} {km:>7} | {ratio:>15} | "
                  f"{cpu_ratio:>11}")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to run; auto = cuda if available else cpu")
    p.add_argument("--cpu-short", action="store_true",
                   help=f"reduced length list {CPU_SHORT_LENGTHS} for CPUs")
    p.add_argument("--lengths", type=int, nargs="+", default=None,
                   help=f"sequence lengths in samples (default {LENGTHS})")
    p.add_argument("--channels", type=int, nargs="+", default=list(CHANNELS), help="channel counts")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models")
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per step (default: 8 on cuda, 1 on cpu)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default cuda 3, cpu 1)")
    p.add_argument("--iters", type=int, default=None,
                   help="timed steps at most (default cuda 20, cpu 10)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed steps per config (at least one step runs; "
                        "default cuda 30, cpu 20); a config still running at 4x budget + 120 s "
                        "is killed and recorded as time-out")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU runs only)")
    p.add_argument("--conformer-attention", default="explicit", choices=("explicit", "sdpa"),
                   help="Conformer attention: explicit (authors' code, as in the paper) or sdpa")
    p.add_argument("--out", default=None, help="write all results and settings to this JSON file")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch_size", "threads", "warmup", "iters"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "warmup" else 1):
            p.error(f"--{name.replace('_', '-')} must be positive, got {v}")
    if args.budget is not None and not args.budget > 0:
        p.error(f"--budget must be > 0 seconds, got {args.budget}")
    if any(v < 1 for v in (args.lengths or []) + args.channels):
        p.error("--lengths and --channels must be positive")
    return args


def _main(argv: Sequence[str] | None) -> int:
    args = _parse(argv)
    if args._child:
        print(json.dumps(run_config(json.loads(args._child))))
        return 0
    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available here; use --device cpu")
    cuda = device == "cuda"
    lengths = args.lengths or (CPU_SHORT_LENGTHS if args.cpu_short else LENGTHS)
    meta = {
        "device": device, "batch_size": args.batch_size or (8 if cuda else 1), "lengths": list(lengths),
        "channels": args.channels, "threads": args.threads if not cuda else None,
        "warmup": args.warmup if args.warmup is not None else (3 if cuda else 1),
        "iters": args.iters or (20 if cuda else 10),
        "budget_s": args.budget or (30.0 if cuda else 20.0),
        "conformer_attention": args.conformer_attention, "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if cuda else
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)",
        "memory_kind": "torch.cuda.max_memory_allocated" if cuda else "peak RSS growth",
        "step": "forward + cross-entropy + backward, train mode, no optimizer step",
    }
    hard_timeout = 4 * meta["budget_s"] + 120
    results = []
    for c in args.channels:
        for t in lengths:
            for m in args.models:
                spec = {"model": m, "n_chans": c, "n_times": t, "device": device,
                        "batch_size": meta["batch_size"], "threads": args.threads,
                        "warmup": meta["warmup"], "iters": meta["iters"],
                        "budget_s": meta["budget_s"], "attention": args.conformer_attention}
                r = {**spec, **_spawn(spec, hard_timeout)}
                results.append(r)
                extra = (f"{r['it_per_s']:.2f} it/s, {r['peak_mib']:.0f} MiB"
                         if r["status"] == "ok" else f"{r['status']}: {r.get('detail', '')}")
                print(f"  {m:9s} C={c:<2d} T={t:<6d} {extra}", flush=True)
    print_table(results, meta)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
        print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from eegmamba.cli_common import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

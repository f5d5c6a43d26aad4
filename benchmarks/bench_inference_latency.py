"""CPU inference latency for one motor-imagery window: single-task EEGMamba with the fused scan
backend, the same model with the reference scan, and the EEG Conformer, measured in one run.

One window is 22 channels x 4 s at 200 Hz = 800 samples, batch of 1, as the live loop sees it.
Each model runs in eval mode under ``torch.inference_mode()`` with ``--threads`` torch threads
(default 1, as the live loop runs); the models are timed round-robin (``--warmup`` untimed calls
each, then ``--runs`` rounds of one call per model) so that a change of machine load hits all of
them, and summarised as p50 / p99 / max in milliseconds. The CPU time of the calling thread
(``time.thread_time``) is reported beside it: with ``--threads 1`` its p50 is what the call costs
without competing processes (a loaded machine shows wall >> CPU).
Target (issue 9): EEGMamba p99 <= 5 ms on one thread.

``--variant`` takes one registry variant, a comma-separated list, or ``tokenizers`` (eegmamba_single
and every tokenizer variant of ``eegmamba.model.variants.TOKENIZER_VARIANTS``); all are timed in the
same round-robin, and each row also gives the parameter count and the forward FLOPs of one window
(``torch.utils.flop_counter``: matmuls and convolutions, 2 FLOPs per multiply-add; the scan's
elementwise recurrence is not counted). ``--n-times`` sets the window (600 = the 3 s MI profile).

``--profile`` adds, for EEGMamba, the wall time per sub-module (forward hooks) and a
``torch.profiler`` table of the ops that dominate (CPU self time, over ``--profile-runs`` calls), to
see where a missed target goes.

Example::

    python benchmarks/bench_inference_latency.py --threads 2 --runs 200 --out latency.json --profile
    nice python benchmarks/bench_inference_latency.py --variant tokenizers --n-times 600 --backends cpu_fused
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as `python benchmarks/bench_inference_latency.py` without install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_CHANS, N_TIMES, N_CLASSES, SFREQ = 22, 800, 4, 200.0
TARGET_P99_MS = 5.0


def variants_of(spec: str) -> list[str]:
    """``--variant``: one name, a comma-separated list, or ``tokenizers`` (module docstring)."""
    if spec == "tokenizers":
        from eegmamba.model.variants import TOKENIZER_VARIANTS

        return ["eegmamba_single", *TOKENIZER_VARIANTS]
    return [v.strip() for v in spec.split(",") if v.strip()]


def build_models(variants: Sequence[str], backends: Sequence[str],
                 n_times: int = N_TIMES) -> dict[str, Any]:
    """The models under test, eval mode, for one 22 x ``n_times`` MI window with 4 classes: each
    EEGMamba variant once per scan backend (the same weights), then the EEG Conformer."""
    import torch

    from eegmamba import TaskSpec, create_model
    from eegmamba.baselines import create_conformer

    if isinstance(variants, str):
        variants = [variants]
    task = TaskSpec(name="mi", n_chans=N_CHANS, n_times=n_times, n_classes=N_CLASSES, sfreq=SFREQ)
    models = {}
    for variant in variants:
        for backend in backends:
            torch.manual_seed(0)
            models[f"EEGMamba ({variant}, {backend})"] = create_model(
                variant, tasks=[task], backend=backend).eval()
    models["EEG Conformer (ours)"] = create_conformer(N_CHANS, n_times, N_CLASSES,
                                                      sfreq=SFREQ).eval()
    return models


def forward_flops(model, x) -> int:
    """FLOPs of one ``model(x)`` as ``torch.utils.flop_counter`` counts them (module docstring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return int(counter.get_total_flops())


def time_models(models: dict, x, warmup: int, runs: int) -> dict[str, dict[str, float]]:
    """Latency of ``model(x)`` in ms, ``runs`` rounds of one call per model after ``warmup``."""
    import numpy as np
    import torch

    times = {k: np.empty(runs) for k in models}
    cpu = {k: np.empty(runs) for k in models}
    with torch.inference_mode():
        for model in models.values():
            for _ in range(warmup):
                model(x)
        for i in range(runs):
            for k, model in models.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                model(x)
                times[k][i] = (time.perf_counter() - t0) * 1e3
                cpu[k][i] = (time.thread_time() - c0) * 1e3
    return {k: {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
                "mean_ms": float(t.mean()), "min_ms": float(t.min()), "max_ms": float(t.max()),
                "thread_cpu_p50_ms": float(np.percentile(cpu[k], 50)),
                "thread_cpu_p99_ms": float(np.percentile(cpu[k], 99)), "runs": runs}
            for k, t in times.items()}


def module_times(model, x, runs: int) -> dict[str, float]:
    """Median wall ms per call of each sub-module down to blocks (``blocks.0``, ...), via hooks."""
    import numpy as np
    import torch

    parts = {n: m for n, m in model.named_modules()
             if n and (n.count(".") == 0 or n.split(".")[0] in ("st_adaptive", "blocks"))
             and not (n.count(".") > 1)}
    stamps: dict[str, list[float]] = {n: [] for n in parts}
    starts: dict[str, float] = {}
    handles = []
    for name, mod in parts.items():
        handles.append(mod.register_forward_pre_hook(
            lambda m, a, n=name: starts.__setitem__(n, time.perf_counter())))
        handles.append(mod.register_forward_hook(
            lambda m, a, o, n=name: stamps[n].append((time.perf_counter() - starts[n]) * 1e3)))
    try:
        with torch.inference_mode():
            for _ in range(runs):
                model(x)
    finally:
        for h in handles:
            h.remove()
    return {n: float(np.median(v)) for n, v in stamps.items() if v}


def profile_model(model, x, runs: int, top: int) -> str:
    """``torch.profiler`` table of the ``top`` ops by CPU self time over ``runs`` calls."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            model(x)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op CPU threads")
    p.add_argument("--runs", type=int, default=200, help="timed calls per model")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls before timing")
    p.add_argument("--variant", default="eegmamba_single",
                   help="EEGMamba registry variant(s): a name, a comma-separated list, or 'tokenizers'")
    p.add_argument("--n-times", type=int, default=N_TIMES,
                   help="window length in samples at 200 Hz (600 = the 3 s MI profile)")
    p.add_argument("--backends", default="cpu_fused,ref",
                   help="comma-separated EEGMamba scan backends to time (first: the one judged)")
    p.add_argument("--profile", action="store_true", help="print the top ops of EEGMamba")
    p.add_argument("--profile-runs", type=int, default=20, help="calls recorded by --profile")
    p.add_argument("--out", default=None, help="write results and settings to this JSON file")
    args = p.parse_args(argv)
    for name in ("threads", "runs", "profile_runs", "n_times"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def _main(argv: Sequence[str] | None) -> int:
    args = _parse(argv)
    import torch

    from eegmamba.ops import dispatch

    torch.set_num_threads(args.threads)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        dispatch.resolve_backend(b, "cpu")  # a clear error for an unknown / unavailable one
    compile_s = dispatch.warmup(backends[0], "cpu", backward=False)
    models = build_models(variants_of(args.variant), backends, args.n_times)
    x = torch.randn(1, N_CHANS, args.n_times, generator=torch.Generator().manual_seed(0))
    meta = {"threads": args.threads, "interop_threads": torch.get_num_interop_threads(),
            "window": f"{N_CHANS} ch x {args.n_times} samples ({args.n_times / SFREQ:g} s at "
                      f"{SFREQ:g} Hz)",
            "batch_size": 1, "warmup": args.warmup, "torch": torch.__version__,
            "backends": backends, "kernel_warmup_s": compile_s,
            "cpu": f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)",
            "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    print(f"inference latency, batch 1, {meta['window']}, {args.threads} threads, "
          f"{meta['cpu']}, torch {torch.__version__}, load avg {meta['load_avg_1min']:.1f}")
    print(f"{'model':44s} {'params':>9s} {'MFLOPs':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
          f"{'CPU p50':>8s} {'CPU p99':>8s}")
    results = time_models(models, x, args.warmup, args.runs)
    for name, model in models.items():
        r = results[name]
        r["n_params"] = sum(p.numel() for p in model.parameters())
        r["flops"] = forward_flops(model, x)
        print(f"{name:44s} {r['n_params']:9d} {r['flops'] / 1e6:8.1f} {r['p50_ms']:8.2f} "
              f"{r['p99_ms']:8.2f} {r['max_ms']:8.2f} {r['thread_cpu_p50_ms']:8.2f} "
              f"{r['thread_cpu_p99_ms']:8.2f}")
    mamba_name = next(iter(models))
    p99 = results[mamba_name]["p99_ms"]
    verdict = "meets" if p99 <= TARGET_P99_MS else "MISSES"
    print(f"{mamba_name} p99 {p99:.2f} ms {verdict} the {TARGET_P99_MS:g} ms target")
    names = list(models)
    if len(backends) > 1:
        other = names[1]
        print(f"p50 {other} / {mamba_name}: "
              f"{results[other]['p50_ms'] / results[mamba_name]['p50_ms']:.2f}x")
    if args.profile:
        parts = module_times(models[mamba_name], x, args.profile_runs)
        results[mamba_name]["module_p50_ms"] = parts
        print(f"{mamba_name}: median wall ms per sub-module call")
        for name, ms in parts.items():
            print(f"  {name:32s} {ms:8.2f}")
        print(profile_model(models[mamba_name], x, args.profile_runs, top=15))
    meta["load_avg_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
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

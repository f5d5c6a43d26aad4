"""Benchmark the selective scan: our fused CPU kernel and our reference vs mambapy's pure-PyTorch
pscan (and mamba-ssm on CUDA).

All backends get the same inputs (each in its native layout, prepared outside the timed region:
(b, d, L) for the reference and mamba-ssm, (b, L, d) for mambapy and the fused kernel, the layout
BiMamba gives it) and are first checked to agree. Reports forward and forward+backward
milliseconds per call (wall; process CPU in brackets), and the ratios other / cpu_fused and
mambapy / ref (>1 means ours is faster); writes everything as JSON to ``--out``.

    python benchmarks/bench_scan.py --threads 1 --lengths 250 1000 4000 --out scan.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

# run as a script from a checkout without an editable install: make the repo root importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eegmamba.ops import dispatch  # noqa: E402
from eegmamba.ops.scan_ref import selective_scan_ref  # noqa: E402

if dispatch.has_cpu_fused():
    from eegmamba.ops.selective_scan_cpu import selective_scan_bld

try:  # mambapy's pure-PyTorch scan (Blelloch pscan); a method that does not use ``self``
    from mambapy.mamba import MambaBlock as _MambapyBlock
except ImportError:  # pragma: no cover - mambapy is in the test/bench extras
    _MambapyBlock = None


def _inputs(batch: int, d: int, n: int, L: int, device: torch.device, dtype: torch.dtype):
    g = torch.Generator().manual_seed(L)
    r = lambda *s: torch.randn(*s, generator=g).to(device=device, dtype=dtype)  # noqa: E731
    u, B, C = r(batch, d, L), r(batch, n, L), r(batch, n, L)
    delta = torch.nn.functional.softplus(r(batch, d, L) - 2.0)  # Δ already positive
    A = -torch.exp(torch.rand(d, n, generator=g) * 2.0).to(device)  # mamba's A = -exp(A_log)
    D = torch.randn(d, generator=g).to(device)
    return dict(u=u, delta=delta, A=A, B=B, C=C, D=D)


def _backends(device: torch.device) -> dict[str, Callable]:
    """name -> f(inputs) returning y (batch, d, L); each call starts from its own layout."""
    out: dict[str, Callable] = {
        "ref": lambda t: selective_scan_ref(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"])
    }
    if device.type == "cpu" and dispatch.has_cpu_fused():
        def cpu_fused(t):  # (B, L, d) layout and B, C as columns of one (B, L, 2N) tensor
            y, _ = selective_scan_bld(t["x_l"], t["delta_l"], t["A"], t["bc_l"], 0,
                                      t["A"].shape[1], 1, t["D"])
            return y.transpose(1, 2)

        out["cpu_fused"] = cpu_fused
    if _MambapyBlock is not None:

        def mambapy(t):  # (B, L, ED) layout, its inputs prepared once in `_mambapy_layout`
            y = _MambapyBlock.selective_scan(None, t["x_l"], t["delta_l"], t["A"], t["B_l"],
                                             t["C_l"], t["D"])
            return y.transpose(1, 2)

        out["mambapy"] = mambapy
    if device.type == "cuda" and dispatch.has_mamba_ssm():
        fn = dispatch.selective_scan_fn()
        out["mamba_ssm"] = lambda t: fn(t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"])
    return out


def _mambapy_layout(t: dict) -> dict:
    t = dict(t)
    t["x_l"] = t["u"].transpose(1, 2).contiguous()
    t["delta_l"] = t["delta"].transpose(1, 2).contiguous()
    t["B_l"] = t["B"].transpose(1, 2).contiguous()
    t["C_l"] = t["C"].transpose(1, 2).contiguous()
    t["bc_l"] = torch.cat([t["B_l"], t["C_l"]], dim=2)
    return t


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _leaves(t: dict) -> dict:
    return {k: (v.detach().requires_grad_(True) if v.is_floating_point() else v)
            for k, v in t.items()}


def _timed(fn: Callable[[], None], device: torch.device) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    _sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - w0, time.process_time() - c0


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    backends = _backends(device)
    compile_s = dispatch.warmup("cpu_fused", "cpu") if "cpu_fused" in backends else None
    rows = []
    for L in args.lengths:
        base = _mambapy_layout(_inputs(args.batch, args.d_inner, args.d_state, L, device, dtype))
        with torch.no_grad():
            ref_y = backends["ref"](base).float()
            agree = {name: float((f(base).float() - ref_y).abs().max() / ref_y.abs().max())
                     for name, f in backends.items() if name != "ref"}
        calls = {}
        for name, f in backends.items():
            def fwd(f=f):
                with torch.no_grad():
                    f(base)

            def fwd_bwd(f=f):
                f(_leaves(base)).float().square().mean().backward()

            calls[f"{name}_fwd"], calls[f"{name}_fwdbwd"] = fwd, fwd_bwd
        for fn in calls.values():  # warm-up
            fn()
        # round-robin over the backends so that a change in machine load hits all of them
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in calls}
        start = time.perf_counter()
        while True:
            for k, fn in calls.items():
                samples[k].append(_timed(fn, device))
            n = len(samples["ref_fwd"])
            if n >= args.repeats and (time.perf_counter() - start >= args.min_seconds or n >= 50):
                break
        row: dict = {"L": L, "max_rel_err_vs_ref": agree, "calls": n}
        for k, v in samples.items():
            row[f"{k}_ms"] = 1e3 * statistics.median(w for w, _ in v)
            row[f"{k}_cpu_ms"] = 1e3 * statistics.median(c for _, c in v)
        for other, ours in _pairs(backends):
            for k in ("fwd", "fwdbwd"):
                row[f"{other}/{ours}_{k}"] = row[f"{other}_{k}_ms"] / row[f"{ours}_{k}_ms"]
                if device.type == "cpu":
                    row[f"{other}/{ours}_{k}_cpu"] = (row[f"{other}_{k}_cpu_ms"]
                                                      / row[f"{ours}_{k}_cpu_ms"])
        rows.append(row)
        _print_row(row, backends)
    return {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "shape": {"batch": args.batch, "d_inner": args.d_inner, "d_state": args.d_state},
        "dtype": args.dtype,
        "backends": list(backends),
        "cpu_fused_warmup_s": compile_s,
        "rows": rows,
    }


_printed_header = False


def _pairs(backends: dict) -> list[tuple[str, str]]:
    """(other, ours) ratios reported: everything vs the fused kernel, and mambapy vs ref."""
    pairs = [(o, "cpu_fused") for o in ("ref", "mambapy") if "cpu_fused" in backends and o in backends]
    pairs += [(o, "ref") for o in ("mambapy", "mamba_ssm") if o in backends]
    return pairs


def _print_row(row: dict, backends: dict) -> None:
    """Wall-clock medians (CPU-time medians in brackets on CPU) and the ratios of ``_pairs``."""
    global _printed_header
    pairs = _pairs(backends)
    cols = [f"{n} {k}" for n in backends for k in ("fwd", "f+b")]
    ratios = [f"{o}/{r} {k}" for o, r in pairs for k in ("fwd", "f+b")]
    if not _printed_header:
        print("ms per call, wall [process CPU]; ratio a/b > 1: b faster (wall [CPU])")
        print(f"{'L':>6} " + " ".join(f"{c:>19}" for c in cols)
              + " " + " ".join(f"{c:>22}" for c in ratios) + "  max rel err")
        _printed_header = True
    vals = [f"{row[f'{n}_{k}_ms']:8.1f} [{row[f'{n}_{k}_cpu_ms']:8.1f}]"
            for n in backends for k in ("fwd", "fwdbwd")]
    rats = [f"{row[f'{o}/{r}_{k}']:6.2f}x" + (f" [{row[f'{o}/{r}_{k}_cpu']:6.2f}x]"
                                                if f"{o}/{r}_{k}_cpu" in row else "")
            for o, r in pairs for k in ("fwd", "fwdbwd")]
    err = ", ".join(f"{n} {e:.1e}" for n, e in row["max_rel_err_vs_ref"].items())
    print(f"{row['L']:>6} " + " ".join(f"{v:>19}" for v in vals)
          + " " + " ".join(f"{r:>22}" for r in rats) + f"  {err}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[250, 1000, 4000, 16000],
                   help="sequence lengths L (default: %(default)s)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default: %(default)s)")
    p.add_argument("--d-inner", type=int, default=256,
                   help="channels d_inner (EEGMamba single: d_model 128 x expand 2; default: %(default)s)")
    p.add_argument("--d-state", type=int, default=16, help="state size N (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="input dtype (default: %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed calls per backend at least (default: %(default)s)")
    p.add_argument("--min-seconds", type=float, default=1.0,
                   help="keep timing until this many seconds passed (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = p.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            p.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    result = run(args)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU training-step time of single-task EEGMamba: the fused scan backend vs the reference, one run.

One step = forward + cross-entropy + backward + AdamW (the trainer's settings: lr 2e-4, weight decay
1e-6) on ``--batch`` motor-imagery windows (22 channels x 800 samples at 200 Hz, 4 classes), with
``--threads`` torch threads. The configurations are timed round-robin in the same process, so a
change of machine load hits all of them:

* ``ref``: ``backend="ref"`` with the optimizer as the trainer built it before the fused backend
  (``torch.optim.AdamW`` defaults: a per-parameter loop on CPU);
* ``cpu_fused``: ``backend="cpu_fused"`` with the optimizer the trainer builds now
  (:func:`eegmamba.training.trainer.make_optimizer`).

Prints median wall and process-CPU ms per step and the ratio ref / cpu_fused; ``--profile`` adds a
``torch.profiler`` table of the new step; ``--out`` writes JSON.

    python benchmarks/bench_train_step.py --threads 1 --steps 10 --out train_step.json
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
from typing import Sequence

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_CHANS, N_TIMES, N_CLASSES, SFREQ = 22, 800, 4, 200.0


def build(backend: str, new_optimizer: bool, seed: int = 0):
    """(model, optimizer) for one configuration; the same initial weights for every backend."""
    import torch

    from eegmamba import TaskSpec, create_model
    from eegmamba.training.trainer import TrainConfig, make_optimizer

    torch.manual_seed(seed)
    task = TaskSpec(name="mi", n_chans=N_CHANS, n_times=N_TIMES, n_classes=N_CLASSES, sfreq=SFREQ)
    model = create_model("eegmamba_single", tasks=[task], backend=backend).train()
    cfg = TrainConfig()
    if new_optimizer:
        opt = make_optimizer(model, cfg, torch.device("cpu"))
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return model, opt


def step(model, opt, x, y) -> float:
    import torch.nn.functional as F

    logits = model(x)
    loss = F.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def run(args: argparse.Namespace) -> dict:
    import torch

    from eegmamba.ops import dispatch

    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, N_CHANS, N_TIMES, generator=g)
    y = torch.randint(0, N_CLASSES, (args.batch,), generator=g)
    compile_s = dispatch.warmup("cpu_fused", "cpu")
    configs = {"ref": build("ref", False), "cpu_fused": build("cpu_fused", True)}
    losses = {k: step(m, o, x, y) for k, (m, o) in configs.items()}  # warm-up step, same weights
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    for _ in range(args.steps):
        for k, (m, o) in configs.items():
            samples[k].append(_timed(lambda m=m, o=o: step(m, o, x, y)))
    rows = {k: {"wall_ms": 1e3 * statistics.median(w for w, _ in v),
                "cpu_ms": 1e3 * statistics.median(c for _, c in v),
                "min_wall_ms": 1e3 * min(w for w, _ in v), "first_loss": losses[k]}
            for k, v in samples.items()}
    ratio = rows["ref"]["wall_ms"] / rows["cpu_fused"]["wall_ms"]
    ratio_cpu = rows["ref"]["cpu_ms"] / rows["cpu_fused"]["cpu_ms"]
    print(f"training step, batch {args.batch} x {N_CHANS} ch x {N_TIMES} samples, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"kernel warm-up {compile_s:.2f} s")
    print(f"{'config':12s} {'wall ms':>9s} {'CPU ms':>9s} {'min ms':>9s} {'first loss':>11s}")
    for k, r in rows.items():
        print(f"{k:12s} {r['wall_ms']:9.1f} {r['cpu_ms']:9.1f} {r['min_wall_ms']:9.1f} "
              f"{r['first_loss']:11.5f}")
    verdict = "meets" if ratio >= 4 else "MISSES"
    print(f"ref / cpu_fused: {ratio:.2f}x wall, {ratio_cpu:.2f}x CPU ({verdict} the 4x target)")
    result = {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "batch": args.batch, "steps": args.steps, "kernel_warmup_s": compile_s,
              "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
              "rows": rows, "ratio_wall": ratio, "ratio_cpu": ratio_cpu}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        m, o = configs["cpu_fused"]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step(m, o, x, y)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    return result


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op CPU threads")
    p.add_argument("--batch", type=int, default=32, help="windows per step")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    p.add_argument("--profile", action="store_true", help="print the top ops of the new step")
    p.add_argument("--out", default=None, help="write results to this JSON file")
    args = p.parse_args(argv)
    for name in ("threads", "batch", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    result = run(args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure the train/eval normalisation gap of the tokenizer's BatchNorm in a multi-task EEGMamba.

Every training batch holds one task (dynamic sampling, paper Appendix E.4), so a BatchNorm shared by
all tasks normalises each training batch with that task's own statistics, while at evaluation it uses
running statistics that mix the tasks. This script trains a small multi-task model on real windows
of three tasks (motor imagery 22 ch, seizure 22 ch bipolar, sleep 1 ch) and prints, per task:

* ``var ratio``: the task's per-channel input variance at each tokenizer BatchNorm divided by the
  running variance that BatchNorm uses at evaluation (mean over channels; 1.0 = no gap);
* ``logit shift``: ``mean ||l_eval - l_batch|| / mean ||l_batch||`` where ``l_eval`` are eval-mode
  logits and ``l_batch`` the logits with every BatchNorm of the ST-Adaptive module using the task's
  batch statistics (what training saw), on the same windows.

Both are printed twice: for the running statistics as trained, and after re-estimating them over
the training windows with the weights fixed (cumulative averages over single-task batches of 32,
tasks interleaved as in training). Short training leaves running statistics lagging the weights;
the second figures remove that lag, so what remains is the task mix alone.

The script inspects the model generically (any BatchNorm1d under ``st_adaptive``), so the same
command measures the code before and after a change. Usage::

    OMP_NUM_THREADS=1 python tools/measure_task_norm.py [--epochs 2] [--variant eegmamba_tiny]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from eegmamba import TaskSpec, create_model
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import load_profile
from eegmamba.training.trainer import TaskData, TrainConfig, Trainer, seed_everything

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _task_windows(max_per_task: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    mi_files = [DATA / "motor_imagery" / f"S00{s}R{r:02d}.edf" for s in (1, 2, 3, 4) for r in (4, 8)]
    sets = {
        "motor_imagery": build_windows(mi_files, "motor_imagery", hop_s=0.5),
        "seizure": build_windows(DATA / "seizure", "seizure"),
        "sleep": build_windows(DATA / "sleep", "sleep"),
    }
    out = {}
    for name, ws in sets.items():
        idx = rng.permutation(len(ws.y))[:max_per_task]
        out[name] = (load_profile(name), TaskData(ws.X[idx], ws.y[idx]))
    return out


def _bn_modules(model: nn.Module) -> dict[str, nn.BatchNorm1d]:
    return {n: m for n, m in model.st_adaptive.named_modules() if isinstance(m, nn.BatchNorm1d)}


@torch.no_grad()
def measure(model: nn.Module, task: str, X: np.ndarray) -> tuple[dict[str, float], float]:
    """``({bn name: var ratio}, logit shift)`` for windows ``X`` of ``task`` (see module doc)."""
    bns = _bn_modules(model)
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, inp[0]))
             for n, m in bns.items()]
    x = torch.from_numpy(X)
    model.eval()
    l_eval = model(x, task=task)
    for h in hooks:
        h.remove()
    ratios = {}
    for n, inp in seen.items():
        var = inp.transpose(0, 1).reshape(inp.shape[1], -1).var(dim=1, unbiased=False)
        ratios[n] = float((var / bns[n].running_var).mean())
    saved = {n: (m.momentum, m.running_mean.clone(), m.running_var.clone()) for n, m in bns.items()}
    for m in bns.values():
        m.train()
        m.momentum = 0.0  # normalise with batch statistics, leave the running ones untouched
    l_batch = model(x, task=task)
    for n, m in bns.items():
        m.momentum, rm, rv = saved[n]
        assert torch.equal(m.running_mean, rm) and torch.equal(m.running_var, rv)
    model.eval()
    shift = float((l_eval - l_batch).norm(dim=1).mean() / l_batch.norm(dim=1).mean())
    return ratios, shift


@torch.no_grad()
def recalibrate(model: nn.Module, data: dict[str, TaskData], batch: int = 32) -> None:
    """Re-estimate every BatchNorm's running statistics over ``data`` with the weights fixed."""
    for m in _bn_modules(model).values():
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    starts = {k: list(range(0, len(d.y), batch)) for k, d in data.items()}
    while any(starts.values()):
        for task, s in starts.items():
            if s:
                i = s.pop(0)
                model(torch.from_numpy(data[task].X[i:i + batch]), task=task)
    model.eval()


def _table(model: nn.Module, data: dict) -> None:
    print(f"{'task':<14} {'logit shift':>11}  var ratio per tokenizer/spatial BatchNorm")
    for name, (_, d) in data.items():
        ratios, shift = measure(model, name, d.X)
        used = ", ".join(f"{n}={r:.2f}" for n, r in ratios.items())
        print(f"{name:<14} {100 * shift:>10.1f}%  {used}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="eegmamba_tiny", help="model variant (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs (default: %(default)s)")
    ap.add_argument("--max-per-task", type=int, default=256, help="windows per task (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    seed_everything(a.seed)
    t0 = time.perf_counter()
    data = _task_windows(a.max_per_task, a.seed)
    specs = [TaskSpec(p.name, p.n_channels, p.window_samples, len(p.classes), p.sfreq,
                      p.channels.names, p.classes) for p, _ in data.values()]
    model = create_model(a.variant, tasks=specs, backend="ref")
    cfg = TrainConfig(epochs=a.epochs, batch_size=32, seed=a.seed)
    fit = Trainer(model, {k: d for k, (_, d) in data.items()}, None, cfg, torch.device("cpu")).fit()
    print(f"{a.variant}, {a.epochs} epoch(s), {a.max_per_task} windows per task, seed {a.seed}; "
          f"last train_loss {fit.history[-1]['train_loss']:.3f}")
    print("running statistics as trained:")
    _table(model, data)
    recalibrate(model, {k: d for k, (_, d) in data.items()})
    print("running statistics re-estimated with the weights fixed:")
    _table(model, data)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

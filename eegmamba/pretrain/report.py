"""Pretraining report: ``history.csv`` (every loss part, train and validation, per epoch),
``loss_curves.png``, ``reconstruction.png`` (one validation window: signal vs reconstruction, and
their Welch PSDs overlaid) and ``report.md`` tying them together."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from eegmamba.pretrain.loop import PARTS

HISTORY_COLUMNS = ("epoch", "step", "lr", "seconds", *(f"train_{p}" for p in PARTS),
                   *(f"val_{p}" for p in PARTS))


def write_history_csv(path: str | Path, history: Sequence[dict]) -> Path:
    """One row per epoch (epoch 0 = the initial model, validation only); empty cell = not measured."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HISTORY_COLUMNS)
        for rec in history:
            w.writerow(["" if rec.get(c) is None else (f"{rec[c]:.6g}" if isinstance(rec[c], float)
                                                       else rec[c]) for c in HISTORY_COLUMNS])
    return path


def read_history_csv(path: str | Path) -> list[dict]:
    """Inverse of :func:`write_history_csv` (numbers as float, missing as None)."""
    with open(path, newline="") as f:
        return [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)]


def plot_losses(path: str | Path, history: Sequence[dict]) -> Path:
    """Loss curves, one panel per part (log scale), train and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PARTS), figsize=(4 * len(PARTS), 3.2))
    for ax, part in zip(axes, PARTS):
        values = []
        for split, style in (("train", "-o"), ("val", "-s")):
            pts = [(r["epoch"], r[f"{split}_{part}"]) for r in history
                   if r.get(f"{split}_{part}") is not None and math.isfinite(r[f"{split}_{part}"])]
            if pts:
                ax.plot(*zip(*pts), style, ms=3, label=split)
                values += [v for _, v in pts]
        ax.set_title(part)
        ax.set_xlabel("epoch (0 = initial)")
        if values and min(values) > 0:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_reconstruction(path: str | Path, x: np.ndarray, recon: np.ndarray, ch_names: Sequence[str],
                        sfreq: float, max_channels: int = 4) -> Path:
    """Signal vs reconstruction for the first ``max_channels`` channels, and the channel-mean Welch
    PSD of both (log scale).

    x, recon : ndarray, shape (C, T), z-scored units; sfreq : Hz
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    n = min(max_channels, x.shape[0])
    t = np.arange(x.shape[1]) / sfreq
    fig, axes = plt.subplots(n + 1, 1, figsize=(9, 1.6 * n + 2.6))
    for i in range(n):
        axes[i].plot(t, x[i], lw=0.8, label="input")
        axes[i].plot(t, recon[i], lw=0.8, alpha=0.8, label="reconstruction")
        axes[i].set_ylabel(ch_names[i], fontsize=8)
        axes[i].tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[n - 1].set_xlabel("time (s)")
    nper = min(x.shape[1], int(2 * sfreq))
    f, p_in = welch(x, fs=sfreq, nperseg=nper, axis=-1)
    _, p_out = welch(recon, fs=sfreq, nperseg=nper, axis=-1)
    axes[n].semilogy(f, p_in.mean(0), label="input")
    axes[n].semilogy(f, p_out.mean(0), label="reconstruction")
    axes[n].set_xlabel("frequency (Hz)")
    axes[n].set_ylabel("PSD (mean over channels)", fontsize=8)
    axes[n].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.4g}"


def write_report_md(path: str | Path, meta: dict, history: Sequence[dict], images: Sequence[str]) -> Path:
    """``report.md``: what was trained on what, the loss table per epoch and the figures."""
    pre = meta["pretraining"]
    s = pre["summary"]
    lines = [
        "# EEGM2 pretraining report", "",
        f"- command: `{pre['command']}`",
        f"- variant `{pre['variant']}`, {pre['n_parameters']:,} parameters; device {pre['device']}; "
        f"machine: {pre['machine']}",
        f"- data: {pre['data_summary']}",
        f"- channels ({len(meta['ch_names'])}): {', '.join(meta['ch_names'])}",
        f"- {meta['sfreq']:g} Hz, windows {meta['window_s']:g} s every {meta['hop_s']:g} s, "
        f"filter {meta['preprocessing']['filter']}, normalization {meta['preprocessing']['normalization']}",
        f"- {s['validation']}",
        f"- loss: {pre['config']['loss']}",
        f"- {s['epochs_run']} epoch(s), {s['steps']} step(s), {pre['seconds']:.1f} s; best validation at "
        f"epoch {s['best_epoch']}",
        "",
        "| epoch | train total | train L1 | train spectral | train MSE | val total | val L1 | "
        "val spectral | val MSE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in history:
        lines.append("| " + " | ".join([str(int(r["epoch"]))] + [_fmt(r.get(f"{sp}_{p}")) for sp in
                                       ("train", "val") for p in ("total", "l1", "spectral", "mse")]) + " |")
    init, best = s.get("initial_val") or {}, s.get("best_val") or {}
    if init.get("total") and best.get("total") is not None:
        lines += ["", f"Validation loss fell from {init['total']:.4g} (initial) to {best['total']:.4g} "
                  f"(best, {best['total'] / init['total']:.1%} of the start); L1 {init['l1']:.4g} → "
                  f"{best['l1']:.4g}."]
    lines.append("")
    lines += [f"![{Path(im).stem}]({Path(im).name})" for im in images]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)

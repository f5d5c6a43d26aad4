"""Ablations of the model review (issue 11): class-token position and window normalization.

Each arm is an ``eegmamba-protocol`` run of the EEGMamba arm (``eegmamba.training.protocols``: the
profile's preprocessing and windowing, the protocol's units — subject-grouped folds or per-subject
chronological splits — the same validation split, early stopping, best-validation weights), with
everything fixed except the ablated setting:

* ``--ablation norm``: the profile's ``normalization`` (``zscore`` = per window, ``recording`` =
  causal running RMS of the recording, ``none`` = µV; ``eegmamba.windowing``). An arm other than the
  profile's own gets a copy of the profile with only that field changed (``OUT/profile_<arm>.yaml``).
* ``--ablation cls``: ``EEGMambaConfig.cls_position`` (``start`` = Eq. 7, ``middle``, ``end``).

Every arm gets the same units (asserted: same windows, same labels), the same seed and the same
training settings. Units run in the outer loop and arms in the inner one, so a run stopped early
still holds *paired* results. Each arm's folder ``OUT/<arm>`` is a normal protocol run folder
(``run.json``, ``units/eegmamba/*.json``, ``results.json``, ``report.md``); the profile's own arm
(``zscore`` / ``start``) is exactly what ``eegmamba-protocol`` with the same options computes, so
peers can be added to it with ``eegmamba-protocol --resume --out OUT/<arm> --models ...`` (or
``--peers`` here). Finished units are skipped on a rerun (resumable). Writes ``OUT/ablation.json``
and ``OUT/ablation.md`` (mean ± std over units per arm, paired differences to the first arm, and
every unit). Usage::

    OMP_NUM_THREADS=1 python tools/ablation_model_review.py --ablation norm --protocol cross-subject \\
        --profile seizure --data ../shared/data/seizure --arms zscore,recording --out runs/abl_seizure
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

METRICS = ("acc", "balanced_acc", "auroc", "f1_weighted", "kappa")


def arm_profile(a, arm: str, out: Path) -> str:
    """The profile argument of arm ``arm``: the profile itself, or a copy with ``normalization`` set."""
    from eegmamba.profiles import load_profile

    profile = load_profile(a.profile)
    if a.ablation != "norm" or profile.normalization == arm:
        return a.profile
    d = profile.to_dict()
    d["normalization"] = arm
    path = out / f"profile_{arm}.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(path)


def protocol_config(a, arm: str, out: Path, models: tuple[str, ...]):
    """The ``ProtocolConfig`` ``eegmamba-protocol`` builds from the same options (cli_protocol)."""
    from eegmamba.training.arms import ArmSettings
    from eegmamba.training.cli_protocol import subject_range
    from eegmamba.training.protocols import ProtocolConfig

    settings = ArmSettings(eegmamba_epochs=a.epochs, eegmamba_patience=a.patience,
                           eegmamba_batch=a.batch_size, eegmamba_variant=a.variant,
                           eegmamba_cls_position=arm if a.ablation == "cls" else "start",
                           eegnet_epochs=100, eegnet_patience=10)
    return ProtocolConfig(
        protocol=a.protocol, profile=arm_profile(a, arm, out), data=tuple(a.data),
        out=str(out / arm), arms=models, subjects=subject_range(a.subjects) if a.subjects else None,
        runs=tuple(a.runs) if a.runs else None, train_runs=tuple(a.train_runs),
        test_runs=tuple(a.test_runs), folds=a.folds, seed=a.seed, settings=settings)


def paired_table(arm_units: dict[str, dict[str, dict]], arms: list[str]) -> str:
    """Markdown: mean ± std over the units every arm finished, paired differences to ``arms[0]``,
    then one row per unit."""
    common = sorted(set.intersection(*(set(arm_units[a]) for a in arms)),
                    key=lambda u: (len(u), u))
    lines = [f"Units finished by every arm: {len(common)} ({', '.join(common)})", "",
             "| arm | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for arm in arms:
        cells = []
        for m in METRICS:
            v = np.array([arm_units[arm][u]["metrics"][m] for u in common], dtype=float)
            cells.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" if len(v) else "–")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    for arm in arms[1:]:
        cells = []
        for m in METRICS:
            d = np.array([arm_units[arm][u]["metrics"][m] - arm_units[arms[0]][u]["metrics"][m]
                          for u in common], dtype=float)
            d = d[np.isfinite(d)]
            cells.append(f"{d.mean():+.3f} ± {d.std():.3f} ({int((d > 0).sum())}/{len(d)} up)"
                         if len(d) else "–")
        lines.append(f"| {arm} − {arms[0]} (paired) | " + " | ".join(cells) + " |")
    lines += ["", "| unit | test subjects | n | arm | best epoch / run | " + " | ".join(METRICS) + " |",
              "|---|---|---|---|---|" + "---|" * len(METRICS)]
    for u in common:
        for arm in arms:
            r = arm_units[arm][u]
            lines.append(f"| {u} | {', '.join(r['test_subjects'])} | {r['metrics']['n']} | {arm} | "
                         f"{r['fit'].get('best_epoch')}/{r['fit'].get('epochs_run')} | "
                         + " | ".join(f"{r['metrics'][m]:.3f}" for m in METRICS) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--ablation", choices=("norm", "cls"), required=True, help="what is ablated")
    ap.add_argument("--protocol", choices=("cross-subject", "within-subject", "leave-one-recording-out"),
                    default="cross-subject")
    ap.add_argument("--profile", required=True, help="task profile (name or YAML)")
    ap.add_argument("--data", nargs="+", required=True, help="recordings (files or folders)")
    ap.add_argument("--arms", required=True, help="comma-separated arms (normalizations or positions)")
    ap.add_argument("--out", required=True, help="output folder (a rerun resumes it)")
    ap.add_argument("--peers", default="", help="comma-separated peer arms run into the first arm's "
                    "folder, before EEGMamba (e.g. bandpower_lr,yasa)")
    ap.add_argument("--subjects", nargs="+", help="subjects, e.g. S002-S011 (default: all found)")
    ap.add_argument("--runs", nargs="+", type=int, help="runs to read (default: all)")
    ap.add_argument("--train-runs", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--test-runs", nargs="+", type=int, default=[12])
    ap.add_argument("--folds", type=int, default=5, help="subject-grouped folds (cross-subject)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="eegmamba_single", help="model variant")
    ap.add_argument("--epochs", type=int, default=20, help="maximum epochs")
    ap.add_argument("--patience", type=int, default=4, help="early-stopping patience, epochs")
    ap.add_argument("--batch-size", type=int, default=32, help="windows per step")
    a = ap.parse_args(argv)
    import torch
    from rich.console import Console

    from eegmamba.training.protocols import (UNIT_BUILDERS, ProtocolRun, collect, load_data,
                                             select_files)
    from eegmamba.training.protocol_report import write_protocol_report

    torch.set_num_threads(1)
    console = Console(stderr=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = [s.strip() for s in a.arms.split(",") if s.strip()]
    peers = tuple(s.strip() for s in a.peers.split(",") if s.strip())
    t0 = time.time()
    runs, data, records = {}, {}, {}
    for i, arm in enumerate(arms):
        models = (peers if i == 0 else ()) + ("eegmamba",)
        cfg = protocol_config(a, arm, out, models)
        run = ProtocolRun(cfg, resume=True, console=console, argv=argv)
        files = select_files(cfg)
        records[arm] = run._prepare(files)
        data[arm] = load_data(cfg, files)
        runs[arm] = run
    d0 = data[arms[0]]
    for arm in arms[1:]:
        d = data[arm]
        for grid in ("train", "test"):
            w0, w = getattr(d0, grid), getattr(d, grid)
            if not (np.array_equal(w0.files, w.files) and np.array_equal(w0.t_start, w.t_start)
                    and np.array_equal(w0.y, w.y)):
                raise RuntimeError(f"arm {arm!r}: its {grid} windows differ from arm {arms[0]!r}'s")
    units = UNIT_BUILDERS[a.protocol](d0, runs[arms[0]].cfg)
    for peer in peers:
        for u in units:
            runs[arms[0]]._unit(d0, peer, u)
    for u in units:
        for arm in arms:
            runs[arm]._unit(data[arm], "eegmamba", u)
    arm_units = {}
    for arm in arms:
        results = collect(Path(runs[arm].cfg.out), data[arm].profile, records[arm], time.time() - t0)
        write_protocol_report(Path(runs[arm].cfg.out), results)
        arm_units[arm] = {p.stem: json.loads(p.read_text())
                          for p in sorted((Path(runs[arm].cfg.out) / "units" / "eegmamba").glob("*.json"))}
    table = paired_table(arm_units, arms)
    header = (f"Ablation `{a.ablation}`, protocol {a.protocol}, profile {a.profile}, seed {a.seed}, "
              f"EEGMamba {a.variant}: AdamW 2e-4 / 1e-6, batch {a.batch_size}, ≤ {a.epochs} epochs, "
              f"patience {a.patience}; {time.time() - t0:.0f} s wall (this command)\n")
    (out / "ablation.md").write_text(header + "\n" + table + "\n")
    (out / "ablation.json").write_text(json.dumps(
        {"args": vars(a), "arms": arms,
         "units": {arm: {u: {k: r[k] for k in ("test_subjects", "metrics", "per_class")} |
                             {"best_epoch": r["fit"].get("best_epoch"),
                              "epochs_run": r["fit"].get("epochs_run"),
                              "seconds": r["fit"].get("seconds")}
                         for u, r in arm_units[arm].items()} for arm in arms}},
        indent=1, allow_nan=True) + "\n")
    print(header + "\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

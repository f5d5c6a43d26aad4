"""Ablations on the protocol path (``eegmamba-protocol --ablation``): class-token position and
window normalization, everything else fixed.

Each arm is an ``eegmamba-protocol`` run of the EEGMamba arm (:mod:`eegmamba.training.protocols`:
the profile's preprocessing and windowing, the protocol's units — subject-grouped folds or
per-subject chronological splits — the same validation split, early stopping, best-validation
weights, the same recipe) with only the ablated setting changed:

* ``norm``: the profile's ``normalization`` (``zscore`` = per window, ``recording`` = causal
  running RMS of the recording, ``none`` = µV; ``eegmamba.windowing``). An arm other than the
  profile's own gets a copy of the profile with only that field changed (``OUT/profile_<arm>.yaml``).
* ``cls``: ``EEGMambaConfig.cls_position`` (``start`` = Eq. 7, ``middle``, ``end``).

Every arm gets the same units (asserted: same windows, same labels), the same seed and the same
training settings. Units run in the outer loop and arms in the inner one, so a run stopped early
still holds *paired* results. Each arm's folder ``OUT/<arm>`` is a normal protocol run folder
(``run.json``, ``units/eegmamba/*.json``, ``results.json``, ``report.md``); the profile's own arm
(``zscore`` / ``start``) is what ``eegmamba-protocol`` with the same options computes, and the
peers (the other ``--models``) run into the first arm's folder, before EEGMamba. Finished units
are skipped on a rerun (resumable). Writes ``OUT/ablation.json`` and ``OUT/ablation.md`` (mean ±
std over units per arm, paired differences to the first arm, and every unit).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from eegmamba._checks import UserInputError

METRICS = ("acc", "balanced_acc", "auroc", "f1_weighted", "kappa")
ABLATIONS = {"norm": ("zscore", "recording", "none"), "cls": ("start", "middle", "end")}
"""What can be ablated and its arms (``--arms`` takes any of them, in the order to compare)."""


def check_arms(ablation: str, arms: Sequence[str]) -> tuple[str, ...]:
    """The arms of ``ablation`` (a UserInputError names the allowed ones)."""
    allowed = ABLATIONS[ablation]
    arms = tuple(arms)
    bad = [a for a in arms if a not in allowed]
    if bad or len(arms) < 2 or len(set(arms)) != len(arms):
        raise UserInputError(f"--ablation {ablation} needs two or more different --arms of "
                             f"{', '.join(allowed)}; got {', '.join(arms) or 'none'}")
    return arms


def arm_profile(profile_arg: str, ablation: str, arm: str, out: Path) -> str:
    """The profile argument of arm ``arm``: the profile itself, or a copy with ``normalization``
    set to ``arm`` (written to ``out/profile_<arm>.yaml``)."""
    from eegmamba.profiles import load_profile

    profile = load_profile(profile_arg)
    if ablation != "norm" or profile.normalization == arm:
        return profile_arg
    d = profile.to_dict()
    d["normalization"] = arm
    path = out / f"profile_{arm}.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(path)


def arm_config(base, ablation: str, arm: str, models: tuple[str, ...]):
    """The ``ProtocolConfig`` of one arm: ``base`` (the options of ``eegmamba-protocol``) with its
    folder ``base.out/<arm>``, its models, and only the ablated setting changed."""
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(base.settings, eegmamba_cls_position=arm if ablation == "cls"
                                   else base.settings.eegmamba_cls_position)
    return dataclasses.replace(base, profile=arm_profile(base.profile, ablation, arm, out),
                               out=str(out / arm), arms=models, settings=settings)


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


def run_ablation(base, ablation: str, arms: Sequence[str], peers: Sequence[str] = (), *,
                 console=None, argv: Sequence[str] | None = None) -> str:
    """Run every arm of ``ablation`` on ``base``'s units (resumable; module docstring); write
    ``ablation.md`` / ``ablation.json`` into ``base.out`` and return the markdown table."""
    from eegmamba.training.protocol_report import write_protocol_report
    from eegmamba.training.protocols import (UNIT_BUILDERS, ProtocolRun, collect, load_data,
                                             select_files)

    arms = list(check_arms(ablation, arms))
    out, t0 = Path(base.out), time.time()
    runs, data, records = {}, {}, {}
    for i, arm in enumerate(arms):
        cfg = arm_config(base, ablation, arm, (tuple(peers) if i == 0 else ()) + ("eegmamba",))
        run = ProtocolRun(cfg, resume=True, console=console, argv=argv)
        files = select_files(cfg)
        records[arm] = run._prepare(files)
        data[arm] = load_data(cfg, files)
        runs[arm] = run
    d0 = data[arms[0]]
    for arm in arms[1:]:
        for grid in ("train", "test"):
            w0, w = getattr(d0, grid), getattr(data[arm], grid)
            if not (np.array_equal(w0.files, w.files) and np.array_equal(w0.t_start, w.t_start)
                    and np.array_equal(w0.y, w.y)):
                raise RuntimeError(f"arm {arm!r}: its {grid} windows differ from arm {arms[0]!r}'s")
    units = UNIT_BUILDERS[base.protocol](d0, runs[arms[0]].cfg)
    for peer in peers:
        for u in units:
            runs[arms[0]]._unit(d0, peer, u)
    for u in units:
        for arm in arms:
            runs[arm]._unit(data[arm], "eegmamba", u)
    arm_units = {}
    for arm in arms:
        folder = Path(runs[arm].cfg.out)
        write_protocol_report(folder, collect(folder, data[arm].profile, records[arm],
                                              time.time() - t0))
        arm_units[arm] = {p.stem: json.loads(p.read_text())
                          for p in sorted((folder / "units" / "eegmamba").glob("*.json"))}
    from eegmamba.training.report import _recipe_line

    s = base.settings
    recipe = ("pre-engine settings (AdamW 2e-4 / 1e-6)" if s.recipe is None
              else _recipe_line(s.recipe_for("eegmamba", base.seed).to_dict()))
    header = (f"Ablation `{ablation}`, protocol {base.protocol}, profile {base.profile}, seed "
              f"{base.seed}, EEGMamba {s.eegmamba_variant}: {recipe}, batch {s.eegmamba_batch}, "
              f"≤ {s.eegmamba_epochs} epochs, patience {s.eegmamba_patience}; "
              f"{time.time() - t0:.0f} s wall (this command)\n")
    table = paired_table(arm_units, arms)
    (out / "ablation.md").write_text(header + "\n" + table + "\n")
    (out / "ablation.json").write_text(json.dumps(
        {"ablation": ablation, "arms": arms, "peers": list(peers), "config": base.to_dict(),
         "units": {arm: {u: {k: r[k] for k in ("test_subjects", "metrics", "per_class")} |
                             {"best_epoch": r["fit"].get("best_epoch"),
                              "epochs_run": r["fit"].get("epochs_run"),
                              "seconds": r["fit"].get("seconds")}
                         for u, r in arm_units[arm].items()} for arm in arms}},
        indent=1, allow_nan=True) + "\n")
    return header + "\n" + table

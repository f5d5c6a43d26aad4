"""YAML run files for ``eegmamba-train --run FILE.yaml`` (several tasks, or just saved options).

Schema (every key optional except ``tasks``; unknown keys are rejected, naming file and field)::

    out: runs/multi            # output folder
    folds: 5
    epochs: 100
    batch_size: 128
    patience: 10
    device: auto               # auto | cpu | cuda
    variant: eegmamba_multi
    seed: 0
    final: true                # train final/ on all subjects after CV
    baseline: true             # classical baseline on the same folds
    recipe: recipe.yaml        # training recipe file (eegmamba.training.engine.recipe)
    tasks:
      - profile: motor_imagery # name or path to a profile YAML
        data: [../shared/data/motor_imagery]   # files/folders; relative to this file's folder

Options given on the command line override the run file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from eegmamba._checks import UserInputError

OPTIONS = {"out": str, "folds": int, "epochs": int, "batch_size": int, "patience": int, "device": str,
           "variant": str, "seed": int, "final": bool, "baseline": bool, "recipe": str}


def load_run_file(path: str | Path) -> dict[str, Any]:
    """Validated options from a run file: the keys of ``OPTIONS`` plus ``tasks`` as a list of
    ``(profile, [data paths])`` (paths resolved against the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"run file not found: {path}")
    try:
        d = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserInputError(f"{path}: cannot read run file YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise UserInputError(f"{path}: a run file must be a mapping with a 'tasks' list")
    unknown = sorted(set(d) - set(OPTIONS) - {"tasks"})
    if unknown:
        raise UserInputError(f"{path}: {unknown[0]} is not a known field (allowed: "
                             f"{', '.join(sorted([*OPTIONS, 'tasks']))})")
    out: dict[str, Any] = {}
    for key, typ in OPTIONS.items():
        if key in d:
            v = d[key]
            if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
                raise UserInputError(f"{path}: {key} must be {typ.__name__}, got {v!r}")
            out[key] = v
    if "recipe" in out and not Path(out["recipe"]).is_absolute():
        out["recipe"] = str((path.parent / out["recipe"]).resolve())
    if "out" in out:
        out["out"] = str((path.parent / out["out"]).resolve()) if not Path(out["out"]).is_absolute() \
            else out["out"]
    tasks = d.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise UserInputError(f"{path}: tasks must be a non-empty list of {{profile, data}}")
    out["tasks"] = []
    for i, t in enumerate(tasks):
        if not isinstance(t, dict) or set(t) - {"profile", "data"} or not {"profile", "data"} <= set(t):
            raise UserInputError(f"{path}: tasks[{i}] must have exactly the fields profile and data, got {t!r}")
        data = t["data"] if isinstance(t["data"], list) else [t["data"]]
        if not data or not all(isinstance(x, str) and x for x in data) or not isinstance(t["profile"], str):
            raise UserInputError(f"{path}: tasks[{i}] needs a profile name and data paths, got {t!r}")
        prof = t["profile"]
        if prof.endswith((".yaml", ".yml")) and not Path(prof).is_absolute():
            prof = str((path.parent / prof).resolve())
        out["tasks"].append((prof, [x if Path(x).is_absolute() else str((path.parent / x).resolve())
                                    for x in data]))
    return out

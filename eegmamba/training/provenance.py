"""Training provenance and checkpoint metadata: what was trained, on which files, how, with what.

The metadata a checkpoint carries (``meta["metadata"]`` after ``load_checkpoint``):

* ``tasks``: per task name, ``profile`` (``Profile.to_dict()``), ``ch_names``, ``class_names``,
  ``sfreq`` (Hz), ``window_s`` / ``hop_s`` (seconds) and ``preprocessing`` (filter, normalization,
  ``resampler``: design, look-ahead in input samples (0) and group delay by input rate);
  for a single-task checkpoint these keys are also at the top level.
* ``training``: command, data files with sha256 and windows used, folds, seed, versions, times, the
  subjects the weights were trained on and the epochs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import platform
import sys
from pathlib import Path

from eegmamba.profiles import Profile
from eegmamba.resampling import resampler_metadata


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    import mne
    import numpy
    import sklearn
    import torch

    import eegmamba

    return {"eegmamba": eegmamba.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "mne": mne.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def machine() -> str:
    """A one-line description of where this runs (CPU model and core count, GPU if used)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{platform.system()} {cpu}, {os.cpu_count()} logical CPUs"
    import torch

    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def command_line(argv: list[str] | None) -> str:
    prog = Path(sys.argv[0]).name
    if prog in ("", "cli_train.py", "__main__.py", "pytest", "-c") or prog.startswith("python"):
        prog = "eegmamba-train"  # run as ``python -m eegmamba.training.cli_train`` or in-process
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join([prog, *args])


def file_records(files: list[str], windows_per_file: dict[str, int], skipped: dict[str, str]) -> list:
    """``[{"path", "sha256", "windows", "skipped"?}]`` for every file a task read."""
    out = []
    for f in files:
        rec = {"path": str(f), "sha256": sha256_file(f), "windows": int(windows_per_file.get(str(f), 0))}
        if str(f) in skipped:
            rec["skipped"] = skipped[str(f)]
        out.append(rec)
    return out


def task_metadata(profile: Profile) -> dict:
    """The signal contract of one task (see module docstring)."""
    return {
        "profile": profile.to_dict(),
        "ch_names": list(profile.channels.names),
        "class_names": list(profile.classes),
        "sfreq": profile.sfreq,
        "window_s": profile.window.length_s,
        "hop_s": profile.window.hop_s,
        "preprocessing": {"filter": dataclasses.asdict(profile.filter),
                          "normalization": profile.normalization, "sfreq": profile.sfreq,
                          "resampler": resampler_metadata(profile.filter.h_freq, profile.sfreq)},
    }


def checkpoint_metadata(profiles: list[Profile], training: dict) -> dict:
    """Checkpoint metadata for a model trained on ``profiles`` (module docstring)."""
    tasks = {p.name: task_metadata(p) for p in profiles}
    md: dict = {"tasks": tasks}
    if len(profiles) == 1:
        md.update(tasks[profiles[0].name])
    md["training"] = training
    return md

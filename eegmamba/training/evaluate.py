"""Evaluate a saved checkpoint on other recordings (the library behind ``eegmamba-eval``).

The data are read through the profile stored in the checkpoint's metadata, so channels (names and
aliases), rate, filter, window and class order are the ones the model was trained with. The model's
declared signal (``TaskSpec``) is checked against that profile and against the windows built, and a
recording lacking a channel fails with a message naming the missing and available channels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.checkpoint import load_checkpoint
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import Profile
from eegmamba.training.metrics import compute_metrics, confusion, per_group_metrics
from eegmamba.device import resolve_device
from eegmamba.training.trainer import predict_proba


def checkpoint_profile(meta: dict, task: str | None, where: str) -> Profile:
    """The profile of ``task`` stored in checkpoint metadata (``meta`` = whole model.json)."""
    tasks = meta.get("metadata", {}).get("tasks")
    if not tasks:
        raise UserInputError(f"{where}: the checkpoint metadata holds no task profile (was it saved by "
                             "eegmamba-train?); cannot know how to read the data")
    if task is None:
        if len(tasks) != 1:
            raise UserInputError(f"{where}: checkpoint has tasks {sorted(tasks)}; choose one with --task")
        task = next(iter(tasks))
    if task not in tasks:
        raise UserInputError(f"{where}: no task {task!r} in the checkpoint (tasks: {sorted(tasks)})")
    return Profile.from_dict(tasks[task]["profile"], source=f"{where} (profile {task})")


def check_model_against_profile(spec, profile: Profile, where: str) -> None:
    """The model's TaskSpec must match the stored profile; the error names both values."""
    problems = []
    if spec.n_chans != profile.n_channels:
        problems.append(f"model has {spec.n_chans} channels, profile {profile.n_channels}")
    if spec.ch_names and tuple(spec.ch_names) != tuple(profile.channels.names):
        problems.append(f"model channels {list(spec.ch_names)} vs profile {list(profile.channels.names)}")
    if spec.n_times != profile.window_samples:
        problems.append(f"model windows {spec.n_times} samples, profile {profile.window_samples}")
    if abs(spec.sfreq - profile.sfreq) > 1e-6:
        problems.append(f"model rate {spec.sfreq:g} Hz, profile {profile.sfreq:g} Hz")
    if spec.n_classes != len(profile.classes):
        problems.append(f"model has {spec.n_classes} classes, profile {len(profile.classes)}")
    if problems:
        raise UserInputError(f"{where}: checkpoint is inconsistent: " + "; ".join(problems))


def evaluate_checkpoint(checkpoint: str | Path, data, task: str | None = None, device: str = "auto",
                        batch_size: int = 128) -> dict:
    """Metrics of ``checkpoint`` on recordings ``data`` (files/folders).

    Returns ``{"checkpoint", "task", "classes", "metrics", "per_subject", "confusion", "windows",
    "dropped", "warnings"}``; metrics as in ``eegmamba.training.metrics.compute_metrics``.
    """
    dev = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, device=dev)
    where = str(Path(checkpoint) / "model.json")
    profile = checkpoint_profile(meta, task, where)
    spec = model.config.task(profile.name)
    check_model_against_profile(spec, profile, where)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = build_windows(data, profile)
    if ws.X.shape[1:] != (spec.n_chans, spec.n_times):
        raise UserInputError(f"windows of shape {ws.X.shape[1:]} do not fit the model's "
                             f"({spec.n_chans} channels, {spec.n_times} samples)")
    proba = predict_proba(model, ws.X, profile.name, dev, batch_size)
    return {"checkpoint": str(checkpoint), "task": profile.name, "classes": list(profile.classes),
            "metrics": compute_metrics(ws.y, proba),
            "per_subject": per_group_metrics(ws.y, proba, ws.subjects),
            "confusion": confusion(ws.y, proba, len(profile.classes)),
            "windows": ws.class_counts(), "dropped": dict(ws.drops),
            "files": sorted(set(ws.files.tolist())),
            "warnings": [str(w.message).splitlines()[0] for w in caught],
            "y_true": ws.y.tolist(), "pred": np.argmax(proba, 1).tolist()}

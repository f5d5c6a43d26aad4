"""Evaluate a saved checkpoint on other recordings (the library behind ``eegmamba-eval``).

The data are read through the profile stored in the checkpoint's metadata, so channels (names and
aliases), rate, filter, window and class order are the ones the model was trained with. The model's
declared signal (``TaskSpec``) is checked against that profile by the contract check live uses too
(``eegmamba.checkpoint.check_checkpoint``) and against the windows built, and a recording lacking a
channel fails with a message naming the missing and available channels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.checkpoint import check_checkpoint, load_checkpoint
from eegmamba.data.dataset import build_windows
from eegmamba.device import resolve_device
from eegmamba.training.metrics import compute_metrics, confusion, per_group_metrics
from eegmamba.training.trainer import predict_proba


def evaluate_checkpoint(checkpoint: str | Path, data, task: str | None = None, device: str = "auto",
                        batch_size: int = 128) -> dict:
    """Metrics of ``checkpoint`` on recordings ``data`` (files/folders).

    Returns ``{"checkpoint", "task", "classes", "metrics", "per_subject", "confusion", "windows",
    "dropped", "warnings"}``; metrics as in ``eegmamba.training.metrics.compute_metrics``.
    """
    dev = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, device=dev)
    where = str(Path(checkpoint) / "model.json")
    contract = check_checkpoint(meta, model=model, task=task, where=where)
    profile, spec = contract.profile, contract.spec
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = build_windows(data, profile)
    if ws.X.shape[1:] != (spec.n_chans, spec.n_times):
        raise UserInputError(f"windows of shape {ws.X.shape[1:]} do not fit the model's "
                             f"({spec.n_chans} channels, {spec.n_times} samples)")
    proba = predict_proba(model, ws.X, spec.name, dev, batch_size)
    return {"checkpoint": str(checkpoint), "task": profile.name, "classes": list(profile.classes),
            "metrics": compute_metrics(ws.y, proba),
            "per_subject": per_group_metrics(ws.y, proba, ws.subjects),
            "confusion": confusion(ws.y, proba, len(profile.classes)),
            "windows": ws.class_counts(), "dropped": dict(ws.drops),
            "files": sorted(set(ws.files.tolist())),
            "warnings": [str(w.message).splitlines()[0] for w in caught],
            "y_true": ws.y.tolist(), "pred": np.argmax(proba, 1).tolist()}

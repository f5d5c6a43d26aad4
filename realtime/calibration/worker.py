"""The calibration worker: ``python -m realtime.calibration.worker JOB_DIR``, started by
``realtime.calibration.calibrator`` as a separate, lower-priority process so that fine-tuning never takes the
live loop's CPU or GIL (on 2 cores a training thread inside the live process more than doubles the
decision latency; see ``benchmarks/bench_calibration.py``).

``JOB_DIR`` holds ``job.json`` (base checkpoint, task, ``CalibConfig`` fields, torch threads,
metadata for the new checkpoint) and ``windows.npz`` (``X (N, C, T)`` float32, ``y (N,)``, trial id
per window ``groups``, ``t_start``). The worker fine-tunes with
``eegmamba.training.calibrate.finetune``, writes the new checkpoint to ``JOB_DIR/candidate`` (its
metadata: the base checkpoint's plus ``calibration``: subject, session, trials, before/after) and
prints one JSON object per line on stdout: ``{"event": "start" | "epoch" | "done" | "error", ...}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def _say(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, allow_nan=False, default=str), flush=True)


def _store_profile(metadata: dict, profile: dict) -> dict:
    """``metadata`` with ``profile`` (``Profile.to_dict()``: the one the live session ran, whose
    windows the model was fine-tuned on) as the checkpoint's stored profile, so that the calibrated
    checkpoint alone runs exactly as it was calibrated (``eegmamba.checkpoint.check_checkpoint``)."""
    from eegmamba.profiles import Profile
    from eegmamba.training.provenance import task_metadata

    contract = task_metadata(Profile.from_dict(profile, source="calibration job"))
    tasks = dict(metadata.get("tasks") or {})
    key = next(iter(tasks)) if len(tasks) == 1 else profile["name"]
    return {**metadata, **contract, "tasks": {**tasks, key: contract}}


def run(job_dir: Path) -> int:
    job = json.loads((job_dir / "job.json").read_text())
    if job.get("nice") and hasattr(os, "nice"):
        os.nice(int(job["nice"]))  # below the live loop's priority: it keeps its cores
    import numpy as np
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    from eegmamba.checkpoint import load_checkpoint, save_checkpoint
    from eegmamba.training.calibrate import CalibConfig, finetune

    data = np.load(job_dir / "windows.npz", allow_pickle=False)
    model, meta = load_checkpoint(job["base_checkpoint"], device="cpu")
    cfg = CalibConfig(**job["config"])
    _say("start", n_windows=int(len(data["y"])), layers=cfg.layers)
    res = finetune(model, data["X"], data["y"], data["groups"], task=job.get("task"), config=cfg,
                   on_epoch=lambda rec: _say("epoch", **rec))
    trials = [{"trial": str(g), "class": job["classes"][int(data["y"][data["groups"] == g][0])],
               "n_windows": int((data["groups"] == g).sum()),
               "part": "train" if g in res.train_trials else
                       "early_stopping" if g in res.es_trials else "held_out"}
              for g in dict.fromkeys(data["groups"].tolist())]
    calibration = {**job.get("provenance", {}), "base_checkpoint": job["base_checkpoint"],
                   "base_weights_sha256": meta.get("weights_sha256"), "layers": cfg.layers,
                   "before": res.before, "after": res.after, "improved": res.improved,
                   "history": res.history, "info": res.info, "trials": trials,
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    metadata = {**meta.get("metadata", {}), "calibration": calibration}
    if job.get("profile"):
        metadata = _store_profile(metadata, job["profile"])
    if "alignment_reference" in job:  # the person's reference: a later session starts aligned
        metadata["alignment_reference"] = job["alignment_reference"]
    out = save_checkpoint(job_dir / "candidate", res.model, metadata)
    _say("done", checkpoint=str(out), before=res.before, after=res.after, improved=res.improved,
         summary=res.summary(), info=res.info)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m realtime.calibration.worker JOB_DIR", file=sys.stderr)
        return 2
    try:
        return run(Path(argv[0]))
    except Exception as exc:  # reported to the live session, which shows it and keeps running
        _say("error", message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return 1


if __name__ == "__main__":
    sys.exit(main())

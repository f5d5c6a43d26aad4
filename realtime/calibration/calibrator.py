"""Live calibration: collect cue-labelled windows, fine-tune in a background process, hot-swap.

Phases: ``collecting`` (``calib_collect.Collector`` on the live loop's thread, fed by a tap on the
EEG stream) → ``fine-tuning`` (``python -m realtime.calibration.worker``: a separate process at a lower
CPU priority (``nice``) with its own torch thread budget, so the live loop keeps its cores and
never waits for the GIL) → ``swapped`` (the new model beat the current one on held-out
calibration trials and now decides; the checkpoint is saved) or ``kept`` (it did not: the current
model stays, nothing is saved as calibrated) or ``failed`` (the reason is shown).

The swap happens on the live loop's thread, between two steps (in the tap), so a decision is made
entirely by one model; decisions carry the model version, and every swap is logged (logger, the
dashboard, ``calibration.json`` in the output folder) with the before/after figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.training.calibrate import LAYERS, CalibConfig
from realtime.calibration.collect import Collector
from realtime.stats import CalibrationStats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationOptions:
    """``--calibrate`` settings (see ``eegmamba-live --help``).

    layers : which layers fine-tune (``eegmamba.training.calibrate``); trials / seconds : stop rule
    out : folder for the calibrated checkpoint (default ``./eegmamba-calibration/<subject>-<time>``)
    subject, session : recorded in the checkpoint; threads : torch threads of the worker;
    nice : CPU priority decrease of the worker (0 = same as the live loop)
    """

    layers: str = "last"
    trials: int | None = 40
    seconds: float | None = None
    out: str | None = None
    subject: str | None = None
    session: str | None = None
    threads: int = 1
    nice: int = 10
    epochs: int = 40

    def __post_init__(self) -> None:
        if self.layers not in LAYERS:
            raise UserInputError(f"--calib-layers must be one of {', '.join(LAYERS)}, got {self.layers!r}")
        if self.threads < 1:
            raise UserInputError(f"--calib-threads must be >= 1, got {self.threads}")
        if not 0 <= self.nice <= 19:
            raise UserInputError(f"--calib-nice must be in 0..19, got {self.nice}")


class Calibration:
    """One profile's live calibration (see module docstring).

    Parameters
    ----------
    loop : LiveLoop; output : the index of the profile's output in ``loop.outputs``
    timeline : CueTimeline of the marker stream; options : CalibrationOptions
    provenance : dict recorded in the checkpoint (streams, marker stream, command line)
    """

    def __init__(self, loop, output: int, timeline, options: CalibrationOptions,
                 provenance: dict | None = None) -> None:
        self.loop, self.options, self.timeline = loop, options, timeline
        self.out = loop.outputs[output]
        pipe = self.out.pipeline
        self.profile, self.model_key = pipe.profile, pipe.model_key
        self.collector = Collector(self.profile, pipe.picks, pipe.pre.in_sfreq, timeline,
                                   options.trials, options.seconds)
        self.provenance = dict(provenance or {})
        if options.out and Path(options.out).exists() and any(Path(options.out).iterdir()):
            raise UserInputError(f"--calib-out {options.out} is not empty: give a new folder")
        self.phase = "collecting"
        self.message = "waiting for the first cue"
        self.epoch, self.last_epoch = 0, {}
        self.before = self.after = None
        self.swaps: list[dict] = []
        self.round_names = ["during calibration"]  # per LiveLoop.round, for the dashboard
        self.saved: str | None = None
        self._ready = None  # (model, metadata, done event) loaded by the monitor thread
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._job = Path(tempfile.mkdtemp(prefix="eegmamba-calib-"))
        self._monitor: threading.Thread | None = None
        loop.taps.setdefault(pipe.stream_key, []).append(self.tap)

    # ------------------------------------------------------------------ live loop thread
    def tap(self, chunks: list, hold: str | None = None) -> None:
        """Called by the live loop with every chunk list of the stream and its hold reason (None:
        the stream may be classified), before inference."""
        if self.phase == "collecting":
            self.collector.push(chunks, hold)
            if self.collector.done:
                self._start_worker()
        self.poll()

    def poll(self) -> None:
        """Swap in a fine-tuned model that is ready (call on the live loop's thread only)."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            self._swap(*ready)

    def _start_worker(self) -> None:
        X, y, groups, t_start = self.collector.data()
        n_cls = len(set(y.tolist()))
        if n_cls < 2:
            self._fail(f"calibration collected {len(set(groups.tolist()))} trial(s) of "
                       f"{n_cls} class(es); need at least two classes")
            return
        np.savez(self._job / "windows.npz", X=X, y=y, groups=groups.astype(str), t_start=t_start)
        base = self.loop.engine.models[self.model_key]
        cfg = CalibConfig(layers=self.options.layers, epochs=self.options.epochs)
        prov = {**self.provenance, "subject": self.options.subject, "session": self.options.session,
                "profile": self.profile.name, "classes": list(self.profile.classes),
                "n_windows": int(len(y)), "n_trials": int(len(set(groups.tolist()))),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        job = {"base_checkpoint": base.key, "task": base.task, "config": dataclasses.asdict(cfg),
               "threads": self.options.threads, "nice": self.options.nice,
               "classes": list(self.profile.classes), "provenance": prov,
               "profile": self.profile.to_dict()}  # what the windows were made with: stored
        reference = self.out.pipeline.windower.reference  # alignment: stored with the checkpoint
        if reference is not None:
            job["alignment_reference"] = reference.state_dict()
        (self._job / "job.json").write_text(json.dumps(job, indent=1, default=str))
        nice = self.options.nice  # applied by the worker itself (no preexec_fn: we have threads)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "realtime.calibration.worker", str(self._job)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "OMP_NUM_THREADS": str(self.options.threads)})
        self.phase = "fine-tuning"
        self.loop.new_round()  # accuracy from here on is on data the calibration did not see
        self.round_names.append("after calibration data")
        self.message = (f"{len(y)} windows of {prov['n_trials']} trials; worker pid "
                        f"{self._proc.pid} (nice +{nice}, {self.options.threads} thread(s))")
        self._monitor = threading.Thread(target=self._watch, name="calibration-monitor", daemon=True)
        self._monitor.start()

    def _swap(self, model, metadata: dict, done: dict) -> None:
        version = self.loop.swap_model(self.model_key, model, metadata)  # and a new round
        self.round_names.append(f"after swap, v{version}")
        record = {"time": time.strftime("%H:%M:%S"), "profile": self.profile.name,
                  "version": version, "before": done["before"], "after": done["after"],
                  "summary": done["summary"]}
        self.swaps.append(record)
        logger.info("calibration: model of %s swapped to version %d: %s", self.profile.name,
                    version, done["summary"])
        self.phase = "swapped"
        self.message = f"v{version} decides now; saved to {self.saved}"
        self._write_report(done, swapped=True, folder=Path(self.saved))

    # ------------------------------------------------------------------ monitor thread
    def _watch(self) -> None:
        proc = self._proc
        done = None
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if ev["event"] == "epoch":
                self.epoch, self.last_epoch = ev["epoch"], ev
            elif ev["event"] == "done":
                done = ev
            elif ev["event"] == "error":
                self._fail(ev["message"])
        err = proc.stderr.read()
        proc.wait()
        if done is None:
            if self.phase != "failed":
                self._fail(f"worker exited with code {proc.returncode}: "
                           f"{(err.strip().splitlines() or ['no output'])[-1]}")
            return
        self.before, self.after = done["before"], done["after"]
        if not done["improved"]:
            self.phase = "kept"
            self.message = "not better on the held-out trials: the current model keeps deciding"
            logger.info("calibration of %s: %s", self.profile.name, self.message)
            self._write_report(done, swapped=False)
            return
        try:
            self._load(done)
        except Exception as exc:  # shown on the dashboard; the current model keeps deciding
            logger.exception("calibration: the fine-tuned model could not be loaded or saved")
            self._fail(f"fine-tuned model not used: {type(exc).__name__}: {exc}")

    def _load(self, done: dict) -> None:
        """Save, load and warm up the new model here (not on the loop thread), then hand it over."""
        import torch

        from eegmamba.checkpoint import check_checkpoint, load_checkpoint

        self.saved = self._save(done)
        device = self.loop.engine.device
        model, meta = load_checkpoint(self.saved, device=device)
        check_checkpoint(meta, self.profile, model=model, where=f"calibrated checkpoint {self.saved}")
        spec = model.config.tasks[0]
        with torch.inference_mode():
            model(torch.zeros(1, spec.n_chans, spec.n_times, device=device), task=spec.name)
        with self._lock:
            self._ready = (model, meta, done)

    def _fail(self, message: str) -> None:
        self.phase, self.message = "failed", message
        logger.warning("calibration of %s failed: %s", self.profile.name, message)

    # ------------------------------------------------------------------ output
    def _out_dir(self) -> Path:
        if self.options.out:
            return Path(self.options.out)
        who = self.options.subject or "subject"
        return Path("eegmamba-calibration") / f"{who}-{time.strftime('%Y%m%d-%H%M%S')}"

    def _save(self, done: dict) -> str:
        out = self._out_dir()
        if out.exists() and any(out.iterdir()):
            raise UserInputError(f"--calib-out {out} is not empty")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(done["checkpoint"], out, dirs_exist_ok=True)
        return str(out)

    def _write_report(self, done: dict, swapped: bool, folder: Path | None = None) -> None:
        folder = folder or self._job
        report = {"swapped": swapped, "before": done["before"], "after": done["after"],
                  "summary": done["summary"], "info": done["info"], "swaps": self.swaps}
        (folder / "calibration.json").write_text(json.dumps(report, indent=1, default=str) + "\n")

    def stats(self) -> CalibrationStats:
        if self.phase == "collecting" and self.timeline.n_markers:
            self.message = (f"cues from {self.provenance.get('marker_stream', {}).get('name', '?')!r}"
                            f" ({self.timeline.n_markers} markers)")
        return CalibrationStats(self.profile.name, self.phase, self.collector.stats(), self.epoch,
                                self.options.epochs, dict(self.last_epoch), self.before, self.after,
                                self.message, tuple(self.swaps), self.saved, self.options.layers)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._monitor is not None:
            self._monitor.join(5)
        shutil.rmtree(self._job, ignore_errors=True)

"""The ``calibrated`` protocol: a cross-subject fold model fine-tuned on a new subject's calibration
runs, against the same model without calibration and a model trained from scratch on those runs.

Per subject ``s`` that has the within-subject run's ``train_runs`` (EEGMMIDB 4 + 8) and
``test_runs`` (12), and per arm, three conditions on the same test windows (run 12 on the live
0.5 s grid):

1. ``uncalibrated`` — the cross-subject fold model that never saw ``s`` (its predictions for ``s``'s
   run-12 windows, read from the cross-subject run).
2. ``scratch`` — the within-subject model of ``s`` (trained from scratch on runs 4 + 8; read from
   the within-subject run).
3. ``calibrated`` — neural arms: the fold model of (1), every layer fine-tuned on ``s``'s runs 4 + 8
   with the within-subject protocol's split (selection on the last 20 % in time of each run)
   and the same recipe as its training (the cross-subject run's ``settings.recipe``; a run written
   before the recipe existed: EEGMamba AdamW 2e-4 / 1e-6, EEGNet Adam 1e-3);
   (2) and (3) differ only in where the weights start. Classical arms (no fine-tuning exists for
   them): refitted on the fold's training subjects' windows pooled with ``s``'s runs 4 + 8 (our
   choice; they are the peers, not the subject of this protocol).

Nothing is tuned on run 12: the calibration settings are the protocols' fixed settings. Each
(arm, subject) is written to ``units/<arm>/<subject>.json`` when done (``resume`` skips it).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.training.arms import CLASSICAL, NEURAL, ArmSettings, fit_arm, load_fitted
from eegmamba.training.engine.runfolder import RunFolder
from eegmamba.training.metrics import compute_metrics, summarize_folds
from eegmamba.training.protocols import (ProtocolConfig, ProtocolData, cross_subject_units, load_data,
                                         subject_run_units)

CONDITIONS = ("uncalibrated", "scratch", "calibrated")


def _config(record: dict) -> ProtocolConfig:
    c = dict(record["config"])
    c["settings"] = ArmSettings.from_dict(c["settings"])
    for k in ("data", "subjects", "runs", "train_runs", "test_runs"):
        if c.get(k) is not None:
            c[k] = tuple(c[k])
    return ProtocolConfig(**c)


def _read_run(folder: str, protocol: str) -> dict:
    path = Path(folder) / "run.json"
    if not path.is_file():
        raise UserInputError(f"{folder} holds no {protocol} run (no run.json); run "
                             f"`eegmamba-protocol --protocol {protocol}` first")
    rec = json.loads(path.read_text())
    if rec["config"]["protocol"] != protocol:
        raise UserInputError(f"{folder} holds a {rec['config']['protocol']} run, not a {protocol} run")
    return rec


def _select(unit: dict, subject: str, runs, t_expected: np.ndarray, y_expected: np.ndarray) -> np.ndarray:
    """Probabilities of ``unit``'s test windows of ``subject`` in ``runs``, checked to be the same
    windows (start times and labels) the other conditions are scored on."""
    subj, r = np.asarray(unit["subjects"]), np.asarray(unit["runs"])
    m = (subj == subject) & np.isin(r, runs)
    t, y = np.asarray(unit["t_start"])[m], np.asarray(unit["y_true"])[m]
    if len(t) != len(t_expected) or not (np.allclose(t, t_expected, atol=1e-3) and np.array_equal(y, y_expected)):
        raise UserInputError(f"the windows of {subject} in {unit['unit']} differ from the calibrated "
                             "protocol's test windows; the runs were made with other data or options")
    return np.asarray(unit["proba"], dtype=np.float64)[m]


class CalibratedRun:
    """Run the calibrated protocol (module docstring) into ``out``."""

    def __init__(self, cross_subject_run: str, within_subject_run: str, out: str, arms: tuple[str, ...],
                 resume: bool = False, console=None, argv=None) -> None:
        self.xs, self.ws, self.out = Path(cross_subject_run), Path(within_subject_run), Path(out)
        self.arms, self.resume, self.console, self.argv = arms, resume, console, argv

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def _prepare(self, xs_rec: dict, ws_rec: dict) -> dict:
        record = {"cross_subject_run": str(self.xs), "within_subject_run": str(self.ws),
                  "train_runs": ws_rec["config"]["train_runs"], "test_runs": ws_rec["config"]["test_runs"],
                  "xs_data_sha256": xs_rec["data_sha256"], "ws_data_sha256": ws_rec["data_sha256"]}
        return RunFolder(self.out).open(record, self.resume, argv=self.argv, resume_creates=True,
                                        what="the input runs")

    def run(self) -> dict:
        t0 = time.time()
        xs_rec, ws_rec = _read_run(str(self.xs), "cross-subject"), _read_run(str(self.ws), "within-subject")
        xcfg, wcfg = _config(xs_rec), _config(ws_rec)
        if xcfg.profile != wcfg.profile:
            raise UserInputError(f"the cross-subject run uses profile {xcfg.profile}, the within-subject "
                                 f"run {wcfg.profile}; they must be the same")
        missing = sorted(set(ws_rec["files"]) - set(xs_rec["files"]))
        if missing:
            raise UserInputError(f"the within-subject run has recordings the cross-subject run lacks: "
                                 f"{', '.join(Path(f).name for f in missing[:3])}")
        record = self._prepare(xs_rec, ws_rec)
        d = load_data(xcfg, xs_rec["files"])
        folds = cross_subject_units(d, xcfg)
        subjects = subject_run_units(d, wcfg)
        self._say(f"calibrated protocol: {len(subjects)} subjects, {len(folds)} cross-subject folds")
        for arm in self.arms:
            for su in subjects:
                self._unit(d, arm, su, folds, xcfg, wcfg)
        results = self.collect(d, record, time.time() - t0)
        from eegmamba.training.protocol_report import write_calibrated_report

        write_calibrated_report(self.out, results)
        self._say(f"results: {self.out / 'results.json'}, report: {self.out / 'report.md'}")
        return results

    def _unit(self, d: ProtocolData, arm: str, su, folds, xcfg: ProtocolConfig,
              wcfg: ProtocolConfig) -> None:
        s = su.name
        path = self.out / "units" / arm / f"{s}.json"
        if path.is_file():
            self._say(f"{arm} {s}: done already, skipped")
            return
        fold = next(f for f in folds if s in f.test_subjects)
        xs_unit = self.xs / "units" / arm / f"{fold.name}.json"
        ws_unit = self.ws / "units" / arm / f"{s}.json"
        if not xs_unit.is_file() or not ws_unit.is_file():
            self._say(f"{arm} {s}: no cross-subject {fold.name} or within-subject result for this arm; "
                      "skipped")
            return
        t_test, y_test = d.test.t_start[su.test_idx], d.test.y[su.test_idx]
        proba = {"uncalibrated": _select(json.loads(xs_unit.read_text()), s, wcfg.test_runs, t_test, y_test),
                 "scratch": _select(json.loads(ws_unit.read_text()), s, wcfg.test_runs, t_test, y_test)}
        t0 = time.perf_counter()
        train, val = d.windows("train", su.train_idx), d.windows("train", su.val_idx)
        if arm in NEURAL:
            start = load_fitted(arm, self.xs / "units" / arm / fold.name, d.profile)
            if arm == "eegmamba":
                from eegmamba.checkpoint import read_metadata

                meta = read_metadata(self.xs / "units" / arm / fold.name / "eegmamba")
                seen = meta["metadata"]["training"]["trained_on_subjects"]
                if s in seen:
                    raise RuntimeError(f"the {fold.name} model was trained on {s}; the folds changed")
            start.model.train()
            start = copy.deepcopy(start)
            fitted = fit_arm(arm, d.profile, train, val, xcfg.settings, xcfg.seed, init=start,
                             console=self.console, label=f"{arm} calibrate {s}")
            how = {"init": f"cross-subject {fold.name} model", "layers": "all",
                   "best_epoch": fitted.info.get("best_epoch"), "epochs_run": fitted.info.get("epochs_run"),
                   "history": fitted.info.get("history")}
        elif arm in CLASSICAL:
            pooled = np.concatenate([fold.train_idx, fold.val_idx, su.train_idx, su.val_idx])
            fitted = fit_arm(arm, d.profile, d.windows("train", pooled), None, xcfg.settings, xcfg.seed)
            how = {"init": f"refitted on {fold.name} training subjects + {s} calibration runs",
                   "n_pooled": int(len(pooled))}
        else:
            raise UserInputError(f"the calibrated protocol does not support arm {arm!r}")
        proba["calibrated"] = fitted.proba(d.windows("test", su.test_idx))
        res = {"subject": s, "arm": arm, "fold": fold.name, "validation": su.validation,
               "n_calibration": int(len(su.train_idx) + len(su.val_idx)), "fit": how,
               "seconds": round(time.perf_counter() - t0, 1),
               "metrics": {c: compute_metrics(y_test, proba[c]) for c in CONDITIONS},
               "y_true": y_test.tolist(), "t_start": t_test.round(3).tolist(),
               "proba": {c: proba[c].round(5).tolist() for c in CONDITIONS}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res) + "\n")
        m = res["metrics"]
        self._say(f"{arm} {s}: auroc {m['uncalibrated']['auroc']:.3f} uncalibrated / "
                  f"{m['scratch']['auroc']:.3f} scratch / {m['calibrated']['auroc']:.3f} calibrated "
                  f"[{res['seconds']:.0f} s]")

    def collect(self, d: ProtocolData, record: dict, seconds: float) -> dict:
        arms = {}
        for arm_dir in sorted((self.out / "units").iterdir()) if (self.out / "units").is_dir() else []:
            units = [json.loads(p.read_text()) for p in sorted(arm_dir.glob("*.json"))]
            if not units:
                continue
            arms[arm_dir.name] = {
                "subjects": [u["subject"] for u in units],
                "summary": {c: summarize_folds([u["metrics"][c] for u in units]) for c in CONDITIONS},
                "per_subject": {u["subject"]: u["metrics"] for u in units},
                "fit": {u["subject"]: {k: v for k, v in u["fit"].items() if k != "history"} for u in units},
                "layers": None, "seconds": round(sum(u["seconds"] for u in units), 1)}
        results = {"protocol": "calibrated", "profile": d.profile.name, "classes": list(d.profile.classes),
                   "run": record, "wall_seconds_last_command": round(seconds, 1), "arms": arms}
        (self.out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True) + "\n")
        return results

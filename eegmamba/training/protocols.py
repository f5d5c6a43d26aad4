"""The motor-imagery evaluation protocols BCI researchers use, every arm on the same windows.

1. ``cross-subject`` — subject-grouped k-fold CV (``cv.subject_folds``): train on the other folds'
   subjects (all their runs), test on the fold's subjects. Networks early-stop on held-out training
   subjects (``cv.validation_split``). Mean ± std over folds; every subject is tested once.
2. ``within-subject`` — per subject: train on its ``train_runs`` (EEGMMIDB 4 + 8), test on its
   ``test_runs`` (12): a chronological split. Networks early-stop on the last 20 % in time of each
   training run (``cv.time_split_per_file``). Mean ± std over subjects.
3. ``calibrated`` — per subject: the cross-subject fold model that never saw the subject, fine-tuned
   on the subject's ``train_runs``, tested on its ``test_runs``; compared on the same subjects and
   windows with (1) without calibration and (2) from scratch (``eegmamba.training.calibrated``).
4. ``leave-one-recording-out`` — per subject with at least 3 recordings, per recording: train on the
   subject's other recordings, test on this one (``recording_key``: for the CHB-MIT segment files,
   one recording = one seizure and the background just before it, so this is the patient-specific
   leave-one-seizure-out of Shoeb 2009). Networks early-stop on whole held-out training recordings.
   Mean ± std over recordings.

Windows: training windows on the profile's ``train_hop_s`` grid, test windows on the live
``hop_s`` grid (the windows the live loop decides on). Each unit (a fold or a subject) of each arm
is written to ``units/<arm>/<unit>.json`` as soon as it is done; a rerun with ``resume`` skips
finished units (so arms can be run by separate commands into one folder).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.data.dataset import WindowSet, build_windows
from eegmamba.data.readers import expand_paths
from eegmamba.data.recording import subject_and_run
from eegmamba.profiles import Profile, load_profile
from eegmamba.training import provenance as prov
from eegmamba.training.arms import ARMS, NEURAL, ArmSettings, Windows, fit_arm
from eegmamba.training.engine.runfolder import RunFolder
from eegmamba.training.cv import subject_folds, time_split_per_file, validation_split
from eegmamba.training.metrics import (compute_metrics, per_class_metrics, per_group_metrics,
                                       summarize_folds)

PROTOCOLS = ("cross-subject", "within-subject", "calibrated", "leave-one-recording-out")


@dataclass(frozen=True)
class ProtocolConfig:
    protocol: str
    profile: str
    data: tuple[str, ...]
    out: str
    arms: tuple[str, ...] = ARMS
    subjects: tuple[str, ...] | None = None  # None: every subject found
    runs: tuple[int, ...] | None = None  # None: every run; files of other runs are not read
    train_runs: tuple[int, ...] = (4, 8)
    test_runs: tuple[int, ...] = (12,)
    folds: int = 5
    seed: int = 0
    val_frac: float = 0.2
    settings: ArmSettings = field(default_factory=ArmSettings)
    cross_subject_run: str | None = None  # calibrated: folder of the cross-subject run
    within_subject_run: str | None = None  # calibrated: folder of the within-subject run

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("arms")  # arms may be added to a run folder later
        if d["settings"]["recipe"] is None:  # legacy settings: recorded as a pre-engine run was
            d["settings"].pop("recipe")
        if d["settings"]["eegmamba_d_model"] is None:  # recorded only when set: older runs resume
            d["settings"].pop("eegmamba_d_model")
        return d


@dataclass
class ProtocolData:
    """Windows of the selected files: ``train`` on the training grid, ``test`` on the live grid;
    ``*_runs`` the run number of each window's file."""

    profile: Profile
    train: WindowSet
    train_uv: np.ndarray
    test: WindowSet
    test_uv: np.ndarray
    files: list[str]

    def __post_init__(self) -> None:
        self.train_runs = np.array([subject_and_run(f)[1] or -1 for f in self.train.files])
        self.test_runs = np.array([subject_and_run(f)[1] or -1 for f in self.test.files])

    def windows(self, which: str, idx: np.ndarray) -> Windows:
        ws, uv = (self.train, self.train_uv) if which == "train" else (self.test, self.test_uv)
        return Windows(ws.X[idx], uv[idx], ws.y[idx], ws.files[idx], ws.t_start[idx])


def select_files(cfg: ProtocolConfig) -> list[str]:
    """The recordings of ``cfg.data`` whose subject and run the config selects (sorted)."""
    files = []
    for f in expand_paths(list(cfg.data)):
        subject, run = subject_and_run(f)
        if cfg.subjects is not None and subject not in cfg.subjects:
            continue
        if cfg.runs is not None and run not in cfg.runs:
            continue
        files.append(str(f))
    if not files:
        raise UserInputError(f"no recordings in {', '.join(cfg.data)} match subjects "
                             f"{cfg.subjects or 'any'} and runs {cfg.runs or 'any'}")
    missing = sorted(set(cfg.subjects or ()) - {subject_and_run(f)[0] for f in files})
    if missing:
        raise UserInputError(f"no recordings for subject(s) {', '.join(missing)} in {', '.join(cfg.data)}")
    return sorted(files)


def _build(files: list[str], profile: Profile, hop_s: float) -> tuple[WindowSet, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class missing in one run: expected
        z = build_windows(files, profile, hop_s=hop_s)
        uv = build_windows(files, dataclasses.replace(profile, normalization="none"), hop_s=hop_s)
    if not (np.array_equal(z.files, uv.files) and np.array_equal(z.t_start, uv.t_start)):
        raise RuntimeError("normalized and µV window sets differ; the windowing rule changed")
    return z, uv.X


def load_data(cfg: ProtocolConfig, files: list[str] | None = None) -> ProtocolData:
    profile = load_profile(cfg.profile)
    files = select_files(cfg) if files is None else files
    train, train_uv = _build(files, profile, profile.window.train_hop_s)
    test, test_uv = _build(files, profile, profile.window.hop_s)
    return ProtocolData(profile, train, train_uv, test, test_uv, files)


# --- units -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One training/testing job shared by every arm: indices into the training / test grids, and
    the validation split of the training indices (networks early-stop on it)."""

    name: str
    test_subjects: tuple[str, ...]
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    validation: str


def cross_subject_units(d: ProtocolData, cfg: ProtocolConfig) -> list[Unit]:
    folds = subject_folds(d.train.subjects, cfg.folds)
    units = []
    for f in folds:
        sp = validation_split(f.train_idx, d.train.subjects, d.train.files, d.train.t_start,
                              d.profile.window.length_s, cfg.val_frac, cfg.seed + f.index)
        test_idx = np.flatnonzero(np.isin(d.test.subjects, f.test_subjects))
        units.append(Unit(f"fold_{f.index + 1}", f.test_subjects, sp.train_idx, sp.val_idx, test_idx,
                          sp.describe()))
    return units


def subject_run_units(d: ProtocolData, cfg: ProtocolConfig) -> list[Unit]:
    """Per subject having both training and test runs: train on ``train_runs``, test on ``test_runs``."""
    units = []
    for s in sorted(set(d.train.subjects.tolist())):
        tr = np.flatnonzero((d.train.subjects == s) & np.isin(d.train_runs, cfg.train_runs))
        te = np.flatnonzero((d.test.subjects == s) & np.isin(d.test_runs, cfg.test_runs))
        if len(tr) == 0 or len(te) == 0:
            continue
        sp = time_split_per_file(tr, d.train.files, d.train.t_start, d.profile.window.length_s,
                                 cfg.val_frac)
        units.append(Unit(s, (s,), sp.train_idx, sp.val_idx, te, sp.describe()))
    if not units:
        raise UserInputError(f"no subject has both training runs {cfg.train_runs} and test runs "
                             f"{cfg.test_runs} in the selected recordings")
    return units


# A segment cut from a longer recording (CHB-MIT files of SOURCES.md: ``chb01_03_ictal10s``,
# ``chb01_03_preictal10s``, ``chb01_03_Seizure_41s`` are all cut from recording ``chb01_03``)
_SEGMENT_TAG = re.compile(r"_((pre)?ictal\d+s|(non)?seizure_\d+s)$", re.IGNORECASE)


def recording_key(path: str | Path) -> str:
    """The recording a file was cut from: the file name without suffix and segment tag
    (``chb01_03_ictal10s.edf`` → ``chb01_03``); any other file is its own recording."""
    stem = Path(path).name
    stem = stem[: -len(Path(stem).suffix)] if Path(stem).suffix else stem
    return _SEGMENT_TAG.sub("", stem)


def recording_out_units(d: ProtocolData, cfg: ProtocolConfig) -> list[Unit]:
    """Per subject with >= 3 recordings (one to test, one to validate, one to train), per
    recording: train on the subject's other recordings, test on this one. Segments of one
    recording overlap in time (``chb01_03_ictal10s`` lies inside ``chb01_03_Seizure_41s``), so
    test, validation and training are split by recording, never by file."""
    rec_tr = np.array([recording_key(f) for f in d.train.files])
    rec_te = np.array([recording_key(f) for f in d.test.files])
    units = []
    for s in sorted(set(d.train.subjects.tolist())):
        recs = sorted(set(rec_tr[d.train.subjects == s].tolist()))
        if len(recs) < 3:
            continue
        for r in recs:
            tr = np.flatnonzero((d.train.subjects == s) & (rec_tr != r))
            te = np.flatnonzero((d.test.subjects == s) & (rec_te == r))
            if len(te) == 0:
                continue
            sp = validation_split(tr, d.train.subjects, rec_tr, d.train.t_start,
                                  d.profile.window.length_s, cfg.val_frac, cfg.seed)
            units.append(Unit(r, (s,), sp.train_idx, sp.val_idx, te,
                              sp.describe().replace("file(s)", "recording(s)")))
    if not units:
        raise UserInputError("leave-one-recording-out needs a subject with at least 3 recordings "
                             "in the selected files")
    return units


UNIT_BUILDERS = {"cross-subject": cross_subject_units, "within-subject": subject_run_units,
                 "leave-one-recording-out": recording_out_units}


# --- running -----------------------------------------------------------------------------------
def evaluate(d: ProtocolData, test_idx: np.ndarray, proba: np.ndarray) -> dict:
    """Metrics of one unit, with per-subject metrics and the predictions (for later protocols)."""
    y, subj = d.test.y[test_idx], d.test.subjects[test_idx]
    return {"metrics": compute_metrics(y, proba), "per_subject": per_group_metrics(y, proba, subj),
            "per_class": per_class_metrics(y, proba, d.profile.classes),
            "y_true": y.tolist(), "subjects": subj.tolist(), "runs": d.test_runs[test_idx].tolist(),
            "t_start": d.test.t_start[test_idx].round(3).tolist(), "proba": proba.round(5).tolist()}


class ProtocolRun:
    """Run one protocol's units for the configured arms (see module docstring)."""

    def __init__(self, cfg: ProtocolConfig, resume: bool = False, console=None, argv=None) -> None:
        if cfg.protocol not in UNIT_BUILDERS:  # calibrated: its own class
            raise UserInputError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {cfg.protocol!r}")
        unknown = sorted(set(cfg.arms) - set(ARMS))
        if unknown:
            raise UserInputError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
        self.cfg, self.resume, self.console, self.argv = cfg, resume, console, argv
        self.out = Path(cfg.out)

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def _prepare(self, files: list[str]) -> dict:
        record = {"config": self.cfg.to_dict(), "files": files,
                  "data_sha256": [prov.sha256_file(f) for f in files]}
        return RunFolder(self.out).open(record, self.resume, argv=self.argv, resume_creates=True,
                                        compare=("config", "files", "data_sha256"),
                                        add_hint=" (or add models to it)")

    def run(self) -> dict:
        t0 = time.time()
        files = select_files(self.cfg)
        record = self._prepare(files)
        d = load_data(self.cfg, files)
        self._say(f"{d.profile.name}: {len(d.train)} training-grid windows, {len(d.test)} test-grid "
                  f"windows from {len(d.files)} files")
        units = UNIT_BUILDERS[self.cfg.protocol](d, self.cfg)
        for arm in self.cfg.arms:
            for u in units:
                self._unit(d, arm, u)
        from eegmamba.training.protocol_report import write_protocol_report

        results = collect(self.out, d.profile, record, time.time() - t0)
        write_protocol_report(self.out, results)
        self._say(f"results: {self.out / 'results.json'}, report: {self.out / 'report.md'}")
        return results

    def _unit(self, d: ProtocolData, arm: str, u: Unit) -> dict:
        path = self.out / "units" / arm / f"{u.name}.json"
        if path.is_file():
            self._say(f"{arm} {u.name}: done already, skipped")
            return json.loads(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = self.cfg.seed + (int(u.name.split("_")[1]) - 1 if u.name.startswith("fold_") else 0)
        settings = self.cfg.settings
        if arm == "eegnet" and self.cfg.protocol == "within-subject":
            settings = dataclasses.replace(settings, eegnet_dropout=0.5)  # the paper's within setting
        val = d.windows("train", u.val_idx) if len(u.val_idx) else None
        fitted = fit_arm(arm, d.profile, d.windows("train", u.train_idx), val, settings, seed,
                         state_path=path.with_suffix(".state.pt") if arm == "eegmamba" else None,
                         console=self.console, label=f"{arm} {u.name}")
        res = {"unit": u.name, "arm": arm, "test_subjects": list(u.test_subjects),
               "n_train": len(u.train_idx), "n_val": len(u.val_idx), "validation": u.validation,
               "val_subjects": sorted(set(d.train.subjects[u.val_idx].tolist())),
               "fit": fitted.info, **evaluate(d, u.test_idx, fitted.proba(d.windows("test", u.test_idx)))}
        if arm in NEURAL and self.cfg.protocol == "cross-subject":
            fitted.save(path.parent / u.name, {"protocol": self.cfg.protocol, "unit": u.name,
                                                "trained_on_subjects": sorted(set(
                                                    d.train.subjects[u.train_idx].tolist())),
                                                "seed": seed, "finished": prov.now()})
        path.write_text(json.dumps(res) + "\n")
        m = res["metrics"]
        self._say(f"{arm} {u.name} ({', '.join(u.test_subjects)}): acc {m['acc']:.3f} auroc "
                  f"{m['auroc']:.3f} kappa {m['kappa']:.3f} [{fitted.info.get('seconds', 0):.0f} s]")
        return res


def collect(out: Path, profile: Profile, record: dict, seconds: float) -> dict:
    """``results.json`` from every finished unit in ``out/units``: per arm, per unit metrics,
    mean ± std over units, per-subject metrics."""
    arms = {}
    for arm_dir in sorted((out / "units").iterdir()) if (out / "units").is_dir() else []:
        units = [json.loads(p.read_text()) for p in sorted(arm_dir.glob("*.json"))]
        if not units:
            continue
        per_subject = {s: m for u in units for s, m in u["per_subject"].items()}
        y_all = np.concatenate([np.asarray(u["y_true"], np.int64) for u in units])
        p_all = np.concatenate([np.asarray(u["proba"], np.float64) for u in units])
        arms[arm_dir.name] = {
            "pooled": compute_metrics(y_all, p_all),
            "per_class_pooled": per_class_metrics(y_all, p_all, profile.classes),
            "units": [{k: u[k] for k in ("unit", "test_subjects", "n_train", "n_val", "validation",
                                         "metrics")} | {"best_epoch": u["fit"].get("best_epoch"),
                                                        "seconds": u["fit"].get("seconds")}
                      for u in units],
            "summary": summarize_folds([u["metrics"] for u in units]),
            "per_subject": dict(sorted(per_subject.items())),
            "seconds": round(sum(u["fit"].get("seconds", 0) for u in units), 1)}
    results = {"protocol": record["config"]["protocol"], "profile": profile.name,
               "classes": list(profile.classes), "config": record["config"],
               "provenance": record.get("provenance", {}), "wall_seconds_last_command": round(seconds, 1),
               "arms": arms}
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True) + "\n")
    return results

"""Subject-grouped cross-validation of a registered model (EEGMamba by default; ``--model eegnet``
and the other names of ``eegmamba.registry.trainable_models``) and the classical baseline on the same
folds, then one final model on all subjects; the library behind ``eegmamba-train``. Every model trains
through the one engine on the same windows (the profile's preprocessing and alignment), with the same
recipe and augmentation, and is saved as the same kind of checkpoint (``eegmamba-live`` and
``eegmamba-eval`` load it without knowing which model it is).

With several models (``--model eegmamba_fb,eegnet``) each is cross-validated on the same folds,
``eegmamba.training.model_choice`` says which won on the recipe's selection metric (paired per
fold), and the final checkpoint is trained with the winner; each model's folds are then under
``models/NAME/folds/`` instead of ``folds/``.

Output folder::

    run.json                    resolved run config + provenance (checked on --resume)
    folds/fold_K/checkpoint/    best-validation weights of fold K (safetensors + JSON metadata)
    folds/fold_K/result.json    fold K's metrics, history, test predictions
    folds/fold_K/state.pt       resumable training state (deleted when the fold is done)
    final/                      checkpoint trained on ALL subjects for the CV-chosen length (median
                                over folds of the selected validation's position in epochs, as
                                steps on all subjects; the schedule as planned); use this one
    results.json, report.md, *.png

Windows are built once per task; each fold trains on the other folds' subjects, early-stops on a
validation split of those subjects (``cv.validation_split``) and is tested on its own subjects.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from eegmamba._checks import UserInputError
from eegmamba.checkpoint import save_checkpoint
from eegmamba.data.dataset import WindowSet, build_windows
from eegmamba.device import resolve_device
from eegmamba.profiles import Profile, load_profile
from eegmamba.training import provenance as prov
from eegmamba.training.baseline import run_baseline
from eegmamba.training.cv import n_folds_for, subject_folds, validation_split
from eegmamba.training.distributed import DistInfo, barrier, cleanup, init_from_env
from eegmamba.training.metrics import compute_metrics, confusion, per_group_metrics
from eegmamba.training.engine.hooks import augmentation_for
from eegmamba.training.engine.loop import steps_per_epoch
from eegmamba.training.engine.predict import predict_proba
from eegmamba.training.engine.runfolder import RunFolder, write_json
from eegmamba.training.trainer import TaskData, TrainConfig, Trainer, seed_everything


@dataclass(frozen=True)
class TaskInput:
    """One task of a run: a profile (name or path) and its recordings (files/folders)."""

    profile: str
    data: tuple[str, ...]


@dataclass(frozen=True)
class RunConfig:
    tasks: tuple[TaskInput, ...]
    out: str
    folds: int = 5
    variant: str | None = None  # default: eegmamba_single for one task, eegmamba_multi for several
    device: str = "auto"
    train: TrainConfig = field(default_factory=TrainConfig)
    final: bool = True
    baseline: bool = True
    pretrained: str | None = None  # eegmamba-pretrain output folder: fine-tune an EEGM2 classifier
    freeze: str = "full"  # with pretrained: frozen | partial | full encoder
    unfreeze_last: int = 2  # with freeze=partial: encoder stages that train
    models: tuple[str, ...] = ()  # several: cross-validated on the same folds, the winner trained

    @property
    def candidates(self) -> tuple[str, ...]:
        """The registered models this run cross-validates, in the order given."""
        if self.pretrained:
            return ("eegm2_classifier",)
        if self.models:
            return tuple(self.models)
        return (self.variant or ("eegmamba_single" if len(self.tasks) == 1 else "eegmamba_multi"),)

    @property
    def resolved_variant(self) -> str:
        return self.candidates[0]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = [{"profile": t.profile, "data": list(t.data)} for t in self.tasks]
        d["train"] = self.train.to_dict()  # the recipe, recorded in run.json and results.json
        several = len(self.candidates) > 1
        d["variant"] = None if several else self.resolved_variant
        if several:
            d["models"] = list(self.candidates)
        else:  # a one-model run records what it did before --model existed (it resumes)
            d.pop("models")
        return d


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False)


def load_task_windows(inp: TaskInput, console) -> tuple[Profile, WindowSet]:
    """Windows of one task; warnings (empty class, NaN) are printed as one line each."""
    profile = load_profile(inp.profile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ws = build_windows(list(inp.data), profile)
    for w in caught:
        _say(console, f"[yellow]warning:[/] {str(w.message).splitlines()[0]}")
    if len(set(ws.y.tolist())) < 2:
        raise UserInputError(f"task {profile.name!r}: windows of only one class ({ws.class_counts()}); "
                             "training needs at least two classes")
    return profile, ws


def _task_spec(profile: Profile):
    from eegmamba import TaskSpec

    return TaskSpec(profile.name, profile.n_channels, profile.window_samples, len(profile.classes),
                    sfreq=profile.sfreq, ch_names=profile.channels.names, class_names=profile.classes)


class Experiment:
    """One ``eegmamba-train`` run (module docstring). ``run()`` returns the results dict."""

    def __init__(self, cfg: RunConfig, resume: bool = False, console=None, argv=None,
                 on_epoch_end: Callable[[int, dict], bool] | None = None) -> None:
        self.cfg, self.resume, self.argv, self.on_epoch_end = cfg, resume, argv, on_epoch_end
        self.out = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        self.dist: DistInfo = init_from_env(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.console = console if self.dist.is_main else None
        self._pretrained = None
        self.candidates = cfg.candidates

    def _mdir(self, name: str) -> Path:
        """Where model ``name``'s folds go: the run folder itself, or ``models/NAME`` with several."""
        return self.out if len(self.candidates) == 1 else self.out / "models" / name

    def _check_models(self) -> None:
        """Every candidate is a registered model that can train on these tasks (one line if not)."""
        from eegmamba.registry import trainable_models, variant_config

        if self.cfg.pretrained:
            return
        if len(set(self.candidates)) != len(self.candidates):
            raise UserInputError(f"--model names a model twice: {','.join(self.candidates)}")
        names = trainable_models()
        for name in self.candidates:
            if name not in names:
                raise UserInputError(f"--model {name}: not a model eegmamba-train can train; "
                                     f"choose from {', '.join(names)}")
            try:
                variant_config(name, tasks=[_task_spec(p) for p in self.profiles])
            except (ValueError, TypeError) as exc:
                raise UserInputError(f"--model {name} cannot train on "
                                     f"{', '.join(p.name for p in self.profiles)}: {exc}") from None

    # --- setup ---------------------------------------------------------------------------------
    def _prepare_out(self, run_record: dict) -> None:
        folder = RunFolder(self.out)
        resumed = folder.check(run_record, self.resume, compare=("config", "data_sha256"))
        barrier(self.dist)  # every rank has checked before rank 0 writes run.json
        if self.dist.is_main and not resumed:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(folder.path, run_record)
        barrier(self.dist)

    def run(self) -> dict:
        t_start = time.time()
        cfg = self.cfg
        seed_everything(cfg.train.seed)
        loaded = [load_task_windows(t, self.console) for t in cfg.tasks]
        self.profiles = [p for p, _ in loaded]
        self.sets = {p.name: ws for p, ws in loaded}
        if len(self.sets) != len(loaded):
            raise UserInputError("each --profile may be given once per run")
        for p, ws in loaded:
            _say(self.console, f"[bold]{p.name}[/]: {len(ws)} windows of {ws.X.shape[1]} channels x "
                               f"{ws.X.shape[2]} samples at {p.sfreq:g} Hz")
            if self.console is not None:
                self.console.print(ws.summary_table(rich=True))
        n_folds, notes = cfg.folds, []
        for p, ws in loaded:
            k, note = n_folds_for(ws.subjects, cfg.folds)
            n_folds = min(n_folds, k)
            if note:
                notes.append(f"{p.name}: {note}")
        for n in notes:
            _say(self.console, f"[yellow]note:[/] {n}")
        self._check_models()
        self.folds = {p.name: subject_folds(ws.subjects, n_folds) for p, ws in loaded}
        self.n_folds = n_folds
        files = {}
        for p, ws in loaded:
            counts = dict(zip(*np.unique(ws.files, return_counts=True)))
            skipped = dict(ws.skipped_files)
            all_files = sorted(set(map(str, counts)) | set(skipped))
            files[p.name] = prov.file_records(all_files, {str(k): v for k, v in counts.items()}, skipped)
        self.provenance = {
            "command": prov.command_line(self.argv), "started": prov.now(), "machine": prov.machine(),
            "device": str(self.device), "world_size": self.dist.world_size, "seed": cfg.train.seed,
            "versions": prov.versions(), "files": files, "n_folds": n_folds, "folds_note": notes,
            "folds": {t: [list(f.test_subjects) for f in fs] for t, fs in self.folds.items()},
        }
        if cfg.pretrained:
            self._pretrained_model()  # load and check the encoder against the data before any fold
            pre = self._pretrained
            self.provenance["pretrained"] = {
                "folder": str(pre.folder), "variant": pre.metadata["variant"],
                "weights_sha256": pre.metadata["weights_sha256"], "freeze": cfg.freeze,
                "unfreeze_last": cfg.unfreeze_last,
            }
        run_record = {"config": cfg.to_dict(), "data_sha256": {t: [f["sha256"] for f in fs]
                                                                for t, fs in files.items()},
                      "provenance": self.provenance}
        self._prepare_out(run_record)
        per_model = {m: [self._fold(k, m) for k in range(n_folds)] for m in self.candidates}
        self.choice = None
        if len(self.candidates) > 1:
            from eegmamba.training.model_choice import compare_models

            self.choice = compare_models(per_model, cfg.train.select)
            c = self.choice
            _say(self.console, f"[bold]winner on these folds: {c['winner']}[/] ({c['metric']} " +
                 ", ".join(f"{m} {s['mean']:.3f} ± {s['std']:.3f}" for m, s in c["summary"].items())
                 + ")")
        served = self.choice["winner"] if self.choice else self.candidates[0]
        final = self._final(per_model[served], served) if cfg.final else None
        results: dict = {}  # only rank 0 holds test predictions and writes the results
        if self.dist.is_main:
            from eegmamba.training.report import write_report

            results = self._results(per_model[served], final, notes, time.time() - t_start, served)
            write_json(self.out / "results.json", results)
            write_report(self.out, results)
            _say(self.console, f"results: {self.out / 'results.json'}, report: {self.out / 'report.md'}")
        barrier(self.dist)
        cleanup(self.dist)
        return results

    # --- folds ---------------------------------------------------------------------------------
    def _model(self, seed: int, name: str):
        from eegmamba import create_model

        seed_everything(seed)
        if self.cfg.pretrained:
            return self._pretrained_model()
        return create_model(name, tasks=[_task_spec(p) for p in self.profiles])

    def _pretrained_model(self):
        """A fresh EEGM2 classifier whose encoder is the pretrained one (every fold starts there)."""
        from eegmamba.pretrain.finetune import classifier_from_pretrained, load_pretrained

        if len(self.profiles) != 1:
            raise UserInputError("--pretrained fine-tunes one task: give one --profile/--data pair")
        p = self.profiles[0]
        if self._pretrained is None:
            self._pretrained = load_pretrained(self.cfg.pretrained)
        model = classifier_from_pretrained(
            self._pretrained, len(p.classes), p.channels.names, p.sfreq, freeze=self.cfg.freeze,
            unfreeze_last=self.cfg.unfreeze_last)
        cfg = model.config
        model.config = type(cfg)(**{**cfg.__dict__, "task_name": p.name, "class_names": p.classes,
                                    "encoder": cfg.encoder.replace(n_times=p.window_samples)})
        return model

    def _trainer(self, model, train, val, state: Path, label: str, stop_at_step: int = 0) -> Trainer:
        augment = {p.name: augmentation_for(p) for p in self.profiles}
        # a model's weight constraint after every optimiser step (EEGNet's max-norm, as Keras does)
        after = (lambda m: m.apply_max_norm()) if hasattr(model, "apply_max_norm") else None
        tr = Trainer(model, train, val, self.cfg.train, self.device, self.dist, state, self.console,
                     label, self.on_epoch_end, stop_at_step=stop_at_step, augment=augment,
                     after_step=after)
        if self.resume and state.is_file():
            tr.load_state(state)
            _say(self.console, f"{label}: resuming at epoch {tr.epoch + 1}, step {tr.step}")
        return tr

    def _fold(self, k: int, model_name: str) -> dict:
        fdir = self._mdir(model_name) / "folds" / f"fold_{k + 1}"
        label = f"fold {k + 1}/{self.n_folds}" + (f" {model_name}" if len(self.candidates) > 1 else "")
        if (fdir / "result.json").is_file():
            _say(self.console, f"{label}: done already (resumed run), skipped")
            return json.loads((fdir / "result.json").read_text())
        if self.dist.is_main:
            fdir.mkdir(parents=True, exist_ok=True)
        barrier(self.dist)
        train, val, splits = {}, {}, {}
        for name, ws in self.sets.items():
            fold = self.folds[name][k]
            p = next(p for p in self.profiles if p.name == name)
            sp = validation_split(fold.train_idx, ws.subjects, ws.files, ws.t_start, p.window.length_s,
                                  self.cfg.train.val_frac, self.cfg.train.seed + k)
            splits[name] = sp
            train[name] = TaskData(ws.X[sp.train_idx], ws.y[sp.train_idx])
            val[name] = TaskData(ws.X[sp.val_idx], ws.y[sp.val_idx])
            _say(self.console, f"fold {k + 1}/{self.n_folds} {name}: test subjects "
                               f"{', '.join(fold.test_subjects)} ({len(fold.test_idx)} windows); "
                               f"{sp.describe()}")
        model = self._model(self.cfg.train.seed + k, model_name)
        tr = self._trainer(model, train, val, fdir / "state.pt", label)
        fit = tr.fit()
        model.load_state_dict(fit.best_state)
        result = {"fold": k + 1, "model": model_name, "best_epoch": fit.best_epoch, "best_step": fit.best_step,
                  "steps_per_epoch": fit.steps_per_epoch, "stopped_early": fit.stopped_early,
                  "fit": fit.summary(), "history": fit.history, "evals": fit.evals, "tasks": {}}
        if self.dist.is_main:
            for p in self.profiles:
                result["tasks"][p.name] = self._evaluate_fold(p, k, model, splits[p.name], model_name)
            subjects = sorted({s for p in self.profiles
                               for s in self.sets[p.name].subjects[self.folds[p.name][k].train_idx]})
            training = {**self.provenance, "fold": k + 1, "trained_on_subjects": subjects,
                        "best_epoch": fit.best_epoch, "finished": prov.now(), "model": model_name}
            save_checkpoint(fdir / "checkpoint", model, prov.checkpoint_metadata(self.profiles, training))
            write_json(fdir / "result.json", result)
            (fdir / "state.pt").unlink(missing_ok=True)
        barrier(self.dist)
        return result

    def _evaluate_fold(self, p: Profile, k: int, model, split, name: str) -> dict:
        ws, fold = self.sets[p.name], self.folds[p.name][k]
        X, y, subj = ws.X[fold.test_idx], ws.y[fold.test_idx], ws.subjects[fold.test_idx]
        proba = predict_proba(model, X, p.name, self.device, self.cfg.train.batch_size)
        res = {"test_subjects": list(fold.test_subjects), "n_test": len(y), "n_train": len(split.train_idx),
               "n_val": len(split.val_idx), "validation": split.describe(),
               "model": compute_metrics(y, proba), "per_subject": per_group_metrics(y, proba, subj),
               "confusion": confusion(y, proba, len(p.classes)),
               "y_true": y.tolist(), "subjects": subj.tolist(), "proba": proba.round(5).tolist()}
        m = res["model"]
        _say(self.console, f"fold {k + 1} {p.name} {name}: acc {m['acc']:.3f} auroc {m['auroc']:.3f} "
                           f"f1w {m['f1_weighted']:.3f}")
        if self.cfg.baseline:
            b = run_baseline(p, ws.X[fold.train_idx], ws.y[fold.train_idx], X, y, subj)
            res["baseline"] = b
            if "metrics" in b:
                m = b["metrics"]
                _say(self.console, f"fold {k + 1} {p.name} {b['name']}: acc {m['acc']:.3f} auroc "
                                   f"{m['auroc']:.3f} f1w {m['f1_weighted']:.3f}")
            else:
                _say(self.console, f"[yellow]fold {k + 1} {p.name} baseline skipped:[/] {b['note']}")
        return res

    # --- final model ---------------------------------------------------------------------------
    def _final(self, fold_results: list[dict], name: str) -> dict:
        fdir = self.out / "final"
        # the selected length in epochs (fractional: validation runs several times per epoch)
        frac = float(np.median([r.get("best_step", r["best_epoch"] * r.get("steps_per_epoch", 1))
                                / r.get("steps_per_epoch", 1) for r in fold_results]))
        epochs = max(1, math.ceil(frac - 1e-9))
        if (fdir / "model.json").is_file():
            _say(self.console, "final model: done already (resumed run), skipped")
            return {"path": "final", "model": name, "epochs": epochs, "epochs_selected": round(frac, 4)}
        _say(self.console, f"final model ({name}): all subjects, {frac:.2f} epoch(s) (median selected length "
                           "over folds; the schedule as planned for the folds)")
        state_dir = self.out / "final_state"
        if self.dist.is_main:
            state_dir.mkdir(parents=True, exist_ok=True)
        barrier(self.dist)
        train = {n: TaskData(ws.X, ws.y) for n, ws in self.sets.items()}
        model = self._model(self.cfg.train.seed + 1000, name)
        spe = steps_per_epoch(self.cfg.train, {n: len(d.y) for n, d in train.items()})
        steps = max(1, int(round(frac * spe)))
        fit = self._trainer(model, train, None, state_dir / "state.pt", "final", steps).fit()
        model.load_state_dict(fit.best_state)
        if self.dist.is_main:
            subjects = sorted({s for ws in self.sets.values() for s in ws.subjects.tolist()})
            training = {**self.provenance, "fold": None, "trained_on_subjects": subjects,
                        "epochs": epochs, "finished": prov.now(), "model": name}
            if self.choice is not None:  # what it was chosen over, on which folds and metric
                training["model_choice"] = {k: self.choice[k] for k in
                                            ("models", "metric", "winner", "summary", "n_folds")}
            save_checkpoint(fdir, model, prov.checkpoint_metadata(self.profiles, training))
            shutil.rmtree(state_dir, ignore_errors=True)
        barrier(self.dist)
        return {"path": "final", "model": name, "epochs": epochs, "epochs_selected": round(frac, 4),
                "steps": steps, "history": fit.history}

    def _results(self, folds: list[dict], final: dict | None, notes: list[str], seconds: float,
                 served: str) -> dict:
        """``tasks`` and ``folds``: the served model's (the winner's with several; the others' are
        in ``model_choice`` and their fold folders)."""
        from eegmamba.training.report import summarize_task

        tasks = {p.name: summarize_task(p, self.sets[p.name], folds, served) for p in self.profiles}
        return {"run": {**self.provenance, "config": self.cfg.to_dict(), "finished": prov.now(),
                        "wall_seconds": round(seconds, 1)},
                "n_folds": self.n_folds, "folds_note": notes, "model": served,
                "model_choice": self.choice, "tasks": tasks,
                "folds": [{k: v for k, v in f.items() if k != "tasks"} for f in folds],
                "final": final}

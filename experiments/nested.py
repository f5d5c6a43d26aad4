"""Issue 17 item 5: the nested selection of ``experiments/issue17_grid.yaml`` and the comparison
against EEGNet, on the cross-subject protocol's folds (``eegmamba.training.protocols``: the same 5
subject-grouped folds over S001–S019 as docs/results.md and the same held-out validation subjects).

Per outer fold ``k`` (in this order, so partial results are useful):

1. **selection** (``units/inner/<config>/fold_k.json``): every configuration of the grid and the
   EEGNet ±EA peers train (grid recipe, seed 0) on the fold's training subjects minus its validation
   subjects; the selection metric (validation AUROC per window) is recorded at every validation
   point. Only training-subject windows are indexed here.
2. **choice** (``units/choice/fold_k.json``): the configuration with the best validation AUROC and
   the step at which it peaked, and each EEGNet arm's own step, written before any test window of
   the fold is indexed: test windows are reached only through :meth:`NestedRun.test_windows`, which
   refuses while the choice file is missing.
3. **refit + test** (``units/test/<arm>/fold_k_seed_s.json``): the chosen configuration
   (``eegmamba_chosen``) and ``eegnet_ea`` / ``eegnet_noea`` retrain on ALL training subjects for
   exactly their selected number of steps (``recipe.max_steps``, no validation), seeds of the grid,
   then are scored once on the fold's test subjects per window and per trial (mean probability over
   a cue's windows). Classical peers (``units/test/<peer>/fold_k.json``) fit on the same training
   windows (they have no step count to choose).

Every unit's JSON is written as soon as it finishes; a rerun skips finished units (an interrupted
EEGMamba fit continues from its per-epoch state). ``with_executed``: the executed left/right-fist
runs 3/7/11 of the training subjects are added to every arm's training windows (validation and test
stay imagery-only, the folds are those of the imagery windows). ``choices_from``: no selection is
run; each fold's choice (configuration and step counts) is read from an earlier run of the same grid
on the same folds and only the refits and peers run (issue 17's "with the executed runs" comparison:
the settings nested validation chose without them, refit with them).
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml

from eegmamba._checks import UserInputError
from eegmamba.data.dataset import build_windows
from eegmamba.data.recording import subject_and_run
from eegmamba.profiles import Profile, load_profile
from eegmamba.training import provenance as prov
from eegmamba.training.arms import ArmSettings, Windows, fit_arm
from eegmamba.training.cli_protocol import subject_range
from eegmamba.training.engine.recipe import PRESETS
from eegmamba.training.engine.runfolder import RunFolder, write_json
from eegmamba.training.metrics import compute_metrics, per_group_metrics
from eegmamba.training.protocols import ProtocolConfig, _build, cross_subject_units, select_files
from experiments.grid import GridConfig, load_grid

IMAGERY_RUNS = (4, 8, 12)
EXECUTED_RUNS = (3, 7, 11)
NEURAL_PEERS = ("eegnet_ea", "eegnet_noea")


@dataclass(frozen=True)
class NestedConfig:
    """What one command runs: ``folds`` 1-based outer folds (None: all), ``seeds`` of the refits
    (None: the grid's), ``data`` overrides the grid's ``protocol.data`` (relative to the repo)."""

    grid: str
    out: str
    folds: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None
    with_executed: bool = False
    data: tuple[str, ...] | None = None
    choices_from: str | None = None


def trial_ids(files: np.ndarray, t_start: np.ndarray, y: np.ndarray, hop_s: float) -> np.ndarray:
    """A trial (cue) id per window: windows of one file with the same label whose starts follow on
    the ``hop_s`` grid belong to one cue (cues are separated by rest, which yields no window)."""
    order = np.lexsort((t_start, files))
    ids = np.zeros(len(y), np.int64)
    k = -1
    for j, i in enumerate(order):
        p = order[j - 1] if j else None
        if p is None or files[i] != files[p] or y[i] != y[p] or t_start[i] - t_start[p] > 1.5 * hop_s:
            k += 1
        ids[i] = k
    return ids


def score(y: np.ndarray, proba: np.ndarray, subjects: np.ndarray, trials: np.ndarray) -> dict:
    """Per-window and per-trial metrics (overall and per subject); a trial's probability is the
    mean over its windows."""
    uniq, inv = np.unique(trials, return_inverse=True)
    p_t = np.zeros((len(uniq), proba.shape[1]))
    np.add.at(p_t, inv, proba)
    p_t /= np.bincount(inv)[:, None]
    first = np.array([np.flatnonzero(inv == k)[0] for k in range(len(uniq))])
    y_t, s_t = y[first], subjects[first]
    return {"per_window": compute_metrics(y, proba), "per_trial": compute_metrics(y_t, p_t),
            "per_subject_window": per_group_metrics(y, proba, subjects),
            "per_subject_trial": per_group_metrics(y_t, p_t, s_t), "n_windows": int(len(y)),
            "n_trials": int(len(uniq))}


def settings_for(c: GridConfig, max_steps: int = 0) -> ArmSettings:
    """The grid recipe as the arms' settings (``recipe_for`` takes epochs/patience/batch from the
    arm fields); ``max_steps`` > 0: a refit of exactly that many steps."""
    r = dict(c.recipe)
    recipe = PRESETS[r.pop("preset", "modern")](**r)
    recipe = recipe.replace(max_steps=max_steps)
    sizes = dict(epochs=recipe.epochs, patience=recipe.patience, batch=recipe.batch_size)
    return ArmSettings(eegmamba_epochs=sizes["epochs"], eegmamba_patience=sizes["patience"],
                       eegmamba_batch=sizes["batch"], eegmamba_variant=c.model if not c.peer
                       else "eegmamba_single", eegnet_epochs=sizes["epochs"],
                       eegnet_patience=sizes["patience"], eegnet_batch=sizes["batch"], recipe=recipe)


def _arm(c: GridConfig) -> str:
    return c.model if c.peer else "eegmamba"


def _alignment(c: GridConfig) -> str:
    """How an arm aligns subjects: the profile's method (networks) or the peer's option."""
    if c.options.get("align"):
        return "euclidean"
    if c.options.get("recenter"):
        return "riemannian_recentering"
    return c.profile.alignment.method if _arm(c) != c.model or c.model == "eegnet" else "none"


def with_executed_labels(profile: Profile) -> Profile:
    """``profile`` whose label rules also apply to the executed runs 3/7/11."""
    labels = []
    for rule in profile.to_dict()["labels"]:
        rule = dict(rule)
        if rule.get("runs"):
            rule["runs"] = sorted(set(rule["runs"]) | set(EXECUTED_RUNS))
        labels.append(rule)
    return profile.with_overrides({"labels": labels})


class NestedRun:
    """The nested protocol of one grid into ``cfg.out`` (module docstring)."""

    def __init__(self, cfg: NestedConfig, resume: bool = False, console=None, argv=None) -> None:
        self.cfg, self.resume, self.console, self.argv = cfg, resume, console, argv
        self.out = Path(cfg.out)
        self.grid_path = Path(cfg.grid)
        self.grid = yaml.safe_load(self.grid_path.read_text())
        items = load_grid(self.grid_path)
        self.configs = [c for c in items if not c.peer]
        self.peers = {c.id: c for c in items if c.peer}
        p = self.grid["protocol"]
        runs = tuple(p.get("runs") or IMAGERY_RUNS)
        self.imagery = runs
        root = self.grid_path.resolve().parents[1]
        data = cfg.data or (str((root / p["data"]).resolve()) if not Path(p["data"]).is_absolute()
                            else p["data"],)
        subj = p.get("subjects")
        self.pcfg = ProtocolConfig(
            protocol="cross-subject", profile=self.grid.get("profile", "motor_imagery"),
            data=tuple(data), out=str(self.out), subjects=subject_range(subj.split()) if isinstance(
                subj, str) else (tuple(subj) if subj else None),
            runs=tuple(sorted(set(runs) | (set(EXECUTED_RUNS) if cfg.with_executed else set()))),
            folds=int(p["outer"]["folds"]), seed=int(p["outer"].get("seed", 0)))
        self.seeds = tuple(cfg.seeds if cfg.seeds is not None else p.get("seeds", [0]))

    # --- output ------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def path(self, kind: str, arm: str, fold: int, seed: int | None = None) -> Path:
        name = f"fold_{fold}" + ("" if seed is None else f"_seed_{seed}")
        return self.out / "units" / kind / arm / f"{name}.json" if kind != "choice" else \
            self.out / "units" / "choice" / f"{name}.json"

    def _open(self, files: list[str]) -> dict:
        record = {"grid": self.grid_path.name, "grid_sha256": prov.sha256_file(self.grid_path),
                  "with_executed": self.cfg.with_executed, "seeds": list(self.seeds),
                  "choices_from": self.cfg.choices_from,
                  "protocol": dataclasses.asdict(self.pcfg) | {"settings": None, "out": None},
                  "files": [Path(f).name for f in files],
                  "data_sha256": [prov.sha256_file(f) for f in files]}
        return RunFolder(self.out).open(record, self.resume, argv=self.argv, resume_creates=True,
                                        program="python -m experiments.run_grid",
                                        compare=("grid_sha256", "with_executed", "protocol", "files",
                                                 "data_sha256", "choices_from"))

    # --- data --------------------------------------------------------------------------------
    def _profile(self, c: GridConfig) -> Profile:
        return with_executed_labels(c.profile) if self.cfg.with_executed else c.profile

    def load(self) -> None:
        """Windows of every alignment setting the grid uses (training grid and live test grid)."""
        files = select_files(self.pcfg)
        self.record = self._open(files)
        base = load_profile(self.pcfg.profile)
        base = with_executed_labels(base) if self.cfg.with_executed else base
        tr, tr_uv = _build(files, base, base.window.train_hop_s)
        te, te_uv = _build(files, base, base.window.hop_s)
        self.base, self.train, self.test, self.train_uv, self.test_uv = base, tr, te, tr_uv, te_uv
        self.z: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.causal: dict = {}
        for c in self.configs + list(self.peers.values()):
            key = self._zkey(c)
            if key in self.z:
                continue
            prof = self._profile(c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                a = build_windows(files, prof, prof.window.train_hop_s)
                b = build_windows(files, prof, prof.window.hop_s)
            for new, old in ((a, tr), (b, te)):
                if not (np.array_equal(new.files, old.files) and np.array_equal(new.t_start, old.t_start)):
                    raise RuntimeError(f"{c.id}: its windows differ from the base profile's")
            self.z[key] = (a.X, b.X)
            if prof.alignment.enabled and prof.alignment.offline_reference != "causal":
                self.causal[key] = self._causal_test(files, prof)
        run_of = {f: subject_and_run(f)[1] or -1 for f in files}
        self.train_runs = np.array([run_of[f] for f in tr.files])
        self.test_runs = np.array([run_of[f] for f in te.files])
        self._units()

    def _causal_test(self, files: list[str], prof: Profile):
        """Test-grid windows of ``prof`` aligned by the causal live rule (each recording's
        reference built from its own stream; windows in the warm-up are dropped and counted)."""
        causal = prof.with_overrides({"alignment": {"offline_reference": "causal"}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return build_windows(files, causal, causal.window.hop_s)

    def score_causal(self, c: GridConfig, fitted, u) -> dict | None:
        """An EA network arm scored on the fold's test subjects with the causal live reference
        (the grid's ``alignment_at_test``); None for arms without alignment."""
        ws = self.causal.get(self._zkey(c)) if _arm(c) in ("eegmamba", "eegnet") else None
        if ws is None:
            return None
        keep = np.isin(ws.subjects, u.test_subjects) & np.isin(
            np.array([subject_and_run(f)[1] or -1 for f in ws.files]), self.imagery)
        w = Windows(ws.X[keep], ws.X[keep], ws.y[keep], ws.files[keep], ws.t_start[keep])
        proba = fitted.proba(w)
        trials = trial_ids(w.files, w.t_start, w.y, self.base.window.hop_s)
        return {**score(w.y, proba, ws.subjects[keep], trials),
                "note": "windows inside each recording's alignment warm-up are not scored "
                        f"(over all recordings of the run: {ws.drops.get('alignment_warmup', 0)} windows)"}

    def _zkey(self, c: GridConfig) -> str:
        return repr(c.profile.alignment) if not c.peer or c.model == "eegnet" else "base"

    def _units(self) -> None:
        """The protocol's folds and validation split on the imagery windows (as docs/results.md);
        executed windows of a unit's training subjects join its training indices only."""
        im_tr = np.flatnonzero(np.isin(self.train_runs, self.imagery))
        im_te = np.flatnonzero(np.isin(self.test_runs, self.imagery))
        view = SimpleNamespace(
            train=SimpleNamespace(subjects=self.train.subjects[im_tr], files=self.train.files[im_tr],
                                  t_start=self.train.t_start[im_tr]),
            test=SimpleNamespace(subjects=self.test.subjects[im_te]), profile=self.base)
        ex = np.flatnonzero(np.isin(self.train_runs, EXECUTED_RUNS))
        self.units = []
        for u in cross_subject_units(view, self.pcfg):
            fit_idx = im_tr[u.train_idx]
            val_idx = im_tr[u.val_idx]
            if self.cfg.with_executed:
                keep = set(self.train.subjects[fit_idx].tolist())
                fit_idx = np.sort(np.concatenate([fit_idx, ex[np.isin(self.train.subjects[ex], list(keep))]]))
                all_subj = keep | set(self.train.subjects[val_idx].tolist())
                refit_ex = ex[np.isin(self.train.subjects[ex], list(all_subj))]
            else:
                refit_ex = np.zeros(0, np.int64)
            self.units.append(SimpleNamespace(
                fold=int(u.name.split("_")[1]), test_subjects=u.test_subjects, fit_idx=fit_idx,
                val_idx=val_idx, refit_idx=np.unique(np.concatenate([fit_idx, val_idx, refit_ex])),
                validation=u.validation, _test_idx=im_te[u.test_idx]))

    def windows(self, c: GridConfig, idx: np.ndarray, grid: str = "train") -> Windows:
        z = self.z[self._zkey(c)][0 if grid == "train" else 1] if self._zkey(c) != "base" else None
        ws, uv = (self.train, self.train_uv) if grid == "train" else (self.test, self.test_uv)
        return Windows(ws.X[idx] if z is None else z[idx], uv[idx], ws.y[idx], ws.files[idx],
                       ws.t_start[idx])

    def test_windows(self, u) -> np.ndarray:
        """The fold's test indices; refused until the fold's choice is on disk."""
        if not self.path("choice", "", u.fold).is_file():
            raise RuntimeError(f"fold {u.fold}: test windows requested before the choice was written")
        return u._test_idx

    # --- running -----------------------------------------------------------------------------
    def run(self, stop_after: str | None = None) -> None:
        """Selected folds in order: selection, choice, refits and peers (module docstring).
        ``stop_after="choice"`` ends each fold after its choice (timing, tests)."""
        from experiments.nested_report import write_report

        self.load()
        self._say(f"{len(self.train)} training-grid, {len(self.test)} test-grid windows; "
                  f"{len(self.units)} outer folds; seeds {self.seeds}")
        for u in self.units:
            if self.cfg.folds and u.fold not in self.cfg.folds:
                continue
            if self.cfg.choices_from:
                choice = self.borrowed_choice(u)
            else:
                inner = {c.id: self.inner_unit(c, u) for c in self.configs + [
                    self.peers[p] for p in NEURAL_PEERS if p in self.peers]}
                choice = self.choose(u, inner)
            write_report(self.out)
            if stop_after == "choice":
                continue
            chosen = next(c for c in self.configs if c.id == choice["chosen"])
            for seed in self.seeds:
                self.test_unit("eegmamba_chosen", chosen, u, choice["chosen_step"], seed)
                for p in NEURAL_PEERS:
                    if p in self.peers:
                        self.test_unit(p, self.peers[p], u, choice["peers"][p]["best_step"], seed)
                write_report(self.out)
            for p, c in self.peers.items():
                if p not in NEURAL_PEERS:
                    self.test_unit(p, c, u, 0, None)
            write_report(self.out)

    def inner_unit(self, c: GridConfig, u) -> dict:
        path = self.path("inner", c.id, u.fold)
        if path.is_file():
            self._say(f"{c.id} fold {u.fold} (selection): done already, skipped")
            return json.loads(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = int(c.recipe.get("seed", 0))
        arm = _arm(c)
        fitted = fit_arm(arm, self._profile(c), self.windows(c, u.fit_idx), self.windows(c, u.val_idx),
                         settings_for(c), seed, console=self.console,
                         state_path=path.with_suffix(".state.pt") if arm == "eegmamba" else None,
                         label=f"{c.id} fold {u.fold}", model_overrides=c.overrides or None)
        fit = fitted.info["fit"]
        evals = [{k: e.get(k) for k in ("step", "epoch", "val_auroc", "val_balanced_acc", "val_loss")}
                 for e in fitted.info.get("evals", [])]
        res = {"fold": u.fold, "config": c.id, "arm": arm, "seed": seed, "model": c.model,
               "overrides": c.overrides, "n_train": int(len(u.fit_idx)), "n_val": int(len(u.val_idx)),
               "validation": u.validation, "train_subjects": sorted(set(self.train.subjects[u.fit_idx].tolist())),
               "val_subjects": sorted(set(self.train.subjects[u.val_idx].tolist())),
               "best_step": int(fit["best_step"]), "best_val_auroc": fit.get("best_score"),
               "steps_per_epoch": fit.get("steps_per_epoch"), "total_steps_run": evals[-1]["step"] if evals else 0,
               "stopped_early": fitted.info.get("stopped_early"), "evals": evals,
               "seconds": fitted.info["seconds"], "finished": prov.now()}
        write_json(path, res, indent=None)
        self._say(f"{c.id} fold {u.fold} (selection): best val AUROC {res['best_val_auroc']:.3f} at step "
                  f"{res['best_step']} of {res['total_steps_run']} [{res['seconds']:.0f} s]")
        return res

    def choose(self, u, inner: dict) -> dict:
        """The fold's choice (written once; a rerun reads it)."""
        path = self.path("choice", "", u.fold)
        if path.is_file():
            return json.loads(path.read_text())
        cands = {c.id: inner[c.id] for c in self.configs}
        best = max(cands, key=lambda k: (cands[k]["best_val_auroc"] or -1.0, -list(cands).index(k)))
        choice = {"fold": u.fold, "chosen": best, "chosen_step": cands[best]["best_step"],
                  "chosen_val_auroc": cands[best]["best_val_auroc"],
                  "configs": {k: {"best_val_auroc": v["best_val_auroc"], "best_step": v["best_step"]}
                              for k, v in cands.items()},
                  "peers": {p: {"best_val_auroc": inner[p]["best_val_auroc"],
                                "best_step": inner[p]["best_step"]} for p in NEURAL_PEERS if p in inner},
                  "written": prov.now(), "test_windows_indexed_before": False}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, choice)
        self._say(f"fold {u.fold}: chose {best} (val AUROC {choice['chosen_val_auroc']:.3f}, "
                  f"{choice['chosen_step']} steps)")
        return choice

    def borrowed_choice(self, u) -> dict:
        """The fold's choice copied from ``choices_from`` (same grid file, same folds), written
        before any test window of this run is indexed."""
        path = self.path("choice", "", u.fold)
        if path.is_file():
            return json.loads(path.read_text())
        src = Path(self.cfg.choices_from)
        run = json.loads((src / "run.json").read_text()) if (src / "run.json").is_file() else {}
        if run.get("grid_sha256") != self.record["grid_sha256"]:
            raise UserInputError(f"--choices-from {src}: its grid is not {self.grid_path} (sha256 "
                                 "differs or no run.json); borrow choices only from a run of this grid")
        theirs = src / "units" / "choice" / f"fold_{u.fold}.json"
        if not theirs.is_file():
            raise UserInputError(f"--choices-from {src}: fold {u.fold} has no choice yet "
                                 f"({theirs} missing); run that fold's selection first")
        choice = json.loads(theirs.read_text())
        for unit in sorted((src / "units" / "test").glob(f"*/fold_{u.fold}*.json"))[:1]:
            if json.loads(unit.read_text())["test_subjects"] != list(u.test_subjects):
                raise UserInputError(f"--choices-from {src}: fold {u.fold} tested other subjects "
                                     "there; its folds are not this run's")
        choice |= {"borrowed_from": str(theirs), "borrowed_sha256": prov.sha256_file(theirs),
                   "borrowed_written": choice.get("written"), "written": prov.now()}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, choice)
        self._say(f"fold {u.fold}: {choice['chosen']} ({choice['chosen_step']} steps) as chosen in {src}")
        return choice

    def test_unit(self, arm_id: str, c: GridConfig, u, steps: int, seed: int | None) -> dict:
        path = self.path("test", arm_id, u.fold, seed)
        if path.is_file():
            self._say(f"{arm_id} fold {u.fold} seed {seed}: done already, skipped")
            return json.loads(path.read_text())
        path.parent.mkdir(parents=True, exist_ok=True)
        arm = _arm(c)
        fitted = fit_arm(arm, self._profile(c), self.windows(c, u.refit_idx), None,
                         settings_for(c, max_steps=steps), 0 if seed is None else seed,
                         console=self.console, label=f"{arm_id} fold {u.fold} refit",
                         model_overrides=c.overrides or None, options=c.options or None)
        te = self.test_windows(u)
        w = self.windows(c, te, "test")
        proba = fitted.proba(w)
        causal = self.score_causal(c, fitted, u)
        trials = trial_ids(w.files, w.t_start, w.y, self.base.window.hop_s)
        subj = self.test.subjects[te]
        fit = fitted.info.get("fit", {})
        res = {"fold": u.fold, "arm": arm_id, "config": c.id, "model": c.model, "seed": seed,
               "steps": steps, "steps_run": fit.get("total_steps"), "n_train": int(len(u.refit_idx)),
               "train_subjects": sorted(set(self.train.subjects[u.refit_idx].tolist())),
               "test_subjects": list(u.test_subjects),
               "alignment": _alignment(c),
               **score(w.y, proba, subj, trials), "y_true": w.y.tolist(), "subjects": subj.tolist(),
               "trial": trials.tolist(), "proba": proba.round(5).tolist(),
               "causal_alignment": causal, "seconds": fitted.info.get("seconds"),
               "finished": prov.now()}
        write_json(path, res, indent=None)
        m, t = res["per_window"], res["per_trial"]
        self._say(f"{arm_id} fold {u.fold} seed {seed} ({steps} steps): window AUROC {m['auroc']:.3f} "
                  f"BACC {m['balanced_acc']:.3f}; trial AUROC {t['auroc']:.3f} [{res['seconds']:.0f} s]")
        return res

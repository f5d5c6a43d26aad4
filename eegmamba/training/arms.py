"""The models a protocol compares ("arms"), each fitted and evaluated on the same windows.

* ``eegmamba`` — single-task EEGMamba through the project's one engine (``Trainer``), z-scored
  windows (the profile's normalization, what the live loop feeds it).
* ``eegnet`` — EEGNet-8,2, our implementation from the paper (``eegmamba.baselines.eegnet``), the
  same z-scored windows, the same engine, selection on the same validation windows.

Both neural arms train by ``ArmSettings.recipe`` (the engine's ``Recipe``; the arm's epochs,
patience and batch from its own fields). ``recipe=None`` is the pre-engine setting, kept to
reproduce old runs: EEGMamba by ``Recipe.paper()``, EEGNet by the paper's Adam 1e-3
(``EEGNetTrainConfig.recipe()``); a run folder written before the recipe existed reads as that.
* ``csp_lda``, ``ts_lr``, ``mdm`` — CSP + LDA, tangent space + LR, MDM on the same windows in µV
  (covariance methods need the channels' relative scale); fitted on every training window (they
  have no early stopping, so the validation windows are training data for them).
* ``bandpower_lr`` — log band powers + logistic regression (sleep, seizure), windows in µV.
* ``yasa`` — YASA's pretrained sleep staging (no training), given each test window's recording.
* ``gssc`` — the Greifswald Sleep Stage Classifier's pretrained CNN + GRU (no training), the same way
  (hard stages: one-hot probabilities; :mod:`eegmamba.baselines.gssc_peer`).

An arm is fitted by ``fit_arm`` and returns a ``Fitted`` (``proba(X_z, X_uv)``). Neural arms can be
saved (``save``) and reloaded (``load_fitted``) so the calibrated protocol starts from the
cross-subject fold models.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from eegmamba.profiles import Profile
from eegmamba.training.engine.hooks import augmentation_for
from eegmamba.training.engine.recipe import Recipe

NEURAL = ("eegmamba", "eegnet")
CLASSICAL = ("csp_lda", "ts_lr", "mdm", "bandpower_lr")
PRETRAINED = ("yasa", "gssc")
ARMS = NEURAL + CLASSICAL + PRETRAINED
ARM_NAMES = {"eegmamba": "EEGMamba", "eegnet": "EEGNet-8,2 (ours)", "csp_lda": "CSP+LDA",
             "ts_lr": "TS+LR", "mdm": "MDM", "bandpower_lr": "band power+LR", "yasa": "YASA",
             "gssc": "GSSC"}


@dataclass
class Windows:
    """The same windows twice: ``z`` as the profile normalizes them (networks), ``uv`` in µV
    (classical peers); ``y (N,)`` int64; ``files``, ``t_start`` (seconds) where each comes from."""

    z: np.ndarray
    uv: np.ndarray
    y: np.ndarray
    files: np.ndarray | None = None
    t_start: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class ArmSettings:
    """Training settings of the neural arms (fixed before any test fold is seen; see docs)."""

    eegmamba_epochs: int = 100
    eegmamba_patience: int = 10
    eegmamba_batch: int = 128
    eegmamba_variant: str = "eegmamba_single"
    eegmamba_cls_position: str = "start"  # EEGMambaConfig.cls_position (Eq. 7; --ablation cls)
    eegmamba_d_model: int | None = None  # the variant's width (None: the variant's own)
    eegnet_epochs: int = 100
    eegnet_patience: int = 10
    eegnet_batch: int = 64
    eegnet_dropout: float = 0.25  # paper: 0.25 cross-subject, 0.5 within-subject
    device: str = "cpu"
    recipe: Recipe | None = field(default_factory=Recipe)  # None: the pre-engine per-arm settings

    @classmethod
    def from_dict(cls, d: dict) -> "ArmSettings":
        """Settings as a run.json records them (without ``recipe``: a pre-engine run)."""
        d = dict(d)
        r = d.pop("recipe", None)
        return cls(**d, recipe=None if r is None else Recipe.from_dict(r))

    def recipe_for(self, arm: str, seed: int, lr: float | None = None) -> Recipe:
        """The recipe ``arm`` trains by: the shared recipe with the arm's epochs, patience, batch."""
        if arm == "eegnet":
            from eegmamba.baselines.eegnet import EEGNetTrainConfig

            base = self.recipe or EEGNetTrainConfig().recipe()
            sizes = dict(epochs=self.eegnet_epochs, patience=self.eegnet_patience,
                         batch_size=self.eegnet_batch)
        else:
            base = self.recipe or Recipe.paper()
            sizes = dict(epochs=self.eegmamba_epochs, patience=self.eegmamba_patience,
                         batch_size=self.eegmamba_batch)
        return base.replace(seed=seed, **sizes, **({"lr": lr} if lr else {}))


@dataclass
class Fitted:
    """A fitted arm: ``proba(w)`` → ``(N, n_classes)`` in the profile's class order."""

    arm: str
    model: object
    n_classes: int
    info: dict = field(default_factory=dict)
    profile: Profile | None = None

    def proba(self, w: Windows) -> np.ndarray:
        if self.arm in NEURAL:
            from eegmamba.training.engine.predict import predict_proba

            task = self.profile.name if self.arm == "eegmamba" else None
            return predict_proba(self.model, w.z, task, torch.device("cpu"), 128)
        if self.arm in PRETRAINED:
            return self.model.proba(w.files, w.t_start)
        groups = w.files if _aligns(self.model) else None
        p = self.model.predict_proba(w.uv) if groups is None else self.model.predict_proba(w.uv, groups)
        out = np.zeros((len(w), self.n_classes))
        out[:, np.asarray(self.model.classes_, dtype=np.int64)] = p
        return out

    def save(self, folder: Path, training: dict) -> None:
        """Neural arms only: EEGMamba as a project checkpoint, EEGNet as safetensors + JSON."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.arm == "eegmamba":
            from eegmamba.checkpoint import save_checkpoint
            from eegmamba.training import provenance as prov

            save_checkpoint(folder / "eegmamba", self.model,
                            prov.checkpoint_metadata([self.profile], training))
        elif self.arm == "eegnet":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.model.state_dict().items()},
                      str(folder / "eegnet.safetensors"))
            (folder / "eegnet.json").write_text(json.dumps(asdict(self.model.config), indent=1))


def load_fitted(arm: str, folder: Path, profile: Profile) -> Fitted:
    """Reload a neural arm saved by ``Fitted.save``."""
    if arm == "eegmamba":
        from eegmamba.checkpoint import load_checkpoint

        model, _ = load_checkpoint(folder / "eegmamba", device="cpu")
    else:
        from safetensors.torch import load_file

        from eegmamba.baselines.eegnet import EEGNet, EEGNetConfig

        model = EEGNet(EEGNetConfig(**json.loads((folder / "eegnet.json").read_text())))
        model.load_state_dict(load_file(str(folder / "eegnet.safetensors")))
    return Fitted(arm, model.eval(), len(profile.classes), {}, profile)


def _classical(arm: str, sfreq: float, options: dict | None = None):
    from eegmamba.baselines.classical import CSPLDA, BandPowerLR
    from eegmamba.baselines.riemann import MDM, TSLR

    cls = {"csp_lda": CSPLDA, "ts_lr": TSLR, "mdm": MDM, "bandpower_lr": BandPowerLR}[arm]
    try:
        return cls(sfreq=sfreq, **(options or {}))
    except TypeError as exc:
        raise ValueError(f"{arm}: unknown option(s) {sorted(options or {})}: {exc}") from None


def _aligns(est) -> bool:
    """A classical peer that aligns (``align``) or re-centres (``recenter``) per group: its groups
    are the windows' recordings (each recording aligned with its own unlabelled windows)."""
    return bool(getattr(est, "align", False) or getattr(est, "recenter", False))


def fit_arm(arm: str, profile: Profile, train: Windows, val: Windows | None, settings: ArmSettings,
            seed: int, state_path: Path | None = None, console=None, label: str = "",
            init: Fitted | None = None, lr: float | None = None, model_overrides: dict | None = None,
            options: dict | None = None) -> Fitted:
    """Fit ``arm`` on ``train`` (early stopping on ``val`` for the neural arms; classical arms
    train on ``train`` + ``val``). ``init``: start from this fitted neural model (fine-tuning);
    ``lr``: override the arm's learning rate. ``state_path``: EEGMamba's resumable state.
    ``model_overrides``: EEGMamba config options of the variant (``d_model``…, issue-17 grid);
    ``options``: a classical arm's estimator options (``align``, ``recenter``; their groups are the
    windows' ``files``)."""
    t0 = time.perf_counter()
    n_classes = len(profile.classes)
    if arm in PRETRAINED:
        if arm == "yasa":
            from eegmamba.baselines.yasa_peer import YasaPeer as Peer
        else:
            from eegmamba.baselines.gssc_peer import GsscPeer as Peer
        return Fitted(arm, Peer(profile), n_classes, {"n_train": 0, "pretrained": True}, profile)
    if arm in CLASSICAL:
        both = train if val is None else Windows(
            np.concatenate([train.z, val.z]), np.concatenate([train.uv, val.uv]),
            np.concatenate([train.y, val.y]),
            None if train.files is None or val.files is None else np.concatenate([train.files, val.files]))
        est = _classical(arm, profile.sfreq, options)
        if _aligns(est):
            if both.files is None:
                raise ValueError(f"{arm} with {options}: the windows' files (alignment groups) are needed")
            est.fit(both.uv, both.y, both.files)
        else:
            est.fit(both.uv, both.y)
        return Fitted(arm, est, n_classes, {"seconds": round(time.perf_counter() - t0, 1),
                                            "n_train": len(both)}, profile)
    if arm == "eegnet":
        from eegmamba.baselines.eegnet import EEGNet, EEGNetConfig, fit_eegnet

        torch.manual_seed(seed)
        model = init.model if init is not None else EEGNet(EEGNetConfig(
            profile.n_channels, profile.window_samples, n_classes, profile.sfreq,
            dropout=settings.eegnet_dropout))
        recipe = settings.recipe_for(arm, seed, lr)
        fit = fit_eegnet(model, train.z, train.y, None if val is None else val.z,
                         None if val is None else val.y, recipe, augment=augmentation_for(profile),
                         device=settings.device, console=console, label=label)
        info = {"best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
                "history": fit["history"], "fit": fit["fit"], "evals": fit["evals"],
                "recipe": recipe.to_dict()}
    elif arm == "eegmamba":
        from eegmamba import create_model
        from eegmamba.training.experiment import _task_spec
        from eegmamba.training.trainer import TaskData, Trainer, seed_everything

        seed_everything(seed)
        model = init.model if init is not None else create_model(
            settings.eegmamba_variant, tasks=[_task_spec(profile)],
            **{"cls_position": settings.eegmamba_cls_position,
               **({} if settings.eegmamba_d_model is None else {"d_model": settings.eegmamba_d_model}),
               **(model_overrides or {})})
        recipe = settings.recipe_for(arm, seed, lr)
        val_data = None if val is None else {profile.name: TaskData(val.z, val.y)}
        tr = Trainer(model, {profile.name: TaskData(train.z, train.y)}, val_data, recipe,
                     torch.device(settings.device), state_path=state_path, console=console,
                     label=label, augment=augmentation_for(profile))
        if state_path is not None and state_path.is_file():
            tr.load_state(state_path)
        fit = tr.fit()
        model.load_state_dict(fit.best_state)
        model.eval()
        if state_path is not None:
            state_path.unlink(missing_ok=True)
        info = {"best_epoch": fit.best_epoch, "epochs_run": len(fit.history),
                "stopped_early": fit.stopped_early, "history": fit.history, "fit": fit.summary(),
                "evals": fit.evals, "recipe": recipe.to_dict()}
    else:
        raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
    info.update(seconds=round(time.perf_counter() - t0, 1), n_train=len(train),
                n_val=0 if val is None else len(val))
    return Fitted(arm, model, n_classes, info, profile)

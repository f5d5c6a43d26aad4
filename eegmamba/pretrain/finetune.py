"""Fine-tuning an ``EEGM2Classifier`` from an ``eegmamba-pretrain`` output folder, and a small
fixed-step fine-tuning on the one training engine (what the pretrained-vs-scratch experiment of
docs/pretraining.md ran, through ``tools/eegm2_experiment.py`` up to commit 9cde568).

The pretrained encoder fixes the signal: its ordered channels (compared after ``normalize_name``)
and rate must equal the fine-tuning data's, else ``EEGM2Classifier.check_pretrained`` raises a
ValueError naming both; nothing is zero-filled or reordered silently. The window length may differ
(the classifier pools over time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from eegmamba._checks import UserInputError, check_option
from eegmamba.channels import normalize_name
from eegmamba.checkpoint import CheckpointError, load_checkpoint
from eegmamba.eegm2.classifier import EEGM2Classifier
from eegmamba.eegm2.config import FREEZE_MODES, EEGM2ClassifierConfig, EEGM2Config
from eegmamba.registry import build_model


@dataclass(frozen=True)
class PretrainedEncoder:
    """An encoder read from a pretrain folder.

    state_dict : encoder tensors (EEGM2-Light keys); config : its EEGM2Config
    ch_names : ordered channel names; sfreq : Hz; window_s : pretraining window, seconds
    metadata : the checkpoint's whole ``model.json``; folder : the checkpoint folder read
    """

    state_dict: dict
    config: EEGM2Config
    ch_names: tuple[str, ...]
    sfreq: float
    window_s: float
    metadata: dict
    folder: Path


def load_pretrained(folder: str | Path) -> PretrainedEncoder:
    """Read the encoder of a pretrain output folder (``DIR``, ``DIR/encoder`` or ``DIR/model``).

    Raises ``CheckpointError`` (a ``UserInputError``) for a folder that holds no EEGM2 checkpoint.
    """
    folder = Path(folder)
    ckpt = folder / "encoder" if (folder / "encoder" / "model.json").is_file() else folder
    model, meta = load_checkpoint(ckpt)
    if meta["variant"] not in ("eegm2_light", "eegm2", "eegm2_tiny"):
        raise CheckpointError(f"{ckpt}: holds variant {meta['variant']!r}, not an EEGM2 (pretrained) "
                              "model; give an eegmamba-pretrain output folder")
    md = meta.get("metadata", {})
    if "ch_names" not in md or "sfreq" not in md:
        raise CheckpointError(f"{ckpt}/model.json: metadata lacks ch_names/sfreq (not written by "
                              "eegmamba-pretrain?)")
    enc_keys = model.encoder_state_dict() if hasattr(model, "encoder_state_dict") else model.state_dict()
    return PretrainedEncoder(
        state_dict={k: v.detach().clone() for k, v in enc_keys.items()}, config=model.config,
        ch_names=tuple(md["ch_names"]), sfreq=float(md["sfreq"]), window_s=float(md.get("window_s", 0)),
        metadata=meta, folder=ckpt)


def classifier_config(encoder: EEGM2Config, n_classes: int, ch_names: Sequence[str], sfreq: float,
                      **head: Any) -> EEGM2ClassifierConfig:
    """Classifier config whose encoder has ``encoder``'s sizes and the target signal (channels, rate).

    head : ``pooling``, ``head``, ``dropout``, ``freeze``, ``unfreeze_last`` of EEGM2ClassifierConfig
    """
    enc = encoder.replace(n_chans=len(ch_names), ch_names=tuple(ch_names), sfreq=float(sfreq),
                          n_outputs=0, n_times=0)
    return EEGM2ClassifierConfig(encoder=enc, n_classes=n_classes, **head)


def classifier_from_pretrained(pretrained: PretrainedEncoder | str | Path, n_classes: int,
                               ch_names: Sequence[str], sfreq: float, **head: Any) -> EEGM2Classifier:
    """An ``eegm2_classifier`` for data with ``ch_names`` at ``sfreq`` Hz, encoder loaded from
    ``pretrained`` (``freeze`` etc. in ``head``). Raises ValueError on a channel or rate mismatch."""
    pre = pretrained if isinstance(pretrained, PretrainedEncoder) else load_pretrained(pretrained)
    model = build_model("eegm2_classifier", classifier_config(pre.config, n_classes, ch_names, sfreq,
                                                              **head))
    same = [normalize_name(c) for c in pre.ch_names] == [normalize_name(c) for c in ch_names]
    # equal after normalization: compare the target's own spelling; else report the pretrained names
    model.check_pretrained(tuple(ch_names) if same else pre.ch_names, pre.sfreq)
    model.load_encoder(pre.state_dict)
    return model


def scratch_classifier(encoder: EEGM2Config, n_classes: int, ch_names: Sequence[str], sfreq: float,
                       **head: Any) -> EEGM2Classifier:
    """The same classifier as :func:`classifier_from_pretrained` with a randomly initialised encoder."""
    return build_model("eegm2_classifier", classifier_config(encoder, n_classes, ch_names, sfreq, **head))


@dataclass(frozen=True)
class FinetuneConfig:
    """A fixed number of AdamW steps (same for every arm of a comparison).

    steps, batch_size : int; lr_encoder, lr_head : float (``EEGM2Classifier.param_groups``);
    weight_decay : float; seed : int (batch order and dropout)
    """

    steps: int = 100
    batch_size: int = 16
    lr_encoder: float = 1e-4
    lr_head: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserInputError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("lr_encoder", "lr_head", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise UserInputError(f"{name} must be a finite number >= 0, got {v!r}")


    def recipe(self):
        """This fixed-step run as an engine recipe: constant rates (encoder ``lr_encoder``, head
        ``lr_head``), AdamW decay on the decayed group, no clipping, smoothing or EMA, no validation."""
        from eegmamba.training.engine.recipe import Recipe

        return Recipe(lr=self.lr_encoder, head_lr_mult=self.lr_head / self.lr_encoder,
                      weight_decay=self.weight_decay, batch_size=self.batch_size, epochs=10**6,
                      max_steps=self.steps, min_steps_per_epoch=1, schedule="constant", warmup_frac=0.0,
                      clip=0.0, label_smoothing=0.0, ema=0.0, seed=self.seed)


def finetune(model: EEGM2Classifier, X: np.ndarray, y: np.ndarray, cfg: FinetuneConfig,
             device: torch.device | str = "cpu") -> list[float]:
    """Train ``model`` for ``cfg.steps`` cross-entropy steps on windows ``X (N, C, T)``, labels
    ``y (N,)`` int, with the one engine (``eegmamba.training.engine``; batches are seeded
    reshuffles of all windows). Returns the loss per step."""
    from eegmamba.training.engine.loop import Engine, TaskData

    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"finetune: need as many labels as windows (> 0), got {len(X)} and {len(y)}")
    check_option(model.config.freeze, FREEZE_MODES, "freeze")
    torch.manual_seed(cfg.seed)
    losses: list[float] = []
    eng = Engine(model, {None: TaskData(np.ascontiguousarray(X), np.asarray(y, dtype=np.int64))}, None,
                 cfg.recipe(), device, aux=False, on_step=lambda step, parts: losses.append(parts["loss"]))
    model.load_state_dict(eng.fit().best_state)
    return losses


def predict_proba(model: nn.Module, X: np.ndarray, batch_size: int = 64,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """Softmax probabilities ``(N, n_classes)`` float64 for windows ``X (N, C, T)`` (eval mode);
    ``eegmamba.training.engine.predict.predict_proba``."""
    from eegmamba.training.engine.predict import predict_proba as proba

    return proba(model.to(device), X, None, device, batch_size)

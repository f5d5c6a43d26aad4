"""Configuration of EEGM2 (Hong et al. 2025, arXiv 2502.17873) and of its encoder classifier.

Defaults are the official code's (``Jiazhen-Hong/EEGM2`` @ 0fade32, ``Code/config.json``):
base width 64 (``64 // scale_factor``, scale 1), Mamba-2 ``d_state=16, d_conv=2, expand=8`` and
mamba-ssm's defaults otherwise (``headdim=64, ngroups=1``). Departures, each our choice:
``chunk_size`` 0 = per device (64 on CPU, 256 on CUDA; the official code always runs 256 on CUDA,
the result is the same for any value), ``sfreq`` 200 Hz (the project's rate; the paper uses 128 Hz).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from eegmamba._checks import check_fields, check_option, check_positive
from eegmamba.ops.dispatch import BACKENDS

_INT_FIELDS = ("n_chans", "base", "d_state", "d_conv", "expand", "headdim", "ngroups")


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    d = dict(check_fields(cls, d))
    if "ch_names" in d:
        d["ch_names"] = tuple(d["ch_names"])
    return cls(**d)


@dataclass(frozen=True)
class EEGM2Config:
    """Hyper-parameters and expected signal of EEGM2 (autoencoder) and its encoder (EEGM2-Light).

    Attributes
    ----------
    n_chans : int
        Input channels C_in (the embedding convs are specific to this count and order).
    n_outputs : int
        Output channels of the reconstruction; 0 means ``n_chans`` (the official pretraining setup).
    base : int
        Width of level 1 (64 in the official code); levels 2/3 and the bottleneck use 2·base, 4·base.
    d_state, d_conv, expand, headdim, ngroups : int
        Mamba-2 settings of all four blocks (16, 2, 8, 64, 1 officially).
    chunk_size : int
        SSD chunk length, 0 = per device (64 CPU, 256 CUDA). Exact for any value.
    backend : {"auto", "ref", "mamba_ssm"}
        Scan backend (``eegmamba.ops.dispatch``).
    sfreq : float, Hz
        Sampling rate the weights were trained at (checked by callers, not by the model).
    n_times : int
        Window length in samples the model is meant for; 0 = any (the U-Net accepts any T >= 8).
    ch_names : tuple of str
        Ordered channel names (empty for synthetic uses; then only ``n_chans`` is checked).
    """

    n_chans: int
    n_outputs: int = 0
    base: int = 64
    d_state: int = 16
    d_conv: int = 2
    expand: int = 8
    headdim: int = 64
    ngroups: int = 1
    chunk_size: int = 0
    backend: str = "auto"
    sfreq: float = 200.0
    n_times: int = 0
    ch_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in _INT_FIELDS:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"EEGM2Config.{f} must be a positive int, got {v!r}")
        for f in ("n_outputs", "chunk_size", "n_times"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"EEGM2Config.{f} must be an int >= 0 (0 = default), got {v!r}")
        if self.n_times and self.n_times < 8:
            raise ValueError(f"EEGM2Config.n_times must be >= 8 (three 2x poolings), got {self.n_times}")
        check_positive(self.sfreq, "EEGM2Config.sfreq")
        check_option(self.backend, BACKENDS, "EEGM2Config.backend")
        object.__setattr__(self, "ch_names", tuple(self.ch_names))
        if self.ch_names and len(self.ch_names) != self.n_chans:
            raise ValueError(
                f"EEGM2Config: {len(self.ch_names)} ch_names for n_chans={self.n_chans}")
        for width in (self.base, 2 * self.base, 4 * self.base):
            inner = self.expand * width
            if inner % self.headdim or (inner // self.headdim) % self.ngroups:
                raise ValueError(
                    f"EEGM2Config: expand·width = {inner} (width {width}) must be a multiple of "
                    f"headdim={self.headdim} with a head count divisible by ngroups={self.ngroups}")

    @property
    def out_chans(self) -> int:
        """Channels of the reconstruction (``n_outputs`` or ``n_chans``)."""
        return self.n_outputs or self.n_chans

    def mamba_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`eegmamba.eegm2.mamba2.Mamba2` (all but ``d_model``)."""
        return dict(d_state=self.d_state, d_conv=self.d_conv, expand=self.expand,
                    headdim=self.headdim, ngroups=self.ngroups, chunk_size=self.chunk_size,
                    backend=self.backend)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ch_names"] = list(self.ch_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EEGM2Config":
        return _from_dict(cls, d)

    def replace(self, **changes: Any) -> "EEGM2Config":
        return dataclasses.replace(self, **changes)


POOLINGS = ("quantile", "meanmax", "mean")
HEADS = ("mlp", "linear")
FREEZE_MODES = ("frozen", "partial", "full")


@dataclass(frozen=True)
class EEGM2ClassifierConfig:
    """EEGM2 encoder → pooling over time → head (the fine-tuning model, fixing the official bugs).

    Attributes
    ----------
    encoder : EEGM2Config
        The encoder's config; must match the pretrained encoder (channels, rate).
    n_classes : int
        Output width of the head (>= 2).
    pooling : {"quantile", "meanmax", "mean"}
        ``quantile``: the official probe's 9 statistics per feature channel over time (min, max,
        mean, std, quantiles .05/.25/.5/.75/.95) = 9·4·base features; ``meanmax``: mean and max;
        ``mean``: mean only.
    head : {"mlp", "linear"}
        ``mlp``: the official probe MLP, features → 128 → 32 → n_classes with ReLU and ``dropout``;
        ``linear``: one linear layer.
    dropout : float
        Dropout before each hidden layer of the MLP head (0.5 officially).
    freeze : {"frozen", "partial", "full"}
        Which encoder parameters train: none, the last ``unfreeze_last`` encoder stages, or all.
        Stages are counted as modules (input_embedding, encoder1, encoder2, encoder3), not as
        parameter tensors as the official ``num_layers_to_train`` does.
    unfreeze_last : int
        Stages trained with ``freeze="partial"`` (1..4).
    task_name, class_names : str, tuple of str
        The task name and class order, so that training, checkpoints and the live loop treat this
        model like a single-task EEGMamba (``config.tasks``, ``model(x, task=...)``).
    """

    encoder: EEGM2Config
    n_classes: int
    pooling: str = "quantile"
    head: str = "mlp"
    dropout: float = 0.5
    freeze: str = "full"
    unfreeze_last: int = 2
    task_name: str = "task"
    class_names: tuple[str, ...] = ()

    # The single-task interface shared with EEGMamba's config (read by the trainer and live loop).
    aux_loss_weight = 0.0
    use_moe = False

    @property
    def tasks(self) -> tuple:
        from eegmamba.model.config import TaskSpec

        enc = self.encoder
        return (TaskSpec(self.task_name, enc.n_chans, enc.n_times or 8, self.n_classes, enc.sfreq,
                         enc.ch_names, self.class_names),)

    def task(self, name: str):
        """The :class:`~eegmamba.model.config.TaskSpec` of task ``name`` (the only one)."""
        if name != self.task_name:
            raise ValueError(f"unknown task {name!r}; this model has task {self.task_name!r}")
        return self.tasks[0]

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            object.__setattr__(self, "encoder", EEGM2Config.from_dict(self.encoder))
        if not isinstance(self.encoder, EEGM2Config):
            raise TypeError(f"EEGM2ClassifierConfig.encoder must be an EEGM2Config, "
                            f"got {type(self.encoder).__name__}")
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int) or self.n_classes < 2:
            raise ValueError(f"EEGM2ClassifierConfig.n_classes must be an int >= 2, got {self.n_classes!r}")
        check_option(self.pooling, POOLINGS, "EEGM2ClassifierConfig.pooling")
        check_option(self.head, HEADS, "EEGM2ClassifierConfig.head")
        check_option(self.freeze, FREEZE_MODES, "EEGM2ClassifierConfig.freeze")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"EEGM2ClassifierConfig.dropout must be in [0, 1), got {self.dropout}")
        if not (isinstance(self.unfreeze_last, int) and 1 <= self.unfreeze_last <= 4):
            raise ValueError(
                f"EEGM2ClassifierConfig.unfreeze_last must be 1..4 encoder stages, got {self.unfreeze_last!r}")
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.class_names and len(self.class_names) != self.n_classes:
            raise ValueError(f"EEGM2ClassifierConfig: {len(self.class_names)} class_names for "
                             f"n_classes={self.n_classes}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EEGM2ClassifierConfig":
        d = dict(check_fields(cls, d))
        d["encoder"] = EEGM2Config.from_dict(d["encoder"])
        return cls(**d)

    def replace(self, **changes: Any) -> "EEGM2ClassifierConfig":
        return dataclasses.replace(self, **changes)

"""Configuration of the EEGMamba model (paper: Sections 2.2-2.5, Appendix B and E.5).

Values the paper gives (Table 8): hidden dimension 128; multi-task model 8 BiMamba layers, 8 MoE blocks,
8 experts, top-2; single-task model 2 BiMamba layers, no MoE. Everything else is not in the paper; the
defaults below are our choice and each one says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from eegmamba._checks import check_fields, check_option, check_positive
from eegmamba.ops.dispatch import BACKENDS  # noqa: F401  (re-exported: the scan backends)

CLS_POSITIONS = ("start", "middle", "end")
TOKENIZERS = ("conv", "filterbank", "separable", "stack")  # eegmamba.model.tokenizer_paths


@dataclass(frozen=True)
class TaskSpec:
    """The signal one task expects (braindecode style) and its classes.

    Attributes
    ----------
    name : str
        Task name used to route inputs (``model(x, task=name)``).
    n_chans : int
        Number of input channels.
    n_times : int
        Window length in samples at ``sfreq``.
    n_classes : int
        Number of output classes (the task head's width).
    sfreq : float
        Sampling rate in Hz the model was built for (the paper resamples everything to 200 Hz).
    ch_names, class_names : tuple of str
        Ordered channel and class names (may be empty for synthetic uses; then only counts are
        checked). Tasks with the same ordered channel names share a spatial-adaptive conv branch;
        a task without names gets its own.
    """

    name: str
    n_chans: int
    n_times: int
    n_classes: int
    sfreq: float = 200.0
    ch_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            raise ValueError(f"TaskSpec.name must be a non-empty string without '.', got {self.name!r}")
        for f in ("n_chans", "n_times", "n_classes"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TaskSpec({self.name}).{f} must be a positive int, got {v!r}")
        if self.n_classes < 2:
            raise ValueError(f"TaskSpec({self.name}).n_classes must be >= 2, got {self.n_classes}")
        check_positive(self.sfreq, f"TaskSpec({self.name}).sfreq")
        object.__setattr__(self, "ch_names", tuple(self.ch_names))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.ch_names and len(self.ch_names) != self.n_chans:
            raise ValueError(
                f"TaskSpec({self.name}): {len(self.ch_names)} ch_names for n_chans={self.n_chans}"
            )
        if self.class_names and len(self.class_names) != self.n_classes:
            raise ValueError(
                f"TaskSpec({self.name}): {len(self.class_names)} class_names for "
                f"n_classes={self.n_classes}"
            )


@dataclass(frozen=True)
class EEGMambaConfig:
    """Hyper-parameters of EEGMamba. ``tasks`` fixes the conv branches, task tokens and heads.

    Paper-given: ``d_model`` = 128, ``n_layers`` (2 single-task / 8 multi-task), ``use_moe``,
    ``n_experts`` = 8, ``top_k`` = 2. Our choices where the paper is silent are marked below.
    """

    tasks: tuple[TaskSpec, ...]
    d_model: int = 128
    n_layers: int = 2
    # --- Mamba internals: the paper builds on Gu & Dao (2023) and names no values; we keep Mamba's
    # own defaults (d_state 16, d_conv 4, expand 2, dt_rank = ceil(d_model / 16)).
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0  # 0 means ceil(d_model / 16), as in mamba_ssm
    bidirectional: bool = True  # False only for the paper's "single-directional Mamba" ablation
    # --- ST-Adaptive tokenizer: kernel sizes and strides are not in the paper. We follow the
    # small/wide dual-path idea of DeepSleepNet/AttnSleep that the dual-path design echoes:
    # CNN_s sees 80 ms with a 40 ms hop, CNN_w sees 0.5 s with a 0.25 s hop (at 200 Hz).
    spatial_kernel: int = 1  # our choice: a pointwise conv mixes channels only (the "spatial" part)
    small_kernel: int = 16
    small_stride: int = 8
    wide_kernel: int = 100
    wide_stride: int = 50
    # --- Tokenizer paths (issue 17; eegmamba/model/tokenizer_paths.py): "conv" (dense, the original),
    # "filterbank" (depthwise temporal filters -> log power -> pointwise), "separable", "stack";
    # groups of the conv / stack convs; dropout and path drop inside the paths (0 = as before)
    tokenizer: str = "conv"
    tokenizer_groups: int = 1
    tokenizer_dropout: float = 0.0
    tokenizer_drop_path: float = 0.0
    stack_kernel: int = 9
    # --- Class token position (Eq. 7 puts it first: "start" = [cls, small, wide]). With a BiMamba
    # stack the token at index 0 gets the sequence only through the backward scan, whose state is
    # dominated by the nearest tokens (the window's start, small path); "middle" = [small, cls, wide]
    # lets each scan direction integrate one whole path into it (Vim, Zhu et al. 2024, found the
    # middle class token best for bidirectional Mamba); "end" mirrors "start". Ablation in
    # docs/results.md ("Ablations (model review)").
    cls_position: str = "start"
    # --- Task-aware MoE (Section 2.4, Appendix E.1)
    use_moe: bool = False
    n_experts: int = 8
    top_k: int = 2
    expert_hidden: int = 0  # 0 means 4 * d_model (our choice; Fig. 10 shows a 2-layer MLP, width unstated)
    universal_expert: bool = True
    task_aware_gating: bool = True
    noisy_gating: bool = True
    aux_loss_weight: float = 1e-2  # our choice: weight of L_aux = L_b + L_z in the total loss
    dropout: float = 0.1  # our choice: before the heads only
    backend: str = "auto"

    def __post_init__(self) -> None:
        tasks = tuple(TaskSpec(**t) if isinstance(t, dict) else t for t in self.tasks)
        object.__setattr__(self, "tasks", tasks)
        if not tasks:
            raise ValueError("EEGMambaConfig.tasks must list at least one TaskSpec")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"EEGMambaConfig.tasks has duplicate task names: {names}")
        for f in ("d_model", "n_layers", "d_state", "d_conv", "expand", "small_kernel",
                  "small_stride", "wide_kernel", "wide_stride", "spatial_kernel", "n_experts", "top_k",
                  "tokenizer_groups", "stack_kernel"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"EEGMambaConfig.{f} must be a positive int, got {v!r}")
        if self.top_k > self.n_experts:
            raise ValueError(f"EEGMambaConfig.top_k={self.top_k} > n_experts={self.n_experts}")
        for f in ("dropout", "tokenizer_dropout", "tokenizer_drop_path"):
            if not 0.0 <= getattr(self, f) < 1.0:
                raise ValueError(f"EEGMambaConfig.{f} must be in [0, 1), got {getattr(self, f)}")
        check_option(self.tokenizer, TOKENIZERS, "EEGMambaConfig.tokenizer")
        if self.d_model % self.tokenizer_groups:
            raise ValueError(f"EEGMambaConfig.d_model {self.d_model} is not a multiple of "
                             f"tokenizer_groups {self.tokenizer_groups}")
        check_option(self.backend, BACKENDS, "EEGMambaConfig.backend")
        check_option(self.cls_position, CLS_POSITIONS, "EEGMambaConfig.cls_position")

    @property
    def resolved_dt_rank(self) -> int:
        return self.dt_rank or -(-self.d_model // 16)

    @property
    def resolved_expert_hidden(self) -> int:
        return self.expert_hidden or 4 * self.d_model

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise ValueError(f"unknown task {name!r}; this model has tasks {[t.name for t in self.tasks]}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = [dataclasses.asdict(t) for t in self.tasks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EEGMambaConfig":
        d = dict(check_fields(cls, d))
        d["tasks"] = tuple(
            TaskSpec(**{**t, "ch_names": tuple(t.get("ch_names", ())),
                        "class_names": tuple(t.get("class_names", ()))})
            for t in d["tasks"]
        )
        return cls(**d)

    def replace(self, **changes: Any) -> "EEGMambaConfig":
        return dataclasses.replace(self, **changes)

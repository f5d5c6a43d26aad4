"""ST-Adaptive module (paper Section 2.2, Fig. 3, Eqs. 5-7).

1. Spatial-adaptive convolution: one 1-D conv branch per input montage, all mapping to the hidden size
   ``D`` (Eq. 5), so datasets with different montages share everything downstream.
2. Dual-path tokenizer (:mod:`eegmamba.model.tokenizer`, Eq. 6).
3. Temporal adaptation: a learned class token joins the tokens (Eq. 7); the BiMamba stack integrates
   the whole sequence into it, so any window length gives a fixed-size representation.

Branches are keyed by montage, not channel count. The paper speaks of "varying channel numbers" and
gives one sub-module per input channel count, but its datasets never share a count between different
montages; ours do (22 bipolar CHB-MIT derivations and 22 referential 10-10 motor-imagery channels).
A conv weight maps electrode i to features, so it only means the same thing for the same electrodes
in the same order: tasks whose ordered channel names agree (after
:func:`eegmamba.channels.normalize_name`) share one conv; other tasks get their own. A task without
channel names (synthetic uses) cannot prove its montage equal to another's and gets its own conv.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from eegmamba.channels import normalize_name
from eegmamba.model import _st_inference
from eegmamba.model.config import CLS_POSITIONS, TaskSpec
from eegmamba.model.tokenizer import DualPathTokenizer, TaskBatchNorm, upgrade_shared_norm


def montage_branches(tasks: tuple[TaskSpec, ...]) -> dict[str, str]:
    """Task name → branch key: the name of the first task with the same ordered channel names."""
    first: dict[tuple, str] = {}
    out = {}
    for t in tasks:
        montage = tuple(normalize_name(c) for c in t.ch_names) if t.ch_names else ("<task>", t.name)
        out[t.name] = first.setdefault(montage, t.name)
    return out


class SpatialAdaptiveConv(nn.Module):
    """``CNN_SA``: ``x (B, C_i, L)`` of task ``i`` → ``y_SA (B, D, L)``.

    ``Conv1d(C_i, D, spatial_kernel, padding=same)`` of the task's montage branch, then the task's
    BatchNorm1d (per task, see :mod:`eegmamba.model.tokenizer`), then GELU. The paper says only "1D-CNN
    sub-modules with a uniform output channel count"; a pointwise kernel (1) that mixes channels
    without smearing time is our default, configurable.
    """

    def __init__(self, tasks: tuple[TaskSpec, ...], d_model: int, kernel: int = 1) -> None:
        super().__init__()
        self.branch_of = montage_branches(tasks)
        n_chans = {t.name: t.n_chans for t in tasks}
        self.branches = nn.ModuleDict({
            key: nn.Conv1d(n_chans[key], d_model, kernel, padding=kernel // 2)
            for key in dict.fromkeys(self.branch_of.values())
        })
        self.norm = TaskBatchNorm(d_model, tuple(n_chans))
        self.act = nn.GELU()
        self.kernel = kernel

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        if task not in self.branch_of:
            raise ValueError(f"no spatial-adaptive branch for task {task!r}; this model has "
                             f"tasks {list(self.branch_of)}")
        conv = self.branches[self.branch_of[task]]
        if x.shape[1] != conv.in_channels:
            raise ValueError(f"task {task!r}: the spatial-adaptive branch takes {conv.in_channels} "
                             f"channels, got {x.shape[1]}")
        y = conv(x)[..., : x.shape[-1]]  # even kernels pad one sample too many
        return self.act(self.norm(y, task))


class STAdaptive(nn.Module):
    """Spatial-adaptive conv + dual-path tokenizer + class token.

    ``x (B, C_i, L)`` (µV, normalized per the task's profile) and the task name →
    ``(T (B, N + 1, D), cls_index)``. ``cls_position`` places the class token: ``"start"`` =
    ``[cls, small…, wide…]`` (Eq. 7, the default), ``"middle"`` = ``[small…, cls, wide…]``,
    ``"end"`` = ``[small…, wide…, cls]`` (see ``EEGMambaConfig.cls_position``).
    """

    def __init__(self, tasks: tuple[TaskSpec, ...], d_model: int, spatial_kernel: int,
                 small_kernel: int, small_stride: int, wide_kernel: int, wide_stride: int,
                 cls_position: str = "start", **tokenizer: object) -> None:
        super().__init__()
        if cls_position not in CLS_POSITIONS:
            raise ValueError(f"cls_position must be one of {CLS_POSITIONS}, got {cls_position!r}")
        names = tuple(t.name for t in tasks)
        self.spatial = SpatialAdaptiveConv(tasks, d_model, spatial_kernel)
        self.tokenizer = DualPathTokenizer(d_model, small_kernel, small_stride, wide_kernel,
                                           wide_stride, names, **tokenizer)  # kind, groups, ...
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.trunc_normal_(self.cls_token, std=0.02)  # ViT's init (Dosovitskiy et al., 2021)
        self.cls_position = cls_position

    def forward(self, x: torch.Tensor, task: str) -> tuple[torch.Tensor, int]:
        if _st_inference.applicable(self, x, task):  # CPU inference: same function, fewer passes
            small, wide = _st_inference.tokens(self, x, task)
        else:
            y = self.spatial(x, task)
            small, wide = self.tokenizer.paths(y, task)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        if self.cls_position == "start":
            return torch.cat([cls, small, wide], dim=1), 0
        if self.cls_position == "middle":
            return torch.cat([small, cls, wide], dim=1), small.shape[1]
        return torch.cat([small, wide, cls], dim=1), small.shape[1] + wide.shape[1]


def upgrade_count_keyed_state(state: dict, prefix: str, tasks: tuple[TaskSpec, ...]) -> list[str]:
    """In place: map a state dict written before montage-keyed branches and per-task norms.

    Old names: ``spatial.branches.<n_chans>.0.*`` (conv), ``spatial.branches.<n_chans>.1.*``
    (BatchNorm), ``tokenizer.{small,wide}.norm.*`` (one BatchNorm). Each task takes the conv and
    BatchNorm of its channel count and a copy of the shared tokenizer norms, so the upgraded model
    computes exactly what the old one did for every task. Returns what was changed (for the record).
    """
    done = []
    sp = prefix + "spatial."
    branch_of = montage_branches(tasks)
    counts = sorted({t.n_chans for t in tasks if f"{sp}branches.{t.n_chans}.0.weight" in state})
    if counts:
        # take the old tensors out first: a new branch key may look like an old one ("22")
        olds = {c: {k[len(f"{sp}branches.{c}."):]: state.pop(k) for k in list(state)
                    if k.startswith(f"{sp}branches.{c}.0.") or k.startswith(f"{sp}branches.{c}.1.")}
                for c in counts}
        for t in tasks:
            for k, v in olds.get(t.n_chans, {}).items():
                layer, field = k.split(".", 1)
                dst = (f"{sp}branches.{branch_of[t.name]}.{field}" if layer == "0"
                       else f"{sp}norm.{t.name}.{field}")
                state[dst] = v.clone()
        done.append(f"spatial branches keyed by channel count {counts} -> by montage "
                    f"{sorted(set(branch_of.values()))}")
    names = tuple(t.name for t in tasks)
    for path in ("small", "wide"):
        if upgrade_shared_norm(state, f"{prefix}tokenizer.{path}.norm.", names):
            done.append(f"shared tokenizer.{path}.norm -> one per task")
    return done

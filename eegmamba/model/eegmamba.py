"""EEGMamba (paper Section 2, Fig. 2): ST-Adaptive → [BiMamba → task-aware MoE] × n → task-aware classifier.

The multi-task model pairs every BiMamba block with a MoE block (Table 8: 8 and 8); the single-task
model (Appendix B, Fig. 7) has no MoE, one spatial conv branch and one head.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from eegmamba.model.bimamba import BiMambaBlock
from eegmamba.model.config import BACKENDS, EEGMambaConfig, TaskSpec
from eegmamba.model.heads import TaskAwareClassifier
from eegmamba.model.moe import TaskAwareMoE
from eegmamba.model.st_adaptive import STAdaptive, upgrade_count_keyed_state


def _upgrade_hook(module: "EEGMamba", state: dict, prefix: str, *args) -> None:
    module.upgrade_state_dict(state, prefix)


class EEGMamba(nn.Module):
    """EEGMamba classifier.

    ``model(x, task=name)`` with ``x (B, C_task, T_task)`` float (EEG at ``sfreq`` = 200 Hz,
    normalized per the task's profile) returns logits ``(B, n_classes_task)``. After each forward
    ``model.last_aux_loss`` holds the summed MoE auxiliary loss ``Σ (L_b + L_z)`` (zero without MoE);
    training adds ``config.aux_loss_weight * last_aux_loss`` to the cross-entropy;
    ``model.last_aux_parts`` holds its two summed parts (``{"balance": Σ L_b, "z": Σ L_z}``, detached).

    State dicts of older versions (spatial branches keyed by channel count, one shared tokenizer
    BatchNorm) load through :meth:`upgrade_state_dict`, which ``load_state_dict`` applies too.
    """

    def __init__(self, config: EEGMambaConfig) -> None:
        super().__init__()
        self.config = config
        self.variant = "custom"
        c = config
        self.task_index = {t.name: i for i, t in enumerate(c.tasks)}
        self.st_adaptive = STAdaptive(
            c.tasks, c.d_model, c.spatial_kernel, c.small_kernel, c.small_stride, c.wide_kernel,
            c.wide_stride, c.cls_position, kind=c.tokenizer, groups=c.tokenizer_groups,
            dropout=c.tokenizer_dropout, drop_path=c.tokenizer_drop_path, stack_kernel=c.stack_kernel,
        )
        self.blocks = nn.ModuleList(
            BiMambaBlock(c.d_model, c.d_state, c.d_conv, c.expand, c.resolved_dt_rank,
                         c.bidirectional, c.backend)
            for _ in range(c.n_layers)
        )
        self.moes = nn.ModuleList(
            TaskAwareMoE(c.d_model, c.n_experts, c.top_k, c.resolved_expert_hidden,
                         c.universal_expert, c.task_aware_gating, c.noisy_gating)
            for _ in range(c.n_layers if c.use_moe else 0)
        )
        # Task tokens t_task (B, D) feed the task-aware gating (Section 2.4.2).
        self.task_tokens = nn.Embedding(len(c.tasks), c.d_model) if c.use_moe else None
        self.classifier = TaskAwareClassifier(
            c.d_model, {t.name: t.n_classes for t in c.tasks}, c.dropout
        )
        self.last_aux_loss = torch.zeros(())
        self.last_aux_parts: dict[str, torch.Tensor] = {}
        self.register_load_state_dict_pre_hook(_upgrade_hook)

    def upgrade_state_dict(self, state: dict, prefix: str = "") -> list[str]:
        """Map, in place, tensor names of older versions onto this model's; returns what changed.

        Old checkpoints keyed the spatial-adaptive branches by channel count and shared one tokenizer
        BatchNorm between tasks; each task now takes the conv and norms it used before, so the
        upgraded model's outputs equal the old model's (see ``st_adaptive.upgrade_count_keyed_state``).
        """
        return upgrade_count_keyed_state(state, prefix + "st_adaptive.", self.config.tasks)

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return self.config.tasks

    def expected_signal(self, task: str | None = None) -> TaskSpec:
        """The :class:`TaskSpec` (channels, samples, rate, classes) the model expects for ``task``."""
        return self.config.task(self._task_name(task))

    def set_backend(self, backend: str) -> None:
        """Switch the selective-scan backend (``"auto" | "ref" | "cpu_fused" | "mamba_ssm"``) of
        every block."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        for block in self.blocks:
            block.set_backend(backend)

    def _task_name(self, task: str | None) -> str:
        if task is None:
            if len(self.config.tasks) != 1:
                raise ValueError(
                    f"this model has several tasks {list(self.task_index)}: pass task=<name>"
                )
            return self.config.tasks[0].name
        if task not in self.task_index:
            raise ValueError(f"unknown task {task!r}; this model has tasks {list(self.task_index)}")
        return task

    def check_input(self, x: torch.Tensor, task: str | None = None, strict_length: bool = True) -> str:
        """Validate ``x`` against the task's declared signal; return the task name."""
        name = self._task_name(task)
        spec = self.config.task(name)
        if x.ndim != 3:
            raise ValueError(
                f"input must be (batch, channels, samples) = (B, {spec.n_chans}, {spec.n_times}) "
                f"for task {name!r}, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != spec.n_chans:
            raise ValueError(
                f"task {name!r} expects {spec.n_chans} channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )
        if strict_length and x.shape[2] != spec.n_times:
            raise ValueError(
                f"task {name!r} expects windows of {spec.n_times} samples "
                f"({spec.n_times / spec.sfreq:g} s at {spec.sfreq:g} Hz), got {x.shape[2]}"
            )
        return name

    def forward_features(self, x: torch.Tensor, task: str | None = None,
                         strict_length: bool = True) -> torch.Tensor:
        """Class-token features ``(B, D)`` after the last block."""
        name = self.check_input(x, task, strict_length)
        t, cls_index = self.st_adaptive(x, name)
        task_token = None
        if self.task_tokens is not None:
            idx = torch.full((x.shape[0],), self.task_index[name], device=x.device, dtype=torch.long)
            task_token = self.task_tokens(idx)
        aux = x.new_zeros((), dtype=torch.float32)
        parts = {"balance": x.new_zeros((), dtype=torch.float32), "z": x.new_zeros((), dtype=torch.float32)}
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if i == last and not self.moes and not torch.is_grad_enabled() and isinstance(
                    block, BiMambaBlock) and not any(
                    m._forward_hooks or m._forward_pre_hooks for m in block.modules()):
                # inference reads only the class token of the last block: compute just that (not
                # when a block was swapped out, e.g. calibration's cached frozen prefix)
                self.last_aux_loss, self.last_aux_parts = aux, parts
                return block.forward_at(t, cls_index)
            t = block(t)
            if self.moes:
                t = self.moes[i](t, task_token)
                aux = aux + self.moes[i].aux_loss
                parts = {k: v + self.moes[i].aux_parts[k] for k, v in parts.items()}
        self.last_aux_loss = aux
        self.last_aux_parts = parts
        return t[:, cls_index]

    def forward(self, x: torch.Tensor, task: str | None = None, strict_length: bool = True) -> torch.Tensor:
        """``x (B, C, T)`` → logits ``(B, K)`` for ``task`` (optional when the model has one task)."""
        name = self._task_name(task)
        return self.classifier(self.forward_features(x, name, strict_length), name)

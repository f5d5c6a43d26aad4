"""Named EEGMamba variants (paper Table 8) and a tiny one for tests."""

from __future__ import annotations

from typing import Any, Iterable

from eegmamba.model.config import EEGMambaConfig, TaskSpec
from eegmamba.model.eegmamba import EEGMamba
from eegmamba.registry import register_variant


def _tasks(tasks: TaskSpec | dict | Iterable[TaskSpec | dict]) -> tuple[TaskSpec, ...]:
    if isinstance(tasks, (TaskSpec, dict)):
        tasks = [tasks]
    return tuple(TaskSpec(**t) if isinstance(t, dict) else t for t in tasks)


@register_variant("eegmamba_single", EEGMamba, EEGMambaConfig)
def eegmamba_single(tasks: Any, **overrides: Any) -> EEGMambaConfig:
    """Single-task EEGMamba (Appendix B): D=128, 2 BiMamba layers, no MoE, one conv branch, one head."""
    tasks = _tasks(tasks)
    if len(tasks) != 1:
        raise ValueError(f"eegmamba_single takes exactly one task, got {len(tasks)}")
    return EEGMambaConfig(tasks=tasks, **{"d_model": 128, "n_layers": 2, "use_moe": False, **overrides})


@register_variant("eegmamba_multi", EEGMamba, EEGMambaConfig)
def eegmamba_multi(tasks: Any, **overrides: Any) -> EEGMambaConfig:
    """Multi-task EEGMamba (Table 8): D=128, 8 BiMamba layers, 8 task-aware MoE blocks, 8 experts, top-2."""
    base = {"d_model": 128, "n_layers": 8, "use_moe": True, "n_experts": 8, "top_k": 2}
    return EEGMambaConfig(tasks=_tasks(tasks), **{**base, **overrides})


@register_variant("eegmamba_tiny", EEGMamba, EEGMambaConfig)
def eegmamba_tiny(tasks: Any, **overrides: Any) -> EEGMambaConfig:
    """A tiny multi-task model for tests: every block of the full model, small sizes."""
    base = {
        "d_model": 16, "n_layers": 2, "use_moe": True, "n_experts": 4, "top_k": 2, "d_state": 4,
        "expert_hidden": 32, "small_kernel": 8, "small_stride": 4, "wide_kernel": 40, "wide_stride": 20,
    }
    return EEGMambaConfig(tasks=_tasks(tasks), **{**base, **overrides})

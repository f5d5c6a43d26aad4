"""Named EEGMamba variants (paper Table 8), the single-task tokenizer variants of issue 17 and a tiny
one for tests."""

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


# EEGMamba at the single-task sizes with another small/wide convolution module (eegmamba/model/tokenizer_paths.py);
# everything else as eegmamba_single. Regularisation inside the paths (dropout, path drop) is our
# choice for cross-subject transfer; the bare 'conv' paths had none (issue 17).
TOKENIZER_VARIANTS = {
    # EEGNet's inductive bias: 0.25 s and 0.5 s depthwise temporal filters on each spatial filter,
    # log band power over 0.25 s / 0.5 s windows at half-overlap (23 + 11 tokens for 3 s)
    "eegmamba_fb": {"tokenizer": "filterbank", "small_kernel": 50, "small_stride": 25,
                    "wide_kernel": 100, "wide_stride": 50, "tokenizer_dropout": 0.25,
                    "tokenizer_drop_path": 0.1},
    # the original geometry (16/8 and 100/50 samples) as depthwise + pointwise convs
    "eegmamba_sep": {"tokenizer": "separable", "tokenizer_dropout": 0.1, "tokenizer_drop_path": 0.1},
    # small grouped convs (9 samples, 8 groups) with pooling: 2x2x2 (small) and 2x5x5 (wide)
    "eegmamba_stack": {"tokenizer": "stack", "tokenizer_groups": 8, "stack_kernel": 9,
                       "tokenizer_dropout": 0.1, "tokenizer_drop_path": 0.1},
    # the original dense paths as 8-group convs
    "eegmamba_grouped": {"tokenizer": "conv", "tokenizer_groups": 8, "tokenizer_dropout": 0.1,
                         "tokenizer_drop_path": 0.1},
}


def _register_tokenizer_variant(name: str, base: dict) -> None:
    def make(tasks: Any, **overrides: Any) -> EEGMambaConfig:
        sizes = {"d_model": 128, "n_layers": 2, "use_moe": False}  # eegmamba_single's
        return EEGMambaConfig(tasks=_tasks(tasks), **{**sizes, **base, **overrides})

    make.__doc__ = (f"EEGMamba at eegmamba_single's sizes (D=128, 2 BiMamba layers, no MoE; one "
                    f"head per task) with tokenizer paths {base['tokenizer']!r}: {base}.")
    register_variant(name, EEGMamba, EEGMambaConfig)(make)


for _name, _base in TOKENIZER_VARIANTS.items():
    _register_tokenizer_variant(_name, _base)


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

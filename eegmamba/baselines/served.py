"""Baselines as registered single-task models, trained by ``eegmamba-train --model NAME`` through the
one engine and served by ``eegmamba-live`` / ``eegmamba-eval`` exactly like an EEGMamba checkpoint.

What the rest of the project reads from a model (``eegmamba.registry``, the trainer, the checkpoint
contract, the live loop) is the single-task interface of EEGMamba's config: ``config.tasks`` (one
:class:`~eegmamba.model.config.TaskSpec`: task name, channels, window samples, classes, rate, channel
and class names), ``config.task(name)``, ``to_dict`` / ``from_dict``, and ``model(x, task=...)``.
:class:`SingleTaskFields` gives a baseline's config that interface; the config keeps its own
``n_chans`` / ``n_times`` / ``n_outputs`` / ``sfreq`` fields.

Registered here: ``eegconformer`` (the EEG Conformer, ``eegmamba.baselines.conformer``, with the
paper's sizes). ``eegnet`` registers itself in ``eegmamba.baselines.eegnet``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from eegmamba.baselines.conformer import ConformerConfig, EEGConformer
from eegmamba.registry import register_variant, task_specs


@dataclass(frozen=True, kw_only=True)
class SingleTaskFields:
    """Mixin for a baseline's frozen dataclass config with fields ``n_chans``, ``n_times``,
    ``n_outputs``, ``sfreq``: the task it serves (keyword-only, so they follow the config's own
    fields). ``task_name``: the profile's name (the checkpoint's task key); ``ch_names`` /
    ``class_names``: ordered names, as in :class:`~eegmamba.model.config.TaskSpec`."""

    task_name: str = "task"
    ch_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()

    # The single-task interface shared with EEGMamba's config (read by the trainer and the DDP setup).
    aux_loss_weight = 0.0
    use_moe = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_names", tuple(self.ch_names))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        self.tasks  # noqa: B018  (validates the names and counts through TaskSpec)

    @property
    def tasks(self) -> tuple:
        from eegmamba.model.config import TaskSpec

        return (TaskSpec(self.task_name, self.n_chans, self.n_times, self.n_outputs, float(self.sfreq),
                         self.ch_names, self.class_names),)

    def task(self, name: str):
        """The :class:`~eegmamba.model.config.TaskSpec` of task ``name`` (the only one)."""
        if name != self.task_name:
            raise ValueError(f"unknown task {name!r}; this model has task {self.task_name!r}")
        return self.tasks[0]

    def to_dict(self) -> dict[str, Any]:
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return cls(**d)


def json_ready(d: dict[str, Any]) -> dict[str, Any]:
    """Tuples as lists (what JSON gives back), recursively through dicts."""
    return {k: json_ready(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v
            for k, v in d.items()}


def single_task_config(config_cls: type, tasks: Any, **overrides: Any):
    """``config_cls`` for the one task in ``tasks`` (TaskSpec, dict or a list of one); ``overrides``
    are the config's own hyper-parameters."""
    specs = task_specs(tasks)
    if len(specs) != 1:
        raise ValueError(f"{config_cls.__name__} models take exactly one task, got {len(specs)} "
                         f"({', '.join(s.name for s in specs)})")
    s = specs[0]
    return config_cls(**{"n_chans": s.n_chans, "n_times": s.n_times, "n_outputs": s.n_classes,
                         "sfreq": float(s.sfreq), "task_name": s.name, "ch_names": s.ch_names,
                         "class_names": s.class_names, **overrides})


def check_task(config, task: str | None) -> None:
    """``model(x, task=...)``: the task, when given, must be the model's one."""
    if task is not None:
        config.task(task)


@dataclass(frozen=True)
class ConformerClassifierConfig(ConformerConfig, SingleTaskFields):
    """:class:`~eegmamba.baselines.conformer.ConformerConfig` with the task it serves."""

    def __post_init__(self) -> None:
        ConformerConfig.__post_init__(self)
        SingleTaskFields.__post_init__(self)


class ConformerClassifier(EEGConformer):
    """The EEG Conformer as a registered single-task model: ``forward(x (B, C, T), task=None)`` →
    logits ``(B, n_outputs)``."""

    def forward(self, x: torch.Tensor, task: str | None = None) -> torch.Tensor:
        check_task(self.config, task)
        return super().forward(x)


@register_variant("eegconformer", ConformerClassifier, ConformerClassifierConfig)
def eegconformer(tasks: Any, **overrides: Any) -> ConformerClassifierConfig:
    """EEG Conformer (Song et al., 2023; eegmamba.baselines.conformer) at the paper's sizes, one task."""
    return single_task_config(ConformerClassifierConfig, tasks, **overrides)

"""Registry of named models (timm style): ``create_model("eegmamba_single", tasks=...)``.

A variant is a function returning a config; the registry builds the model class registered with it.
Checkpoints store the variant name and the config dict, and every consumer (``eegmamba-eval``,
``eegmamba-live``, calibration) rebuilds them with the one :func:`build_model`, whatever the model.
Besides the EEGMamba variants and EEGM2, the baselines ``eegnet`` and ``eegconformer`` are registered
as single-task classifiers (``eegmamba.baselines.served``): :func:`trainable_models` lists what
``eegmamba-train --model`` can train.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch.nn as nn


@dataclass(frozen=True)
class _Entry:
    make_config: Callable[..., Any]
    model_cls: type[nn.Module]
    config_cls: type
    doc: str


_REGISTRY: dict[str, _Entry] = {}
# Modules whose import registers the built-in variants; imported on first registry lookup.
_BUILTIN_MODULES = ("eegmamba.model.variants", "eegmamba.eegm2", "eegmamba.baselines.eegnet",
                    "eegmamba.baselines.served")
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def register_variant(name: str, model_cls: type[nn.Module], config_cls: type) -> Callable:
    """Decorator: register ``fn(**kwargs) -> config`` under ``name`` for ``model_cls(config)``.

    ``config_cls`` must provide ``to_dict()`` and ``from_dict(d)``; the built model gets
    ``model.variant = name``.
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model variant {name!r} registered twice")
        _REGISTRY[name] = _Entry(fn, model_cls, config_cls, (fn.__doc__ or "").strip())
        return fn

    return deco


def _entry(name: str) -> _Entry:
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model variant {name!r}; available: {', '.join(list_models())}")
    return _REGISTRY[name]


def list_models() -> list[str]:
    """Names of all registered variants, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def trainable_models() -> list[str]:
    """Registered classifiers that build from task specs (``fn(tasks, **overrides)``): what
    ``eegmamba-train --model`` accepts (the EEGM2 encoders build from channel counts instead)."""
    return [n for n in list_models()
            if "tasks" in inspect.signature(_REGISTRY[n].make_config).parameters]


def task_specs(tasks: Any) -> tuple:
    """``tasks`` (a TaskSpec, a dict of its fields, or a list of those) as a tuple of TaskSpecs."""
    from eegmamba.model.config import TaskSpec

    if isinstance(tasks, (TaskSpec, dict)):
        tasks = [tasks]
    return tuple(TaskSpec(**t) if isinstance(t, dict) else t for t in tasks)


def variant_config(name: str, **kwargs: Any) -> Any:
    """The config object variant ``name`` builds for these keyword arguments."""
    return _entry(name).make_config(**kwargs)


def build_model(name: str, config: Any) -> nn.Module:
    """Build variant ``name`` from a config object or its ``to_dict()`` form."""
    entry = _entry(name)
    if isinstance(config, dict):
        config = entry.config_cls.from_dict(config)
    if not isinstance(config, entry.config_cls):
        raise TypeError(
            f"variant {name!r} needs a {entry.config_cls.__name__}, got {type(config).__name__}"
        )
    model = entry.model_cls(config)
    model.variant = name
    return model


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build variant ``name``; ``kwargs`` go to the variant's config function."""
    return build_model(name, variant_config(name, **kwargs))

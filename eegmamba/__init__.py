"""eegmamba: the EEGMamba model, preprocessing, data and training (never imports ``realtime``).

Public API: ``from eegmamba import EEGMamba, EEGMambaConfig, TaskSpec, create_model, list_models``.
Attributes are imported lazily (PEP 562) so that light modules (profiles, preprocessing, checks)
import without torch-heavy model code.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EEGMamba": "eegmamba.model.eegmamba",
    "EEGMambaConfig": "eegmamba.model.config",
    "TaskSpec": "eegmamba.model.config",
    "build_model": "eegmamba.registry",
    "create_model": "eegmamba.registry",
    "list_models": "eegmamba.registry",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'eegmamba' has no attribute {name!r}")

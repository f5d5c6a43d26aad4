"""Where the engine meets code it does not own: the per-profile augmentation.

The augmentations live in ``eegmamba.augment`` (``build_augmentation(profile) -> callable | None``,
declared per profile in YAML). The engine only calls the hook ``augment(x (B, C, T), y (B,),
generator) -> (x, y)`` on each training batch (never in validation or prediction).
"""

from __future__ import annotations

from typing import Callable


def augmentation_for(profile) -> Callable | None:
    """The profile's augmentation hook, or None (no augmentation declared, or ``eegmamba.augment``
    not present in this checkout)."""
    try:
        from eegmamba.augment import build_augmentation
    except ImportError:
        return None
    return build_augmentation(profile)

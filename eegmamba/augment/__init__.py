"""Training-time augmentation, declared in the profile's ``augmentation:`` section and applied on
the fly to each training batch by the training engine through one hook::

    augment = build_augmentation(profile)          # None when the profile declares none
    x, y = augment(x, y, generator)                # x (B, C, T) float, y (B,) int64 class indices

Order: hemisphere mirror (labels swapped), then :data:`eegmamba.profiles.AUGMENTATIONS` in that
order (time shift, noise, scale, channel dropout, time mask, frequency shift, FT surrogate). Each is
applied to each window independently with its probability ``p``; every random draw comes from
``generator`` (its device may differ from the batch's), so a seeded generator reproduces a batch.
Never used live or at evaluation.

Why our own and not braindecode's transforms (Rommel et al. 2022 wrote both): braindecode 1.8.1
requires torchaudio, whose newest wheel here (2.11.1) is built against torch 2.11 rather than our
2.13 (a compiled extension across a torch ABI change), plus skorch, mne_bids, wfdb, h5py, pandas,
pydantic and linear_attention_transformer, for ~150 lines of tensor code; its transforms draw from
numpy ``RandomState``, not the engine's ``torch.Generator``.
"""

from __future__ import annotations

from typing import Callable

import torch

from eegmamba.augment import spectral, temporal
from eegmamba.augment.mirror import HemisphereMirror
from eegmamba.augment._random import chosen
from eegmamba.profiles import AUGMENTATIONS, Profile, load_profile

TRANSFORMS: dict[str, Callable] = {
    "time_shift": temporal.time_shift, "noise": temporal.noise, "scale": temporal.scale,
    "channel_dropout": temporal.channel_dropout, "time_mask": temporal.time_mask,
    "freq_shift": spectral.freq_shift, "ft_surrogate": spectral.ft_surrogate,
}
assert tuple(TRANSFORMS) == AUGMENTATIONS

__all__ = ["Augmentation", "HemisphereMirror", "build_augmentation", "TRANSFORMS"]


class Augmentation:
    """The profile's augmentation as one callable ``(x, y, generator) -> (x, y)`` (module doc)."""

    def __init__(self, profile: Profile) -> None:
        spec = profile.augmentation
        self.sfreq = profile.sfreq
        self.steps = [(name, TRANSFORMS[name], t.p, t.magnitude)
                      for name, t in spec.transforms.items() if t.p > 0]
        self.mirror = (HemisphereMirror(profile.channels.names, profile.classes, spec.mirror_swap,
                                        spec.mirror_p) if spec.mirror_p > 0 else None)

    def __repr__(self) -> str:
        parts = [f"{n}(p={p:g}, m={m:g})" for n, _, p, m in self.steps]
        if self.mirror is not None:
            parts.insert(0, f"mirror(p={self.mirror.p:g})")
        return f"Augmentation({', '.join(parts)})"

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 3 or y.shape != x.shape[:1]:
            raise ValueError(f"augment takes x (B, C, T) and y (B,), got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        if self.mirror is not None:
            x, y = self.mirror(x, y, generator)
        for _, fn, p, m in self.steps:
            x = fn(x, chosen(p, x.shape[0], generator, x.device), m, self.sfreq, generator)
        return x, y


def build_augmentation(profile: Profile | str) -> Augmentation | None:
    """The profile's augmentation hook, or ``None`` when it declares none (or all ``p`` are 0).
    Raises ``UserInputError`` when a mirror is declared on an asymmetric montage."""
    profile = load_profile(profile)
    return Augmentation(profile) if profile.augmentation.enabled else None

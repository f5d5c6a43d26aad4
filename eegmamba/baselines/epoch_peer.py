"""What the pretrained sleep peers (YASA, GSSC) share: they stage a whole recording in 30 s epochs
from its first sample, which are exactly our 30 s windows (hop 30 s from the file start); a window is
matched to its epoch by index, with one staging per file (cached)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.profiles import Profile

EPOCH_S = 30.0


class EpochPeer:
    """Looks up a whole-recording stager's per-epoch probabilities for windows given by file and
    start time. Subclasses set ``name`` and implement :meth:`stage_file`."""

    name = "peer"

    def __init__(self, profile: Profile) -> None:
        if abs(profile.window.length_s - EPOCH_S) > 1e-9:
            raise UserInputError(f"{self.name} scores {EPOCH_S:g} s epochs; profile {profile.name!r} "
                                 f"has {profile.window.length_s:g} s windows")
        self.profile = profile
        self._cache: dict[str, np.ndarray] = {}

    def stage_file(self, path: str | Path) -> np.ndarray:
        """``(n_epochs, n_classes)`` probabilities in the profile's class order."""
        raise NotImplementedError

    def proba(self, files: np.ndarray, t_start: np.ndarray) -> np.ndarray:
        """``(N, n_classes)`` for windows of ``files`` starting at ``t_start`` seconds."""
        out = np.zeros((len(files), len(self.profile.classes)))
        for i, (f, t) in enumerate(zip(files, t_start)):
            if f not in self._cache:
                self._cache[f] = self.stage_file(f)
            k = int(round(t / EPOCH_S))
            if abs(t - k * EPOCH_S) > 0.1 or k >= len(self._cache[f]):
                raise ValueError(f"window at {t:.2f} s of {f} is not on {self.name}'s 30 s epoch grid")
            out[i] = self._cache[f][k]
        return out

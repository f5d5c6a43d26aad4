"""YASA's pretrained sleep staging (Vallat & Walker 2021, eLife 10:e70092) as a peer: the bar a
sleep researcher already has, with no training on our data.

YASA (``pip install yasa``; its LightGBM classifiers ship inside the package, so it runs offline)
stages a whole recording in 30 s epochs from one EEG channel (ideally central, referenced to the
mastoid) sampled at >= 100 Hz; it filters and resamples to 100 Hz itself and uses features of the
neighbouring epochs, so it is given the whole raw recording (the channel the profile picks, at the
file's own rate and in volts), not our windows. Epoch k covers [30 k, 30 k + 30) s from the first
sample, which is exactly our 30 s window k (hop 30 s from the file start); probabilities are matched
to windows by that index. YASA's stages WAKE/N1/N2/N3/REM map to the profile's W/N1/N2/N3/REM.

YASA refuses recordings below 80 Hz (DREAMS excerpt 3 is 50 Hz). Such a recording is resampled to
YASA's own working rate, 100 Hz (MNE's FFT resampling, what YASA itself applies to other rates),
before staging, as our pipeline resamples it to the profile's rate: the file then has no content
above its original Nyquist frequency (25 Hz), so YASA's 20–30 Hz band-power features see less beta
than in its training data — a handicap for YASA on such files, reported with the results.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.baselines.epoch_peer import EpochPeer
from eegmamba.channels import match_channels
from eegmamba.profiles import Profile

YASA_SFREQ = 100.0  # Hz, the rate YASA resamples to and computes its features at
_YASA = {"W": "WAKE", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "REM"}


def yasa_proba(path: str | Path, profile: Profile) -> np.ndarray:
    """YASA's stage probabilities per 30 s epoch of ``path``: ``(n_epochs, n_classes)`` in the
    profile's class order (a class YASA does not stage gets probability 0)."""
    try:
        import yasa
    except ImportError as exc:  # optional peer
        raise UserInputError("the YASA peer needs yasa: pip install yasa") from exc
    import mne

    if profile.n_channels != 1:
        raise UserInputError(f"YASA stages one EEG channel; profile {profile.name!r} has "
                             f"{profile.n_channels}")
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    pick = match_channels(raw.ch_names, profile.channels.names, profile.channels.aliases)[0]
    if raw.info["sfreq"] < YASA_SFREQ:
        raw.resample(YASA_SFREQ, verbose="error")  # YASA asserts >= 80 Hz (module docstring)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn/joblib persistence and resampling notices
        hyp = yasa.SleepStaging(raw, eeg_name=raw.ch_names[pick]).predict()
    p = hyp.proba
    out = np.zeros((len(p), len(profile.classes)))
    for k, c in enumerate(profile.classes):
        if _YASA.get(c) in p.columns:
            out[:, k] = p[_YASA[c]].to_numpy()
    return out


class YasaPeer(EpochPeer):
    """YASA's probabilities looked up per window (:class:`~eegmamba.baselines.epoch_peer.EpochPeer`)."""

    name = "YASA"

    def stage_file(self, path: str | Path) -> np.ndarray:
        return yasa_proba(path, self.profile)

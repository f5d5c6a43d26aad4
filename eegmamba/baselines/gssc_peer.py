"""The Greifswald Sleep Stage Classifier (GSSC; Hanna & Flöel 2023, https://github.com/jshanna100/gssc)
as a second pretrained sleep peer beside YASA: a deep network (a residual CNN per 30 s epoch and a
context GRU over the night) whose weights ship inside the ``gssc`` wheel, so it runs offline.

``EEGInfer.mne_infer`` (its documented entry point) takes the whole recording as an MNE Raw, band-
passes it to 0.3–30 Hz, cuts it into 30 s epochs from the first sample (the remainder at the end is
cut off), resamples each to 2560 samples (85.3 Hz), z-scores each channel over the night and stages
every epoch. Epoch k is therefore exactly our 30 s window k (hop 30 s from the file start), as for
YASA (the last full epoch is kept, see :func:`gssc_stages`). It is given one EEG channel (the one the
profile picks; no EOG in the DREAMS excerpts).

Two things to know when reading its figures:

- **Hard stages only**: ``mne_infer`` returns a stage per epoch, not probabilities, so its
  "probabilities" here are one-hot; balanced accuracy and κ are exact, AUROC is that of hard labels.
- **torch >= 2.6**: the wheel's weights are whole pickled modules, which ``torch.load`` refuses by
  default since torch 2.6 (``weights_only=True``), so ``EEGInfer()`` fails out of the box with our
  torch 2.13. They are loaded here with ``weights_only=False`` — the same trust as importing the
  package's code, which the pickle references — and handed to ``EEGInfer``.

DREAMS excerpt 3 is 50 Hz: GSSC's 30 Hz low-pass is then above the file's Nyquist frequency and its
85.3 Hz epochs have nothing above 25 Hz (a handicap for GSSC on that file, as for YASA).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.baselines.epoch_peer import EpochPeer
from eegmamba.channels import match_channels
from eegmamba.profiles import Profile

GSSC_STAGES = ("W", "N1", "N2", "N3", "REM")  # GSSC's output index → stage (its hypnogram codes 0–4)

_NETS: tuple | None = None


def _infer():
    """GSSC's ``EEGInfer`` on the CPU with the wheel's own networks (loaded once per process)."""
    global _NETS
    try:
        import torch
        from gssc.infer import EEGInfer
        from importlib_resources import files
    except ImportError as exc:  # optional peer
        raise UserInputError("the GSSC peer needs gssc: pip install gssc") from exc
    if _NETS is None:
        nets = files("gssc.nets")
        _NETS = tuple(torch.load(nets.joinpath(name), map_location="cpu", weights_only=False)
                      for name in ("sig_net_v1.pt", "gru_net_v1.pt"))  # module docstring
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return EEGInfer(net=_NETS[0], con_net=_NETS[1], use_cuda=False)


def gssc_stages(path: str | Path, profile: Profile) -> np.ndarray:
    """GSSC's stage per 30 s epoch of ``path`` as indices into ``profile.classes`` (-1: a stage the
    profile does not have)."""
    import mne

    if profile.n_channels != 1:
        raise UserInputError(f"the GSSC peer stages one EEG channel; profile {profile.name!r} has "
                             f"{profile.n_channels}")
    raw = mne.io.read_raw(path, preload=True, verbose="error")
    ch = raw.ch_names[match_channels(raw.ch_names, profile.channels.names, profile.channels.aliases)[0]]
    raw.pick([ch])
    raw.set_channel_types({ch: "eeg"}, verbose="error")
    # GSSC cuts the recording at the last multiple of 30 s of ``raw.times[-1]``, the time of the last
    # sample, which is one sample short of the duration: a 30-min excerpt would lose its last full
    # epoch. One repeated sample at the end makes ``times[-1]`` the duration.
    data = raw.get_data()
    raw = mne.io.RawArray(np.concatenate([data, data[:, -1:]], axis=1), raw.info, verbose="error")
    infer = _infer()
    with (warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()),
          mne.utils.use_log_level("error")):
        warnings.simplefilter("ignore")  # its notices about filters and CUDA
        stages, _ = infer.mne_infer(raw, eeg=[ch], eog=[], eeg_drop=False, eog_drop=True)
    index = {c: k for k, c in enumerate(profile.classes)}
    return np.array([index.get(GSSC_STAGES[int(s)], -1) for s in stages], dtype=np.int64)


class GsscPeer(EpochPeer):
    """GSSC's stages looked up per window as one-hot probabilities (module docstring;
    :class:`~eegmamba.baselines.epoch_peer.EpochPeer`)."""

    name = "GSSC"

    def stage_file(self, path: str | Path) -> np.ndarray:
        stages = gssc_stages(path, self.profile)
        out = np.zeros((len(stages), len(self.profile.classes)))
        known = stages >= 0
        out[np.flatnonzero(known), stages[known]] = 1.0
        return out
